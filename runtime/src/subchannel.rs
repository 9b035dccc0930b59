//! [`Subchannel`]: one HTTP/2 connection to one address, with its own connectivity state and
//! reconnect backoff (gRPC-Go's `addrConn`), and the [`Connector`] that makes its
//! connections (dial, proxy, security, HTTP/2 handshake, keepalive).

use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::backoff::{self, BackoffConfig};
use crate::channelz::SocketAddress;
use crate::channelz::internal::{SocketEntry, SubchannelEntry};
use crate::connectivity::ConnectivityState;
use crate::credentials::ChannelCredentials;
use crate::keepalive::ClientParameters;
use crate::proxy::HttpProxy;
use crate::resolver::Address;
use crate::status::Status;
use crate::transport::{self, BoxedIo, Http2Settings};

/// Makes a channel's connections instead of TCP or a Unix socket.
pub(crate) type DialFn =
    dyn Fn() -> Pin<Box<dyn Future<Output = std::io::Result<BoxedIo>> + Send>> + Send + Sync;

/// How a channel makes connections: shared by its subchannels.
pub(crate) struct Connector {
    pub(crate) target: String,
    pub(crate) dialer: Option<Arc<DialFn>>,
    pub(crate) credentials: ChannelCredentials,
    /// The host a TLS handshake checks the certificate against, unless overridden.
    pub(crate) tls_host: String,
    pub(crate) http2: Http2Settings,
    /// gRPC's MIN_CONNECT_TIMEOUT: an attempt may take this long, or the current backoff if
    /// longer.
    pub(crate) min_connect_timeout: Duration,
    pub(crate) backoff: BackoffConfig,
    pub(crate) keepalive: Option<ClientParameters>,
    /// Raised when a server says GOAWAY `too_many_pings` (doubled each time).
    pub(crate) keepalive_time: AtomicU64,
    pub(crate) proxy: Option<HttpProxy>,
    /// Client-side health checking (gRFC A17), for subchannels whose balancer asks for it.
    pub(crate) health: Option<HealthCheck>,
    /// The channel's stats handlers, told of each connection.
    pub(crate) stats: crate::stats::Handlers,
    /// The channel in channelz: its subchannels register under it.
    pub(crate) channelz: crate::channelz::internal::ChannelEntry,
}

/// A subchannel's view of its server's health, from a `grpc.health.v1.Health/Watch`
/// stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Health {
    Serving,
    /// Any other status, by its name.
    NotServing(String),
}

/// The health messages of one `Watch` stream; ends (or yields an error) when it does.
pub(crate) type HealthStream =
    Pin<Box<dyn futures_core::Stream<Item = Result<Health, Status>> + Send>>;

/// How subchannels watch their server's health: the client module opens the stream (the
/// subchannel knows nothing of calls), the service config names the service.
pub(crate) struct HealthCheck {
    /// Opens a `Watch` stream for a service on a connection, with the channel's authority.
    pub(crate) open: fn(Connection, http::uri::Authority, String) -> HealthStream,
    pub(crate) authority: http::uri::Authority,
    pub(crate) config: Arc<crate::service_config::ConfigCell>,
}

impl HealthCheck {
    /// The service to watch, if the service config names one.
    fn service(&self) -> Option<String> {
        self.config.load()?.config.health_check_service.clone()
    }
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("target", &self.target)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// A live HTTP/2 connection: where calls go.
#[derive(Clone)]
pub(crate) struct Connection {
    pub(crate) sender: SendRequest<Bytes>,
    /// The connection in channelz (set once the subchannel has it): its streams and
    /// messages count there.
    pub(crate) socket: Option<SocketEntry>,
    /// Its subchannel in channelz: the attempts on it count there.
    pub(crate) subchannel: Option<SubchannelEntry>,
    /// The server's end, for stats handlers (set once connected).
    pub(crate) peer: Option<Arc<crate::peer::Peer>>,
    /// Calls in flight on it (for keepalive without streams, and idleness).
    pub(crate) active: Arc<AtomicUsize>,
    id: u64,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection").field("id", &self.id).finish()
    }
}

