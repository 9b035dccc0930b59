//! `cargo run -p examples --bin demo`: starts a route guide server on a free loopback port,
//! runs the client's four calls against it over real TCP, then stops the server gracefully.

use examples::proto::route_guide_grpc::RouteGuideServer;
use examples::route_guide::{RouteGuideService, run_client};
use grpc_runtime::server::Server;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::process::init_logging("info");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = Server::builder()
        .add_service(RouteGuideServer::new(RouteGuideService::default()))
        .build();
    let serving = tokio::spawn({
        let server = server.clone();
        async move { server.serve_tcp(listener).await }
    });
    println!("server: route guide listening on {addr}");
    let result = run_client(&format!("http://{addr}")).await;
    server.graceful_stop().await;
    serving.await??;
    result?;
    println!("demo: all four kinds of RPC succeeded");
    Ok(())
}
