//! The four kinds of calls over real loopback TCP, and multiplexing on one connection.

mod common;

use common::*;
use futures_util::StreamExt;
use grpc_runtime::service::{MethodDescriptor, MethodKind};
use grpc_runtime::{Code, Request, Response, Streaming};
use protobuf::well_known_types::wrappers::{StringValue, UInt32Value};

#[tokio::test]
async fn unary() {
    let srv = start().await;
    let client = srv.client();
    let reply: Response<StringValue> = client
        .unary(UNARY, Request::new(s("hello")), pb())
        .await
        .unwrap();
    assert_eq!(reply.get_ref().value, "hello");
}

#[tokio::test]
async fn server_streaming() {
    let srv = start().await;
    let client = srv.client();
    let reply: Streaming<UInt32Value> = client
        .server_streaming(COUNT, Request::new(n(5)), pb())
        .await
        .unwrap();
    let mut stream = reply;
    let mut got = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        got.push(m.value);
    }
    assert_eq!(got, [0, 1, 2, 3, 4]);
    // The end was clean, and reading on after the end stays at the end.
    assert!(stream.message().await.unwrap().is_none());
    assert!(stream.trailers().is_some());
}

#[tokio::test]
async fn server_streaming_by_reference() {
    let srv = start().await;
    let mut request = Request::new(n(40));
    request.metadata_mut().insert("x-by-ref", "1").unwrap();
    let mut stream: Streaming<UInt32Value> = srv
        .client()
        .server_streaming(COUNT, request, pb())
        .await
        .unwrap();
    let mut got = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        got.push(m.value);
    }
    assert_eq!(got, (0..40).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_test_sender_takes_a_copy_of_a_message_sent_by_reference() {
    let (mut tx, mut sent) = grpc_runtime::ResponseSender::channel(4);
    let kept = n(7);
    tx.send_ref(&kept).await.unwrap();
    tx.send_ref(&kept).await.unwrap();
    drop(tx);
    assert_eq!(sent.message().await.unwrap().unwrap().value, 7);
    assert_eq!(sent.message().await.unwrap().unwrap().value, 7);
    assert!(sent.message().await.unwrap().is_none());
    assert_eq!(kept.value, 7);
}

#[tokio::test]
async fn server_streaming_zero_messages() {
    let srv = start().await;
    let reply: Streaming<UInt32Value> = srv
        .client()
        .server_streaming(COUNT, Request::new(n(0)), pb())
        .await
        .unwrap();
    let got: Vec<_> = reply.collect().await;
    assert!(got.is_empty(), "{got:?}");
}

#[tokio::test]
async fn client_streaming() {
    let srv = start().await;
    let requests = futures_util::stream::iter(["a", "b", "c"].map(s));
    let reply: Response<StringValue> = srv
        .client()
        .client_streaming(CONCAT, Request::new(requests), pb())
        .await
        .unwrap();
    assert_eq!(reply.get_ref().value, "a,b,c");
    let empty = futures_util::stream::iter(Vec::<StringValue>::new());
    let reply: Response<StringValue> = srv
        .client()
        .client_streaming(CONCAT, Request::new(empty), pb())
        .await
        .unwrap();
    assert_eq!(reply.get_ref().value, "");
}

#[tokio::test]
async fn bidi_ping_pong() {
    let srv = start().await;
    // The call returns before any request is sent: the server waits for one before it answers.
    let (mut tx, mut responses) = srv
        .client()
        .bidi_streaming(CHAT, Request::new(()), pb::<StringValue, StringValue>())
        .await
        .unwrap();
    const ROUNDS: usize = 10;
    for i in 0..ROUNDS {
        tx.send(s(&format!("ping {i}"))).await.unwrap();
        let pong = responses.message().await.unwrap().unwrap();
        assert_eq!(pong.value, format!("ping {i}"));
    }
    // The handler's task runs once a message: one wait before each request, and at most a
    // few more. h2 wakes one waker a stream for capacity and for a reset, and every send is
    // granted capacity; before the responder kept its reset watcher out of its own sends,
    // the handler was woken by each of them and waited twice a message.
    let waits = srv
        .echo
        .observed
        .waits
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (ROUNDS..ROUNDS + 5).contains(&waits),
        "{waits} waits for {ROUNDS} messages"
    );
    drop(tx);
    assert!(responses.message().await.unwrap().is_none());
}