/// Counts a call on a connection while it lives.
#[derive(Debug)]
pub(crate) struct ActiveCall(Arc<AtomicUsize>);

impl ActiveCall {
    pub(crate) fn new(connection: &Connection) -> ActiveCall {
        connection.active.fetch_add(1, Ordering::Relaxed);
        ActiveCall(Arc::clone(&connection.active))
    }
}

impl Drop for ActiveCall {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The connection's driver: runs until the connection ends, with its error if it failed.
type Driver = Pin<Box<dyn Future<Output = Result<(), h2::Error>> + Send>>;

/// A connection's PING handle and, when its windows grow to the link, its BDP estimator and
/// the handoff of the windows it grows to the connection's driver.
pub(crate) struct Pings {
    ping: Option<h2::PingPong>,
    bdp: Option<(transport::bdp::Estimator, Arc<transport::bdp::Handoff>)>,
}

/// The h2 connection as its driver polls it: first applying windows BDP estimation grew
/// (`set_initial_window_size` and `set_target_window_size` need the connection itself,
/// which the driver owns).
struct Driven<T: AsyncRead + AsyncWrite> {
    connection: h2::client::Connection<T, Bytes>,
    windows: Option<Arc<transport::bdp::Handoff>>,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Future for Driven<T> {
    type Output = Result<(), h2::Error>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = &mut *self;
        if let Some(windows) = this.windows.as_ref().and_then(|w| w.take()) {
            this.connection.set_target_window_size(windows.connection);
            // Refused while our last SETTINGS is unacknowledged: the next sample retries.
            if let Err(e) = this.connection.set_initial_window_size(windows.stream) {
                tracing::debug!("stream window not raised to {}: {e}", windows.stream);
            } else {
                tracing::debug!(
                    "windows raised to the link's BDP: {} a stream, {} the connection",
                    windows.stream,
                    windows.connection
                );
            }
        }
        Pin::new(&mut this.connection).poll(cx)
    }
}

impl Connector {
    /// Dials `address`, secures the stream, and completes the HTTP/2 handshake; the driver
    /// must be polled for the connection to work.
    async fn connect(&self, address: &Address) -> std::io::Result<(Connection, Driver, Pings)> {
        if let Some(dialer) = &self.dialer {
            let io = dialer().await?;
            return self.secure(io).await;
        }
        match address {
            Address::Tcp(addr) => {
                let io = match &self.proxy {
                    Some(proxy) => proxy.connect(&addr.to_string()).await?,
                    None => tcp(tokio::net::TcpStream::connect(addr).await?),
                };
                self.secure(io).await
            }
            Address::HostPort(host, port) => {
                let io = match &self.proxy {
                    Some(proxy) => proxy.connect(&address.to_string()).await?,
                    None => tcp(tokio::net::TcpStream::connect((host.as_str(), *port)).await?),
                };
                self.secure(io).await
            }
            #[cfg(unix)]
            Address::Unix(path) => {
                self.secure(tokio::net::UnixStream::connect(path).await?)
                    .await
            }
            #[cfg(target_os = "linux")]
            Address::UnixAbstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                let stream = std::os::unix::net::UnixStream::connect_addr(&addr)?;
                stream.set_nonblocking(true)?;
                self.secure(tokio::net::UnixStream::from_std(stream)?).await
            }
            #[allow(unreachable_patterns)]
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!("{address} is not supported on this platform"),
            )),
        }
    }

    /// The TLS handshake if the credentials call for one, then HTTP/2's.
    async fn secure<IO>(&self, io: IO) -> std::io::Result<(Connection, Driver, Pings)>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        match self.credentials.tls_state() {
            None => self.handshake(io).await,
            Some(tls) => self.handshake(tls.connect(&self.tls_host, io).await?).await,
        }
    }

    /// HTTP/2 handshake, then a PING round trip: a peer that accepts TCP but does not speak
    /// HTTP/2 fails here, within the connect timeout, instead of hanging the first call
    /// (gRPC-Go likewise waits for the server's preface).
    async fn handshake<IO>(&self, io: IO) -> std::io::Result<(Connection, Driver, Pings)>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (estimator, received) = self.http2.estimator().unzip();
        let io = match received {
            Some(received) => transport::Paced::client(io).count_data(received),
            None => transport::Paced::client(io),
        };
        let (sender, mut connection) = self
            .http2
            .client_builder()
            .handshake::<_, Bytes>(io)
            .await
            .map_err(|e| std::io::Error::other(format!("HTTP/2 handshake failed: {e}")))?;
        let mut ping = connection.ping_pong();
        let bdp = estimator.map(|e| (e, Arc::new(transport::bdp::Handoff::default())));
        let mut driver: Driver = Box::pin(Driven {
            connection,
            windows: bdp.as_ref().map(|(_, handoff)| Arc::clone(handoff)),
        });
        if let Some(ping) = &mut ping {
            // Drive the connection while the PING goes out and its answer comes back.
            let mut closed = false;
            let failure = tokio::select! {
                answered = ping.ping(h2::Ping::opaque()) => match answered {
                    Ok(_) => None,
                    // The ping only learns that the connection is gone; the connection's own
                    // error says why (a TLS alert: the server wanted a client certificate).
                    Err(e) => Some(match tokio::time::timeout(Duration::from_secs(1), &mut driver).await {
                        Ok(Err(cause)) => cause.to_string(),
                        _ => e.to_string(),
                    }),
                },
                ended = &mut driver => match ended {
                    // The server's GOAWAY (any code) after its SETTINGS (h2 insists on them
                    // first): the connection was made and is already draining, as gRPC-Go
                    // sees it: READY, then at once IDLE, with no backoff.
                    Ok(()) => {
                        closed = true;
                        None
                    }
                    Err(e) if e.is_go_away() && e.is_remote() => {
                        closed = true;
                        None
                    }
                    Err(cause) => Some(cause.to_string()),
                },
            };
            if let Some(why) = failure {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    format!("HTTP/2 handshake failed: {why}"),
                ));
            }
            if closed {
                // The finished driver must not be polled again: a ready one stands in.
                driver = Box::pin(std::future::ready(Ok(())));
            }
        }
        let connection = Connection {
            sender,
            socket: None,
            subchannel: None,
            peer: None,
            active: Arc::default(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        };
        Ok((connection, driver, Pings { ping, bdp }))
    }
}

