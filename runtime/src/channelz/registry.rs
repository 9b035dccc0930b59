//! The write side of channelz: the registry of entities and the handles the runtime holds
//! for each of them (a channel, a subchannel, a server, a socket), whose counters its
//! transport code bumps.
//!
//! Every handle is an `Arc` inside (cheap to clone); the entity leaves the registry when the
//! last clone of its handle drops. A child's handle holds its parent's, so a channel stays
//! listed while any of its subchannels is (gRPC-Go removes an entity once it and its
//! children are gone). Counters are atomics (no lock on a call's or a message's path);
//! the registry's maps, children sets and traces take a `Mutex`, only when entities come
//! and go, when a trace event is added, and when channelz is queried. No two of those locks
//! are ever held at once.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{
    CallCounts, ChannelSnapshot, ChildRef, EntityRef, MAX_TRACE_EVENTS, Page, Security,
    ServerSnapshot, Severity, SocketAddress, SocketSnapshot, SubchannelSnapshot, TlsSecurity,
    Trace, TraceEvent,
};
use crate::connectivity::ConnectivityState;
use crate::credentials::tls::TlsInfo;
use crate::peer::Peer;

/// The process's registry, the one [`super::service`] and the query functions read.
pub(crate) static GLOBAL: Registry = Registry::new();

/// Locks, going on past a poisoned lock: the data behind each lock stays consistent at every
/// step (a panic cannot leave half an insertion), and channelz must never take the
/// process's calls down with it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Now, in nanoseconds since the Unix epoch (at least 1, so that 0 can mean "never").
///
/// On Linux this reads the coarse real-time clock (the time of the last tick, a few
/// milliseconds at most behind): the "last call/stream/message" stamps are taken several
/// times per call, and the precise clock cost 3% of a small unary call's server time
/// (measured with h2load, 1-byte messages); channelz's readers need milliseconds, not
/// nanoseconds.
fn now_nanos() -> i64 {
    #[cfg(target_os = "linux")]
    {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid, writable timespec; CLOCK_REALTIME_COARSE exists on
        // every Linux since 2.6.32, and on failure `now` stays zero (then the precise clock
        // is read below).
        let ok = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut now) } == 0;
        if ok && now.tv_sec > 0 {
            // `time_t` and `c_long` are 32 bits wide on 32-bit Linux.
            #[allow(clippy::useless_conversion)]
            let (secs, nanos) = (i64::from(now.tv_sec), i64::from(now.tv_nsec));
            return secs
                .saturating_mul(1_000_000_000)
                .saturating_add(nanos)
                .max(1);
        }
    }
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_nanos()).unwrap_or(i64::MAX).max(1)
}

/// A timestamp kept by [`now_nanos`] (0: never) as a time.
fn time_of(nanos: i64) -> Option<SystemTime> {
    (nanos > 0).then(|| UNIX_EPOCH + Duration::from_nanos(nanos.unsigned_abs()))
}

/// Entities of every kind by id; one id counter for all kinds, from 1 (as gRPC-Go).
pub(crate) struct Registry {
    next_id: AtomicI64,
    maps: Mutex<Maps>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let maps = lock(&self.maps);
        f.debug_struct("Registry")
            .field("channels", &maps.channels.len())
            .field("subchannels", &maps.subchannels.len())
            .field("servers", &maps.servers.len())
            .field("sockets", &maps.sockets.len())
            .finish()
    }
}

struct Maps {
    channels: BTreeMap<i64, Arc<ChannelState>>,
    subchannels: BTreeMap<i64, Arc<ChannelState>>,
    servers: BTreeMap<i64, Arc<ServerState>>,
    sockets: BTreeMap<i64, Arc<SocketState>>,
}

/// The `max_results` to page with: `max`, or the default page size for 0.
fn page_size(max: usize) -> usize {
    if max == 0 {
        super::DEFAULT_PAGE_SIZE
    } else {
        max
    }
}

/// Up to `max` entries of `map` from id `start` on (ascending), and whether none is left
/// after them.
fn page_of<T>(map: &BTreeMap<i64, Arc<T>>, start: i64, max: usize) -> (Vec<Arc<T>>, bool) {
    let max = page_size(max);
    let mut items: Vec<Arc<T>> = map
        .range(start..)
        .take(max + 1)
        .map(|(_, v)| v.clone())
        .collect();
    let end = items.len() <= max;
    items.truncate(max);
    (items, end)
}

impl Registry {
    pub(crate) const fn new() -> Registry {
        Registry {
            next_id: AtomicI64::new(1),
            maps: Mutex::new(Maps {
                channels: BTreeMap::new(),
                subchannels: BTreeMap::new(),
                servers: BTreeMap::new(),
                sockets: BTreeMap::new(),
            }),
        }
    }

