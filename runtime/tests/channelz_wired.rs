//! Channelz sees the runtime's own channels, subchannels, servers and connections, and
//! counts their calls, streams and messages, over real sockets.

mod common;

use common::*;
use futures_util::StreamExt;
use grpc_runtime::channelz::{self, ServerSnapshot, SocketAddress};
use grpc_runtime::connectivity::ConnectivityState;
use grpc_runtime::{Code, Request, Response};
use protobuf::well_known_types::wrappers::{StringValue, UInt32Value};

#[tokio::test]
async fn a_channel_and_a_server_count_their_calls() {
    let srv = start().await;
    let channel = srv.channel();
    let client = grpc_runtime::client::Client::new(channel.clone());
    for text in ["a", "b", "fail:5:gone"] {
        let result: Result<Response<StringValue>, _> =
            client.unary(UNARY, Request::new(s(text)), pb()).await;
        assert_eq!(result.is_ok(), text != "fail:5:gone");
    }
    let err = client
        .unary(MISSING, Request::new(s("x")), pb::<_, StringValue>())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);

    // The client: the channel by its target, its subchannel and connection.
    let target = format!("http://{}", srv.addr);
    let top = channelz::top_channels(0, 1000);
    let chan = top
        .items
        .iter()
        .find(|c| c.target == target)
        .expect("our channel");
    assert_eq!(chan.state, ConnectivityState::Ready);
    assert_eq!(
        (chan.calls.started, chan.calls.succeeded, chan.calls.failed),
        (4, 2, 2)
    );
    assert!(chan.calls.last_call_started.is_some());
    assert_eq!(chan.subchannels.len(), 1);
    let sub = channelz::subchannel(chan.subchannels[0].id).unwrap();
    assert_eq!(sub.state, ConnectivityState::Ready);
    assert_eq!((sub.calls.started, sub.calls.succeeded), (4, 2));
    assert_eq!(sub.sockets.len(), 1);
    let sock = channelz::socket(sub.sockets[0].id).unwrap();
    assert_eq!(sock.remote, Some(SocketAddress::Tcp(srv.addr)));
    assert_eq!(
        (
            sock.streams_started,
            sock.streams_succeeded,
            sock.streams_failed
        ),
        (4, 2, 2)
    );
    assert_eq!((sock.messages_sent, sock.messages_received), (4, 2));

    // The server: found by its listening port.
    let server = server_listening_on(srv.addr);
    assert_eq!(
        (
            server.calls.started,
            server.calls.succeeded,
            server.calls.failed
        ),
        (4, 2, 2)
    );
    let conns = channelz::server_sockets(server.id, 0, 100).unwrap();
    assert_eq!(conns.items.len(), 1);
    let conn = channelz::socket(conns.items[0].id).unwrap();
    // The unimplemented call is answered without reading its request.
    assert_eq!((conn.messages_received, conn.messages_sent), (3, 2));
    assert_eq!(conn.streams_started, 4);

    // Gone from channelz with the channel.
    let id = chan.id;
    drop((client, channel));
    eventually("the channel leaves channelz", || {
        channelz::channel(id).is_none()
    })
    .await;
}

/// Streamed messages are counted a batch (or a drained read) at a time: every one of
/// them must still be counted, on both ends, once the calls are over.
#[tokio::test]
async fn streamed_messages_are_all_counted() {
    let srv = start().await;
    let channel = srv.channel();
    let client = grpc_runtime::client::Client::new(channel.clone());
    // 5,000 responses: many 32 KiB batches, then a short last one.
    let responses = client
        .server_streaming(COUNT, Request::new(n(5000)), pb::<_, UInt32Value>())
        .await
        .unwrap();
    assert_eq!(responses.count().await, 5000);
    // 3,000 requests of 20 bytes: two full batches and a partial one.
    let requests = futures_util::stream::iter((0..3000).map(|_| s("twenty-bytes-of-text")));
    let reply: Response<StringValue> = client
        .client_streaming(CONCAT, Request::new(requests), pb())
        .await
        .unwrap();
    assert_eq!(reply.get_ref().value.len(), 3000 * 21 - 1);

    let target = format!("http://{}", srv.addr);
    let chan = channelz::top_channels(0, 1000)
        .items
        .into_iter()
        .find(|c| c.target == target)
        .expect("our channel");
    let sub = channelz::subchannel(chan.subchannels[0].id).unwrap();
    let sock = channelz::socket(sub.sockets[0].id).unwrap();
    assert_eq!(
        (sock.messages_sent, sock.messages_received),
        (1 + 3000, 5000 + 1)
    );
    let server = server_listening_on(srv.addr);
    let conns = channelz::server_sockets(server.id, 0, 100).unwrap();
    let conn = channelz::socket(conns.items[0].id).unwrap();
    assert_eq!(
        (conn.messages_received, conn.messages_sent),
        (1 + 3000, 5000 + 1)
    );
    assert!(conn.last_message_sent.is_some() && conn.last_message_received.is_some());
}

#[tokio::test]
async fn a_bidi_call_under_a_retry_policy_ends_on_its_channel() {
    const RETRY: &str = r#"{"methodConfig": [{"name": [{"service": "test.Echo"}],
        "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.01s", "maxBackoff": "0.05s",
                        "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]}"#;
    let server = grpc_runtime::server::Server::builder()
        .add_service(Echo::default())
        .build();
    let channel = memory_channel(&server, |b| {
        b.default_service_config(RETRY).user_agent("bidi-retry")
    });
    let client = grpc_runtime::client::Client::new(channel.clone());
    let (mut tx, mut rx) = client
        .bidi_streaming(CHAT, Request::new(()), pb::<StringValue, StringValue>())
        .await
        .unwrap();
    tx.send(s("x")).await.unwrap();
    tx.close();
    assert_eq!(rx.message().await.unwrap().unwrap().value, "x");
    assert!(rx.message().await.unwrap().is_none());
    let chan = channelz::top_channels(0, 1000)
        .items
        .into_iter()
        .find(|c| c.target == "memory.test:1")
        .expect("the memory channel");
    assert_eq!(
        (chan.calls.started, chan.calls.succeeded, chan.calls.failed),
        (1, 1, 0)
    );
}

/// The server in channelz, found by its listening address.
fn server_listening_on(addr: std::net::SocketAddr) -> ServerSnapshot {
    channelz::servers(0, 1000)
        .items
        .into_iter()
        .find(|s| {
            s.listen_sockets.iter().any(|l| {
                channelz::socket(l.id).and_then(|s| s.local) == Some(SocketAddress::Tcp(addr))
            })
        })
        .expect("our server")
}
