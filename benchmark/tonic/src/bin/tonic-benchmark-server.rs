//! `tonic-benchmark-server`: grpc.testing.BenchmarkService on tonic, default settings.

use benchmark_tonic::Bench;
use benchmark_tonic::harness::{Args, runtime};
use benchmark_tonic::proto::benchmark_service_server::BenchmarkServiceServer;
use tonic::transport::{Identity, ServerTlsConfig};

const USAGE: &str = "\
tonic-benchmark-server: grpc.testing.BenchmarkService on tonic 0.14.

Options:
  --port N      port on 127.0.0.1 (0 picks one) [50051]
  --threads N   runtime threads (1: current-thread runtime) [1]
  --tls-cert F  TLS (rustls + ring, ALPN h2) with this certificate chain (PEM); needs --tls-key
  --tls-key F   the certificate's private key (PEM)";

/// tonic's TLS configuration from the two PEM files.
fn tls(cert: &str, key: &str) -> ServerTlsConfig {
    let read = |f: &str| std::fs::read(f).unwrap_or_else(|e| panic!("failed to read {f}: {e}"));
    ServerTlsConfig::new().identity(Identity::from_pem(read(cert), read(key)))
}

fn main() {
    let mut args = Args::parse(USAGE);
    let port: u16 = args.get("port", 50051);
    let threads: usize = args.get("threads", 1);
    let cert: Option<String> = args.opt("tls-cert");
    let key: Option<String> = args.opt("tls-key");
    args.finish();
    let tls = match (cert, key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(tls(&cert, &key)),
        _ => panic!("--tls-cert and --tls-key go together"),
    };
    runtime(threads).block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("failed to bind port {port}: {e}"));
        let addr = listener.local_addr().expect("local address");
        let secured = if tls.is_some() { ", TLS" } else { "" };
        println!("tonic-benchmark-server listening on {addr}{secured}");
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).expect("tonic TLS configuration");
        }
        builder
            .add_service(BenchmarkServiceServer::new(Bench))
            .serve_with_incoming(incoming)
            .await
            .expect("serve");
    });
}
