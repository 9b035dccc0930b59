//! The interop test server:
//! `interop-server --port=PORT [--host=ADDR] [--use_tls=true --cert_file=F --key_file=F]
//! [--max_connections=N] [--connection_timeout_ms=N]`.
//!
//! It listens on 127.0.0.1 unless `--host` names another local address: `--host=0.0.0.0`
//! (or `--host=::`) binds all interfaces, which a test server should do only when asked.
//! SIGINT or SIGTERM stops it gracefully (calls get [`GRACE`]); a second one at once. Logs
//! go to stderr at `info` unless `RUST_LOG` says otherwise.
//!
//! Beside `grpc.testing.TestService` it serves health (`grpc.health.v1`: the whole server
//! and `grpc.testing.TestService` SERVING), channelz (`grpc.channelz.v1`, the process's
//! channels, servers and sockets) and reflection (v1 and v1alpha).

use std::net::IpAddr;
use std::time::Duration;

use grpc_runtime::credentials::ServerCredentials;
use grpc_runtime::credentials::tls::{Identity, ServerTlsConfig};
use grpc_runtime::health::{HealthReporter, ServingStatus};
use grpc_runtime::reflection;
use grpc_runtime::server::Server;
use interop::flags::Flags;
use interop::process::{init_logging, stop_on_signals};
use interop::proto::test_grpc::TestServiceServer;
use interop::server::TestServiceImpl;

/// How long in-flight calls may run on after the first SIGINT/SIGTERM (the interop scripts
/// SIGKILL a server still there 5 s after SIGTERM).
const GRACE: Duration = Duration::from_secs(2);

const USAGE: &str = "usage: interop-server [--port=N] [--host=ADDR] [--use_tls=true --cert_file=F --key_file=F]
  --port=N      port to listen on [10000]
  --host=ADDR   local address to bind: 127.0.0.1, ::1, or 0.0.0.0 / :: for all interfaces [127.0.0.1]
  --max_connections=N        connections served at once; more are closed [no limit]
  --connection_timeout_ms=N  handshakes (up to the client's SETTINGS) within this [120000]";

#[tokio::main]
async fn main() {
    init_logging("info");
    let known = [
        "port",
        "host",
        "use_tls",
        "cert_file",
        "key_file",
        "max_connections",
        "connection_timeout_ms",
    ];
    let flags = match Flags::parse(std::env::args().skip(1), &known) {
        Ok(flags) => flags,
        Err(e) => {
            eprintln!("interop-server: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let port: u16 = flags.number("port", 10000).unwrap_or_else(|e| {
        eprintln!("interop-server: {e}");
        std::process::exit(2)
    });
    let host: IpAddr = flags.get("host", "127.0.0.1").parse().unwrap_or_else(|_| {
        eprintln!("interop-server: --host takes an IP address\n{USAGE}");
        std::process::exit(2)
    });
    let credentials = credentials(&flags).unwrap_or_else(|e| {
        eprintln!("interop-server: {e}");
        std::process::exit(2)
    });
    let (max_connections, connection_timeout_ms): (usize, u64) = flags
        .number("max_connections", 0)
        .and_then(|max| Ok((max, flags.number("connection_timeout_ms", 120_000)?)))
        .unwrap_or_else(|e| {
            eprintln!("interop-server: {e}");
            std::process::exit(2)
        });
    let health = HealthReporter::new();
    health.set_serving_status("grpc.testing.TestService", ServingStatus::SERVING);
    let mut builder = Server::builder()
        .connection_timeout(Duration::from_millis(connection_timeout_ms))
        .credentials(credentials)
        .add_service(TestServiceServer::new(TestServiceImpl))
        .add_service(health.service())
        .add_service(grpc_runtime::channelz::service());
    if max_connections > 0 {
        builder = builder.max_connections(max_connections);
    }
    let server = reflection::register(builder).build();
    stop_on_signals(server.clone(), GRACE);
    eprintln!("interop-server: listening on {host} port {port}");
    if let Err(e) = server.serve((host, port)).await {
        eprintln!("interop-server: {e}");
        std::process::exit(1);
    }
}

/// The transport credentials the TLS flags ask for.
fn credentials(flags: &Flags) -> Result<ServerCredentials, String> {
    if !flags.bool("use_tls", false)? {
        return Ok(ServerCredentials::insecure());
    }
    let (cert, key) = (flags.get("cert_file", ""), flags.get("key_file", ""));
    if cert.is_empty() || key.is_empty() {
        // gRPC's servers fall back to test certificates they embed; we ship none.
        return Err("--use_tls=true needs --cert_file and --key_file".to_owned());
    }
    let identity = Identity::from_pem_files(cert, key).map_err(|e| e.to_string())?;
    ServerCredentials::tls(ServerTlsConfig::new(identity)).map_err(|e| e.to_string())
}
