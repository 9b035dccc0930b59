//! A server's connection management (gRPC-Go's `keepalive.ServerParameters`): GOAWAY to idle
//! and old connections, the age grace, and pings a peer must answer. In-memory connections
//! on the paused clock, and the same over real TCP sockets; stalled streams, the client's
//! header list limit, connection limits.

mod common;

use std::time::Duration;

use common::*;
use grpc_runtime::client::{Channel, Client};
use grpc_runtime::connectivity::ConnectivityState;
use grpc_runtime::keepalive::ServerParameters;
use grpc_runtime::server::Server;
use grpc_runtime::{Code, Request, Response};
use protobuf::well_known_types::wrappers::StringValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

fn server(keepalive: ServerParameters) -> Server {
    Server::builder()
        .add_service(Echo::default())
        .keepalive(keepalive)
        .build()
}

async fn say(channel: &Channel, text: &str) -> Result<String, grpc_runtime::Status> {
    let reply: Response<StringValue> = Client::new(channel.clone())
        .unary(UNARY, Request::new(s(text)), pb())
        .await?;
    Ok(reply.into_inner().value)
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_sent_goaway() {
    let server = server(ServerParameters::new().max_connection_idle(Duration::from_secs(60)));
    let channel = memory_channel(&server, |b| b);
    assert_eq!(say(&channel, "hi").await.unwrap(), "hi");
    assert_eq!(channel.state(), ConnectivityState::Ready);
    let started = Instant::now();
    let state = channel
        .wait_for_state_change(ConnectivityState::Ready)
        .await;
    let took = started.elapsed();
    assert_eq!(
        state,
        ConnectivityState::Idle,
        "the GOAWAY closed the connection"
    );
    assert!(
        took >= Duration::from_secs(60) && took <= Duration::from_secs(80),
        "after about max_connection_idle: {took:?}"
    );
    // The next call reconnects.
    assert_eq!(say(&channel, "again").await.unwrap(), "again");
}

#[tokio::test(start_paused = true)]
async fn a_busy_connection_is_not_idle() {
    let server = server(ServerParameters::new().max_connection_idle(Duration::from_secs(60)));
    let channel = memory_channel(&server, |b| b);
    // One call that lasts 5 minutes: the connection is busy all along.
    assert_eq!(say(&channel, "sleep:300000").await.unwrap(), "sleep:300000");
    assert_eq!(channel.state(), ConnectivityState::Ready);
}

#[tokio::test(start_paused = true)]
async fn an_old_connection_goes_away_and_closes_after_the_grace() {
    let server = server(
        ServerParameters::new()
            .max_connection_age(Duration::from_secs(100))
            .max_connection_age_grace(Duration::from_secs(20)),
    );
    let channel = memory_channel(&server, |b| b);
    assert_eq!(say(&channel, "hi").await.unwrap(), "hi");
    // A call longer than age + grace is cut when the grace ends.
    let started = Instant::now();
    let err = say(&channel, "sleep:1000000").await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(
        took >= Duration::from_secs(90 + 20) && took <= Duration::from_secs(110 + 20),
        "at age (±10%) + grace: {took:?}"
    );
    // A new connection serves the next call.
    assert_eq!(say(&channel, "after").await.unwrap(), "after");
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_does_not_answer_pings_is_closed() {
    let server = server(
        ServerParameters::new()
            .time(Duration::from_secs(30))
            .timeout(Duration::from_secs(5)),
    );
    let (mut peer, served) = tokio::io::duplex(64 * 1024);
    tokio::spawn(server.serve_connection(served, grpc_runtime::Peer::default()));
    // The preface and an empty SETTINGS, then silence: no SETTINGS ACK, no PING ACK.
    peer.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    peer.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    let started = Instant::now();
    let mut pinged_at = None;
    loop {
        let mut head = [0u8; 9];
        if peer.read_exact(&mut head).await.is_err() {
            break;
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        if peer.read_exact(&mut payload).await.is_err() {
            break;
        }
        // A PING, not an ACK.
        if head[3] == 6 && head[4] & 1 == 0 {
            pinged_at.get_or_insert(started.elapsed());
        }
    }
    let closed_at = started.elapsed();
    let pinged_at = pinged_at.expect("the server pinged");
    assert!(
        pinged_at >= Duration::from_secs(30) && pinged_at <= Duration::from_secs(31),
        "pinged after `time`: {pinged_at:?}"
    );
    assert!(
        closed_at >= pinged_at + Duration::from_secs(5)
            && closed_at <= pinged_at + Duration::from_secs(6),
        "closed `timeout` after the ping: {closed_at:?}"
    );
}

/// Opens a stream to `/test.Echo/Concat` and sends the length prefix of a message of
/// `len` bytes and `sent` bytes of it; returns the stream and its response.
async fn partial_message(
    sender: &mut h2::client::SendRequest<bytes::Bytes>,
    len: usize,
    sent: usize,
) -> (h2::SendStream<bytes::Bytes>, h2::client::ResponseFuture) {
    let request = http::Request::builder()
        .method("POST")
        .uri("http://memory.test/test.Echo/Concat")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut send) = sender
        .clone()
        .ready()
        .await
        .unwrap()
        .send_request(request, false)
        .unwrap();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(len as u32).to_be_bytes());
    frame.extend(std::iter::repeat_n(b'x', sent));
    send.reserve_capacity(frame.len());
    send.send_data(frame.into(), false).unwrap();
    (send, response)
}

/// The `grpc-status` a response ends with (trailers-only or trailers).
async fn grpc_status(response: h2::client::ResponseFuture) -> Option<String> {
    let response = response.await.ok()?;
    if let Some(status) = response.headers().get("grpc-status") {
        return Some(status.to_str().unwrap().to_owned());
    }
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        if chunk.is_err() {
            return None;
        }
    }
    let trailers = body.trailers().await.ok()??;
    trailers
        .get("grpc-status")
        .map(|s| s.to_str().unwrap().to_owned())
}

