//! Our interop client against our interop server, over loopback TCP, every case.

use grpc_runtime::credentials::ChannelCredentials;
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

    let cases = Cases::new(&addr.to_string(), ChannelCredentials::insecure(), None, 3).unwrap();
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

/// Regression: an error status of FullDuplexCall and StreamingOutputCall carried the echoed
/// `x-grpc-test-echo-trailing-bin` trailer twice (once from the sender, once in the status).
#[tokio::test]
async fn echoed_trailer_is_sent_once_with_an_error_status() {
    use grpc_runtime::{Code, Request};
    use interop::proto::messages::{EchoStatus, StreamingOutputCallRequest};
    use interop::proto::test_grpc::TestServiceClient;

    let server = Server::builder()
        .add_service(TestServiceServer::new(TestServiceImpl))
        .build();
    let client = TestServiceClient::new(grpc_runtime::inprocess::channel(&server));
    let mut status = EchoStatus::new();
    status.code = 2;
    status.message = "asked for".into();
    let mut message = StreamingOutputCallRequest::new();
    message.response_status = protobuf::MessageField::some(status);

    let mut request = Request::new(());
    request
        .metadata_mut()
        .insert_bin("x-grpc-test-echo-trailing-bin", b"\xab\xab")
        .unwrap();
    let (mut tx, mut rx) = client.full_duplex_call(request).await.unwrap();
    tx.send(message.clone()).await.unwrap();
    let err = rx.message().await.unwrap_err();
    assert_eq!(err.code(), Code::Unknown);
    let echoed: Vec<_> = err
        .metadata()
        .get_all_bin("x-grpc-test-echo-trailing-bin")
        .collect();
    assert_eq!(echoed, [b"\xab\xab".to_vec()]);

    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert_bin("x-grpc-test-echo-trailing-bin", b"\xcd")
        .unwrap();
    // No message before the status: a trailers-only answer, the error comes at the call.
    let err = client.streaming_output_call(request).await.unwrap_err();
    let echoed: Vec<_> = err
        .metadata()
        .get_all_bin("x-grpc-test-echo-trailing-bin")
        .collect();
    assert_eq!(echoed, [b"\xcd".to_vec()]);
}
