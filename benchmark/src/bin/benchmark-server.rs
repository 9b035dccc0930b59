//! `benchmark-server`: grpc.testing.BenchmarkService on our runtime. SIGINT/SIGTERM stop it
//! gracefully (calls get 2 s), a second one at once; logs go to stderr (`RUST_LOG`, default
//! `info`), the listening line to stdout.

use std::time::Duration;

use benchmark::harness::{Args, runtime};
use benchmark::process::{init_logging, stop_on_signals};
use benchmark::proto::benchmark_service_grpc::BenchmarkServiceServer;
use benchmark::service::Bench;
use grpc_runtime::credentials::ServerCredentials;
use grpc_runtime::credentials::tls::{Identity, ServerTlsConfig};
use grpc_runtime::server::Server;

const USAGE: &str = "\
benchmark-server: grpc.testing.BenchmarkService on grpc-runtime (UnaryCall, StreamingCall,
StreamingFromClient, StreamingFromServer).

Options:
  --port N      port on 127.0.0.1 (0 picks one; the chosen port is printed) [50051]
  --threads N   runtime threads (1: current-thread runtime) [1]
  --tls-cert F  TLS (ALPN h2) with this certificate chain (PEM); needs --tls-key [plaintext]
  --tls-key F   the certificate's private key (PEM)
  --stream-window N
                HTTP/2 stream window, fixed [the runtime's: 2 MiB, grown by BDP estimation]
  --conn-window N
                HTTP/2 connection window, fixed [the runtime's: 8 MiB, grown likewise]
  --message-memory N
                the server's budget for large messages in flight, in bytes [1073741824]:
                a throughput benchmark's 1,000 calls of 100 KiB each way are its workload,
                where the runtime's 32 MiB default would refuse some with RESOURCE_EXHAUSTED";

fn main() {
    init_logging("info");
    let mut args = Args::parse(USAGE);
    let port: u16 = args.get("port", 50051);
    let threads: usize = args.get("threads", 1);
    let cert: Option<String> = args.opt("tls-cert");
    let key: Option<String> = args.opt("tls-key");
    let message_memory: usize = args.get("message-memory", 1 << 30);
    let stream_window: Option<u32> = args.opt("stream-window");
    let conn_window: Option<u32> = args.opt("conn-window");
    args.finish();
    let credentials = match (cert, key) {
        (None, None) => ServerCredentials::insecure(),
        (Some(cert), Some(key)) => Identity::from_pem_files(&cert, &key)
            .and_then(|id| ServerCredentials::tls(ServerTlsConfig::new(id)))
            .unwrap_or_else(|e| panic!("TLS identity from {cert} and {key}: {e}")),
        _ => panic!("--tls-cert and --tls-key go together"),
    };
    let tls = if credentials.is_secure() { ", TLS" } else { "" };
    runtime(threads).block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("failed to bind port {port}: {e}"));
        let addr = listener.local_addr().expect("local address");
        println!("benchmark-server (grpc-runtime) listening on {addr}{tls}");
        let mut builder = Server::builder()
            .credentials(credentials)
            .add_service(BenchmarkServiceServer::new(Bench))
            .message_memory_limit(message_memory);
        if let Some(size) = stream_window {
            builder = builder.initial_stream_window_size(size);
        }
        if let Some(size) = conn_window {
            builder = builder.initial_connection_window_size(size);
        }
        let server = builder.build();
        stop_on_signals(server.clone(), Duration::from_secs(2));
        server.serve_tcp(listener).await.expect("serve");
    });
}
