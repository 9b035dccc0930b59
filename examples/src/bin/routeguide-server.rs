//! `cargo run -p examples --bin routeguide-server [-- ADDR]` (default 127.0.0.1:10000).

use examples::proto::route_guide_grpc::RouteGuideServer;
use examples::route_guide::RouteGuideService;
use grpc_runtime::server::Server;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:10000".to_owned());
    let server = Server::builder()
        .add_service(RouteGuideServer::new(RouteGuideService::default()))
        .build();
    let stopper = server.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stopper.graceful_stop().await;
    });
    println!("route guide listening on {addr}");
    server.serve(addr).await?;
    Ok(())
}
