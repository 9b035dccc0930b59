//! Channelz (gRFC A14, `grpc.channelz.v1`): a live view of the process's channels,
//! subchannels, servers and sockets, their states and counters, for debugging a running
//! program.
//!
//! The runtime keeps one process-wide registry (gRPC-Go's channelz database). Every entity
//! gets an id, unique among all kinds, from 1 up; it is listed from the moment it is made
//! until it is gone:
//!
//! | entity | what it holds | children |
//! | --- | --- | --- |
//! | top channel (a [`Channel`](crate::client::Channel)) | target, connectivity state, calls started / succeeded / failed, last call started, a trace | its subchannels |
//! | subchannel | its address, state, calls (attempts) on it, a trace | its sockets (connections) |
//! | server | calls started / succeeded / failed, last call started | its listening sockets, and its connections (paged apart, [`server_sockets`]) |
//! | socket | local and remote address, streams started / succeeded / failed, messages sent / received, keepalives sent, the times of the last of each, TLS (cipher suite and the peer's certificate) | |
//!
//! A channel's or subchannel's trace keeps its last [`MAX_TRACE_EVENTS`] events (creation,
//! state changes, subchannels made and removed) and counts them all. Counters are atomics
//! bumped by the transport as calls and messages go; reading them never stops a call.
//!
//! Two ways to read it:
//! - in-process, the functions of this module: [`top_channels`], [`channel`],
//!   [`subchannel`], [`servers`], [`server`], [`server_sockets`], [`socket`], returning
//!   snapshots ([`ChannelSnapshot`], ...);
//! - over gRPC, the `grpc.channelz.v1.Channelz` service, [`service`], for any channelz
//!   client (its messages and stubs are in [`pb`]; grpcio's client reads it in the interop
//!   run).
//!
//! Lists come a page at a time, by ascending id: from a start id, at most `max_results`
//! items (0: [`DEFAULT_PAGE_SIZE`]), and [`Page::end`] when nothing comes after them. The
//! next page starts at one more than the highest id seen.
//!
//! # Examples
//!
//! Serving channelz beside an application's services:
//!
//! ```no_run
//! use grpc_runtime::{channelz, server::Server};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::builder().add_service(channelz::service()).build();
//! server.serve("127.0.0.1:50051").await?;
//! # Ok(())
//! # }
//! ```
//!
//! Reading it in-process, every page of top channels:
//!
//! ```
//! use grpc_runtime::channelz;
//!
//! let mut start = 0;
//! loop {
//!     let page = channelz::top_channels(start, 0);
//!     for channel in &page.items {
//!         println!(
//!             "{} {} {}: {} calls, {} failed",
//!             channel.id, channel.target, channel.state, channel.calls.started, channel.calls.failed
//!         );
//!     }
//!     match page.items.last() {
//!         Some(last) if !page.end => start = last.id + 1,
//!         _ => break,
//!     }
//! }
//! ```

mod registry;
mod service;

use std::fmt;
use std::net::SocketAddr;
use std::time::SystemTime;

use crate::connectivity::ConnectivityState;
use crate::credentials::tls::TlsInfo;

use registry::GLOBAL;
pub use service::{ChannelzService, service};

/// The `grpc.channelz.v1` messages and stubs (generated from this project's declaration
/// of `grpc/channelz/v1/channelz.proto`); [`pb::ChannelzClient`] reads any server's
/// channelz.
pub mod pb {
    pub use crate::generated::channelz_v1::channelz::*;
    pub use crate::generated::channelz_v1::channelz_grpc::*;
}

/// The handles the runtime registers its entities with, for the runtime's own tests and
/// fuzzing: not an API for applications, and not stable.
#[doc(hidden)]
pub mod internal {
    pub use super::registry::{ChannelEntry, ServerEntry, SocketEntry, SubchannelEntry};

    /// Registers a top channel made for `target`.
    pub fn register_channel(target: &str) -> ChannelEntry {
        super::GLOBAL.register_channel(target)
    }

    /// Registers a server, named `name` in its ref (may be empty).
    pub fn register_server(name: &str) -> ServerEntry {
        super::GLOBAL.register_server(name)
    }
}

/// How many events a channel's or a subchannel's trace keeps (the oldest go first); gRPC-Go
/// keeps 30 too. [`Trace::events_logged`] counts them all.
pub const MAX_TRACE_EVENTS: usize = 30;

/// The page size when a query asks for `max_results` 0 (gRPC-Go's `EntriesPerPage`).
pub const DEFAULT_PAGE_SIZE: usize = 50;

/// The top channels (those the application made), from id `start_id` on by ascending id,
/// at most `max_results` of them (0: [`DEFAULT_PAGE_SIZE`]).
///
/// # Examples
///
/// ```
/// let page = grpc_runtime::channelz::top_channels(0, 10);
/// assert!(page.items.len() <= 10);
/// ```
pub fn top_channels(start_id: i64, max_results: usize) -> Page<ChannelSnapshot> {
    GLOBAL.top_channels(start_id, max_results)
}

