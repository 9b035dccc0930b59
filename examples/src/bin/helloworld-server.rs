//! `cargo run -p examples --bin helloworld-server [-- ADDR]` (default 127.0.0.1:50051).

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
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:50051".to_owned());
    let server = Server::builder()
        .add_service(GreeterServer::new(MyGreeter))
        .build();
    let stopper = server.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stopper.graceful_stop().await;
    });
    println!("greeter listening on {addr}");
    server.serve(addr).await?;
    Ok(())
}
