//! `cargo run -p examples --bin error-details`: the richer error model. A greeter that
//! validates its request fails a call with `google.rpc` error details (`BadRequest`,
//! `ErrorInfo`, `Help`), and the client reads them back with `Status::error_details`.

use examples::proto::helloworld::{HelloReply, HelloRequest};
use examples::proto::helloworld_grpc::{Greeter, GreeterClient, GreeterServer};
use grpc_runtime::client::Channel;
use grpc_runtime::error_details::ErrorDetails;
use grpc_runtime::server::Server;
use grpc_runtime::{Code, Request, Response, Status};

/// Names longer than this are refused.
const MAX_NAME: usize = 16;

struct Strict;

impl Greeter for Strict {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let name = &request.get_ref().name;
        let mut details = ErrorDetails::new();
        if name.is_empty() {
            details = details.with_bad_request_violation("name", "must not be empty");
        }
        if name.chars().count() > MAX_NAME {
            details = details.with_bad_request_violation(
                "name",
                format!("must be at most {MAX_NAME} characters"),
            );
        }
        if !details.is_empty() {
            let details = details
                .with_error_info(
                    "INVALID_NAME",
                    "greeter.example.com",
                    [("max_length", MAX_NAME.to_string())],
                )
                .with_help_link("naming rules", "https://greeter.example.com/docs/names");
            return Err(Status::with_error_details(
                Code::InvalidArgument,
                "the request has invalid fields",
                details,
            ));
        }
        let mut reply = HelloReply::new();
        reply.message = format!("Hello {name}");
        Ok(Response::new(reply))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::process::init_logging("info");
    let server = Server::builder()
        .add_service(GreeterServer::new(Strict))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(server.serve_tcp(listener));

    let client = GreeterClient::new(Channel::new(&format!("http://{addr}"))?);
    for name in ["Ada", "", "Bartholomew Fortescue-Smythe"] {
        let mut request = HelloRequest::new();
        request.name = name.to_owned();
        println!("say_hello({name:?})");
        match client.say_hello(request).await {
            Ok(reply) => println!("  reply: {}", reply.get_ref().message),
            Err(status) => print_failure(&status)?,
        }
    }
    server.graceful_stop().await;
    Ok(())
}

/// Prints a failed call's status and the error details it carries.
fn print_failure(status: &Status) -> Result<(), Box<dyn std::error::Error>> {
    println!("  failed: {status}");
    // Err if grpc-status-details-bin is not a google.rpc.Status (or disagrees with the code).
    let details = status.error_details()?;
    if let Some(bad) = details.bad_request() {
        for violation in &bad.field_violations {
            println!(
                "  bad request: {}: {}",
                violation.field, violation.description
            );
        }
    }
    if let Some(info) = details.error_info() {
        println!(
            "  error info: {} in {}, metadata {:?}",
            info.reason, info.domain, info.metadata
        );
    }
    // A server that is only busy would say when to try again (RetryInfo); a bad request
    // will not get better by retrying, so this one does not.
    if let Some(delay) = details.retry_delay() {
        println!("  retry after: {delay:?}");
    }
    if let Some(help) = details.help() {
        for link in &help.links {
            println!("  help: {} <{}>", link.description, link.url);
        }
    }
    Ok(())
}
