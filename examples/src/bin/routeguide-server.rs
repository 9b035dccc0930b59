//! `cargo run -p examples --bin routeguide-server [-- ADDR]` (default 127.0.0.1:10000).

use std::time::Duration;

use examples::process::{init_logging, stop_on_signals};
use examples::proto::route_guide_grpc::RouteGuideServer;
use examples::route_guide::RouteGuideService;
use grpc_runtime::server::Server;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging("info");
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:10000".to_owned());
    let server = Server::builder()
        .add_service(RouteGuideServer::new(RouteGuideService::default()))
        .build();
    // Ctrl-C: in-flight calls get 10 s; a second Ctrl-C stops at once.
    stop_on_signals(server.clone(), Duration::from_secs(10));
    println!("route guide listening on {addr}");
    server.serve(addr).await?;
    Ok(())
}