fn tcp(stream: tokio::net::TcpStream) -> BoxedIo {
    transport::set_nodelay(&stream);
    Box::new(stream)
}

/// Reports a subchannel's state changes to its channel.
pub(crate) type StateListener = Arc<dyn Fn(&Subchannel, ConnectivityState) + Send + Sync>;

/// One connection to one address, for a balancer to pick (gRPC-Go's `balancer.SubConn`).
///
/// Made by a balancer through its
/// [`ChannelController`](crate::balancer::ChannelController); cheap to clone (clones are the
/// same subchannel). It connects when asked ([`connect`](Subchannel::connect)), reports each
/// state change to its balancer, backs off after failures per gRPC's connection-backoff spec
/// (TRANSIENT_FAILURE for the backoff, then IDLE), and goes IDLE when its connection closes.
#[derive(Clone)]
pub struct Subchannel {
    inner: Arc<Inner>,
}

struct Inner {
    id: u64,
    address: Address,
    connector: Arc<Connector>,
    listener: StateListener,
    state: Mutex<State>,
    /// Whether its balancer asked for client-side health checking.
    health_checked: bool,
    /// The subchannel in channelz: its connections register under it.
    channelz: SubchannelEntry,
}

struct State {
    connectivity: ConnectivityState,
    /// The connection calls use: set while READY only.
    connection: Option<Connection>,
    /// The id of the connection the subchannel owns, READY or not (health checking keeps a
    /// connection whose server is not SERVING).
    live: Option<u64>,
    last_error: Option<Status>,
    /// Failed attempts since the last success.
    retries: u32,
    /// The attempt in progress (aborted on shutdown while connecting).
    attempt: Option<tokio::task::JoinHandle<()>>,
}

impl fmt::Debug for Subchannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subchannel")
            .field("id", &self.inner.id)
            .field("address", &self.inner.address)
            .field("state", &self.state())
            .finish()
    }
}

impl PartialEq for Subchannel {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Subchannel {}

impl Hash for Subchannel {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.id.hash(state);
    }
}

