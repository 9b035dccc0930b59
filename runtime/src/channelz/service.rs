//! The `grpc.channelz.v1.Channelz` service: the registry's snapshots as channelz messages.

use std::fmt;
use std::time::SystemTime;

use protobuf::MessageField;
use protobuf::well_known_types::timestamp::Timestamp;
use protobuf::well_known_types::wrappers::Int64Value;

use super::pb;
use super::registry::{GLOBAL, Registry};
use super::{
    CallCounts, ChannelSnapshot, ChildRef, EntityRef, Security, ServerSnapshot, Severity,
    SocketAddress, SocketSnapshot, SubchannelSnapshot, Trace,
};
use crate::connectivity::ConnectivityState;
use crate::request::{Request, Response};
use crate::status::Status;

/// The `grpc.channelz.v1.Channelz` service over the process's registry, to add to a server
/// with [`ServerBuilder::add_service`](crate::server::ServerBuilder::add_service).
///
/// # Examples
///
/// ```
/// use grpc_runtime::{channelz, server::Server};
///
/// let server = Server::builder().add_service(channelz::service()).build();
/// # let _ = server;
/// ```
pub fn service() -> pb::ChannelzServer<ChannelzService> {
    pb::ChannelzServer::new(ChannelzService::new())
}

/// Answers channelz's RPCs from the process's registry: lists a page at a time (by
/// ascending id; `max_results` 0 is [`DEFAULT_PAGE_SIZE`](super::DEFAULT_PAGE_SIZE), a
/// negative one `INVALID_ARGUMENT`), `NOT_FOUND` for an id that names nothing of the kind
/// asked. Usually made by [`service`].
///
/// # Examples
///
/// ```
/// use grpc_runtime::channelz::{ChannelzService, pb::ChannelzServer};
///
/// let service = ChannelzServer::new(ChannelzService::new());
/// # let _ = service;
/// ```
#[derive(Clone, Copy)]
pub struct ChannelzService {
    registry: &'static Registry,
}

impl fmt::Debug for ChannelzService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelzService")
            .field("registry", self.registry)
            .finish()
    }
}

impl Default for ChannelzService {
    fn default() -> Self {
        Self::new()
    }
}

impl ChannelzService {
    /// The service over the process's registry.
    pub fn new() -> ChannelzService {
        ChannelzService { registry: &GLOBAL }
    }

    /// The service over another registry (tests).
    #[cfg(test)]
    pub(crate) fn with_registry(registry: &'static Registry) -> ChannelzService {
        ChannelzService { registry }
    }
}