#[tokio::test]
async fn large_messages_both_ways() {
    let srv = start().await;
    let big = "y".repeat(3 * 1024 * 1024);
    let reply: Response<StringValue> = srv
        .client()
        .unary(UNARY, Request::new(s(&big)), pb())
        .await
        .unwrap();
    assert_eq!(reply.get_ref().value.len(), big.len());
    let reply: Response<StringValue> = srv
        .client()
        .unary(UNARY, Request::new(s("big:4000000")), pb())
        .await
        .unwrap();
    assert_eq!(reply.get_ref().value.len(), 4_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_calls_share_one_connection() {
    let srv = start().await;
    let client = srv.client();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let text = format!("call {i}");
            let reply: Response<StringValue> = client
                .unary(UNARY, Request::new(s(&text)), pb())
                .await
                .unwrap();
            assert_eq!(reply.get_ref().value, text);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Streams of all kinds at once, on the same channel.
    let a = client.server_streaming(COUNT, Request::new(n(100)), pb::<_, UInt32Value>());
    let b = client.unary(UNARY, Request::new(s("sleep:50")), pb::<_, StringValue>());
    let (a, b) = tokio::join!(a, b);
    assert_eq!(a.unwrap().count().await, 100);
    assert_eq!(b.unwrap().get_ref().value, "sleep:50");
}

#[tokio::test]
async fn unknown_method_and_service_are_unimplemented() {
    let srv = start().await;
    let err = srv
        .client()
        .unary(MISSING, Request::new(s("x")), pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert!(err.message().contains("/test.Echo/Missing"), "{err}");
    let err = srv
        .client()
        .unary(NOPE, Request::new(s("x")), pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert!(err.message().contains("nope.Nope"), "{err}");
}

const NOPE: &MethodDescriptor =
    &MethodDescriptor::new("Call", "/nope.Nope/Call", MethodKind::Unary);

/// Regression: a method path that is not `/<service>/<method>` panicked inside the runtime
/// (building the request URI); it is an `INTERNAL` error naming the path.
#[tokio::test]
async fn invalid_method_path_is_an_error() {
    const BAD: &MethodDescriptor = &MethodDescriptor::new("x", "not-a-path", MethodKind::Unary);
    const SPACE: &MethodDescriptor = &MethodDescriptor::new("x", "/a b/c", MethodKind::Unary);
    const EMPTY: &MethodDescriptor = &MethodDescriptor::new("x", "/svc/", MethodKind::Unary);
    let srv = start().await;
    for method in [BAD, SPACE, EMPTY] {
        let err = srv
            .client()
            .unary(method, Request::new(s("x")), pb::<_, StringValue>())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Internal, "{method}: {err}");
        assert!(err.message().contains("invalid method path"), "{err}");
    }
    // The channel still works.
    let client = srv.client();
    let ok = client.unary(UNARY, Request::new(s("ok")), pb::<_, StringValue>());
    assert_eq!(ok.await.unwrap().get_ref().value, "ok");
}

/// A handler that panics fails its own call; the connection and the server go on serving,
/// whether the call ran first in the connection's task (current-thread runtime) or in a task
/// of its own (multi-thread).
async fn panicking_handler_fails_only_its_call() {
    let srv = start().await;
    let client = srv.client();
    let ok = client.unary(UNARY, Request::new(s("before")), pb::<_, StringValue>());
    assert_eq!(ok.await.unwrap().get_ref().value, "before");
    let err = client
        .unary(UNARY, Request::new(s("panic")), pb::<_, StringValue>())
        .await
        .unwrap_err();
    // Regression: this was CANCELLED ("stream reset by peer"), blaming no one; gRPC-Go
    // answers a failed handler with a status, and so do we: INTERNAL, logged on the server.
    assert_eq!(err.code(), Code::Internal, "{err}");
    assert!(err.message().contains("panicked"), "{err}");
    // Same client, same connection.
    let ok = client.unary(UNARY, Request::new(s("after")), pb::<_, StringValue>());
    assert_eq!(ok.await.unwrap().get_ref().value, "after");
}

#[tokio::test]
async fn panicking_handler_current_thread() {
    panicking_handler_fails_only_its_call().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_handler_multi_thread() {
    panicking_handler_fails_only_its_call().await;
}

/// A `Stream` over an mpsc receiver (avoids a tokio-stream dependency).
pub fn tokio_stream<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_core::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
