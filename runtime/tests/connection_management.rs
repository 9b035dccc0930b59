//! A server's connection management (gRPC-Go's `keepalive.ServerParameters`): GOAWAY to idle
//! and old connections, the age grace, and pings a peer must answer. In-memory connections
//! on the paused clock.

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
