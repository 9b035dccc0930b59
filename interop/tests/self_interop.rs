//! Our interop client against our interop server, over loopback TCP, every case.

use grpc_runtime::server::Server;
use interop::client::{ALL_CASES, Cases};
use interop::proto::test_grpc::TestServiceServer;
use interop::server::TestServiceImpl;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_passes_against_our_server() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::builder()
        .add_service(TestServiceServer::new(TestServiceImpl))
        .build();
    let serving = server.clone();
    tokio::spawn(async move { serving.serve_tcp(listener).await.unwrap() });

    let cases = Cases::new(&addr.to_string(), 3).unwrap();
    let mut failures = Vec::new();
    for name in ALL_CASES {
        if let Err(reason) = cases.run(name).await {
            failures.push(format!("{name}: {reason}"));
        }
    }
    assert!(
        failures.is_empty(),
        "failed cases:\n{}",
        failures.join("\n")
    );
    server.graceful_stop().await;
}
