//! `tonic-benchmark-server`: grpc.testing.BenchmarkService on tonic, default settings.

use benchmark_tonic::Bench;
use benchmark_tonic::harness::{Args, runtime};
use benchmark_tonic::proto::benchmark_service_server::BenchmarkServiceServer;

const USAGE: &str = "\
tonic-benchmark-server: grpc.testing.BenchmarkService on tonic 0.14.

Options:
  --port N      port on 127.0.0.1 (0 picks one) [50051]
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
        println!("tonic-benchmark-server listening on {addr}");
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .add_service(BenchmarkServiceServer::new(Bench))
            .serve_with_incoming(incoming)
            .await
            .expect("serve");
    });
}