/// A request's `max_results` as a page size.
fn max_results(max: i64) -> Result<usize, Status> {
    usize::try_from(max).map_err(|_| {
        Status::invalid_argument(format!(
            "max_results is {max}: it must be 0 (the server's page size) or more"
        ))
    })
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn timestamp(time: Option<SystemTime>) -> MessageField<Timestamp> {
    MessageField::from_option(time.map(Timestamp::from))
}

fn state(state: ConnectivityState) -> pb::ChannelConnectivityState {
    use pb::channel_connectivity_state::State;
    let mut message = pb::ChannelConnectivityState::new();
    message.state = match state {
        ConnectivityState::Idle => State::IDLE,
        ConnectivityState::Connecting => State::CONNECTING,
        ConnectivityState::Ready => State::READY,
        ConnectivityState::TransientFailure => State::TRANSIENT_FAILURE,
        ConnectivityState::Shutdown => State::SHUTDOWN,
    }
    .into();
    message
}

fn channel_ref(r: &EntityRef) -> pb::ChannelRef {
    let mut message = pb::ChannelRef::new();
    message.channel_id = r.id;
    message.name.clone_from(&r.name);
    message
}

fn subchannel_ref(r: &EntityRef) -> pb::SubchannelRef {
    let mut message = pb::SubchannelRef::new();
    message.subchannel_id = r.id;
    message.name.clone_from(&r.name);
    message
}

fn socket_ref(r: &EntityRef) -> pb::SocketRef {
    let mut message = pb::SocketRef::new();
    message.socket_id = r.id;
    message.name.clone_from(&r.name);
    message
}

fn trace(trace: &Trace) -> pb::ChannelTrace {
    use pb::channel_trace_event::{Child_ref, Severity as PbSeverity};
    let mut message = pb::ChannelTrace::new();
    message.num_events_logged = count(trace.events_logged);
    message.creation_timestamp = timestamp(Some(trace.created));
    message.events = trace
        .events
        .iter()
        .map(|event| {
            let mut e = pb::ChannelTraceEvent::new();
            e.description.clone_from(&event.description);
            e.severity = match event.severity {
                Severity::Info => PbSeverity::CT_INFO,
                Severity::Warning => PbSeverity::CT_WARNING,
                Severity::Error => PbSeverity::CT_ERROR,
            }
            .into();
            e.timestamp = timestamp(Some(event.timestamp));
            e.child_ref = event.child.as_ref().map(|child| match child {
                ChildRef::Channel(r) => Child_ref::ChannelRef(channel_ref(r)),
                ChildRef::Subchannel(r) => Child_ref::SubchannelRef(subchannel_ref(r)),
            });
            e
        })
        .collect();
    message
}

fn channel_data(
    s: ConnectivityState,
    target: &str,
    calls: &CallCounts,
    t: &Trace,
) -> pb::ChannelData {
    let mut data = pb::ChannelData::new();
    data.state = MessageField::some(state(s));
    data.target = target.to_owned();
    data.trace = MessageField::some(trace(t));
    data.calls_started = count(calls.started);
    data.calls_succeeded = count(calls.succeeded);
    data.calls_failed = count(calls.failed);
    data.last_call_started_timestamp = timestamp(calls.last_call_started);
    data
}

fn channel(snapshot: &ChannelSnapshot) -> pb::Channel {
    let mut message = pb::Channel::new();
    message.ref_ = MessageField::some(channel_ref(&EntityRef::new(snapshot.id, &snapshot.target)));
    message.data = MessageField::some(channel_data(
        snapshot.state,
        &snapshot.target,
        &snapshot.calls,
        &snapshot.trace,
    ));
    message.subchannel_ref = snapshot.subchannels.iter().map(subchannel_ref).collect();
    message
}

fn subchannel(snapshot: &SubchannelSnapshot) -> pb::Subchannel {
    let mut message = pb::Subchannel::new();
    message.ref_ = MessageField::some(subchannel_ref(&EntityRef::new(
        snapshot.id,
        &snapshot.target,
    )));
    message.data = MessageField::some(channel_data(
        snapshot.state,
        &snapshot.target,
        &snapshot.calls,
        &snapshot.trace,
    ));
    message.socket_ref = snapshot.sockets.iter().map(socket_ref).collect();
    message
}

fn server(snapshot: &ServerSnapshot) -> pb::Server {
    let mut message = pb::Server::new();
    let mut r = pb::ServerRef::new();
    r.server_id = snapshot.id;
    r.name.clone_from(&snapshot.name);
    message.ref_ = MessageField::some(r);
    let mut data = pb::ServerData::new();
    data.calls_started = count(snapshot.calls.started);
    data.calls_succeeded = count(snapshot.calls.succeeded);
    data.calls_failed = count(snapshot.calls.failed);
    data.last_call_started_timestamp = timestamp(snapshot.calls.last_call_started);
    message.data = MessageField::some(data);
    message.listen_socket = snapshot.listen_sockets.iter().map(socket_ref).collect();
    message
}

fn address(address: &SocketAddress) -> pb::Address {
    use pb::address::{Address, OtherAddress, TcpIpAddress, UdsAddress};
    let mut message = pb::Address::new();
    message.address = Some(match address {
        SocketAddress::Tcp(addr) => {
            let mut tcp = TcpIpAddress::new();
            tcp.ip_address = match addr.ip() {
                std::net::IpAddr::V4(ip) => ip.octets().to_vec(),
                std::net::IpAddr::V6(ip) => ip.octets().to_vec(),
            };
            tcp.port = i32::from(addr.port());
            Address::TcpipAddress(tcp)
        }
        SocketAddress::Unix(path) => {
            let mut uds = UdsAddress::new();
            uds.filename.clone_from(path);
            Address::UdsAddress(uds)
        }
        SocketAddress::Other(name) => {
            let mut other = OtherAddress::new();
            other.name.clone_from(name);
            Address::OtherAddress(other)
        }
    });
    message
}

fn security(security: &Security) -> pb::Security {
    use pb::security::{Model, Tls, tls::Cipher_suite};
    let mut message = pb::Security::new();
    message.model = Some(match security {
        Security::Tls(info) => {
            let mut tls = Tls::new();
            tls.cipher_suite = match (&info.standard_name, &info.other_name) {
                (Some(name), _) => Some(Cipher_suite::StandardName(name.clone())),
                (None, Some(name)) => Some(Cipher_suite::OtherName(name.clone())),
                (None, None) => None,
            };
            tls.local_certificate = info.local_certificate.clone().unwrap_or_default();
            tls.remote_certificate = info.remote_certificate.clone().unwrap_or_default();
            Model::Tls(tls)
        }
    });
    message
}

fn window(window: Option<i64>) -> MessageField<Int64Value> {
    MessageField::from_option(window.map(|value| {
        let mut message = Int64Value::new();
        message.value = value;
        message
    }))
}

fn socket(snapshot: &SocketSnapshot) -> pb::Socket {
    let mut message = pb::Socket::new();
    message.ref_ = MessageField::some(socket_ref(&EntityRef::new(snapshot.id, &snapshot.name)));
    let mut data = pb::SocketData::new();
    data.streams_started = count(snapshot.streams_started);
    data.streams_succeeded = count(snapshot.streams_succeeded);
    data.streams_failed = count(snapshot.streams_failed);
    data.messages_sent = count(snapshot.messages_sent);
    data.messages_received = count(snapshot.messages_received);
    data.keep_alives_sent = count(snapshot.keepalives_sent);
    data.last_local_stream_created_timestamp = timestamp(snapshot.last_local_stream_created);
    data.last_remote_stream_created_timestamp = timestamp(snapshot.last_remote_stream_created);
    data.last_message_sent_timestamp = timestamp(snapshot.last_message_sent);
    data.last_message_received_timestamp = timestamp(snapshot.last_message_received);
    data.local_flow_control_window = window(snapshot.local_flow_control_window);
    data.remote_flow_control_window = window(snapshot.remote_flow_control_window);
    message.data = MessageField::some(data);
    message.local = MessageField::from_option(snapshot.local.as_ref().map(address));
    message.remote = MessageField::from_option(snapshot.remote.as_ref().map(address));
    message.security = MessageField::from_option(snapshot.security.as_ref().map(security));
    message
}

fn not_found(kind: &str, id: i64) -> Status {
    Status::not_found(format!("channelz: no {kind} with id {id}"))
}

impl pb::Channelz for ChannelzService {
    async fn get_top_channels(
        &self,
        request: Request<pb::GetTopChannelsRequest>,
    ) -> Result<Response<pb::GetTopChannelsResponse>, Status> {
        let request = request.get_ref();
        let max = max_results(request.max_results)?;
        let page = self.registry.top_channels(request.start_channel_id, max);
        let mut response = pb::GetTopChannelsResponse::new();
        response.channel = page.items.iter().map(channel).collect();
        response.end = page.end;
        Ok(Response::new(response))
    }

    async fn get_servers(
        &self,
        request: Request<pb::GetServersRequest>,
    ) -> Result<Response<pb::GetServersResponse>, Status> {
        let request = request.get_ref();
        let max = max_results(request.max_results)?;
        let page = self.registry.servers(request.start_server_id, max);
        let mut response = pb::GetServersResponse::new();
        response.server = page.items.iter().map(server).collect();
        response.end = page.end;
        Ok(Response::new(response))
    }

    async fn get_server(
        &self,
        request: Request<pb::GetServerRequest>,
    ) -> Result<Response<pb::GetServerResponse>, Status> {
        let id = request.get_ref().server_id;
        let snapshot = self
            .registry
            .server(id)
            .ok_or_else(|| not_found("server", id))?;
        let mut response = pb::GetServerResponse::new();
        response.server = MessageField::some(server(&snapshot));
        Ok(Response::new(response))
    }

    async fn get_server_sockets(
        &self,
        request: Request<pb::GetServerSocketsRequest>,
    ) -> Result<Response<pb::GetServerSocketsResponse>, Status> {
        let request = request.get_ref();
        let max = max_results(request.max_results)?;
        let page = self
            .registry
            .server_sockets(request.server_id, request.start_socket_id, max)
            .ok_or_else(|| not_found("server", request.server_id))?;
        let mut response = pb::GetServerSocketsResponse::new();
        response.socket_ref = page.items.iter().map(socket_ref).collect();
        response.end = page.end;
        Ok(Response::new(response))
    }

    async fn get_channel(
        &self,
        request: Request<pb::GetChannelRequest>,
    ) -> Result<Response<pb::GetChannelResponse>, Status> {
        let id = request.get_ref().channel_id;
        let snapshot = self
            .registry
            .channel(id)
            .ok_or_else(|| not_found("channel", id))?;
        let mut response = pb::GetChannelResponse::new();
        response.channel = MessageField::some(channel(&snapshot));
        Ok(Response::new(response))
    }

    async fn get_subchannel(
        &self,
        request: Request<pb::GetSubchannelRequest>,
    ) -> Result<Response<pb::GetSubchannelResponse>, Status> {
        let id = request.get_ref().subchannel_id;
        let snapshot = self
            .registry
            .subchannel(id)
            .ok_or_else(|| not_found("subchannel", id))?;
        let mut response = pb::GetSubchannelResponse::new();
        response.subchannel = MessageField::some(subchannel(&snapshot));
        Ok(Response::new(response))
    }

    async fn get_socket(
        &self,
        request: Request<pb::GetSocketRequest>,
    ) -> Result<Response<pb::GetSocketResponse>, Status> {
        let id = request.get_ref().socket_id;
        let snapshot = self
            .registry
            .socket(id)
            .ok_or_else(|| not_found("socket", id))?;
        let mut response = pb::GetSocketResponse::new();
        response.socket = MessageField::some(socket(&snapshot));
        Ok(Response::new(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Code;
    use pb::Channelz;

    fn registry() -> &'static Registry {
        Box::leak(Box::new(Registry::new()))
    }

    async fn unary<T, R, F>(f: F, request: T) -> Result<R, Status>
    where
        F: AsyncFnOnce(Request<T>) -> Result<Response<R>, Status>,
    {
        f(Request::new(request)).await.map(Response::into_inner)
    }

    #[tokio::test]
    async fn messages_carry_the_snapshots() {
        let r = registry();
        let service = ChannelzService::with_registry(r);
        let channel = r.register_channel("dns:///example.com:443");
        channel.set_state(ConnectivityState::Ready);
        channel.call_started();
        channel.call_ended(false);
        let sub = channel.register_subchannel("93.184.216.34:443");
        let sock = sub.register_socket(
            Some(
                "10.1.2.3:50000"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            ),
            Some(
                "[2001:db8::1]:443"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            ),
        );
        sock.stream_started(true);
        sock.message_sent();

        let mut request = pb::GetChannelRequest::new();
        request.channel_id = channel.id();
        let got = unary(async |r| service.get_channel(r).await, request)
            .await
            .unwrap()
            .channel
            .unwrap();
        assert_eq!(got.ref_.channel_id, 1);
        assert_eq!(got.ref_.name, "dns:///example.com:443");
        let data = got.data.unwrap();
        assert_eq!(
            data.state.state.enum_value(),
            Ok(pb::channel_connectivity_state::State::READY)
        );
        assert_eq!(
            (data.calls_started, data.calls_succeeded, data.calls_failed),
            (1, 0, 1)
        );
        assert!(data.last_call_started_timestamp.seconds > 1_600_000_000);
        let trace = data.trace.unwrap();
        assert_eq!(trace.num_events_logged, 3);
        let last = trace.events.last().unwrap();
        assert_eq!(last.description, "Subchannel(id:2) created");
        assert_eq!(
            last.severity.enum_value(),
            Ok(pb::channel_trace_event::Severity::CT_INFO)
        );
        match &last.child_ref {
            Some(pb::channel_trace_event::Child_ref::SubchannelRef(r)) => {
                assert_eq!((r.subchannel_id, r.name.as_str()), (2, "93.184.216.34:443"));
            }
            other => panic!("child ref {other:?}"),
        }
        assert_eq!(got.subchannel_ref.len(), 1);
        assert_eq!(got.subchannel_ref[0].subchannel_id, 2);

        let mut request = pb::GetSocketRequest::new();
        request.socket_id = sock.id();
        let got = unary(async |r| service.get_socket(r).await, request)
            .await
            .unwrap()
            .socket
            .unwrap();
        let Some(pb::address::Address::TcpipAddress(local)) = &got.local.address else {
            panic!("local {:?}", got.local)
        };
        assert_eq!(
            (local.ip_address.as_slice(), local.port),
            (&[10, 1, 2, 3][..], 50000)
        );
        let Some(pb::address::Address::TcpipAddress(remote)) = &got.remote.address else {
            panic!("remote {:?}", got.remote)
        };
        assert_eq!(remote.ip_address.len(), 16);
        assert_eq!(remote.ip_address[..4], [0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!(remote.port, 443);
        let data = got.data.unwrap();
        assert_eq!((data.streams_started, data.messages_sent), (1, 1));
        assert!(data.last_local_stream_created_timestamp.is_some());
        assert!(data.last_remote_stream_created_timestamp.is_none());
        assert!(data.local_flow_control_window.is_none());
        assert!(got.security.is_none());
    }

    #[tokio::test]
    async fn unknown_ids_are_not_found_and_negative_pages_invalid() {
        let service = ChannelzService::with_registry(registry());
        let mut request = pb::GetChannelRequest::new();
        request.channel_id = 7;
        let err = unary(async |r| service.get_channel(r).await, request)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
        assert_eq!(err.message(), "channelz: no channel with id 7");
        let mut request = pb::GetServerSocketsRequest::new();
        request.server_id = 3;
        let err = unary(async |r| service.get_server_sockets(r).await, request)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
        let mut request = pb::GetServersRequest::new();
        request.max_results = -1;
        let err = unary(async |r| service.get_servers(r).await, request)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        let empty = unary(
            async |r| service.get_servers(r).await,
            pb::GetServersRequest::new(),
        )
        .await
        .unwrap();
        assert!(empty.server.is_empty() && empty.end);
    }

    #[test]
    fn tls_suites_get_their_standard_names() {
        let security = security(&Security::Tls(super::super::TlsSecurity {
            standard_name: Some("TLS_AES_256_GCM_SHA384".into()),
            other_name: None,
            local_certificate: None,
            remote_certificate: Some(vec![0x30, 0x82]),
        }));
        let Some(pb::security::Model::Tls(tls)) = security.model else {
            panic!("{security:?}")
        };
        assert_eq!(tls.standard_name(), "TLS_AES_256_GCM_SHA384");
        assert_eq!(tls.remote_certificate, [0x30, 0x82]);
        assert!(tls.local_certificate.is_empty());
    }
}