    fn next_id(&self) -> i64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a top channel made for `target`: IDLE, with a "Channel created" event.
    pub(crate) fn register_channel(&'static self, target: &str) -> ChannelEntry {
        let state = Arc::new(ChannelState::new(self.next_id(), target));
        state.trace(Severity::Info, "Channel created".to_owned(), None);
        lock(&self.maps)
            .channels
            .insert(state.id, Arc::clone(&state));
        ChannelEntry(Arc::new(ChannelOwner {
            registry: self,
            state,
        }))
    }

    /// Registers a server.
    pub(crate) fn register_server(&'static self, name: &str) -> ServerEntry {
        let state = Arc::new(ServerState {
            id: self.next_id(),
            name: name.to_owned(),
            calls: CallCounters::default(),
            listen_sockets: Mutex::new(BTreeMap::new()),
            sockets: Mutex::new(BTreeMap::new()),
        });
        lock(&self.maps)
            .servers
            .insert(state.id, Arc::clone(&state));
        ServerEntry(Arc::new(ServerOwner {
            registry: self,
            state,
        }))
    }

    pub(crate) fn top_channels(&self, start: i64, max: usize) -> Page<ChannelSnapshot> {
        let (items, end) = page_of(&lock(&self.maps).channels, start, max);
        Page {
            items: items.iter().map(|c| c.channel_snapshot()).collect(),
            end,
        }
    }

    pub(crate) fn channel(&self, id: i64) -> Option<ChannelSnapshot> {
        let state = lock(&self.maps).channels.get(&id).cloned()?;
        Some(state.channel_snapshot())
    }

    pub(crate) fn subchannel(&self, id: i64) -> Option<SubchannelSnapshot> {
        let state = lock(&self.maps).subchannels.get(&id).cloned()?;
        Some(state.subchannel_snapshot())
    }

    pub(crate) fn servers(&self, start: i64, max: usize) -> Page<ServerSnapshot> {
        let (items, end) = page_of(&lock(&self.maps).servers, start, max);
        Page {
            items: items.iter().map(|s| s.snapshot()).collect(),
            end,
        }
    }

    pub(crate) fn server(&self, id: i64) -> Option<ServerSnapshot> {
        let state = lock(&self.maps).servers.get(&id).cloned()?;
        Some(state.snapshot())
    }

    pub(crate) fn server_sockets(
        &self,
        server: i64,
        start: i64,
        max: usize,
    ) -> Option<Page<EntityRef>> {
        let state = lock(&self.maps).servers.get(&server).cloned()?;
        let sockets = lock(&state.sockets);
        let max = page_size(max);
        let mut items: Vec<EntityRef> = sockets
            .range(start..)
            .take(max + 1)
            .map(|(&id, name)| EntityRef::new(id, name))
            .collect();
        let end = items.len() <= max;
        items.truncate(max);
        Some(Page { items, end })
    }

    pub(crate) fn socket(&self, id: i64) -> Option<SocketSnapshot> {
        let state = lock(&self.maps).sockets.get(&id).cloned()?;
        Some(state.snapshot())
    }
}

/// Calls started, succeeded and failed, and when the last one started.
#[derive(Default)]
struct CallCounters {
    started: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    last_started: AtomicI64,
}

impl CallCounters {
    fn started(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.last_started.store(now_nanos(), Ordering::Relaxed);
    }

    fn ended(&self, ok: bool) {
        let counter = if ok { &self.succeeded } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> CallCounts {
        CallCounts {
            started: self.started.load(Ordering::Relaxed),
            succeeded: self.succeeded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            last_call_started: time_of(self.last_started.load(Ordering::Relaxed)),
        }
    }
}

/// The last [`MAX_TRACE_EVENTS`] events and how many were ever logged.
struct TraceLog {
    created: SystemTime,
    logged: u64,
    events: VecDeque<TraceEvent>,
}

fn state_code(state: ConnectivityState) -> u8 {
    match state {
        ConnectivityState::Idle => 1,
        ConnectivityState::Connecting => 2,
        ConnectivityState::Ready => 3,
        ConnectivityState::TransientFailure => 4,
        ConnectivityState::Shutdown => 5,
    }
}

fn state_of(code: u8) -> ConnectivityState {
    match code {
        2 => ConnectivityState::Connecting,
        3 => ConnectivityState::Ready,
        4 => ConnectivityState::TransientFailure,
        5 => ConnectivityState::Shutdown,
        _ => ConnectivityState::Idle,
    }
}

/// A channel's or a subchannel's data (the same fields in channelz's `ChannelData`).
struct ChannelState {
    id: i64,
    target: String,
    state: AtomicU8,
    calls: CallCounters,
    trace: Mutex<TraceLog>,
    /// A channel's subchannels, a subchannel's sockets: id to ref name.
    children: Mutex<BTreeMap<i64, String>>,
}

impl ChannelState {
    fn new(id: i64, target: &str) -> ChannelState {
        ChannelState {
            id,
            target: target.to_owned(),
            state: AtomicU8::new(state_code(ConnectivityState::Idle)),
            calls: CallCounters::default(),
            trace: Mutex::new(TraceLog {
                created: SystemTime::now(),
                logged: 0,
                events: VecDeque::new(),
            }),
            children: Mutex::new(BTreeMap::new()),
        }
    }

