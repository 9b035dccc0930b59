//! `benchmark-server`: grpc.testing.BenchmarkService on our runtime.

use benchmark::harness::{Args, runtime};
use benchmark::proto::benchmark_service_grpc::BenchmarkServiceServer;
use benchmark::service::Bench;
use grpc_runtime::server::Server;

const USAGE: &str = "\
benchmark-server: grpc.testing.BenchmarkService on grpc-runtime (UnaryCall, StreamingCall).

Options:
  --port N      port on 127.0.0.1 (0 picks one; the chosen port is printed) [50051]
  --threads N   runtime threads (1: current-thread runtime) [1]";

fn main() {
    let mut args = Args::parse(USAGE);
    let port: u16 = args.get("port", 50051);
    let threads: usize = args.get("threads", 1);
    args.finish();
    runtime(threads).block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("failed to bind port {port}: {e}"));
        let addr = listener.local_addr().expect("local address");
        println!("benchmark-server (grpc-runtime) listening on {addr}");
        let server = Server::builder()
            .add_service(BenchmarkServiceServer::new(Bench))
            .build();
        server.serve_tcp(listener).await.expect("serve");
    });
}