#[tokio::test(start_paused = true)]
async fn large_partial_messages_share_a_bounded_budget() {
    // 1 MiB for the whole server; messages up to 4 MiB.
    let server = Server::builder()
        .add_service(Echo::default())
        .message_memory_limit(1024 * 1024)
        .build();
    let (client, served) = tokio::io::duplex(1024 * 1024);
    tokio::spawn(server.serve_connection(served, grpc_runtime::Peer::default()));
    let (mut sender, connection) = h2::client::handshake(client).await.unwrap();
    tokio::spawn(connection);

    // 700 KiB announced, 100 KiB sent: the whole 700 KiB is reserved.
    let (_first, first_response) = partial_message(&mut sender, 700 * 1024, 100 * 1024).await;
    // Another 700 KiB does not fit: RESOURCE_EXHAUSTED (8), before its body is buffered.
    let (_second, second_response) = partial_message(&mut sender, 700 * 1024, 10).await;
    assert_eq!(grpc_status(second_response).await.as_deref(), Some("8"));
    // A small message needs no reservation and goes through.
    let (mut small, small_response) = partial_message(&mut sender, 3, 3).await;
    small.send_data(bytes::Bytes::new(), true).unwrap();
    let status = grpc_status(small_response).await;
    assert!(
        status.is_some() && status.as_deref() != Some("8"),
        "{status:?}"
    );

    // The first call ends (its client cancels): its reservation is given back.
    drop(_first);
    drop(first_response);
    tokio::time::sleep(Duration::from_millis(10)).await;
    let (mut third, third_response) = partial_message(&mut sender, 700 * 1024, 700 * 1024).await;
    third.send_data(bytes::Bytes::new(), true).unwrap();
    // The whole message arrives and is read, not refused.
    let status = grpc_status(third_response).await;
    assert!(
        status.is_some() && status.as_deref() != Some("8"),
        "{status:?}"
    );
}