    fn trace(&self, severity: Severity, description: String, child: Option<ChildRef>) {
        let event = TraceEvent {
            description,
            severity,
            timestamp: SystemTime::now(),
            child,
        };
        let mut log = lock(&self.trace);
        log.logged += 1;
        if log.events.len() == MAX_TRACE_EVENTS {
            log.events.pop_front();
        }
        log.events.push_back(event);
    }

    /// Sets the state; a change is traced as "<kind> Connectivity change to <STATE>".
    fn set_state(&self, kind: &str, state: ConnectivityState) {
        let old = self.state.swap(state_code(state), Ordering::Relaxed);
        if old != state_code(state) {
            self.trace(
                Severity::Info,
                format!("{kind} Connectivity change to {state}"),
                None,
            );
        }
    }

    fn trace_snapshot(&self) -> Trace {
        let log = lock(&self.trace);
        Trace {
            created: log.created,
            events_logged: log.logged,
            events: log.events.iter().cloned().collect(),
        }
    }

    fn children(&self) -> Vec<EntityRef> {
        lock(&self.children)
            .iter()
            .map(|(&id, name)| EntityRef::new(id, name))
            .collect()
    }

    fn channel_snapshot(&self) -> ChannelSnapshot {
        ChannelSnapshot {
            id: self.id,
            target: self.target.clone(),
            state: state_of(self.state.load(Ordering::Relaxed)),
            calls: self.calls.snapshot(),
            trace: self.trace_snapshot(),
            subchannels: self.children(),
        }
    }

    fn subchannel_snapshot(&self) -> SubchannelSnapshot {
        SubchannelSnapshot {
            id: self.id,
            target: self.target.clone(),
            state: state_of(self.state.load(Ordering::Relaxed)),
            calls: self.calls.snapshot(),
            trace: self.trace_snapshot(),
            sockets: self.children(),
        }
    }
}

/// Owns a channel's registration: dropped with the last [`ChannelEntry`], it unregisters.
struct ChannelOwner {
    registry: &'static Registry,
    state: Arc<ChannelState>,
}

impl Drop for ChannelOwner {
    fn drop(&mut self) {
        lock(&self.registry.maps).channels.remove(&self.state.id);
    }
}

/// A top channel in channelz (gRPC-Go's channelz `Channel`): held by the client channel
/// for its life; the channel leaves channelz when the last clone drops (and its
/// subchannels are gone).
///
/// Not an API for applications: the runtime registers its own channels.
#[derive(Clone)]
pub struct ChannelEntry(Arc<ChannelOwner>);

impl fmt::Debug for ChannelEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelEntry")
            .field("id", &self.0.state.id)
            .field("target", &self.0.state.target)
            .finish()
    }
}

impl ChannelEntry {
    /// The channel's channelz id.
    pub fn id(&self) -> i64 {
        self.0.state.id
    }

    /// Sets the channel's connectivity state (a change is traced).
    pub fn set_state(&self, state: ConnectivityState) {
        self.0.state.set_state("Channel", state);
    }

    /// A call started on the channel (once per call, not per attempt).
    pub fn call_started(&self) {
        self.0.state.calls.started();
    }

    /// A call ended: `ok` if its status was OK.
    pub fn call_ended(&self, ok: bool) {
        self.0.state.calls.ended(ok);
    }

    /// Adds an event to the channel's trace (the last [`MAX_TRACE_EVENTS`] are kept).
    pub fn add_trace(&self, severity: Severity, description: impl Into<String>) {
        self.0.state.trace(severity, description.into(), None);
    }

