//! Health checking and server reflection (`cargo run -p examples --bin health-reflection`):
//! a greeter server that hosts both, reports its greeter NOT_SERVING while it "warms up",
//! then SERVING; a client that watches the change and asks reflection what the server
//! serves and what `SayHello` takes.

use grpc_runtime::client::Channel;
use grpc_runtime::health::pb::{HealthCheckRequest, HealthClient};
use grpc_runtime::health::{HealthReporter, ServingStatus};
use grpc_runtime::reflection::v1::server_reflection_request::Message_request;
use grpc_runtime::reflection::v1::server_reflection_response::Message_response;
use grpc_runtime::reflection::v1::{ServerReflectionClient, ServerReflectionRequest};
use grpc_runtime::server::Server;
use grpc_runtime::{Request, Response, Status};
use protobuf::Message;
use protobuf::descriptor::FileDescriptorProto;

use crate::proto::helloworld::{HelloReply, HelloRequest};
use crate::proto::helloworld_grpc::{Greeter, GreeterServer};

struct Hello;

impl Greeter for Hello {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let mut reply = HelloReply::new();
        reply.message = format!("Hello {}", request.get_ref().name);
        Ok(Response::new(reply))
    }
}

/// What the demo saw.
#[derive(Debug)]
pub struct Outcome {
    /// The greeter's statuses, as the client's `Watch` received them.
    pub watched: Vec<ServingStatus>,
    /// The services reflection lists.
    pub services: Vec<String>,
    /// `SayHello`'s request and response types, from the file reflection sent.
    pub say_hello: (String, String),
}

/// Runs the server and the client.
///
/// # Errors
///
/// If the server cannot start or a call fails.
pub async fn run() -> Result<Outcome, Box<dyn std::error::Error>> {
    const GREETER: &str = "helloworld.Greeter";
    let health = HealthReporter::new();
    health.set_serving_status(GREETER, ServingStatus::NOT_SERVING);
    let builder = Server::builder()
        .add_service(GreeterServer::new(Hello))
        .add_service(health.service());
    // Reflection describes every service added before it.
    let server = grpc_runtime::reflection::register(builder).build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(server.clone().serve_tcp(listener));
    let channel = Channel::new(&format!("http://{addr}"))?;

    // Health: watch the greeter while the server warms up.
    let mut ask = HealthCheckRequest::new();
    ask.service = GREETER.to_owned();
    let mut watch = HealthClient::new(channel.clone()).watch(ask).await?;
    let mut watched = Vec::new();
    let first = watch.message().await?.ok_or("the watch ended")?;
    watched.push(first.status.enum_value_or_default());
    health.set_serving_status(GREETER, ServingStatus::SERVING);
    let next = watch.message().await?.ok_or("the watch ended")?;
    watched.push(next.status.enum_value_or_default());
    drop(watch);

    // Reflection: what does the server serve, and what does SayHello take?
    let client = ServerReflectionClient::new(channel);
    let (mut tx, mut rx) = client.server_reflection_info(()).await?;
    let mut list = ServerReflectionRequest::new();
    list.message_request = Some(Message_request::ListServices(String::new()));
    tx.send(list).await?;
    let services = match rx.message().await?.and_then(|r| r.message_response) {
        Some(Message_response::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => return Err(format!("unexpected answer {other:?}").into()),
    };
    let mut symbol = ServerReflectionRequest::new();
    symbol.message_request = Some(Message_request::FileContainingSymbol(format!(
        "{GREETER}.SayHello"
    )));
    tx.send(symbol).await?;
    let files = match rx.message().await?.and_then(|r| r.message_response) {
        Some(Message_response::FileDescriptorResponse(files)) => files.file_descriptor_proto,
        other => return Err(format!("unexpected answer {other:?}").into()),
    };
    tx.close();
    let file = FileDescriptorProto::parse_from_bytes(files.first().ok_or("no file")?)?;
    let method = file
        .service
        .iter()
        .flat_map(|s| &s.method)
        .find(|m| m.name() == "SayHello")
        .ok_or("SayHello not in the file")?;
    let say_hello = (
        method.input_type().to_owned(),
        method.output_type().to_owned(),
    );
    server.graceful_stop().await;
    Ok(Outcome {
        watched,
        services,
        say_hello,
    })
}
