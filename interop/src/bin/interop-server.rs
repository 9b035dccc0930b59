//! The interop test server:
//! `interop-server --port=PORT [--use_tls=true --cert_file=F --key_file=F]`.
//!
//! Beside `grpc.testing.TestService` it serves health (`grpc.health.v1`: the whole server
//! and `grpc.testing.TestService` SERVING) and reflection (v1 and v1alpha).

use grpc_runtime::credentials::ServerCredentials;
use grpc_runtime::credentials::tls::{Identity, ServerTlsConfig};
use grpc_runtime::health::{HealthReporter, ServingStatus};
use grpc_runtime::reflection;
use grpc_runtime::server::Server;
use interop::flags::Flags;
use interop::proto::test_grpc::TestServiceServer;
use interop::server::TestServiceImpl;

#[tokio::main]
async fn main() {
    let known = ["port", "use_tls", "cert_file", "key_file"];
    let flags = match Flags::parse(std::env::args().skip(1), &known) {
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
    let credentials = credentials(&flags).unwrap_or_else(|e| {
        eprintln!("interop-server: {e}");
        std::process::exit(2)
    });
    let health = HealthReporter::new();
    health.set_serving_status("grpc.testing.TestService", ServingStatus::SERVING);
    let builder = Server::builder()
        .credentials(credentials)
        .add_service(TestServiceServer::new(TestServiceImpl))
        .add_service(health.service());
    let server = reflection::register(builder).build();
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