    /// Registers a subchannel of this channel for `address` (also its ref name); the
    /// channel's trace tells of it.
    pub fn register_subchannel(&self, address: &str) -> SubchannelEntry {
        let registry = self.0.registry;
        let state = Arc::new(ChannelState::new(registry.next_id(), address));
        let id = state.id;
        state.trace(Severity::Info, "Subchannel created".to_owned(), None);
        lock(&registry.maps)
            .subchannels
            .insert(id, Arc::clone(&state));
        lock(&self.0.state.children).insert(id, address.to_owned());
        self.0.state.trace(
            Severity::Info,
            format!("Subchannel(id:{id}) created"),
            Some(ChildRef::Subchannel(EntityRef::new(id, address))),
        );
        SubchannelEntry(Arc::new(SubchannelOwner {
            state,
            parent: self.clone(),
        }))
    }
}

/// Owns a subchannel's registration, and keeps its channel's.
struct SubchannelOwner {
    state: Arc<ChannelState>,
    parent: ChannelEntry,
}

impl Drop for SubchannelOwner {
    fn drop(&mut self) {
        let id = self.state.id;
        let parent = &self.parent.0;
        lock(&parent.state.children).remove(&id);
        parent.state.trace(
            Severity::Info,
            format!("Subchannel(id:{id}) deleted"),
            Some(ChildRef::Subchannel(EntityRef::new(id, &self.state.target))),
        );
        lock(&parent.registry.maps).subchannels.remove(&id);
    }
}

/// A subchannel in channelz: held by the subchannel for its life.
///
/// Not an API for applications: the runtime registers its own subchannels.
#[derive(Clone)]
pub struct SubchannelEntry(Arc<SubchannelOwner>);

impl fmt::Debug for SubchannelEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubchannelEntry")
            .field("id", &self.0.state.id)
            .field("address", &self.0.state.target)
            .field("channel", &self.0.parent.id())
            .finish()
    }
}

impl SubchannelEntry {
    /// The subchannel's channelz id.
    pub fn id(&self) -> i64 {
        self.0.state.id
    }

    /// Sets the subchannel's connectivity state (a change is traced).
    pub fn set_state(&self, state: ConnectivityState) {
        self.0.state.set_state("Subchannel", state);
    }

    /// A call (an attempt) was picked onto this subchannel and started.
    pub fn call_started(&self) {
        self.0.state.calls.started();
    }

    /// A call on this subchannel ended: `ok` if its status was OK.
    pub fn call_ended(&self, ok: bool) {
        self.0.state.calls.ended(ok);
    }

    /// Adds an event to the subchannel's trace.
    pub fn add_trace(&self, severity: Severity, description: impl Into<String>) {
        self.0.state.trace(severity, description.into(), None);
    }

    /// Registers a connection of this subchannel.
    pub fn register_socket(
        &self,
        local: Option<SocketAddress>,
        remote: Option<SocketAddress>,
    ) -> SocketEntry {
        let registry = self.0.parent.0.registry;
        let state = Arc::new(SocketState::new(registry.next_id(), local, remote));
        let id = state.id;
        lock(&registry.maps).sockets.insert(id, Arc::clone(&state));
        lock(&self.0.state.children).insert(id, state.name.clone());
        SocketEntry(Arc::new(SocketOwner {
            registry,
            state,
            parent: SocketParent::Subchannel(self.clone()),
        }))
    }

    /// Registers a connection of this subchannel from its [`Peer`]: its addresses, and its
    /// TLS if it has any.
    pub fn register_peer_socket(&self, peer: &Peer) -> SocketEntry {
        let socket = self.register_socket(
            peer.local_addr().map(SocketAddress::Tcp),
            peer.remote_addr().map(SocketAddress::Tcp),
        );
        if let Some(tls) = peer.tls() {
            socket.set_tls(tls);
        }
        socket
    }
}

/// A server's data.
struct ServerState {
    id: i64,
    name: String,
    calls: CallCounters,
    listen_sockets: Mutex<BTreeMap<i64, String>>,
    sockets: Mutex<BTreeMap<i64, String>>,
}

impl ServerState {
    fn snapshot(&self) -> ServerSnapshot {
        ServerSnapshot {
            id: self.id,
            name: self.name.clone(),
            calls: self.calls.snapshot(),
            listen_sockets: lock(&self.listen_sockets)
                .iter()
                .map(|(&id, name)| EntityRef::new(id, name))
                .collect(),
        }
    }
}

struct ServerOwner {
    registry: &'static Registry,
    state: Arc<ServerState>,
}

impl Drop for ServerOwner {
    fn drop(&mut self) {
        lock(&self.registry.maps).servers.remove(&self.state.id);
    }
}

/// A server in channelz: held by the server for its life.
///
/// Not an API for applications: the runtime registers its own servers.
#[derive(Clone)]
pub struct ServerEntry(Arc<ServerOwner>);

impl fmt::Debug for ServerEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerEntry")
            .field("id", &self.0.state.id)
            .finish()
    }
}

