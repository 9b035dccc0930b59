//! Receive and send limits on both sides: RESOURCE_EXHAUSTED, and the connection lives on.

mod common;

use common::*;
use grpc_runtime::client::{CallOptions, Channel, Client};
use grpc_runtime::{Code, Request, Response};
use protobuf::well_known_types::wrappers::StringValue;

#[tokio::test]
async fn server_default_limit_is_4_mib() {
    let srv = start().await;
    let client = srv.client();
    let err = client
        .unary(
            UNARY,
            Request::new(s(&"x".repeat(4 * 1024 * 1024 + 1))),
            pb::<_, StringValue>(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    // The message says which message broke which limit (regression: it did not say).
    assert!(
        err.message()
            .contains("received request message larger than max"),
        "{err}"
    );
    // Just under the limit passes, on the same channel.
    let ok: Response<StringValue> = client
        .unary(
            UNARY,
            Request::new(s(&"x".repeat(4 * 1024 * 1024 - 10))),
            pb(),
        )
        .await
        .unwrap();
    assert_eq!(ok.get_ref().value.len(), 4 * 1024 * 1024 - 10);
}

#[tokio::test]
async fn server_configured_limit() {
    let srv = start_with(|b| b.max_recv_message_size(1000)).await;
    let client = srv.client();
    let err = client
        .unary(
            UNARY,
            Request::new(s(&"x".repeat(1000))),
            pb::<_, StringValue>(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    let ok: Response<StringValue> = client
        .unary(UNARY, Request::new(s("small")), pb())
        .await
        .unwrap();
    assert_eq!(ok.get_ref().value, "small");
}

#[tokio::test]
async fn client_receive_limits_per_channel_and_per_call() {
    let srv = start().await;
    let channel = Channel::builder(&format!("http://{}", srv.addr))
        .max_recv_message_size(1000)
        .build()
        .unwrap();
    let client = Client::new(channel.clone());
    let err = client
        .unary(UNARY, Request::new(s("big:2000")), pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message()
            .contains("received response message larger than max"),
        "{err}"
    );
    // Per-client options raise it.
    let client =
        Client::new(channel).with_options(CallOptions::new().max_recv_message_size(10_000));
    let ok: Response<StringValue> = client
        .unary(UNARY, Request::new(s("big:2000")), pb())
        .await
        .unwrap();
    assert_eq!(ok.get_ref().value.len(), 2000);
    // A per-call limit wins over the client's.
    let mut request = Request::new(s("big:2000"));
    request.set_max_recv_message_size(100);
    let err = client
        .unary(UNARY, request, pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    let mut request = Request::new(s(&"x".repeat(200)));
    request.set_max_send_message_size(100);
    let err = client
        .unary(UNARY, request, pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    // The default client limit is 4 MiB.
    let err = srv
        .client()
        .unary(
            UNARY,
            Request::new(s("big:5000000")),
            pb::<_, StringValue>(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
}

#[tokio::test]
async fn send_limits() {
    let srv = start_with(|b| b.max_send_message_size(100)).await;
    let err = srv
        .client()
        .unary(UNARY, Request::new(s("big:200")), pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message()
            .contains("trying to send response message larger than max"),
        "{err}"
    );
    let client = srv
        .client()
        .with_options(CallOptions::new().max_send_message_size(10));
    let err = client
        .unary(
            UNARY,
            Request::new(s(&"x".repeat(20))),
            pb::<_, StringValue>(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message()
            .contains("trying to send request message larger than max"),
        "{err}"
    );
    let requests = futures_util::stream::iter(vec![s("ok"), s(&"x".repeat(20))]);
    let err = client
        .client_streaming(CONCAT, Request::new(requests), pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
}
