//! Statuses and metadata travel intact both ways.

mod common;

use common::*;
use grpc_runtime::{Code, Request, Response, Streaming};
use protobuf::well_known_types::wrappers::{StringValue, UInt32Value};

#[tokio::test]
async fn every_code_and_a_hard_message_round_trip() {
    let srv = start().await;
    let client = srv.client();
    let message = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈 and 100%\t\n";
    for code in 1..=16 {
        let err = client
            .unary(
                UNARY,
                Request::new(s(&format!("fail:{code}:{message}"))),
                pb::<_, StringValue>(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::from_i32(code));
        assert_eq!(err.message(), message);
    }
}

#[tokio::test]
async fn metadata_headers_and_trailers_both_ways() {
    let srv = start().await;
    let mut request = Request::new(s("hi"));
    request
        .metadata_mut()
        .insert("x-echo", "ascii value")
        .unwrap();
    request
        .metadata_mut()
        .insert_bin("x-echo-bin", &[0, 1, 254, 255])
        .unwrap();
    request
        .metadata_mut()
        .insert("x-echo-trailer", "at the end")
        .unwrap();
    let reply: Response<StringValue> = srv.client().unary(UNARY, request, pb()).await.unwrap();
    assert_eq!(reply.metadata().get("x-echo"), Some("ascii value"));
    assert_eq!(
        reply.metadata().get_bin("x-echo-bin").unwrap(),
        [0, 1, 254, 255]
    );
    assert_eq!(reply.trailers().get("x-echo-trailer"), Some("at the end"));
    // Reserved headers never show up as metadata.
    assert!(reply.metadata().get("content-type").is_none());
    assert!(reply.trailers().get("grpc-status").is_none());
}

#[tokio::test]
async fn streaming_headers_and_trailers() {
    let srv = start().await;
    let mut request = Request::new(n(2));
    request.metadata_mut().insert("x-echo", "h").unwrap();
    request
        .metadata_mut()
        .insert("x-echo-trailer", "t")
        .unwrap();
    let reply: Streaming<UInt32Value> = srv
        .client()
        .server_streaming(COUNT, request, pb())
        .await
        .unwrap();
    // Headers and trailers live on the stream, as on every kind of call's result.
    let mut stream = reply;
    assert_eq!(stream.headers_now().unwrap().get("x-echo"), Some("h"));
    assert_eq!(stream.headers().await.unwrap().get("x-echo"), Some("h"));
    assert!(stream.trailers().is_none());
    while stream.message().await.unwrap().is_some() {}
    assert_eq!(stream.trailers().unwrap().get("x-echo-trailer"), Some("t"));
}

#[tokio::test]
async fn error_after_messages_arrives_after_them() {
    let srv = start().await;
    let mut request = Request::new(n(3));
    request.metadata_mut().insert("x-fail-after", "1").unwrap();
    request
        .metadata_mut()
        .insert("x-echo-trailer", "kept")
        .unwrap();
    let reply: Streaming<UInt32Value> = srv
        .client()
        .server_streaming(COUNT, request, pb())
        .await
        .unwrap();
    let mut stream = reply;
    for i in 0..3 {
        assert_eq!(stream.message().await.unwrap().unwrap().value, i);
    }
    let err = stream.message().await.unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    assert_eq!(err.message(), "failed after the messages");
    assert_eq!(err.metadata().get("x-echo-trailer"), Some("kept"));
    assert!(stream.message().await.unwrap().is_none());
}

#[tokio::test]
async fn error_before_messages_is_trailers_only_with_status_on_the_call() {
    let srv = start().await;
    // A client-streaming handler that fails on its second message.
    let requests = futures_util::stream::iter(["ok", "fail:9:bad input", "never"].map(s));
    let err = srv
        .client()
        .client_streaming(CONCAT, Request::new(requests), pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(err.message(), "bad input");
}

#[tokio::test]
async fn status_details_travel() {
    use grpc_runtime::Status;
    use grpc_runtime::server::Service;
    use grpc_runtime::server::{Server, ServerCall};
    use grpc_runtime::service::ServiceDescriptor;

    struct Detailed;
    impl Service for Detailed {
        fn descriptor(&self) -> &'static ServiceDescriptor {
            &DESCRIPTOR
        }
        fn call(&self, _: &str, call: ServerCall) {
            call.unary(UNARY, pb(), |_: Request<StringValue>| async {
                let mut status = Status::with_details(
                    Code::InvalidArgument,
                    "see details",
                    bytes::Bytes::from_static(b"\x08\x03\x12\x0bsee details"),
                );
                status.metadata_mut().insert("x-why", "because").unwrap();
                Err::<Response<StringValue>, _>(status)
            })
        }
    }
    let server = Server::builder().add_service(Detailed).build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn({
        let server = server.clone();
        async move { server.serve_tcp(listener).await }
    });
    let client = grpc_runtime::client::Client::new(
        grpc_runtime::client::Channel::new(&format!("http://{addr}")).unwrap(),
    );
    let err = client
        .unary(UNARY, Request::new(s("x")), pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(&err.details()[..], b"\x08\x03\x12\x0bsee details");
    assert_eq!(err.metadata().get("x-why"), Some("because"));
}
