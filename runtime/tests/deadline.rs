//! Deadlines and cancellation, enforced on both sides.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use grpc_runtime::client::CallOptions;
use grpc_runtime::{Code, Request, Response, Streaming};
use protobuf::well_known_types::wrappers::{StringValue, UInt32Value};

#[tokio::test]
async fn client_deadline_exceeded_and_server_handler_dropped() {
    let srv = start().await;
    let mut request = Request::new(s("sleep:5000"));
    request.set_timeout(Duration::from_millis(100));
    let started = Instant::now();
    let err = srv
        .client()
        .unary(UNARY, request, pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert!(started.elapsed() < Duration::from_secs(2));
    // The server saw the deadline too and dropped the handler.
    let observed = srv.echo.observed.clone();
    eventually("handler dropped", || {
        observed.dropped.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(observed.finished.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn server_enforces_the_deadline_it_received() {
    // A raw client that sends grpc-timeout but does not enforce it locally.
    let srv = start().await;
    let tcp = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let (mut h2, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{}{}", srv.addr, UNARY))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", "100m")
        .body(())
        .unwrap();
    let (response, mut send) = h2.send_request(request, false).unwrap();
    let body = protobuf::Message::write_to_bytes(&s("sleep:5000")).unwrap();
    let mut frame = vec![0, 0, 0, 0, body.len() as u8];
    frame.extend_from_slice(&body);
    send.send_data(frame.into(), true).unwrap();
    let started = Instant::now();
    // The server ends the call at the deadline with DEADLINE_EXCEEDED.
    let response = tokio::time::timeout(Duration::from_secs(3), response)
        .await
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(response.headers()["grpc-status"], "4", "{response:?}");
    let observed = srv.echo.observed.clone();
    eventually("handler dropped", || {
        observed.dropped.load(Ordering::SeqCst) == 1
    })
    .await;
}

#[tokio::test]
async fn deadline_applies_to_the_whole_stream() {
    let srv = start().await;
    let mut request = Request::new(n(3));
    request.metadata_mut().insert("x-hang", "1").unwrap();
    request.set_timeout(Duration::from_millis(200));
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
    assert_eq!(err.code(), Code::DeadlineExceeded);
}

#[tokio::test]
async fn default_timeout_from_call_options() {
    let srv = start().await;
    let client = srv
        .client()
        .with_options(CallOptions::new().timeout(Duration::from_millis(50)));
    let err = client
        .unary(UNARY, Request::new(s("sleep:2000")), pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    // A per-call timeout overrides the default.
    let mut request = Request::new(s("sleep:100"));
    request.set_timeout(Duration::from_secs(5));
    let reply: Response<StringValue> = client.unary(UNARY, request, pb()).await.unwrap();
    assert_eq!(reply.get_ref().value, "sleep:100");
}

#[tokio::test]
async fn dropping_a_unary_call_cancels_the_handler() {
    let srv = start().await;
    let client = srv.client();
    let call = client.unary(UNARY, Request::new(s("sleep:5000")), pb::<_, StringValue>());
    let observed = srv.echo.observed.clone();
    let _ = tokio::time::timeout(Duration::from_millis(200), call).await;
    assert_eq!(observed.started.load(Ordering::SeqCst), 1);
    eventually("handler dropped", || {
        observed.dropped.load(Ordering::SeqCst) == 1
    })
    .await;
}

#[tokio::test]
async fn dropping_a_bidi_stream_cancels_the_handler() {
    let srv = start().await;
    let (mut tx2, mut stream) = srv
        .client()
        .bidi_streaming(CHAT, Request::new(()), pb::<StringValue, StringValue>())
        .await
        .unwrap();
    tx2.send(s("one")).await.unwrap();
    assert_eq!(stream.message().await.unwrap().unwrap().value, "one");
    let observed = srv.echo.observed.clone();
    drop(stream);
    eventually("handler dropped", || {
        observed.dropped.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(observed.finished.load(Ordering::SeqCst), 0);
    // The call is over: the sender, still alive, cannot send on it.
    assert!(tx2.send(s("two")).await.is_err());
}

#[tokio::test]
async fn dropping_a_client_streaming_call_cancels_the_handler() {
    let srv = start().await;
    let client = srv.client();
    // A request stream that never ends: only dropping the call can end it.
    let requests =
        futures_util::stream::iter(vec![s("one")]).chain(futures_util::stream::pending());
    let call = client.client_streaming(CONCAT, Request::new(requests), pb::<_, StringValue>());
    let observed = srv.echo.observed.clone();
    let _ = tokio::time::timeout(Duration::from_millis(200), call).await;
    assert_eq!(observed.started.load(Ordering::SeqCst), 1);
    eventually("handler dropped", || {
        observed.dropped.load(Ordering::SeqCst) + observed.finished.load(Ordering::SeqCst) == 1
    })
    .await;
    // It ended because the client cancelled: it never saw the end of its input.
    assert_eq!(observed.finished.load(Ordering::SeqCst), 0);
}
