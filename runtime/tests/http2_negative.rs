//! gRPC's negative HTTP/2 interop cases (doc/negative-http2-interop-test-descriptions.md in
//! grpc/grpc), as tests of our client against a raw h2 server that misbehaves on purpose.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use grpc_runtime::client::{Channel, Client};
use grpc_runtime::{Code, Request, Response};
use protobuf::well_known_types::wrappers::StringValue;

/// What the raw server does with each call.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Misbehave {
    RstAfterHeader,
    RstDuringData,
    RstAfterData,
    /// GOAWAY after the first call, answering it normally.
    Goaway,
    /// PINGs before and after the headers and the data; counts the unanswered ones.
    Ping,
}

fn frame(text: &str) -> Bytes {
    let body = protobuf::Message::write_to_bytes(&s(text)).unwrap();
    let mut frame = vec![0];
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    frame.into()
}

fn ok_headers() -> http::Response<()> {
    let mut response = http::Response::new(());
    response.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/grpc"),
    );
    response
}

fn ok_trailers() -> http::HeaderMap {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    trailers
}

struct RawServer {
    addr: SocketAddr,
    /// Streams seen, over all connections.
    streams: Arc<AtomicUsize>,
    /// PINGs sent and not acknowledged when the connection ended (Ping only).
    outstanding_pings: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
}

async fn raw_server(mode: Misbehave) -> RawServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let streams = Arc::new(AtomicUsize::new(0));
    let outstanding_pings = Arc::new(AtomicUsize::new(0));
    let connections = Arc::new(AtomicUsize::new(0));
    let server = RawServer {
        addr,
        streams: streams.clone(),
        outstanding_pings: outstanding_pings.clone(),
        connections: connections.clone(),
    };
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            connections.fetch_add(1, Ordering::SeqCst);
            let streams = streams.clone();
            let pings = outstanding_pings.clone();
            tokio::spawn(async move {
                let mut conn = h2::server::handshake(socket).await.unwrap();
                let mut ping_pong = conn.ping_pong();
                // Drive the connection on its own task; calls come through a channel, and a
                // signal makes it send GOAWAY.
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let (go_away, mut go_away_rx) = tokio::sync::oneshot::channel::<()>();
                tokio::spawn(async move {
                    let mut going_away = false;
                    loop {
                        tokio::select! {
                            call = conn.accept() => match call {
                                Some(Ok(call)) => {
                                    if tx.send(call).is_err() {
                                        break;
                                    }
                                }
                                _ => break,
                            },
                            _ = &mut go_away_rx, if !going_away => {
                                conn.graceful_shutdown();
                                going_away = true;
                            }
                        }
                    }
                });
                let mut go_away = Some(go_away);
                while let Some((request, mut respond)) = rx.recv().await {
                    let n = streams.fetch_add(1, Ordering::SeqCst);
                    // Read the request to its end.
                    let mut body = request.into_body();
                    while let Some(chunk) = body.data().await {
                        let chunk = chunk.unwrap();
                        let _ = body.flow_control().release_capacity(chunk.len());
                    }
                    let data = frame(&"x".repeat(1024));
                    if mode == Misbehave::Ping {
                        send_ping(&mut ping_pong, &pings).await;
                    }
                    let mut send = respond.send_response(ok_headers(), false).unwrap();
                    match mode {
                        Misbehave::RstAfterHeader => {
                            send.send_reset(h2::Reason::NO_ERROR);
                            continue;
                        }
                        Misbehave::RstDuringData => {
                            send.send_data(data.slice(..data.len() / 2), false).unwrap();
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            send.send_reset(h2::Reason::NO_ERROR);
                            continue;
                        }
                        Misbehave::Ping => send_ping(&mut ping_pong, &pings).await,
                        _ => {}
                    }
                    send.send_data(data, false).unwrap();
                    if mode == Misbehave::RstAfterData {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        send.send_reset(h2::Reason::NO_ERROR);
                        continue;
                    }
                    if mode == Misbehave::Ping {
                        send_ping(&mut ping_pong, &pings).await;
                    }
                    send.send_trailers(ok_trailers()).unwrap();
                    if mode == Misbehave::Goaway && n == 0 {
                        // The first call answered: tell the client to go away (GOAWAY).
                        if let Some(go_away) = go_away.take() {
                            let _ = go_away.send(());
                        }
                    }
                }
            });
        }
    });
    server
}