impl ServerEntry {
    /// The server's channelz id.
    pub fn id(&self) -> i64 {
        self.0.state.id
    }

    /// A call came in (its headers were accepted).
    pub fn call_started(&self) {
        self.0.state.calls.started();
    }

    /// A call ended: `ok` if its status was OK.
    pub fn call_ended(&self, ok: bool) {
        self.0.state.calls.ended(ok);
    }

    /// Registers a socket the server listens on; it is listed while the entry lives.
    pub fn register_listen_socket(&self, local: SocketAddress) -> SocketEntry {
        self.register(Some(local), None, true)
    }

    /// Registers a connection the server accepted.
    pub fn register_socket(
        &self,
        local: Option<SocketAddress>,
        remote: Option<SocketAddress>,
    ) -> SocketEntry {
        self.register(local, remote, false)
    }

    /// Registers a connection the server accepted from its [`Peer`]: its addresses, and its
    /// TLS if it has any.
    pub fn register_peer_socket(&self, peer: &Peer) -> SocketEntry {
        let socket = self.register_socket(
            peer.local_addr().map(SocketAddress::Tcp),
            peer.remote_addr().map(SocketAddress::Tcp),
        );
        if let Some(tls) = peer.tls() {
            socket.set_tls(tls);
        }
        socket
    }

    fn register(
        &self,
        local: Option<SocketAddress>,
        remote: Option<SocketAddress>,
        listen: bool,
    ) -> SocketEntry {
        let registry = self.0.registry;
        let state = Arc::new(SocketState::new(registry.next_id(), local, remote));
        let id = state.id;
        lock(&registry.maps).sockets.insert(id, Arc::clone(&state));
        let set = if listen {
            &self.0.state.listen_sockets
        } else {
            &self.0.state.sockets
        };
        lock(set).insert(id, state.name.clone());
        SocketEntry(Arc::new(SocketOwner {
            registry,
            state,
            parent: SocketParent::Server {
                server: self.clone(),
                listen,
            },
        }))
    }
}

/// A socket's data.
struct SocketState {
    id: i64,
    name: String,
    local: Option<SocketAddress>,
    remote: Option<SocketAddress>,
    security: OnceLock<Security>,
    streams_started: AtomicU64,
    streams_succeeded: AtomicU64,
    streams_failed: AtomicU64,
    messages_sent: AtomicU64,
    messages_received: AtomicU64,
    keepalives_sent: AtomicU64,
    last_local_stream: AtomicI64,
    last_remote_stream: AtomicI64,
    last_message_sent: AtomicI64,
    last_message_received: AtomicI64,
    /// `i64::MIN`: not known.
    local_window: AtomicI64,
    remote_window: AtomicI64,
}

impl SocketState {
    fn new(id: i64, local: Option<SocketAddress>, remote: Option<SocketAddress>) -> SocketState {
        let name = match (&local, &remote) {
            (Some(local), Some(remote)) => format!("{local} -> {remote}"),
            (Some(one), None) | (None, Some(one)) => one.to_string(),
            (None, None) => String::new(),
        };
        SocketState {
            id,
            name,
            local,
            remote,
            security: OnceLock::new(),
            streams_started: AtomicU64::new(0),
            streams_succeeded: AtomicU64::new(0),
            streams_failed: AtomicU64::new(0),
            messages_sent: AtomicU64::new(0),
            messages_received: AtomicU64::new(0),
            keepalives_sent: AtomicU64::new(0),
            last_local_stream: AtomicI64::new(0),
            last_remote_stream: AtomicI64::new(0),
            last_message_sent: AtomicI64::new(0),
            last_message_received: AtomicI64::new(0),
            local_window: AtomicI64::new(i64::MIN),
            remote_window: AtomicI64::new(i64::MIN),
        }
    }

    fn snapshot(&self) -> SocketSnapshot {
        let window = |w: &AtomicI64| Some(w.load(Ordering::Relaxed)).filter(|&w| w != i64::MIN);
        let at = |t: &AtomicI64| time_of(t.load(Ordering::Relaxed));
        SocketSnapshot {
            id: self.id,
            name: self.name.clone(),
            local: self.local.clone(),
            remote: self.remote.clone(),
            security: self.security.get().cloned(),
            streams_started: self.streams_started.load(Ordering::Relaxed),
            streams_succeeded: self.streams_succeeded.load(Ordering::Relaxed),
            streams_failed: self.streams_failed.load(Ordering::Relaxed),
            messages_sent: self.messages_sent.load(Ordering::Relaxed),
            messages_received: self.messages_received.load(Ordering::Relaxed),
            keepalives_sent: self.keepalives_sent.load(Ordering::Relaxed),
            last_local_stream_created: at(&self.last_local_stream),
            last_remote_stream_created: at(&self.last_remote_stream),
            last_message_sent: at(&self.last_message_sent),
            last_message_received: at(&self.last_message_received),
            local_flow_control_window: window(&self.local_window),
            remote_flow_control_window: window(&self.remote_window),
        }
    }
}