/// The top channel of this id, if there is one.
pub fn channel(id: i64) -> Option<ChannelSnapshot> {
    GLOBAL.channel(id)
}

/// The subchannel of this id, if there is one.
pub fn subchannel(id: i64) -> Option<SubchannelSnapshot> {
    GLOBAL.subchannel(id)
}

/// The servers, from id `start_id` on by ascending id, at most `max_results` of them (0:
/// [`DEFAULT_PAGE_SIZE`]).
pub fn servers(start_id: i64, max_results: usize) -> Page<ServerSnapshot> {
    GLOBAL.servers(start_id, max_results)
}

/// The server of this id, if there is one.
pub fn server(id: i64) -> Option<ServerSnapshot> {
    GLOBAL.server(id)
}

/// The connections of server `server_id` (not its listening sockets), from socket id
/// `start_id` on by ascending id, at most `max_results` of them (0: [`DEFAULT_PAGE_SIZE`]);
/// `None` if there is no such server.
pub fn server_sockets(
    server_id: i64,
    start_id: i64,
    max_results: usize,
) -> Option<Page<EntityRef>> {
    GLOBAL.server_sockets(server_id, start_id, max_results)
}

/// The socket of this id (a connection or a listening socket), if there is one.
pub fn socket(id: i64) -> Option<SocketSnapshot> {
    GLOBAL.socket(id)
}

/// One page of a list: its items by ascending id, and whether the list ends with them.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Page<T> {
    /// The items, by ascending id.
    pub items: Vec<T>,
    /// No item comes after these (until more are made).
    pub end: bool,
}

/// Names an entity: its id, and a name for people (a channel's target, a subchannel's
/// address, a socket's addresses; may be empty).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct EntityRef {
    /// The entity's id.
    pub id: i64,
    /// Its name.
    pub name: String,
}

impl EntityRef {
    pub(crate) fn new(id: i64, name: &str) -> EntityRef {
        EntityRef {
            id,
            name: name.to_owned(),
        }
    }
}

/// Calls started on an entity, how they ended, and when the last one started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallCounts {
    /// Calls started.
    pub started: u64,
    /// Calls that ended with OK.
    pub succeeded: u64,
    /// Calls that ended with any other status.
    pub failed: u64,
    /// When the last call started; `None` before the first.
    pub last_call_started: Option<SystemTime>,
}

/// How serious a trace event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Severity {
    /// Something that happens in a normal life (made, connected).
    Info,
    /// Something that may be trouble.
    Warning,
    /// Something that went wrong.
    Error,
}

/// The child a trace event is about.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChildRef {
    /// A channel.
    Channel(EntityRef),
    /// A subchannel.
    Subchannel(EntityRef),
}

/// One event of a trace.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TraceEvent {
    /// What happened, such as `"Channel Connectivity change to READY"`.
    pub description: String,
    /// How serious it is.
    pub severity: Severity,
    /// When it happened.
    pub timestamp: SystemTime,
    /// The child it is about, if it is about one (a subchannel made or removed).
    pub child: Option<ChildRef>,
}

/// A channel's or a subchannel's recent events.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Trace {
    /// When the entity was made.
    pub created: SystemTime,
    /// Events logged since then; more than [`events`](Self::events) holds once the oldest
    /// were dropped.
    pub events_logged: u64,
    /// The last [`MAX_TRACE_EVENTS`] events, oldest first.
    pub events: Vec<TraceEvent>,
}

/// A top channel as it is now.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ChannelSnapshot {
    /// Its id.
    pub id: i64,
    /// The target it was made for.
    pub target: String,
    /// Its connectivity state.
    pub state: ConnectivityState,
    /// Its calls (each call once, however many attempts it made).
    pub calls: CallCounts,
    /// Its recent events.
    pub trace: Trace,
    /// Its subchannels, by ascending id.
    pub subchannels: Vec<EntityRef>,
}

/// A subchannel as it is now.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SubchannelSnapshot {
    /// Its id.
    pub id: i64,
    /// The address it connects to.
    pub target: String,
    /// Its connectivity state.
    pub state: ConnectivityState,
    /// The calls (attempts) that went out on it.
    pub calls: CallCounts,
    /// Its recent events.
    pub trace: Trace,
    /// Its sockets (connections), by ascending id.
    pub sockets: Vec<EntityRef>,
}

/// A server as it is now.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ServerSnapshot {
    /// Its id.
    pub id: i64,
    /// Its name (empty unless it was given one).
    pub name: String,
    /// The calls that came in.
    pub calls: CallCounts,
    /// The sockets it listens on, by ascending id.
    pub listen_sockets: Vec<EntityRef>,
}

