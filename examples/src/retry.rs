//! Retries from the service config (`cargo run -p examples --bin retry`): a greeter that fails
//! the first two attempts of every call with `UNAVAILABLE`, and a client whose service config
//! retries `UNAVAILABLE` up to four attempts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use grpc_runtime::client::Channel;
use grpc_runtime::server::Server;
use grpc_runtime::{Request, Response, Status};

use crate::proto::helloworld::{HelloReply, HelloRequest};
use crate::proto::helloworld_grpc::{Greeter, GreeterClient, GreeterServer};

/// The client's service config: retry `UNAVAILABLE` on every Greeter method.
pub const SERVICE_CONFIG: &str = r#"{
    "methodConfig": [{
        "name": [{"service": "helloworld.Greeter"}],
        "retryPolicy": {
            "maxAttempts": 4,
            "initialBackoff": "0.05s",
            "maxBackoff": "0.5s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"]
        }
    }]
}"#;

/// Fails every call's first two attempts (it tells them by `grpc-previous-rpc-attempts`).
#[derive(Default)]
struct Flaky {
    attempts: Arc<AtomicUsize>,
}

impl Greeter for Flaky {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let previous: usize = request
            .metadata()
            .get("grpc-previous-rpc-attempts")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if previous < 2 {
            return Err(Status::unavailable(format!(
                "attempt {} fails",
                previous + 1
            )));
        }
        let mut reply = HelloReply::new();
        reply.message = format!(
            "Hello {} (attempt {})",
            request.get_ref().name,
            previous + 1
        );
        Ok(Response::new(reply))
    }
}

/// What the demo saw: the reply, and the attempts the server handled.
#[derive(Debug)]
pub struct Outcome {
    /// The reply to the one call.
    pub reply: String,
    /// Attempts the server saw for it.
    pub attempts: usize,
}

/// Runs the server and one call.
///
/// # Errors
///
/// If the server cannot start or the call fails after its retries.
pub async fn run() -> Result<Outcome, Box<dyn std::error::Error>> {
    let flaky = Flaky::default();
    let attempts = Arc::clone(&flaky.attempts);
    let server = Server::builder()
        .add_service(GreeterServer::new(flaky))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(server.serve_tcp(listener));

    let channel = Channel::builder(&format!("http://{addr}"))
        .default_service_config(SERVICE_CONFIG)
        .build()?;
    let mut request = HelloRequest::new();
    request.name = "Ada".to_owned();
    let reply = GreeterClient::new(channel).say_hello(request).await?;
    server.graceful_stop().await;
    Ok(Outcome {
        reply: reply.into_inner().message,
        attempts: attempts.load(Ordering::SeqCst),
    })
}