enum SocketParent {
    Subchannel(SubchannelEntry),
    Server { server: ServerEntry, listen: bool },
}

struct SocketOwner {
    registry: &'static Registry,
    state: Arc<SocketState>,
    parent: SocketParent,
}

impl Drop for SocketOwner {
    fn drop(&mut self) {
        let id = self.state.id;
        match &self.parent {
            SocketParent::Subchannel(subchannel) => {
                lock(&subchannel.0.state.children).remove(&id);
            }
            SocketParent::Server { server, listen } => {
                let set = if *listen {
                    &server.0.state.listen_sockets
                } else {
                    &server.0.state.sockets
                };
                lock(set).remove(&id);
            }
        }
        lock(&self.registry.maps).sockets.remove(&id);
    }
}

/// A socket in channelz: a connection of a subchannel or a server, or a server's listening
/// socket; held by the connection (or the listener) for its life.
///
/// Not an API for applications: the runtime registers its own sockets.
#[derive(Clone)]
pub struct SocketEntry(Arc<SocketOwner>);

impl fmt::Debug for SocketEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketEntry")
            .field("id", &self.0.state.id)
            .field("name", &self.0.state.name)
            .finish()
    }
}

impl SocketEntry {
    /// The socket's channelz id.
    pub fn id(&self) -> i64 {
        self.0.state.id
    }

    /// A stream opened: by this side (`local`: a client's call) or by the peer (a server's).
    pub fn stream_started(&self, local: bool) {
        let state = &self.0.state;
        state.streams_started.fetch_add(1, Ordering::Relaxed);
        let last = if local {
            &state.last_local_stream
        } else {
            &state.last_remote_stream
        };
        last.store(now_nanos(), Ordering::Relaxed);
    }