impl Subchannel {
    pub(crate) fn new(
        address: Address,
        connector: Arc<Connector>,
        listener: StateListener,
        health_checked: bool,
        channelz: SubchannelEntry,
    ) -> Subchannel {
        Subchannel {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                address,
                connector,
                listener,
                health_checked,
                channelz,
                state: Mutex::new(State {
                    connectivity: ConnectivityState::Idle,
                    connection: None,
                    live: None,
                    last_error: None,
                    retries: 0,
                    attempt: None,
                }),
            }),
        }
    }

    /// The address it connects to.
    pub fn address(&self) -> &Address {
        &self.inner.address
    }

    /// Its state now.
    pub fn state(&self) -> ConnectivityState {
        self.lock().connectivity
    }

    /// Why the last attempt failed, if one did.
    pub fn last_error(&self) -> Option<Status> {
        self.lock().last_error.clone()
    }

    /// Starts connecting if IDLE; otherwise does nothing.
    pub fn connect(&self) {
        let mut state = self.lock();
        if state.connectivity != ConnectivityState::Idle {
            return;
        }
        state.connectivity = ConnectivityState::Connecting;
        let weak = Arc::downgrade(&self.inner);
        state.attempt = Some(tokio::spawn(attempt(weak)));
        drop(state);
        (self.inner.listener)(self, ConnectivityState::Connecting);
    }

    /// Closes it for good. A live connection drains: calls in flight finish, new ones go
    /// elsewhere.
    pub fn shutdown(&self) {
        let mut state = self.lock();
        if state.connectivity == ConnectivityState::Shutdown {
            return;
        }
        state.connectivity = ConnectivityState::Shutdown;
        state.connection = None;
        state.live = None;
        if let Some(attempt) = state.attempt.take() {
            // Only an attempt still connecting or backing off is stopped here; once READY
            // the task just drives the connection until it drains.
            if !attempt.is_finished() {
                attempt.abort();
            }
        }
    }

    /// Its connection, if READY.
    pub(crate) fn connection(&self) -> Option<Connection> {
        self.lock().connection.clone()
    }

    /// A call found `connection` unusable (GOAWAY received, closed): new calls must not use
    /// it. Goes IDLE if it is still the current one.
    pub(crate) fn connection_failed(&self, connection: &Connection) {
        let mut state = self.lock();
        let current = state
            .connection
            .as_ref()
            .is_some_and(|c| c.id == connection.id);
        if !current || state.connectivity != ConnectivityState::Ready {
            return;
        }
        state.connection = None;
        state.live = None;
        state.connectivity = ConnectivityState::Idle;
        drop(state);
        (self.inner.listener)(self, ConnectivityState::Idle);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn from_inner(inner: Arc<Inner>) -> Subchannel {
        Subchannel { inner }
    }

    /// Moves to `to` unless shut down (or already moved on by a call); tells the balancer.
    fn transition(&self, to: ConnectivityState, update: impl FnOnce(&mut State)) -> bool {
        let mut state = self.lock();
        if state.connectivity == ConnectivityState::Shutdown {
            return false;
        }
        update(&mut state);
        state.connectivity = to;
        drop(state);
        (self.inner.listener)(self, to);
        true
    }
}

