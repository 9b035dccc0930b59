//! Graceful and immediate server shutdown.

mod common;

use std::time::{Duration, Instant};

use common::*;
use grpc_runtime::{Code, Request, Response};
use protobuf::well_known_types::wrappers::StringValue;

#[tokio::test]
async fn graceful_stop_lets_in_flight_calls_finish_and_refuses_new_ones() {
    let srv = start().await;
    let client = srv.client();
    client.invoker().connect().await.unwrap();
    let slow = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .unary(UNARY, Request::new(s("sleep:300")), pb::<_, StringValue>())
                .await
        }
    });
    let observed = srv.echo.observed.clone();
    eventually("call started", || {
        observed.started.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    let started = Instant::now();
    srv.server.graceful_stop().await;
    // It waited for the call, which finished well.
    assert!(started.elapsed() >= Duration::from_millis(200));
    let reply = slow.await.unwrap().unwrap();
    assert_eq!(reply.get_ref().value, "sleep:300");
    // serve() returned.
    tokio::time::timeout(Duration::from_secs(1), srv.task)
        .await
        .unwrap()
        .unwrap();
    // New calls fail: the listener is closed.
    let err = client
        .unary(UNARY, Request::new(s("late")), pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
}

#[tokio::test]
async fn graceful_stop_with_a_hard_deadline() {
    let srv = start().await;
    let client = srv.client();
    let stuck = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .unary(
                    UNARY,
                    Request::new(s("sleep:60000")),
                    pb::<_, StringValue>(),
                )
                .await
        }
    });
    let observed = srv.echo.observed.clone();
    eventually("call started", || {
        observed.started.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    let started = Instant::now();
    let finished_in_time = srv
        .server
        .graceful_stop_timeout(Duration::from_millis(200))
        .await;
    assert!(!finished_in_time);
    assert!(started.elapsed() < Duration::from_secs(2));
    let err = tokio::time::timeout(Duration::from_secs(2), stuck)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            err.code(),
            Code::Unavailable | Code::Internal | Code::Cancelled
        ),
        "{err}"
    );
    tokio::time::timeout(Duration::from_secs(1), srv.task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn stop_is_immediate() {
    let srv = start().await;
    let client = srv.client();
    let call = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .unary(
                    UNARY,
                    Request::new(s("sleep:60000")),
                    pb::<_, StringValue>(),
                )
                .await
        }
    });
    let observed = srv.echo.observed.clone();
    eventually("call started", || {
        observed.started.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    let started = Instant::now();
    srv.server.stop().await;
    assert!(started.elapsed() < Duration::from_secs(1));
    let err = tokio::time::timeout(Duration::from_secs(2), call)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_ne!(err.code(), Code::Ok);
    tokio::time::timeout(Duration::from_secs(1), srv.task)
        .await
        .unwrap()
        .unwrap();
    eventually("handler dropped", || {
        observed.dropped.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
}

#[tokio::test]
async fn server_keeps_serving_other_connections_after_one_breaks() {
    use tokio::io::AsyncWriteExt;
    let srv = start().await;
    let mut garbage = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\n\r\nnot http2 at all")
        .await
        .unwrap();
    let reply: Response<StringValue> = srv
        .client()
        .unary(UNARY, Request::new(s("still here")), pb())
        .await
        .unwrap();
    assert_eq!(reply.get_ref().value, "still here");
}

#[tokio::test]
async fn silent_connections_are_closed_after_the_connection_timeout() {
    use tokio::io::AsyncReadExt;
    let srv = start_with(|b| b.connection_timeout(Duration::from_millis(200))).await;
    let mut silent = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let started = Instant::now();
    // The server writes its SETTINGS, then closes: read until EOF.
    let mut sink = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), silent.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "connection still open after 3 s");
    assert!(started.elapsed() >= Duration::from_millis(150));
}
