//! The `grpc.channelz.v1.Channelz` service over TCP, read with the runtime's own generated
//! client: entities registered as the transport registers them (through the hidden
//! `channelz::internal` hooks), then their ids, counters, states, paging and NOT_FOUND as a
//! channelz client sees them.
//!
//! The registry is the process's: other tests of this binary (and the runtime's own
//! channels and servers, once they register themselves) add entities beside ours, so each
//! test asserts on its own ids and on the order and bounds of pages, never on totals.

mod common;

use std::net::SocketAddr;
use std::time::SystemTime;

use common::*;
use grpc_runtime::Code;
use grpc_runtime::channelz::internal::{register_channel, register_server};
use grpc_runtime::channelz::pb::{self, ChannelzClient};
use grpc_runtime::channelz::{self, Severity, SocketAddress};
use grpc_runtime::connectivity::ConnectivityState;

fn tcp(addr: &str) -> Option<SocketAddress> {
    Some(SocketAddress::Tcp(addr.parse::<SocketAddr>().unwrap()))
}

async fn client() -> (Running, ChannelzClient) {
    let running = start_with(|b| b.add_service(channelz::service())).await;
    let client = ChannelzClient::new(running.channel());
    (running, client)
}

fn seconds(ts: &protobuf::well_known_types::timestamp::Timestamp) -> i64 {
    ts.seconds
}

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn a_channel_its_subchannel_and_socket() {
    let (_running, client) = client().await;
    let channel = register_channel("dns:///channelz.test:443");
    channel.set_state(ConnectivityState::Connecting);
    channel.set_state(ConnectivityState::Ready);
    for ok in [true, false, true] {
        channel.call_started();
        channel.call_ended(ok);
    }
    channel.add_trace(Severity::Warning, "resolver: no addresses for a while");
    let sub = channel.register_subchannel("192.0.2.7:443");
    sub.set_state(ConnectivityState::Ready);
    sub.call_started();
    sub.call_ended(true);
    let socket = sub.register_socket(tcp("192.0.2.1:40000"), tcp("192.0.2.7:443"));
    socket.stream_started(true);
    socket.stream_started(true);
    socket.stream_ended(true);
    socket.stream_ended(false);
    socket.message_sent();
    socket.message_sent();
    socket.message_sent();
    socket.message_received();
    socket.keepalive_sent();

    let mut request = pb::GetChannelRequest::new();
    request.channel_id = channel.id();
    let got = client.get_channel(request).await.unwrap().into_inner();
    let got = got.channel.unwrap();
    assert_eq!(got.ref_.channel_id, channel.id());
    assert_eq!(got.ref_.name, "dns:///channelz.test:443");
    let data = got.data.as_ref().unwrap();
    assert_eq!(data.target, "dns:///channelz.test:443");
    assert_eq!(
        data.state.state.enum_value(),
        Ok(pb::channel_connectivity_state::State::READY)
    );
    assert_eq!(
        (data.calls_started, data.calls_succeeded, data.calls_failed),
        (3, 2, 1)
    );
    assert!((seconds(&data.last_call_started_timestamp) - now_seconds()).abs() < 60);
    let trace = data.trace.as_ref().unwrap();
    let events: Vec<(&str, i32)> = trace
        .events
        .iter()
        .map(|e| (e.description.as_str(), e.severity.value()))
        .collect();
    let sub_created = format!("Subchannel(id:{}) created", sub.id());
    assert_eq!(
        events,
        [
            ("Channel created", 1),
            ("Channel Connectivity change to CONNECTING", 1),
            ("Channel Connectivity change to READY", 1),
            ("resolver: no addresses for a while", 2),
            (sub_created.as_str(), 1),
        ]
    );
    assert_eq!(trace.num_events_logged, 5);
    assert_eq!(
        got.subchannel_ref
            .iter()
            .map(|r| (r.subchannel_id, r.name.as_str()))
            .collect::<Vec<_>>(),
        [(sub.id(), "192.0.2.7:443")]
    );

    let mut request = pb::GetSubchannelRequest::new();
    request.subchannel_id = sub.id();
    let got = client.get_subchannel(request).await.unwrap().into_inner();
    let got = got.subchannel.unwrap();
    assert_eq!(got.ref_.subchannel_id, sub.id());
    let data = got.data.as_ref().unwrap();
    assert_eq!(data.target, "192.0.2.7:443");
    assert_eq!((data.calls_started, data.calls_succeeded), (1, 1));
    assert_eq!(got.socket_ref.len(), 1);
    assert_eq!(got.socket_ref[0].socket_id, socket.id());
    assert_eq!(got.socket_ref[0].name, "192.0.2.1:40000 -> 192.0.2.7:443");

    let mut request = pb::GetSocketRequest::new();
    request.socket_id = socket.id();
    let got = client.get_socket(request).await.unwrap().into_inner();
    let got = got.socket.unwrap();
    assert_eq!(got.ref_.socket_id, socket.id());
    let data = got.data.as_ref().unwrap();
    assert_eq!(
        (
            data.streams_started,
            data.streams_succeeded,
            data.streams_failed,
            data.messages_sent,
            data.messages_received,
            data.keep_alives_sent
        ),
        (2, 1, 1, 3, 1, 1)
    );
    assert!(data.last_local_stream_created_timestamp.is_some());
    assert!(data.last_remote_stream_created_timestamp.is_none());
    assert!(data.last_message_sent_timestamp.is_some());
    assert!(data.last_message_received_timestamp.is_some());
    let Some(pb::address::Address::TcpipAddress(local)) = &got.local.address else {
        panic!("local address {:?}", got.local)
    };
    assert_eq!(local.ip_address, [192, 0, 2, 1]);
    assert_eq!(local.port, 40000);
    let Some(pb::address::Address::TcpipAddress(remote)) = &got.remote.address else {
        panic!("remote address {:?}", got.remote)
    };
    assert_eq!(
        (remote.ip_address.as_slice(), remote.port),
        (&[192, 0, 2, 7][..], 443)
    );

    // Gone with its handles: NOT_FOUND.
    let (channel_id, sub_id, socket_id) = (channel.id(), sub.id(), socket.id());
    drop((channel, sub, socket));
    let mut request = pb::GetChannelRequest::new();
    request.channel_id = channel_id;
    let err = client.get_channel(request).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let mut request = pb::GetSubchannelRequest::new();
    request.subchannel_id = sub_id;
    let err = client.get_subchannel(request).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let mut request = pb::GetSocketRequest::new();
    request.socket_id = socket_id;
    let err = client.get_socket(request).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

#[tokio::test]
async fn top_channels_come_a_page_at_a_time() {
    let (_running, client) = client().await;
    let ours: Vec<_> = (0..5)
        .map(|i| register_channel(&format!("paging-{i}")))
        .collect();
    let our_ids: Vec<i64> = ours.iter().map(|c| c.id()).collect();

    let mut seen = Vec::new();
    let mut start = 0;
    let mut pages = 0;
    loop {
        let mut request = pb::GetTopChannelsRequest::new();
        request.start_channel_id = start;
        request.max_results = 2;
        let page = client.get_top_channels(request).await.unwrap().into_inner();
        pages += 1;
        assert!(page.channel.len() <= 2, "a page of {}", page.channel.len());
        assert!(
            page.end || !page.channel.is_empty(),
            "an empty page must end"
        );
        let ids: Vec<i64> = page.channel.iter().map(|c| c.ref_.channel_id).collect();
        assert!(ids.iter().all(|&id| id >= start), "{ids:?} from {start}");
        seen.extend(ids.iter().copied());
        if page.end {
            break;
        }
        start = ids.last().unwrap() + 1;
        assert!(pages < 1000, "paging does not end");
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "ascending: {seen:?}");
    for id in &our_ids {
        assert!(seen.contains(id), "{id} missing from {seen:?}");
    }
    assert!(pages >= 3, "5 channels in pages of 2: {pages} pages");

    // A page from our last id holds it first, with its target.
    let mut request = pb::GetTopChannelsRequest::new();
    request.start_channel_id = our_ids[4];
    request.max_results = 1;
    let page = client.get_top_channels(request).await.unwrap().into_inner();
    assert_eq!(page.channel[0].ref_.channel_id, our_ids[4]);
    assert_eq!(page.channel[0].data.target, "paging-4");

    let mut request = pb::GetTopChannelsRequest::new();
    request.max_results = -3;
    let err = client.get_top_channels(request).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
}

#[tokio::test]
async fn servers_listen_sockets_and_server_sockets() {
    let (_running, client) = client().await;
    let server = register_server("");
    server.call_started();
    server.call_ended(true);
    server.call_started();
    let listen =
        server.register_listen_socket("127.0.0.1:7001".parse::<SocketAddr>().unwrap().into());
    let conns: Vec<_> = (0..3)
        .map(|i| {
            server.register_socket(
                tcp("127.0.0.1:7001"),
                tcp(&format!("127.0.0.1:{}", 50000 + i)),
            )
        })
        .collect();
    conns[0].stream_started(false);
    conns[0].message_received();

    // GetServers from our id: ours first, with its listening socket.
    let mut request = pb::GetServersRequest::new();
    request.start_server_id = server.id();
    request.max_results = 1;
    let page = client.get_servers(request).await.unwrap().into_inner();
    assert_eq!(page.server.len(), 1);
    let got = &page.server[0];
    assert_eq!(got.ref_.server_id, server.id());
    let data = got.data.as_ref().unwrap();
    assert_eq!(
        (data.calls_started, data.calls_succeeded, data.calls_failed),
        (2, 1, 0)
    );
    assert!(data.last_call_started_timestamp.is_some());
    assert_eq!(
        got.listen_socket
            .iter()
            .map(|r| (r.socket_id, r.name.as_str()))
            .collect::<Vec<_>>(),
        [(listen.id(), "127.0.0.1:7001")]
    );

    let mut request = pb::GetServerRequest::new();
    request.server_id = server.id();
    let got = client.get_server(request).await.unwrap().into_inner();
    assert_eq!(got.server.ref_.server_id, server.id());

    // Its connections in pages of 2, not its listening socket.
    let mut request = pb::GetServerSocketsRequest::new();
    request.server_id = server.id();
    request.max_results = 2;
    let page = client
        .get_server_sockets(request)
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<i64> = page.socket_ref.iter().map(|r| r.socket_id).collect();
    assert_eq!(ids, [conns[0].id(), conns[1].id()]);
    assert!(!page.end);
    let mut request = pb::GetServerSocketsRequest::new();
    request.server_id = server.id();
    request.start_socket_id = ids[1] + 1;
    let page = client
        .get_server_sockets(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        page.socket_ref
            .iter()
            .map(|r| (r.socket_id, r.name.as_str()))
            .collect::<Vec<_>>(),
        [(conns[2].id(), "127.0.0.1:7001 -> 127.0.0.1:50002")]
    );
    assert!(page.end);

    // The listening socket itself: a local address, no remote.
    let mut request = pb::GetSocketRequest::new();
    request.socket_id = listen.id();
    let got = client.get_socket(request).await.unwrap().into_inner();
    assert!(got.socket.local.is_some());
    assert!(got.socket.remote.is_none());

    let mut request = pb::GetSocketRequest::new();
    request.socket_id = conns[0].id();
    let got = client.get_socket(request).await.unwrap().into_inner();
    let data = got.socket.data.as_ref().unwrap();
    assert_eq!((data.streams_started, data.messages_received), (1, 1));
    assert!(data.last_remote_stream_created_timestamp.is_some());

    // An unknown server: NOT_FOUND for both.
    let server_id = server.id();
    drop((listen, conns, server));
    let mut request = pb::GetServerRequest::new();
    request.server_id = server_id;
    let err = client.get_server(request).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let mut request = pb::GetServerSocketsRequest::new();
    request.server_id = server_id;
    let err = client.get_server_sockets(request).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
}

#[test]
fn the_in_process_queries_see_the_same() {
    let channel = register_channel("inproc-query");
    channel.call_started();
    let snapshot = channelz::channel(channel.id()).unwrap();
    assert_eq!(snapshot.target, "inproc-query");
    assert_eq!(snapshot.calls.started, 1);
    assert_eq!(snapshot.state, ConnectivityState::Idle);
    let page = channelz::top_channels(channel.id(), 1);
    assert_eq!(page.items[0].id, channel.id());
    let id = channel.id();
    drop(channel);
    assert!(channelz::channel(id).is_none());
}