/// One connection attempt and, if it succeeds, the connection's life.
async fn attempt(weak: Weak<Inner>) {
    let Some(inner) = weak.upgrade() else { return };
    let subchannel = Subchannel::from_inner(inner);
    let connector = Arc::clone(&subchannel.inner.connector);
    let retries = subchannel.lock().retries;
    let backoff = connector.backoff.delay(retries, backoff::random());
    // gRPC's connection-backoff spec: an attempt may last MIN_CONNECT_TIMEOUT or the
    // current backoff, whichever is longer.
    let limit = connector.min_connect_timeout.max(backoff);
    let address = subchannel.address().clone();
    let connected = tokio::time::timeout(limit, connector.connect(&address)).await;
    let connected = match connected {
        Ok(Ok(connected)) => Ok(connected),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("timed out after {limit:?}")),
    };
    match connected {
        Ok((mut connection, driver, pings)) => {
            let remote = match &address {
                Address::Tcp(addr) => Some(SocketAddress::Tcp(*addr)),
                Address::Unix(path) => Some(SocketAddress::Unix(path.display().to_string())),
                other => Some(SocketAddress::Other(other.to_string())),
            };
            let socket = subchannel.inner.channelz.register_socket(None, remote);
            connection.socket = Some(socket.clone());
            let remote = match &address {
                Address::Tcp(addr) => Some(*addr),
                _ => None,
            };
            let peer = Arc::new(crate::peer::Peer::new(remote, None));
            connection.peer = Some(Arc::clone(&peer));
            connection.subchannel = Some(subchannel.inner.channelz.clone());
            // Ends (`ConnEvent::End`) when the connection does, however this task ends.
            let _conn_stats = connector.stats.conn_begin(true, &peer);
            let active = Arc::clone(&connection.active);
            let id = connection.id;
            // gRFC A17: with a service to watch, the subchannel stays CONNECTING until its
            // server says SERVING.
            let health = match &connector.health {
                Some(health) if subchannel.inner.health_checked => {
                    health.service().map(|service| (health, service))
                }
                _ => None,
            };
            let to = match health {
                Some(_) => ConnectivityState::Connecting,
                None => ConnectivityState::Ready,
            };
            let watched = health.is_some().then(|| connection.clone());
            let ready = subchannel.transition(to, |state| {
                // From here the task only drives the connection: a shutdown lets it drain.
                state.attempt = None;
                state.retries = 0;
                state.last_error = None;
                state.live = Some(id);
                if to == ConnectivityState::Ready {
                    state.connection = Some(connection);
                }
            });
            if !ready {
                // Shut down while connecting: the connection drains and closes.
                let _ = driver.await;
                return;
            }
            // The task now only needs a weak handle: the subchannel may be dropped or shut
            // down while its connection drains.
            let weak = Arc::downgrade(&subchannel.inner);
            drop(subchannel);
            let run = run_connection(driver, pings, active, &connector, &socket);
            let ended = match (health, watched) {
                (Some((health, service)), Some(connection)) => {
                    let watch = watch_health(&weak, connection, health, service, &connector);
                    let (mut run, mut watch) = (std::pin::pin!(run), std::pin::pin!(watch));
                    let mut watching = true;
                    loop {
                        tokio::select! {
                            ended = &mut run => break ended,
                            () = &mut watch, if watching => watching = false,
                        }
                    }
                }
                _ => run.await,
            };
            if let Err(e) = &ended {
                tracing::debug!(target = %connector.target, %address, "connection ended: {e}");
                if e.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM) && e.is_go_away() {
                    raise_keepalive_time(&connector);
                }
            }
            if let Some(inner) = weak.upgrade() {
                let subchannel = Subchannel::from_inner(inner);
                let mut state = subchannel.lock();
                if state.live == Some(id) && state.connectivity != ConnectivityState::Shutdown {
                    state.connection = None;
                    state.live = None;
                    state.connectivity = ConnectivityState::Idle;
                    drop(state);
                    (subchannel.inner.listener)(&subchannel, ConnectivityState::Idle);
                }
            }
        }
        Err(why) => {
            let status = Status::unavailable(format!(
                "failed to connect to {address} (target {}): {why}",
                connector.target
            ));
            tracing::debug!("{}", status.message());
            let failed = subchannel.transition(ConnectivityState::TransientFailure, |state| {
                state.last_error = Some(status);
                state.retries = state.retries.saturating_add(1);
            });
            if !failed {
                return;
            }
            drop(subchannel);
            tokio::time::sleep(backoff).await;
            if let Some(inner) = weak.upgrade() {
                let subchannel = Subchannel::from_inner(inner);
                subchannel.transition(ConnectivityState::Idle, |_| {});
            }
        }
    }
}

