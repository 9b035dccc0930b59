//! The interop test client:
//! `interop-client --server_host=HOST --server_port=PORT --test_case=NAME|a,b|all`
//! `[--use_tls=true [--use_test_ca=true] [--ca_file=F] [--server_host_override=NAME]]`
//! `[--target=URI] [--service_config_json=JSON]`.
//!
//! Over TLS the client trusts `--ca_file` if given; else, with `--use_test_ca`, the test CA
//! named by `$GRPC_TEST_CA_FILE` (our own, made by `interop/make-certs.sh`: we ship no
//! certificates); else the system's roots.
//!
//! Prints `PASS name` or `FAIL name: reason` per case, then `N passed, M failed`; exits 1 if
//! any case failed.

use grpc_runtime::credentials::ChannelCredentials;
use grpc_runtime::credentials::tls::{Certificate, ClientTlsConfig};
use interop::client::{Cases, select};
use interop::flags::Flags;
use interop::process::init_logging;

const FLAGS: &[&str] = &[
    "server_host",
    "server_port",
    "test_case",
    "use_tls",
    "use_test_ca",
    "server_host_override",
    "ca_file",
    "soak_iterations",
    "target",
    "service_config_json",
];

fn fail(message: String) -> ! {
    eprintln!("interop-client: {message}");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    init_logging("warn");
    let flags = Flags::parse(std::env::args().skip(1), FLAGS).unwrap_or_else(|e| fail(e));
    let credentials = credentials(&flags).unwrap_or_else(|e| fail(e));
    let host = flags.get("server_host", "localhost");
    let port: u16 = flags
        .number("server_port", 10000)
        .unwrap_or_else(|e| fail(e));
    let soak: usize = flags
        .number("soak_iterations", 10)
        .unwrap_or_else(|e| fail(e));
    let cases = select(flags.get("test_case", "all")).unwrap_or_else(|e| fail(e));
    // --target (any target the channel supports: dns:, ipv4:, unix:, ...) wins over
    // --server_host and --server_port.
    let target = match flags.get("target", "") {
        "" if host.contains(':') => format!("[{host}]:{port}"),
        "" => format!("{host}:{port}"),
        target => target.to_owned(),
    };
    let service_config = match flags.get("service_config_json", "") {
        "" => None,
        json => Some(json.to_owned()),
    };
    let runner = Cases::new(&target, credentials, service_config, soak).unwrap_or_else(|e| fail(e));
    let (mut passed, mut failed) = (0, 0);
    for name in cases {
        match runner.run(name).await {
            Ok(()) => {
                passed += 1;
                println!("PASS {name}");
            }
            Err(reason) => {
                failed += 1;
                println!("FAIL {name}: {reason}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}

/// The transport credentials the TLS flags ask for.
fn credentials(flags: &Flags) -> Result<ChannelCredentials, String> {
    if !flags.bool("use_tls", false)? {
        return Ok(ChannelCredentials::insecure());
    }
    let mut config = ClientTlsConfig::new();
    let ca_file = match flags.get("ca_file", "") {
        "" if flags.bool("use_test_ca", false)? => Some(
            std::env::var("GRPC_TEST_CA_FILE")
                .map_err(|_| "--use_test_ca needs --ca_file or $GRPC_TEST_CA_FILE".to_owned())?,
        ),
        "" => None,
        file => Some(file.to_owned()),
    };
    if let Some(file) = ca_file {
        config =
            config.ca_certificate(Certificate::from_pem_file(file).map_err(|e| e.to_string())?);
    }
    match flags.get("server_host_override", "") {
        "" => {}
        name => config = config.server_name(name),
    }
    ChannelCredentials::tls(config).map_err(|e| e.to_string())
}