/// Sends a PING and waits for its acknowledgement, counting it as outstanding meanwhile.
async fn send_ping(ping_pong: &mut Option<h2::PingPong>, outstanding: &AtomicUsize) {
    if let Some(ping_pong) = ping_pong {
        outstanding.fetch_add(1, Ordering::SeqCst);
        if ping_pong.ping(h2::Ping::opaque()).await.is_ok() {
            outstanding.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn client(addr: SocketAddr) -> Client {
    Client::new(Channel::new(&format!("http://{addr}")).unwrap())
}

async fn large_unary(client: &Client) -> Result<Response<StringValue>, grpc_runtime::Status> {
    let mut request = Request::new(s(&"\0".repeat(271_828)));
    request.set_timeout(Duration::from_secs(5));
    client.unary(UNARY, request, pb()).await
}

#[tokio::test]
async fn rst_after_header() {
    let srv = raw_server(Misbehave::RstAfterHeader).await;
    let err = large_unary(&client(srv.addr)).await.unwrap_err();
    assert_ne!(err.code(), Code::Ok);
    assert_ne!(err.code(), Code::DeadlineExceeded, "{err}");
}

#[tokio::test]
async fn rst_during_data() {
    let srv = raw_server(Misbehave::RstDuringData).await;
    let err = large_unary(&client(srv.addr)).await.unwrap_err();
    assert_ne!(err.code(), Code::DeadlineExceeded, "{err}");
}

#[tokio::test]
async fn rst_after_data() {
    let srv = raw_server(Misbehave::RstAfterData).await;
    // All the data arrived, but no status: the call must not succeed.
    let err = large_unary(&client(srv.addr)).await.unwrap_err();
    assert_ne!(err.code(), Code::DeadlineExceeded, "{err}");
}

#[tokio::test]
async fn goaway() {
    let srv = raw_server(Misbehave::Goaway).await;
    let client = client(srv.addr);
    let first = large_unary(&client).await.unwrap();
    assert_eq!(first.get_ref().value.len(), 1024);
    // The server closed the connection after the first call; the second goes out on a new
    // one without the application doing anything.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = large_unary(&client).await.unwrap();
    assert_eq!(second.get_ref().value.len(), 1024);
    assert_eq!(srv.streams.load(Ordering::SeqCst), 2);
    assert_eq!(srv.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn ping() {
    let srv = raw_server(Misbehave::Ping).await;
    let reply = large_unary(&client(srv.addr)).await.unwrap();
    assert_eq!(reply.get_ref().value.len(), 1024);
    // Every PING the server sent (before/after headers, after data) was acknowledged.
    assert_eq!(srv.outstanding_pings.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn max_streams() {
    // Our server, limiting each connection to one stream at a time.
    let srv = start_with(|b| b.max_concurrent_streams(1)).await;
    let client = srv.client();
    let first: Response<StringValue> = client
        .unary(UNARY, Request::new(s("first")), pb())
        .await
        .unwrap();
    assert_eq!(first.get_ref().value, "first");
    let started = Instant::now();
    let calls: Vec<_> = (0..10)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let reply: Response<StringValue> = client
                    .unary(UNARY, Request::new(s("sleep:50")), pb())
                    .await?;
                assert_eq!(reply.get_ref().value, "sleep:50", "call {i}");
                Ok::<_, grpc_runtime::Status>(())
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    // One at a time: the client queued its calls instead of failing them.
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
}