/// Watches the server's health for `service` on `connection` (gRFC A17, as gRPC-Go's health
/// client): SERVING makes the subchannel READY, any other status TRANSIENT_FAILURE (the
/// connection stays up); a failed stream is opened again after a backoff (reset by each
/// message); a server without the health service (UNIMPLEMENTED) counts as healthy. Ends
/// when the connection is no longer the subchannel's.
async fn watch_health(
    weak: &Weak<Inner>,
    connection: Connection,
    health: &HealthCheck,
    service: String,
    connector: &Connector,
) {
    use futures_util::StreamExt;

    let mut tries = 0u32;
    loop {
        if tries > 0 {
            tokio::time::sleep(connector.backoff.delay(tries - 1, backoff::random())).await;
        }
        tries += 1;
        if !report_health(weak, &connection, ConnectivityState::Connecting, None) {
            return;
        }
        let mut stream = (health.open)(
            connection.clone(),
            health.authority.clone(),
            service.clone(),
        );
        loop {
            let (to, error) = match stream.next().await {
                Some(Ok(Health::Serving)) => (ConnectivityState::Ready, None),
                Some(Ok(Health::NotServing(status))) => (
                    ConnectivityState::TransientFailure,
                    Some(format!(
                        "connection active but health check failed: status {status}"
                    )),
                ),
                Some(Err(status)) if status.code() == crate::status::Code::Unimplemented => {
                    tracing::error!(
                        target = %connector.target,
                        "health checking of {service:?} asked for, but the server does not \
                         implement grpc.health.v1.Health; treating it as healthy"
                    );
                    report_health(weak, &connection, ConnectivityState::Ready, None);
                    return;
                }
                Some(Err(status)) => {
                    let error = format!("connection active but health check RPC failed: {status}");
                    if !report_health(
                        weak,
                        &connection,
                        ConnectivityState::TransientFailure,
                        Some(error),
                    ) {
                        return;
                    }
                    break;
                }
                None => {
                    let error = "connection active but the health check stream ended".to_owned();
                    if !report_health(
                        weak,
                        &connection,
                        ConnectivityState::TransientFailure,
                        Some(error),
                    ) {
                        return;
                    }
                    break;
                }
            };
            // A message came: the next stream needs no backoff.
            tries = 0;
            if !report_health(weak, &connection, to, error) {
                return;
            }
        }
    }
}

/// Moves the subchannel to `to` as health checking says, if `connection` is still its
/// own; `false` once it is not (the watch ends).
fn report_health(
    weak: &Weak<Inner>,
    connection: &Connection,
    to: ConnectivityState,
    error: Option<String>,
) -> bool {
    let Some(inner) = weak.upgrade() else {
        return false;
    };
    let subchannel = Subchannel::from_inner(inner);
    let mut state = subchannel.lock();
    if state.live != Some(connection.id) || state.connectivity == ConnectivityState::Shutdown {
        return false;
    }
    if let Some(error) = error {
        state.last_error = Some(Status::unavailable(error));
    }
    if state.connectivity == to {
        return true;
    }
    state.connectivity = to;
    state.connection = (to == ConnectivityState::Ready).then(|| connection.clone());
    drop(state);
    (subchannel.inner.listener)(&subchannel, to);
    true
}