    /// A stream ended: `ok` if it ended well (a client received the end of the stream, a
    /// server sent it), else it failed (reset, or the connection went away).
    pub fn stream_ended(&self, ok: bool) {
        let state = &self.0.state;
        let counter = if ok {
            &state.streams_succeeded
        } else {
            &state.streams_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A message was handed to HTTP/2 to send.
    pub fn message_sent(&self) {
        self.messages_sent(1);
    }

    /// `n` messages were handed to HTTP/2 to send, together.
    pub fn messages_sent(&self, n: u32) {
        let state = &self.0.state;
        state
            .messages_sent
            .fetch_add(u64::from(n), Ordering::Relaxed);
        state
            .last_message_sent
            .store(now_nanos(), Ordering::Relaxed);
    }

    /// A message was received whole.
    pub fn message_received(&self) {
        self.messages_received(1);
    }

    /// `n` messages were received whole, together.
    pub fn messages_received(&self, n: u32) {
        let state = &self.0.state;
        state
            .messages_received
            .fetch_add(u64::from(n), Ordering::Relaxed);
        state
            .last_message_received
            .store(now_nanos(), Ordering::Relaxed);
    }

    /// A keepalive PING was sent.
    pub fn keepalive_sent(&self) {
        self.0.state.keepalives_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// The connection-level HTTP/2 windows now: granted to this side by the peer (`local`)
    /// and to the peer by this side (`remote`).
    pub fn set_flow_control_windows(&self, local: i64, remote: i64) {
        let state = &self.0.state;
        state.local_window.store(local, Ordering::Relaxed);
        state.remote_window.store(remote, Ordering::Relaxed);
    }

    /// What secures the connection (set once; later calls are ignored).
    pub fn set_security(&self, security: Security) {
        let _ = self.0.state.security.set(security);
    }

    /// The connection is TLS: its cipher suite and the peer's certificate.
    pub fn set_tls(&self, tls: &TlsInfo) {
        self.set_security(Security::Tls(TlsSecurity::from_info(tls)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> &'static Registry {
        Box::leak(Box::new(Registry::new()))
    }

    fn tcp(addr: &str) -> Option<SocketAddress> {
        Some(SocketAddress::Tcp(addr.parse().unwrap()))
    }

    #[test]
    fn ids_are_one_counter_from_1_for_every_kind() {
        let r = registry();
        let channel = r.register_channel("dns:///a:1");
        let server = r.register_server("");
        let subchannel = channel.register_subchannel("10.0.0.1:443");
        let socket = subchannel.register_socket(tcp("10.0.0.2:5000"), tcp("10.0.0.1:443"));
        let listen = server
            .register_listen_socket("0.0.0.0:80".parse::<std::net::SocketAddr>().unwrap().into());
        assert_eq!(
            [
                channel.id(),
                server.id(),
                subchannel.id(),
                socket.id(),
                listen.id()
            ],
            [1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn counters_and_state_reach_the_snapshot() {
        let r = registry();
        let channel = r.register_channel("dns:///a:1");
        assert_eq!(r.channel(1).unwrap().state, ConnectivityState::Idle);
        assert_eq!(r.channel(1).unwrap().calls.last_call_started, None);
        channel.set_state(ConnectivityState::Connecting);
        channel.set_state(ConnectivityState::Ready);
        channel.set_state(ConnectivityState::Ready);
        let before = SystemTime::now();
        for ok in [true, true, false] {
            channel.call_started();
            channel.call_ended(ok);
        }
        channel.call_started();
        let snap = r.channel(channel.id()).unwrap();
        assert_eq!(snap.target, "dns:///a:1");
        assert_eq!(snap.state, ConnectivityState::Ready);
        assert_eq!(
            (snap.calls.started, snap.calls.succeeded, snap.calls.failed),
            (4, 2, 1)
        );
        let last = snap.calls.last_call_started.unwrap();
        // The coarse clock lags by up to a kernel tick (10 ms at HZ=100).
        assert!(
            last >= before - Duration::from_millis(20),
            "{last:?} {before:?}"
        );
        let descriptions: Vec<&str> = snap
            .trace
            .events
            .iter()
            .map(|e| e.description.as_str())
            .collect();
        assert_eq!(
            descriptions,
            [
                "Channel created",
                "Channel Connectivity change to CONNECTING",
                "Channel Connectivity change to READY"
            ]
        );
        assert_eq!(snap.trace.events_logged, 3);
    }

    #[test]
    fn the_trace_keeps_the_last_events() {
        let r = registry();
        let channel = r.register_channel("t");
        for i in 0..40 {
            channel.add_trace(Severity::Warning, format!("event {i}"));
        }
        let trace = r.channel(channel.id()).unwrap().trace;
        assert_eq!(trace.events_logged, 41);
        assert_eq!(trace.events.len(), MAX_TRACE_EVENTS);
        assert_eq!(trace.events[0].description, "event 10");
        assert_eq!(trace.events[MAX_TRACE_EVENTS - 1].description, "event 39");
        assert_eq!(trace.events[0].severity, Severity::Warning);
    }

    #[test]
    fn children_are_listed_and_leave_with_their_handles() {
        let r = registry();
        let channel = r.register_channel("t");
        let a = channel.register_subchannel("10.0.0.1:1");
        let b = channel.register_subchannel("10.0.0.2:1");
        let socket = a.register_socket(tcp("127.0.0.1:9"), tcp("10.0.0.1:1"));
        let snap = r.channel(channel.id()).unwrap();
        assert_eq!(
            snap.subchannels,
            [
                EntityRef::new(a.id(), "10.0.0.1:1"),
                EntityRef::new(b.id(), "10.0.0.2:1")
            ]
        );
        let last = snap.trace.events.last().unwrap();
        assert_eq!(
            last.description,
            format!("Subchannel(id:{}) created", b.id())
        );
        assert_eq!(
            last.child,
            Some(ChildRef::Subchannel(EntityRef::new(b.id(), "10.0.0.2:1")))
        );
        let sub = r.subchannel(a.id()).unwrap();
        assert_eq!(sub.target, "10.0.0.1:1");
        assert_eq!(
            sub.sockets,
            [EntityRef::new(socket.id(), "127.0.0.1:9 -> 10.0.0.1:1")]
        );

        // The channel's handle goes first: its subchannels keep it listed.
        let channel_id = channel.id();
        drop(channel);
        assert!(r.channel(channel_id).is_some());
        let (a_id, socket_id) = (a.id(), socket.id());
        drop(a);
        assert!(r.subchannel(a_id).is_some(), "its socket keeps it");
        drop(socket);
        assert!(r.socket(socket_id).is_none());
        assert!(r.subchannel(a_id).is_none());
        let snap = r.channel(channel_id).unwrap();
        assert_eq!(snap.subchannels, [EntityRef::new(b.id(), "10.0.0.2:1")]);
        assert_eq!(
            snap.trace.events.last().unwrap().description,
            format!("Subchannel(id:{a_id}) deleted")
        );
        drop(b);
        assert!(r.channel(channel_id).is_none());
        assert_eq!(r.top_channels(0, 0).items, []);
    }

    #[test]
    fn pages_go_by_ascending_id() {
        let r = registry();
        let channels: Vec<ChannelEntry> = (0..5)
            .map(|i| r.register_channel(&format!("c{i}")))
            .collect();
        let ids =
            |page: &Page<ChannelSnapshot>| page.items.iter().map(|c| c.id).collect::<Vec<_>>();
        let first = r.top_channels(0, 2);
        assert_eq!((ids(&first), first.end), (vec![1, 2], false));
        let second = r.top_channels(3, 2);
        assert_eq!((ids(&second), second.end), (vec![3, 4], false));
        let last = r.top_channels(5, 2);
        assert_eq!((ids(&last), last.end), (vec![5], true));
        let exact = r.top_channels(4, 2);
        assert_eq!((ids(&exact), exact.end), (vec![4, 5], true));
        let past = r.top_channels(6, 2);
        assert_eq!((ids(&past), past.end), (vec![], true));
        let all = r.top_channels(0, 0);
        assert_eq!((ids(&all), all.end), (vec![1, 2, 3, 4, 5], true));
        drop(channels);
    }

    #[test]
    fn servers_and_their_sockets() {
        let r = registry();
        let server = r.register_server("");
        let listen = server.register_listen_socket(SocketAddress::Unix("/tmp/s.sock".into()));
        let conns: Vec<SocketEntry> = (0..3)
            .map(|i| {
                server.register_socket(tcp("127.0.0.1:80"), tcp(&format!("127.0.0.1:{}", 1000 + i)))
            })
            .collect();
        server.call_started();
        server.call_ended(false);
        let snap = r.server(server.id()).unwrap();
        assert_eq!(
            snap.listen_sockets,
            [EntityRef::new(listen.id(), "unix:/tmp/s.sock")]
        );
        assert_eq!((snap.calls.started, snap.calls.failed), (1, 1));
        // Connections only, not the listening socket.
        let page = r.server_sockets(server.id(), 0, 2).unwrap();
        assert_eq!(
            page.items.iter().map(|s| s.id).collect::<Vec<_>>(),
            [conns[0].id(), conns[1].id()]
        );
        assert!(!page.end);
        let page = r.server_sockets(server.id(), conns[2].id(), 2).unwrap();
        assert_eq!(
            page.items,
            [EntityRef::new(
                conns[2].id(),
                "127.0.0.1:80 -> 127.0.0.1:1002"
            )]
        );
        assert!(page.end);
        assert!(r.server_sockets(999, 0, 0).is_none());
        assert_eq!(r.servers(0, 0).items.len(), 1);
        drop(conns);
        assert_eq!(r.server_sockets(server.id(), 0, 0).unwrap().items, []);
    }

    #[test]
    fn socket_counters() {
        let r = registry();
        let server = r.register_server("");
        let socket = server.register_socket(tcp("[::1]:80"), tcp("[::1]:1234"));
        let snap = r.socket(socket.id()).unwrap();
        assert_eq!(snap.last_remote_stream_created, None);
        assert_eq!(snap.local_flow_control_window, None);
        socket.stream_started(false);
        socket.stream_started(false);
        socket.stream_ended(true);
        socket.stream_ended(false);
        socket.message_received();
        socket.message_sent();
        socket.message_sent();
        socket.keepalive_sent();
        socket.set_flow_control_windows(65_535, 1 << 20);
        socket.set_security(Security::Tls(TlsSecurity {
            standard_name: Some("TLS_AES_128_GCM_SHA256".into()),
            other_name: None,
            local_certificate: None,
            remote_certificate: Some(vec![1, 2, 3]),
        }));
        let snap = r.socket(socket.id()).unwrap();
        assert_eq!(
            (
                snap.streams_started,
                snap.streams_succeeded,
                snap.streams_failed,
                snap.messages_sent,
                snap.messages_received,
                snap.keepalives_sent
            ),
            (2, 1, 1, 2, 1, 1)
        );
        assert!(snap.last_remote_stream_created.is_some());
        assert!(snap.last_local_stream_created.is_none());
        assert!(snap.last_message_sent.is_some() && snap.last_message_received.is_some());
        assert_eq!(snap.local_flow_control_window, Some(65_535));
        assert_eq!(snap.remote_flow_control_window, Some(1 << 20));
        assert_eq!(snap.remote, tcp("[::1]:1234"));
        let Some(Security::Tls(tls)) = snap.security else {
            panic!("no TLS: {:?}", snap.security)
        };
        assert_eq!(tls.standard_name.as_deref(), Some("TLS_AES_128_GCM_SHA256"));
    }
}
