//! `cargo run -p examples --bin helloworld-server [-- ADDR]` (default 127.0.0.1:50051).

use std::time::Duration;

use examples::process::{init_logging, stop_on_signals};
use examples::proto::helloworld::{HelloReply, HelloRequest};
use examples::proto::helloworld_grpc::{Greeter, GreeterServer};
use grpc_runtime::server::Server;
use grpc_runtime::{Request, Response, Status};

struct MyGreeter;

impl Greeter for MyGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let mut reply = HelloReply::new();
        reply.message = format!("Hello {}", request.get_ref().name);
        Ok(Response::new(reply))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging("info");
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:50051".to_owned());
    let server = Server::builder()
        .add_service(GreeterServer::new(MyGreeter))
        .build();
    // Ctrl-C: in-flight calls get 10 s; a second Ctrl-C stops at once.
    stop_on_signals(server.clone(), Duration::from_secs(10));
    println!("greeter listening on {addr}");
    server.serve(addr).await?;
    Ok(())
}
