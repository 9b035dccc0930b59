//! The interop test client:
//! `interop-client --server_host=HOST --server_port=PORT --test_case=NAME|a,b|all`.
//!
//! Prints `PASS name` or `FAIL name: reason` per case, then `N passed, M failed`; exits 1 if
//! any case failed.

use interop::client::{Cases, select};
use interop::flags::Flags;

const FLAGS: &[&str] = &[
    "server_host",
    "server_port",
    "test_case",
    "use_tls",
    "use_test_ca",
    "server_host_override",
    "ca_file",
    "soak_iterations",
];

fn fail(message: String) -> ! {
    eprintln!("interop-client: {message}");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let flags = Flags::parse(std::env::args().skip(1), FLAGS).unwrap_or_else(|e| fail(e));
    if flags.bool("use_tls", false).unwrap_or_else(|e| fail(e)) {
        fail("--use_tls=true is not supported yet".to_owned());
    }
    let host = flags.get("server_host", "localhost");
    let port: u16 = flags
        .number("server_port", 10000)
        .unwrap_or_else(|e| fail(e));
    let soak: usize = flags
        .number("soak_iterations", 10)
        .unwrap_or_else(|e| fail(e));
    let cases = select(flags.get("test_case", "all")).unwrap_or_else(|e| fail(e));
    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let runner = Cases::new(&target, soak).unwrap_or_else(|e| fail(e));
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