#[tokio::test]
async fn the_server_announces_its_stream_limit() {
    let server = Server::builder().add_service(Echo::default()).build();
    let (client, served) = tokio::io::duplex(64 * 1024);
    tokio::spawn(server.serve_connection(served, grpc_runtime::Peer::default()));
    let (mut sender, connection) = h2::client::handshake(client).await.unwrap();
    tokio::spawn(connection);
    // The server's SETTINGS have arrived once a call is answered.
    let (mut send, response) = partial_message(&mut sender, 0, 0).await;
    send.send_data(bytes::Bytes::new(), true).unwrap();
    assert!(grpc_status(response).await.is_some());
    assert_eq!(
        sender.current_max_send_streams(),
        grpc_runtime::server::DEFAULT_MAX_CONCURRENT_STREAMS as usize
    );
}

#[tokio::test]
async fn headers_over_the_limit_are_refused_and_the_connection_serves_on() {
    let server = server(ServerParameters::new());
    let channel = memory_channel(&server, |b| b);
    let mut request = Request::new(s("big"));
    request
        .metadata_mut()
        .insert("x-big", &"v".repeat(100 * 1024))
        .unwrap();
    let result: Result<Response<StringValue>, _> = Client::new(channel.clone())
        .unary(UNARY, request, pb())
        .await;
    let err = result.unwrap_err();
    assert_ne!(err.code(), Code::Ok, "{err}");
    // 60 KiB is under the 64 KiB default.
    let mut request = Request::new(s("fits"));
    request
        .metadata_mut()
        .insert("x-big", &"v".repeat(60 * 1024))
        .unwrap();
    let reply: Response<StringValue> = Client::new(channel.clone())
        .unary(UNARY, request, pb())
        .await
        .unwrap();
    assert_eq!(reply.into_inner().value, "fits");
}

/// Reads frames until the connection closes; returns (type, flags, payload) of each.
async fn frames_until_closed(
    io: &mut (impl tokio::io::AsyncRead + Unpin),
) -> Vec<(u8, u8, Vec<u8>)> {
    let mut frames = Vec::new();
    loop {
        let mut head = [0u8; 9];
        if io.read_exact(&mut head).await.is_err() {
            return frames;
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        if io.read_exact(&mut payload).await.is_err() {
            return frames;
        }
        frames.push((head[3], head[4], payload));
    }
}

#[tokio::test]
async fn a_client_that_pings_too_often_gets_goaway_too_many_pings() {
    let running = start().await;
    let mut tcp = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    tcp.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    // Four pings in a row on a connection without calls: three strikes.
    for i in 0..4u8 {
        let mut ping = vec![0, 0, 8, 6, 0, 0, 0, 0, 0];
        ping.extend_from_slice(&[i; 8]);
        tcp.write_all(&ping).await.unwrap();
    }
    let frames = tokio::time::timeout(Duration::from_secs(10), frames_until_closed(&mut tcp))
        .await
        .expect("the server closes the connection");
    let goaway = frames
        .iter()
        .find(|(kind, _, _)| *kind == 7)
        .expect("a GOAWAY");
    let payload = &goaway.2;
    let code = u32::from_be_bytes(payload[4..8].try_into().unwrap());
    assert_eq!(code, 0xb, "ENHANCE_YOUR_CALM");
    assert_eq!(&payload[8..], b"too_many_pings", "gRPC-Go's debug data");
    // The server serves others.
    let channel = running.channel();
    assert_eq!(say(&channel, "still").await.unwrap(), "still");
}

#[tokio::test]
async fn pings_within_the_policy_are_welcome() {
    let running = start_with(|b| {
        b.keepalive_enforcement_policy(
            grpc_runtime::keepalive::EnforcementPolicy::new()
                .min_time(Duration::from_millis(1))
                .permit_without_stream(true),
        )
    })
    .await;
    let mut tcp = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    tcp.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    for i in 0..6u8 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut ping = vec![0, 0, 8, 6, 0, 0, 0, 0, 0];
        ping.extend_from_slice(&[i; 8]);
        tcp.write_all(&ping).await.unwrap();
    }
    // Read for a while: ACKs, no GOAWAY.
    let read =
        tokio::time::timeout(Duration::from_millis(300), frames_until_closed(&mut tcp)).await;
    assert!(read.is_err(), "the connection stays open: {read:?}");
}

