//! The interop test server: `interop-server --port=PORT [--use_tls=false]`.

use grpc_runtime::server::Server;
use interop::flags::Flags;
use interop::proto::test_grpc::TestServiceServer;
use interop::server::TestServiceImpl;

#[tokio::main]
async fn main() {
    let flags = match Flags::parse(std::env::args().skip(1), &["port", "use_tls"]) {
        Ok(flags) => flags,
        Err(e) => {
            eprintln!("interop-server: {e}");
            std::process::exit(2);
        }
    };
    let port: u16 = flags.number("port", 10000).unwrap_or_else(|e| {
        eprintln!("interop-server: {e}");
        std::process::exit(2)
    });
    if flags.bool("use_tls", false).unwrap_or(true) {
        eprintln!("interop-server: --use_tls=true is not supported yet");
        std::process::exit(2);
    }
    let server = Server::builder()
        .add_service(TestServiceServer::new(TestServiceImpl))
        .build();
    let stopper = server.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stopper.graceful_stop().await;
    });
    eprintln!("interop-server: listening on port {port}");
    if let Err(e) = server.serve(("0.0.0.0", port)).await {
        eprintln!("interop-server: {e}");
        std::process::exit(1);
    }
}