/// Where a socket is bound or connected.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SocketAddress {
    /// An IP address and port.
    Tcp(SocketAddr),
    /// A Unix domain socket's path (or abstract name).
    Unix(String),
    /// Anything else, by a name for people (an in-process connection, say).
    Other(String),
}

impl From<SocketAddr> for SocketAddress {
    fn from(addr: SocketAddr) -> SocketAddress {
        SocketAddress::Tcp(addr)
    }
}

impl fmt::Display for SocketAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketAddress::Tcp(addr) => write!(f, "{addr}"),
            SocketAddress::Unix(path) => write!(f, "unix:{path}"),
            SocketAddress::Other(name) => f.write_str(name),
        }
    }
}

/// What secures a socket.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Security {
    /// TLS.
    Tls(TlsSecurity),
}

/// What a TLS handshake established, as channelz shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsSecurity {
    /// The cipher suite's standard (IANA) name, such as `TLS_AES_128_GCM_SHA256`.
    pub standard_name: Option<String>,
    /// The cipher suite's name when it has no standard one.
    pub other_name: Option<String>,
    /// This side's certificate (DER), when known.
    pub local_certificate: Option<Vec<u8>>,
    /// The peer's certificate (DER, the leaf of its chain), when it presented one.
    pub remote_certificate: Option<Vec<u8>>,
}

impl TlsSecurity {
    /// From what the runtime's TLS handshake recorded: rustls names TLS 1.3 suites
    /// `TLS13_...`, whose IANA names are `TLS_...`; TLS 1.2 names are already IANA's.
    pub(crate) fn from_info(info: &TlsInfo) -> TlsSecurity {
        let (standard_name, other_name) = suite_names(info.cipher_suite());
        TlsSecurity {
            standard_name,
            other_name,
            local_certificate: None,
            remote_certificate: info.peer_certificates().first().map(|c| c.to_vec()),
        }
    }
}

/// A cipher suite's name from rustls as (standard name, other name).
fn suite_names(suite: &str) -> (Option<String>, Option<String>) {
    if let Some(rest) = suite.strip_prefix("TLS13_") {
        (Some(format!("TLS_{rest}")), None)
    } else if suite.starts_with("TLS_") {
        (Some(suite.to_owned()), None)
    } else {
        (None, Some(suite.to_owned()))
    }
}

/// A socket as it is now: a connection, or a server's listening socket.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocketSnapshot {
    /// Its id.
    pub id: i64,
    /// Its name: `"local -> remote"`, or the one address known.
    pub name: String,
    /// The address on this side.
    pub local: Option<SocketAddress>,
    /// The address of the other side (`None` for a listening socket).
    pub remote: Option<SocketAddress>,
    /// What secures it, if anything does.
    pub security: Option<Security>,
    /// Streams opened on it, by either side.
    pub streams_started: u64,
    /// Streams that ended well (a client received the end of the stream; a server sent it).
    pub streams_succeeded: u64,
    /// Streams that ended any other way.
    pub streams_failed: u64,
    /// Messages sent. A stream's small messages are counted as their batch is handed to
    /// HTTP/2 (up to 32 KiB of them at a time), so a batch still being filled is not yet in.
    pub messages_sent: u64,
    /// Messages received. Counted when the reader next finds nothing more buffered (or the
    /// call is dropped), so the messages of the read being worked through may not be in.
    pub messages_received: u64,
    /// Keepalive PINGs sent.
    pub keepalives_sent: u64,
    /// When this side last opened a stream.
    pub last_local_stream_created: Option<SystemTime>,
    /// When the other side last opened a stream.
    pub last_remote_stream_created: Option<SystemTime>,
    /// When the last message went out.
    pub last_message_sent: Option<SystemTime>,
    /// When the last message came in.
    pub last_message_received: Option<SystemTime>,
    /// The connection-level HTTP/2 window the peer granted this side, when known.
    pub local_flow_control_window: Option<i64>,
    /// The connection-level HTTP/2 window this side granted the peer, when known.
    pub remote_flow_control_window: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_suite_names_become_iana_names() {
        assert_eq!(
            suite_names("TLS13_AES_128_GCM_SHA256"),
            (Some("TLS_AES_128_GCM_SHA256".to_owned()), None)
        );
        assert_eq!(
            suite_names("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
            (
                Some("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".to_owned()),
                None
            )
        );
        assert_eq!(suite_names("unknown"), (None, Some("unknown".to_owned())));
    }

    #[test]
    fn addresses_display_as_their_kind() {
        let tcp: SocketAddress = "[::1]:80".parse::<SocketAddr>().unwrap().into();
        assert_eq!(tcp.to_string(), "[::1]:80");
        assert_eq!(
            SocketAddress::Unix("/run/s".into()).to_string(),
            "unix:/run/s"
        );
        assert_eq!(
            SocketAddress::Other("inprocess".into()).to_string(),
            "inprocess"
        );
    }
}