#[tokio::test(start_paused = true)]
async fn large_responses_to_a_peer_that_does_not_read_share_the_budget() {
    let server = Server::builder()
        .add_service(Echo::default())
        .message_memory_limit(1024 * 1024)
        .build();
    let (client, served) = tokio::io::duplex(1024 * 1024);
    tokio::spawn(server.serve_connection(served, grpc_runtime::Peer::default()));
    // A window of 0: the server can send headers and trailers, never data.
    let (mut sender, connection) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake(client)
        .await
        .unwrap();
    tokio::spawn(connection);
    let ask = |text: &str| {
        let body = protobuf::Message::write_to_bytes(&s(text)).unwrap();
        let mut frame = vec![0u8];
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
        frame.extend_from_slice(&body);
        bytes::Bytes::from(frame)
    };
    let mut call = |text: &str| {
        let request = http::Request::builder()
            .method("POST")
            .uri("http://memory.test/test.Echo/Unary")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (response, mut send) = sender.send_request(request, false).unwrap();
        send.send_data(ask(text), true).unwrap();
        (send, response)
    };
    // 700 KB answered: reserved, and held, as the peer reads nothing.
    let (_held, first) = call("big:700000");
    let first = first.await.unwrap();
    assert_eq!(first.status(), 200);
    tokio::time::sleep(Duration::from_millis(10)).await;
    // Another 700 KB does not fit: the call fails with RESOURCE_EXHAUSTED (8).
    let (_second_send, second) = call("big:700000");
    assert_eq!(grpc_status(second).await.as_deref(), Some("8"));
    // Small answers need no reservation.
    let (_small_send, small) = call("big:10");
    let small = small.await.unwrap();
    assert_eq!(small.status(), 200);
    drop(first);
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_never_acknowledges_the_goaway_does_not_hold_a_graceful_stop() {
    let server = server(ServerParameters::new());
    let (mut peer, served) = tokio::io::duplex(64 * 1024);
    let serving = tokio::spawn(
        server
            .clone()
            .serve_connection(served, grpc_runtime::Peer::default()),
    );
    peer.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    peer.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    // Read (and never answer) whatever the server sends, until it closes.
    let reader = tokio::spawn(async move { frames_until_closed(&mut peer).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    server.graceful_stop().await;
    let took = started.elapsed();
    assert!(
        took <= Duration::from_secs(12),
        "the stop was not held: {took:?}"
    );
    serving.await.unwrap();
    let frames = reader.await.unwrap();
    assert!(
        frames.iter().any(|(kind, _, _)| *kind == 7),
        "a GOAWAY went out first"
    );
}

// Stalled streams (the progress timeout), the client's header list limit, and the
// connection limits over real sockets.

/// A raw h2 client on an in-memory connection to `server`, with `configure`d settings.
async fn h2_client(
    server: &Server,
    configure: impl FnOnce(&mut h2::client::Builder),
) -> h2::client::SendRequest<bytes::Bytes> {
    let (client, served) = tokio::io::duplex(1024 * 1024);
    tokio::spawn(server.serve_connection(served, grpc_runtime::Peer::default()));
    let mut builder = h2::client::Builder::new();
    configure(&mut builder);
    let (sender, connection) = builder.handshake(client).await.unwrap();
    tokio::spawn(connection);
    sender
}

/// A request to `method` of the echo service, with `metadata`.
fn echo_request(method: &str, metadata: &[(&str, &str)]) -> http::Request<()> {
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("http://memory.test/test.Echo/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (key, value) in metadata {
        request = request.header(*key, *value);
    }
    request.body(()).unwrap()
}

/// One `StringValue` message, framed.
fn framed(text: &str) -> bytes::Bytes {
    let body = protobuf::Message::write_to_bytes(&s(text)).unwrap();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    frame.into()
}

/// The status code and message a response ends with, and whether it was trailers-only.
async fn status_of(response: h2::client::ResponseFuture) -> (String, String, bool) {
    let response = response.await.unwrap();
    let pick = |headers: &http::HeaderMap| {
        let get = |key: &str| {
            headers
                .get(key)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        (get("grpc-status"), get("grpc-message"))
    };
    if response.headers().contains_key("grpc-status") {
        let (code, message) = pick(response.headers());
        return (code, message, true);
    }
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        chunk.unwrap();
    }
    let trailers = body.trailers().await.unwrap().expect("trailers");
    let (code, message) = pick(&trailers);
    (code, message, false)
}

#[tokio::test]
async fn trailers_over_the_clients_header_limit_become_internal() {
    let server = server(ServerParameters::new());
    let mut sender = h2_client(&server, |b| {
        b.max_header_list_size(1024);
    })
    .await;
    let big = "t".repeat(2000);
    // A trailer over the client's limit: the response message, then INTERNAL alone.
    let (response, mut send) = sender
        .send_request(echo_request("Unary", &[("x-echo-trailer", &big)]), false)
        .unwrap();
    send.send_data(framed("hi"), true).unwrap();
    let (code, message, trailers_only) = status_of(response).await;
    assert_eq!(code, "13", "{message}");
    assert!(!trailers_only);
    assert!(message.contains("limit"), "{message}");
    // A header over it: INTERNAL, trailers-only, without the metadata.
    let (response, mut send) = sender
        .send_request(echo_request("Unary", &[("x-echo", &big)]), false)
        .unwrap();
    send.send_data(framed("hi"), true).unwrap();
    let (code, message, trailers_only) = status_of(response).await;
    assert_eq!(code, "13", "{message}");
    assert!(trailers_only);
    // Under the limit, all goes through.
    let (response, mut send) = sender
        .send_request(echo_request("Unary", &[("x-echo-trailer", "small")]), false)
        .unwrap();
    send.send_data(framed("hi"), true).unwrap();
    assert_eq!(status_of(response).await.0, "0");
}

#[tokio::test(start_paused = true)]
async fn a_request_that_never_comes_ends_its_call_after_the_progress_timeout() {
    let server = Server::builder()
        .add_service(Echo::default())
        .stream_progress_timeout(Some(Duration::from_secs(30)))
        .build();
    let mut sender = h2_client(&server, |_| {}).await;
    // Unary headers, and no body.
    let started = Instant::now();
    let (response, _send) = sender
        .send_request(echo_request("Unary", &[]), false)
        .unwrap();
    let (code, message, _) = status_of(response).await;
    assert_eq!(code, "1", "CANCELLED: {message}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(30) && took < Duration::from_secs(31),
        "{took:?}"
    );
    // Half a message on a client stream, then nothing: the same.
    let started = Instant::now();
    let (_send, response) = partial_message(&mut sender, 100, 10).await;
    let (code, _, _) = status_of(response).await;
    assert_eq!(code, "1");
    assert!(started.elapsed() >= Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn a_quiet_stream_between_messages_is_not_stalled() {
    let server = Server::builder()
        .add_service(Echo::default())
        .stream_progress_timeout(Some(Duration::from_secs(30)))
        .build();
    let mut sender = h2_client(&server, |_| {}).await;
    let (response, mut send) = sender
        .send_request(echo_request("Chat", &[]), false)
        .unwrap();
    send.send_data(framed("one"), false).unwrap();
    let response = response.await.unwrap();
    let mut body = response.into_body();
    assert!(body.data().await.unwrap().is_ok(), "the first answer");
    // Quiet for three timeouts, then more: the call is still there.
    tokio::time::sleep(Duration::from_secs(100)).await;
    send.send_data(framed("two"), true).unwrap();
    let answer = body.data().await.unwrap().unwrap();
    assert!(answer.ends_with(b"two"), "{answer:?}");
    let trailers = body.trailers().await.unwrap().unwrap();
    assert_eq!(trailers["grpc-status"], "0");
}

#[tokio::test(start_paused = true)]
async fn a_response_nobody_reads_is_reset_after_the_progress_timeout() {
    let server = Server::builder()
        .add_service(Echo::default())
        .stream_progress_timeout(Some(Duration::from_secs(30)))
        .message_memory_limit(1024 * 1024)
        .build();
    // A window of 0: headers and trailers may go, data never.
    let mut sender = h2_client(&server, |b| {
        b.initial_window_size(0);
    })
    .await;
    let started = Instant::now();
    let (response, mut send) = sender
        .send_request(echo_request("Unary", &[]), false)
        .unwrap();
    send.send_data(framed("big:700000"), true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let err = body.data().await.unwrap().unwrap_err();
    assert_eq!(err.reason(), Some(h2::Reason::CANCEL), "{err}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(30) && took < Duration::from_secs(31),
        "{took:?}"
    );
    // Its reservation went with it: another large answer fits the 1 MiB budget.
    let (response, mut send) = sender
        .send_request(echo_request("Unary", &[]), false)
        .unwrap();
    send.send_data(framed("big:700000"), true).unwrap();
    let response = response.await.unwrap();
    assert!(
        !response.headers().contains_key("grpc-status"),
        "not refused: {:?}",
        response.headers()
    );
}

/// A raw TCP connection to `addr` that has sent the preface and, if `settings`, its
/// SETTINGS.
async fn raw_connection(addr: std::net::SocketAddr, settings: bool) -> tokio::net::TcpStream {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    if settings {
        tcp.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    }
    tcp
}

#[tokio::test]
async fn a_connection_without_settings_is_closed_at_the_connection_timeout() {
    // 1 s: long enough that a loaded machine still reads the proper client's SETTINGS in time.
    let running = start_with(|b| b.connection_timeout(Duration::from_secs(1))).await;
    let started = std::time::Instant::now();
    let mut preface_only = raw_connection(running.addr, false).await;
    let mut proper = raw_connection(running.addr, true).await;
    let frames = tokio::time::timeout(
        Duration::from_secs(10),
        frames_until_closed(&mut preface_only),
    )
    .await
    .expect("closed");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(8),
        "{took:?}"
    );
    assert!(
        frames.iter().any(|(kind, _, _)| *kind == 4),
        "the server's SETTINGS"
    );
    // The connection that sent its SETTINGS stays.
    let read =
        tokio::time::timeout(Duration::from_millis(500), frames_until_closed(&mut proper)).await;
    assert!(read.is_err(), "still open: {read:?}");
}

#[tokio::test]
async fn connections_past_max_connections_are_closed() {
    let running = start_with(|b| b.max_connections(2)).await;
    let mut first = raw_connection(running.addr, true).await;
    let _second = raw_connection(running.addr, true).await;
    // Both are served (the server's SETTINGS come back).
    let mut head = [0u8; 9];
    first.read_exact(&mut head).await.unwrap();
    assert_eq!(head[3], 4);
    let mut third = raw_connection(running.addr, true).await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
        .await
        .expect("closed at once");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // One goes: a new connection is served.
    drop(first);
    let channel = running.channel();
    let mut answer = None;
    for _ in 0..50 {
        if let Ok(text) = say(&channel, "in").await {
            answer = Some(text);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(answer.as_deref(), Some("in"));
}

/// When a GOAWAY came and when the connection closed, from `started`, reading `tcp`.
async fn goaway_then_close(
    tcp: &mut tokio::net::TcpStream,
    started: std::time::Instant,
) -> (Option<Duration>, Duration) {
    let mut goaway = None;
    loop {
        let mut head = [0u8; 9];
        if tcp.read_exact(&mut head).await.is_err() {
            break;
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        if tcp.read_exact(&mut payload).await.is_err() {
            break;
        }
        if head[3] == 7 {
            goaway.get_or_insert(started.elapsed());
        }
    }
    (goaway, started.elapsed())
}

#[tokio::test]
async fn over_tcp_an_idle_connection_gets_goaway_then_closes() {
    let running = start_with(|b| {
        b.keepalive(
            ServerParameters::new()
                .max_connection_idle(Duration::from_millis(300))
                .timeout(Duration::from_millis(300)),
        )
    })
    .await;
    let started = std::time::Instant::now();
    let mut tcp = raw_connection(running.addr, true).await;
    let (goaway, closed) = tokio::time::timeout(
        Duration::from_secs(10),
        goaway_then_close(&mut tcp, started),
    )
    .await
    .expect("closed");
    let goaway = goaway.expect("a GOAWAY");
    assert!(goaway >= Duration::from_millis(300), "{goaway:?}");
    assert!(
        closed >= goaway && closed < Duration::from_secs(5),
        "{closed:?}"
    );
}

#[tokio::test]
async fn over_tcp_an_old_connection_with_a_call_goes_away_and_closes_after_the_grace() {
    let running = start_with(|b| {
        b.keepalive(
            ServerParameters::new()
                .max_connection_age(Duration::from_millis(400))
                .max_connection_age_grace(Duration::from_millis(400)),
        )
    })
    .await;
    let started = std::time::Instant::now();
    let tcp = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    let (mut sender, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    // A call that never ends: only the grace ends it.
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{}/test.Echo/Chat", running.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    // (Its response headers come with its first answer: none.)
    let (_response, _send) = sender.send_request(request, false).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .expect("closed");
    let took = started.elapsed();
    // The age (±10%), then the grace.
    assert!(
        took >= Duration::from_millis(360 + 400) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[tokio::test]
async fn over_tcp_a_peer_that_does_not_answer_pings_is_closed() {
    let running = start_with(|b| {
        b.keepalive(
            // A timeout our own client meets even on a loaded machine.
            ServerParameters::new()
                .time(Duration::from_millis(300))
                .timeout(Duration::from_secs(1)),
        )
    })
    .await;
    let started = std::time::Instant::now();
    let mut tcp = raw_connection(running.addr, true).await;
    let mut pinged = None;
    loop {
        let mut head = [0u8; 9];
        let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_exact(&mut head))
            .await
            .expect("closed in time");
        if read.is_err() {
            break;
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        if tcp.read_exact(&mut payload).await.is_err() {
            break;
        }
        if head[3] == 6 && head[4] & 1 == 0 {
            pinged.get_or_insert(started.elapsed());
        }
    }
    let closed = started.elapsed();
    let pinged = pinged.expect("pinged");
    assert!(pinged >= Duration::from_millis(300), "{pinged:?}");
    assert!(
        closed >= pinged + Duration::from_millis(950) && closed < Duration::from_secs(8),
        "{closed:?}"
    );
    // An answering peer (our client) is not closed.
    let channel = running.channel();
    assert_eq!(say(&channel, "one").await.unwrap(), "one");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(channel.state(), ConnectivityState::Ready);
}

/// A client's socket that stops reading once `stop` is set (reads stay pending for ever).
struct StopsReading<IO> {
    io: IO,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<IO: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for StopsReading<IO> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.stop.load(std::sync::atomic::Ordering::Relaxed) {
            return std::task::Poll::Pending;
        }
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for StopsReading<IO> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_never_reads_its_socket_is_closed_after_the_progress_timeout() {
    let server = Server::builder()
        .add_service(Echo::default())
        .stream_progress_timeout(Some(Duration::from_secs(30)))
        .build();
    let (client, served) = tokio::io::duplex(64 * 1024);
    let serving = tokio::spawn(server.serve_connection(served, grpc_runtime::Peer::default()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = StopsReading {
        io: client,
        stop: stop.clone(),
    };
    // Windows so large that flow control never holds the server back: only the socket does.
    let (mut sender, connection) = h2::client::Builder::new()
        .initial_window_size(1 << 30)
        .initial_connection_window_size(1 << 30)
        .handshake(client)
        .await
        .unwrap();
    tokio::spawn(connection);
    // One call first, read normally.
    let (response, mut send) = sender
        .send_request(echo_request("Unary", &[]), false)
        .unwrap();
    send.send_data(framed("hi"), true).unwrap();
    assert_eq!(status_of(response).await.0, "0");
    // Then a 3 MB answer to a client that reads no more.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    let (_response, mut send) = sender
        .send_request(echo_request("Unary", &[]), false)
        .unwrap();
    send.send_data(framed("big:3000000"), true).unwrap();
    tokio::time::timeout(Duration::from_secs(60), serving)
        .await
        .expect("the server closed the connection")
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(30) && took < Duration::from_secs(32),
        "{took:?}"
    );
}