/// Drives a connection to its end, pinging it per the channel's keepalive and, when its
/// windows grow to the link, for BDP samples. One PING is out at a time (h2 allows no
/// more): a keepalive due while a sample's PING is out takes that PING's answer as its own.
async fn run_connection(
    mut driver: Driver,
    pings: Pings,
    active: Arc<AtomicUsize>,
    connector: &Connector,
    socket: &SocketEntry,
) -> Result<(), h2::Error> {
    let Pings { ping, mut bdp } = pings;
    let keepalive = connector.keepalive;
    let Some(mut ping) = ping else {
        return driver.await;
    };
    if keepalive.is_none() && bdp.is_none() {
        return driver.await;
    }
    let keepalive_time = || Duration::from_millis(connector.keepalive_time.load(Ordering::Relaxed));
    let now = tokio::time::Instant::now();
    // When the next keepalive PING goes, and (one out) when its answer is due.
    let mut next_keepalive = keepalive.map(|_| now + keepalive_time());
    let mut answer_due: Option<tokio::time::Instant> = None;
    // A PING is out, keepalive's or a sample's.
    let mut pinging = false;
    let timer = tokio::time::sleep_until(now);
    tokio::pin!(timer);
    let mut side = transport::SideWaker::new();
    loop {
        let deadline = answer_due.or(next_keepalive);
        if let Some(at) = deadline
            && at != timer.deadline()
        {
            timer.as_mut().reset(at);
        }
        // A new turn: its conditions changed. The rare branches are polled only on a turn's
        // first poll and after they woke the task (see `SideWaker`), not for every frame.
        side.open();
        let turn = std::future::poll_fn(|cx| {
            if let Poll::Ready(ended) = driver.as_mut().poll(cx) {
                return Poll::Ready(Turn::Ended(ended));
            }
            let Some(mut side_cx) = side.context(cx) else {
                return Poll::Pending;
            };
            let cx = &mut side_cx;
            if pinging {
                if let Poll::Ready(answered) = ping.poll_pong(cx) {
                    return Poll::Ready(Turn::Answered(answered.map(drop)));
                }
            } else if let Some((estimator, _)) = &mut bdp
                && estimator.poll_start(cx).is_ready()
            {
                return Poll::Ready(Turn::Sample);
            }
            if deadline.is_some() && timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Turn::Timer);
            }
            Poll::Pending
        })
        .await;
        match turn {
            Turn::Ended(ended) => return ended,
            Turn::Answered(answered) => {
                pinging = false;
                if let Err(e) = answered {
                    tracing::debug!(target = %connector.target, "ping failed: {e}");
                    return driver.await;
                }
                let now = tokio::time::Instant::now();
                if answer_due.take().is_some() {
                    next_keepalive = Some(now + keepalive_time());
                }
                if let Some((estimator, handoff)) = &mut bdp
                    && estimator.pinging()
                    && let Some(windows) = estimator.answered(now)
                {
                    // Applied by the driver, polled first on the next turn.
                    handoff.put(windows);
                }
            }
            Turn::Sample => {
                if let Some((estimator, _)) = &mut bdp {
                    match ping.send_ping(h2::Ping::opaque()) {
                        Ok(()) => {
                            estimator.started(tokio::time::Instant::now());
                            pinging = true;
                        }
                        Err(_) => estimator.abandoned(tokio::time::Instant::now()),
                    }
                }
            }
            Turn::Timer => {
                let now = tokio::time::Instant::now();
                let Some(keepalive) = keepalive else { continue };
                if answer_due.is_some_and(|due| due <= now) {
                    // Dropping the driver closes the connection: its calls fail UNAVAILABLE.
                    tracing::debug!(
                        target = %connector.target,
                        "keepalive ping not answered within {:?}; closing the connection",
                        keepalive.timeout
                    );
                    return Ok(());
                }
                if answer_due.is_some() {
                    continue;
                }
                if !keepalive.permit_without_stream && active.load(Ordering::Relaxed) == 0 {
                    next_keepalive = Some(now + keepalive_time());
                    continue;
                }
                socket.keepalive_sent();
                if !pinging {
                    if let Err(e) = ping.send_ping(h2::Ping::opaque()) {
                        tracing::debug!(target = %connector.target, "keepalive ping failed: {e}");
                        return driver.await;
                    }
                    pinging = true;
                }
                next_keepalive = None;
                answer_due = Some(now + keepalive.timeout);
            }
        }
    }
}

/// What ended a turn of [`run_connection`]'s loop.
enum Turn {
    /// The connection ended.
    Ended(Result<(), h2::Error>),
    /// The PING out was answered (or failed).
    Answered(Result<(), h2::Error>),
    /// A BDP sample is due.
    Sample,
    /// The keepalive timer fired.
    Timer,
}

/// A server said GOAWAY `too_many_pings` (ENHANCE_YOUR_CALM): ping half as often, as
/// gRPC-Go does.
fn raise_keepalive_time(connector: &Connector) {
    if connector.keepalive.is_none() {
        return;
    }
    let doubled = connector
        .keepalive_time
        .load(Ordering::Relaxed)
        .saturating_mul(2);
    connector.keepalive_time.store(doubled, Ordering::Relaxed);
    tracing::warn!(
        target = %connector.target,
        "server sent GOAWAY too_many_pings; keepalive time raised to {doubled} ms"
    );
}
