//! [`Channel`]: gRPC-Go's `ClientConn`. A target resolved to addresses, a balancer choosing
//! among connections to them, each call on the connection its picker gives.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderValue;
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use tokio::io::{AsyncRead, AsyncWrite};

use super::conn::{self, Activity, Control, Handles, Pending, Plan};
use super::target::{self, Implied, Parsed};
use crate::backoff::BackoffConfig;
use crate::balancer::{ConnectivityState, Pick, PickInfo, Subchannel};
use crate::codec::{DEFAULT_MAX_RECV_MESSAGE_SIZE, DEFAULT_MAX_SEND_MESSAGE_SIZE};
use crate::credentials::tls::ClientTlsConfig;
use crate::credentials::{CallCredentials, ChannelCredentials};
use crate::error::Error;
use crate::interceptor::{Around, Chain, Interceptor};
use crate::keepalive::ClientParameters;
use crate::proxy::Proxy;
use crate::resolver::{self, ResolverBuilder};
use crate::service::MethodRef;
use crate::service_config::{ConfigCell, Effective, ServiceConfig};
use crate::status::Status;
use crate::subchannel::{Connection, Connector, DialFn, HealthCheck};
use crate::transport::{BoxedIo, Http2Settings};

/// A client channel to one target, shared by every client made from it: gRPC-Go's
/// `ClientConn`.
///
/// Cheap to clone: clones are the same channel. Its target is resolved to addresses
/// ([`resolver`](crate::resolver): DNS by default), its balancer
/// ([`balancer`](crate::balancer): `pick_first` by default, or `round_robin`) keeps
/// connections to some of them, and each call goes out on the connection the balancer's
/// picker chooses; calls are multiplexed on each connection. Connections are made when the
/// first call comes (or [`connect`](Channel::connect)), remade with backoff when they fail,
/// and closed after the idle timeout without calls.
///
/// A call finding no connection READY waits while the channel is connecting; if the channel
/// is in TRANSIENT_FAILURE it fails at once with `UNAVAILABLE` and the last connection error,
/// unless it is wait-for-ready ([`Request::set_wait_for_ready`](crate::Request::set_wait_for_ready)),
/// which waits for a connection until its deadline.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use grpc_runtime::client::Channel;
/// use grpc_runtime::credentials::ChannelCredentials;
///
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// // Spread calls over every address of a headless service.
/// let channel = Channel::builder("dns:///api.default.svc.cluster.local:50051")
///     .credentials(ChannelCredentials::insecure())
///     .load_balancing_policy("round_robin")
///     .connect_timeout(Duration::from_secs(5))
///     .build()?;
/// channel.connect().await?; // optional: the first call connects too
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Channel {
    inner: Arc<Inner>,
}

struct Inner {
    target: String,
    authority: Authority,
    config: Config,
    secure: bool,
    call_credentials: Option<Arc<dyn CallCredentials>>,
    handles: Handles,
    /// The service config in effect: the default, then the resolver's.
    service_config: Arc<ConfigCell>,
    /// The control task, until it starts (at build inside a runtime, else on first use).
    pending: Mutex<Option<Pending>>,
    started: AtomicBool,
    activity: Arc<Activity>,
    /// The channel in channelz: its calls count there.
    channelz: crate::channelz::internal::ChannelEntry,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.handles.control.send(Control::Shutdown);
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) user_agent: HeaderValue,
    pub(crate) interceptors: Chain,
    /// The stats handlers (`stats`), told of every attempt.
    pub(crate) stats: crate::stats::Handlers,
    pub(crate) max_recv_message_size: usize,
    pub(crate) max_send_message_size: usize,
    pub(crate) wait_for_ready: bool,
    /// What one call under a retry policy may keep for replay (gRFC A6).
    pub(crate) retry_buffer_per_call: usize,
    /// Whether the service config's retry and hedging policies apply.
    pub(crate) retries: bool,
    /// What all the channel's calls may keep together, and what they keep now.
    pub(crate) retry_buffer_per_channel: usize,
    pub(crate) retry_buffered: Arc<std::sync::atomic::AtomicUsize>,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("target", &self.inner.target)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl Channel {
    /// A channel to `target` with default settings; it connects on first use. The target's
    /// scheme gives its security: `https://` (TLS, the system's roots), `http://` or `unix:`
    /// (plaintext); for other targets use [`builder`](Channel::builder) and set
    /// [`credentials`](ChannelBuilder::credentials).
    ///
    /// # Errors
    ///
    /// If `target` cannot be parsed or does not say how to secure it.
    pub fn new(target: &str) -> Result<Channel, Error> {
        Channel::builder(target).build()
    }

    /// A builder for a channel to `target`: `host:port` or `dns:///host:port` (DNS),
    /// `https://host[:port]` and `http://host[:port]` (DNS, and the security they say),
    /// `ipv4:a:p,b:p` / `ipv6:[a]:p,[b]:p` (a fixed list), `unix:path`,
    /// `unix:///absolute/path`, `unix-abstract:name`, `passthrough:///host:port`, or any
    /// scheme with a registered [resolver](crate::resolver). A target without `https://` or
    /// `http://` (or `unix:`) needs [`credentials`](ChannelBuilder::credentials).
    pub fn builder(target: &str) -> ChannelBuilder {
        ChannelBuilder {
            target: target.to_owned(),
            connect_timeout: Duration::from_secs(20),
            user_agent: None,
            interceptors: Vec::new(),
            arounds: Vec::new(),
            stats: crate::stats::HandlerList::default(),
            max_recv_message_size: DEFAULT_MAX_RECV_MESSAGE_SIZE,
            max_send_message_size: DEFAULT_MAX_SEND_MESSAGE_SIZE,
            http2: Http2Settings::default(),
            dialer: None,
            credentials: None,
            call_credentials: None,
            resolver: None,
            policy: None,
            service_config: None,
            wait_for_ready: false,
            idle_timeout: Some(Duration::from_secs(30 * 60)),
            keepalive: None,
            backoff: BackoffConfig::default(),
            proxy: Proxy::from_env(),
            retry_buffer: (256 * 1024, 16 * 1024 * 1024),
            resolver_service_config: true,
            retries: true,
        }
    }

    /// The channel in channelz.
    pub(crate) fn channelz(&self) -> &crate::channelz::internal::ChannelEntry {
        &self.inner.channelz
    }

    /// The target this channel was made for.
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    /// The channel's connectivity state now.
    pub fn state(&self) -> ConnectivityState {
        *self.inner.handles.state.borrow()
    }

    /// Waits until the state is no longer `from`, and returns the new one (gRPC-Go's
    /// `WaitForStateChange`; bound it with `tokio::time::timeout`).
    pub async fn wait_for_state_change(&self, from: ConnectivityState) -> ConnectivityState {
        self.start();
        let mut state = self.inner.handles.state.clone();
        match state.wait_for(|now| *now != from).await {
            Ok(now) => *now,
            Err(_) => ConnectivityState::Shutdown,
        }
    }

    /// Leaves IDLE and waits for a connection: `Ok` once one is READY.
    ///
    /// # Errors
    ///
    /// `UNAVAILABLE`, with the cause, if the channel goes to TRANSIENT_FAILURE (the
    /// connection attempts failed).
    pub async fn connect(&self) -> Result<(), Status> {
        self.pick("", false).await.map(drop)
    }

    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Whether connections are secured (TLS).
    pub(crate) fn is_secure(&self) -> bool {
        self.inner.secure
    }

    /// The channel's own call credentials.
    pub(crate) fn call_credentials(&self) -> Option<&Arc<dyn CallCredentials>> {
        self.inner.call_credentials.as_ref()
    }

    pub(crate) fn activity(&self) -> &Arc<Activity> {
        &self.inner.activity
    }

    /// The service config in effect, if any.
    pub(crate) fn service_config(&self) -> Option<Arc<Effective>> {
        self.inner.service_config.load()
    }

    /// Waits (until `deadline`) for the resolver's first answer, leaving IDLE for it: until
    /// then a call cannot know its service config (gRPC-Go's `waitForResolvedAddrs`). One
    /// load once the channel has resolved.
    pub(crate) async fn resolved(
        &self,
        timeout: Option<Duration>,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(), Status> {
        let cell = &self.inner.service_config;
        if cell.is_resolved() {
            return Ok(());
        }
        let deadline = match (timeout.map(|t| tokio::time::Instant::now() + t), deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.start();
        self.inner.activity.exit_idle(&self.inner.handles.control);
        let wait = cell.wait_resolved();
        match deadline {
            None => wait.await,
            Some(deadline) => tokio::time::timeout_at(deadline, wait).await.map_err(|_| {
                Status::deadline_exceeded("deadline exceeded while resolving the target")
            })?,
        }
        Ok(())
    }

    /// The request URI for a method.
    ///
    /// # Errors
    ///
    /// `INTERNAL` if the method's path is not a method path (`/<service>/<method>`).
    pub(crate) fn uri(&self, method: &MethodRef) -> Result<Uri, Status> {
        let path_and_query = match method {
            MethodRef::Path(path) => path.clone(),
            MethodRef::Known(method) => static_path(method.path).ok_or_else(|| {
                Status::internal(format!(
                    "invalid method path {:?}: expected /<service>/<method>",
                    method.path
                ))
            })?,
        };
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(self.inner.authority.clone());
        parts.path_and_query = Some(path_and_query);
        Uri::from_parts(parts).map_err(|e| Status::internal(format!("invalid request URI: {e}")))
    }

    /// Starts the control task if the channel was built outside a runtime.
    fn start(&self) {
        if self.inner.started.load(Ordering::Acquire) {
            return;
        }
        let pending = self.inner.pending.lock().expect("channel lock").take();
        if let Some(pending) = pending {
            pending.start();
        }
        self.inner.started.store(true, Ordering::Release);
    }

    /// A connection for a call to `method`: the picker's choice once it has a READY one.
    /// Waits while the channel connects; with `wait_for_ready`, also through
    /// TRANSIENT_FAILURE. The caller bounds the wait with the call's deadline.
    pub(crate) async fn pick(
        &self,
        method: &str,
        wait_for_ready: bool,
    ) -> Result<(Subchannel, Connection), Status> {
        self.start();
        self.inner
            .activity
            .call_started(&self.inner.handles.control);
        let info = PickInfo { method };
        // The usual case first, without a receiver of our own: a READY connection.
        if let Pick::Subchannel(subchannel) = self.inner.handles.picker.borrow().pick(&info)
            && let Some(connection) = subchannel.connection()
        {
            return Ok((subchannel, connection));
        }
        let mut picker = self.inner.handles.picker.clone();
        loop {
            let pick = picker.borrow_and_update().pick(&info);
            match pick {
                Pick::Subchannel(subchannel) => {
                    if let Some(connection) = subchannel.connection() {
                        return Ok((subchannel, connection));
                    }
                }
                Pick::Fail(status) if !wait_for_ready => return Err(status),
                Pick::Queue if *self.inner.handles.state.borrow() == ConnectivityState::Idle => {
                    // The balancer went IDLE (its connection closed): a call wakes it.
                    let _ = self.inner.handles.control.send(Control::ExitIdle);
                }
                Pick::Fail(_) | Pick::Queue => {}
            }
            if picker.changed().await.is_err() {
                return Err(Status::unavailable("the channel was closed"));
            }
        }
    }
}

/// A declared method's path as a URI path, without copying it when it is made of the usual
/// characters (generated paths are), else checked and copied; `None` if it is not a method
/// path.
fn static_path(path: &'static str) -> Option<PathAndQuery> {
    if !crate::service::is_method_path(path) {
        return None;
    }
    let plain = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-'));
    if plain {
        // Cannot panic: every byte is one `from_static` accepts in a path.
        return Some(PathAndQuery::from_static(path));
    }
    PathAndQuery::try_from(path)
        .ok()
        .filter(|p| p.query().is_none() && p.path() == path)
}

/// The channel's transport credentials: the ones set, checked against the target's scheme, or
/// the ones the scheme implies.
fn resolve_credentials(
    target: &str,
    implied: Implied,
    set: Option<ChannelCredentials>,
) -> Result<ChannelCredentials, Error> {
    match (implied, set) {
        (Implied::Tls, Some(set)) if !set.is_secure() => Err(Error::invalid_config(&format!(
            "target {target:?} asks for TLS (https://), and the credentials set are insecure"
        ))),
        (Implied::Plaintext, Some(set)) if set.is_secure() => Err(Error::invalid_config(&format!(
            "target {target:?} asks for plaintext (http://), and the credentials set are TLS"
        ))),
        (_, Some(set)) => Ok(set),
        (Implied::Tls, None) => ChannelCredentials::tls(ClientTlsConfig::new()),
        (Implied::Plaintext | Implied::Local, None) => Ok(ChannelCredentials::insecure()),
        (Implied::Nothing, None) => Err(Error::invalid_config(&format!(
            "no transport security set for target {target:?}: use an https:// (TLS) or \
             http:// (plaintext) target, or ChannelBuilder::credentials with \
             ChannelCredentials::tls(..) or ChannelCredentials::insecure()"
        ))),
    }
}

/// Configures a [`Channel`]; made by [`Channel::builder`].
#[must_use]
pub struct ChannelBuilder {
    target: String,
    connect_timeout: Duration,
    user_agent: Option<String>,
    interceptors: Vec<Arc<dyn Interceptor>>,
    arounds: Vec<Arc<dyn Around>>,
    stats: crate::stats::HandlerList,
    max_recv_message_size: usize,
    max_send_message_size: usize,
    http2: Http2Settings,
    dialer: Option<Arc<DialFn>>,
    credentials: Option<ChannelCredentials>,
    call_credentials: Option<Arc<dyn CallCredentials>>,
    resolver: Option<Arc<dyn ResolverBuilder>>,
    policy: Option<String>,
    service_config: Option<String>,
    wait_for_ready: bool,
    idle_timeout: Option<Duration>,
    keepalive: Option<ClientParameters>,
    backoff: BackoffConfig,
    proxy: Proxy,
    retry_buffer: (usize, usize),
    resolver_service_config: bool,
    retries: bool,
}

impl fmt::Debug for ChannelBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelBuilder")
            .field("target", &self.target)
            .field("connect_timeout", &self.connect_timeout)
            .field("dialer", &self.dialer.is_some())
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for dyn Interceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Interceptor")
    }
}

impl ChannelBuilder {
    /// How long a connection attempt may take (gRPC's MIN_CONNECT_TIMEOUT: an attempt gets
    /// this or its backoff delay, whichever is longer). Default: 20 s (gRPC-Go's).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// A prefix for the `user-agent` header (`"<yours> grpc-rust/<version>"`).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// Adds an interceptor; they run in the order added. See [`crate::interceptor`].
    pub fn interceptor(mut self, interceptor: impl Interceptor) -> Self {
        self.interceptors.push(Arc::new(interceptor));
        self
    }

    /// Adds an interceptor that wraps calls; they nest in the order added (the first is
    /// outermost). See [`Around`].
    pub fn around(mut self, around: impl Around) -> Self {
        self.arounds.push(Arc::new(around));
        self
    }

    /// The target the channel is being built for.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Adds a stats handler, told of every attempt of every call and of every connection;
    /// several may be added. See [`crate::stats`].
    pub fn stats_handler(mut self, handler: impl crate::stats::Handler) -> Self {
        self.stats.push(handler);
        self
    }

    /// The largest response message accepted. Default: 4 MiB.
    pub fn max_recv_message_size(mut self, limit: usize) -> Self {
        self.max_recv_message_size = limit;
        self
    }

    /// The largest request message sent. Default: `i32::MAX` bytes.
    pub fn max_send_message_size(mut self, limit: usize) -> Self {
        self.max_send_message_size = limit;
        self
    }

    /// HTTP/2 flow-control window of each stream, fixed. Default: 2 MiB, grown to the
    /// link's bandwidth-delay product (up to 16 MiB) as data arrives, as gRPC-Go's windows
    /// grow; setting this or
    /// [`initial_connection_window_size`](Self::initial_connection_window_size) turns that
    /// growth off.
    pub fn initial_stream_window_size(mut self, size: u32) -> Self {
        self.http2.initial_stream_window_size = size;
        self.http2.dynamic_window = false;
        self
    }

    /// HTTP/2 flow-control window of the connection, fixed. Default: 8 MiB, grown with the
    /// streams' window (see [`initial_stream_window_size`](Self::initial_stream_window_size));
    /// setting this turns that growth off.
    pub fn initial_connection_window_size(mut self, size: u32) -> Self {
        self.http2.initial_connection_window_size = size;
        self.http2.dynamic_window = false;
        self
    }

    /// Makes connections with `dial` instead of TCP or a Unix socket (gRPC-Go's
    /// `WithContextDialer`): any byte stream works, an in-memory one included (see
    /// [`inprocess`](crate::inprocess)). The target then only names the channel and gives
    /// the `:authority`.
    ///
    /// # Examples
    ///
    /// ```
    /// use grpc_runtime::client::Channel;
    ///
    /// let channel = Channel::builder("http://localhost:50051")
    ///     .dialer(|| async { tokio::net::TcpStream::connect("127.0.0.1:50051").await })
    ///     .build()
    ///     .unwrap();
    /// # let _ = channel;
    /// ```
    pub fn dialer<F, Fut, IO>(mut self, dial: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::io::Result<IO>> + Send + 'static,
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        self.dialer = Some(Arc::new(move || {
            let connecting = dial();
            Box::pin(async move { connecting.await.map(|io| Box::new(io) as BoxedIo) })
        }));
        self
    }

    /// How connections are secured: TLS ([`ChannelCredentials::tls`]) or plaintext
    /// ([`ChannelCredentials::insecure`]), gRPC-Go's `WithTransportCredentials`. Needed unless
    /// the target's scheme says (`https://` is TLS with the system's roots, `http://` and
    /// `unix:` are plaintext); see [`credentials`](crate::credentials).
    ///
    /// # Examples
    ///
    /// ```
    /// use grpc_runtime::client::Channel;
    /// use grpc_runtime::credentials::ChannelCredentials;
    ///
    /// // Plaintext, said out loud.
    /// let channel = Channel::builder("dns:///localhost:50051")
    ///     .credentials(ChannelCredentials::insecure())
    ///     .build()?;
    /// # let _ = channel;
    /// # Ok::<(), grpc_runtime::Error>(())
    /// ```
    pub fn credentials(mut self, credentials: ChannelCredentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Adds `credentials` to every call of this channel (gRPC-Go's `WithPerRPCCredentials`).
    /// See [`CallCredentials`] for when they are refused.
    pub fn call_credentials(mut self, credentials: impl CallCredentials) -> Self {
        self.call_credentials = Some(Arc::new(credentials));
        self
    }

    /// Resolves this channel's target with `builder` (for its scheme) instead of the
    /// registered one (gRPC-Go's `WithResolvers`); see [`ManualResolver`](crate::resolver::manual::ManualResolver).
    pub fn resolver(mut self, builder: impl ResolverBuilder) -> Self {
        self.resolver = Some(Arc::new(builder));
        self
    }

    /// The load-balancing policy by name: `"pick_first"` (the default), `"round_robin"`, or
    /// one [registered](crate::balancer::register). A service config's
    /// `loadBalancingConfig` wins over it.
    pub fn load_balancing_policy(mut self, name: impl Into<String>) -> Self {
        self.policy = Some(name.into());
        self
    }

    /// The service config (gRPC's JSON, see `docs/service-config.md`) used until the
    /// resolver provides one: `loadBalancingConfig`, `methodConfig` (timeout, waitForReady,
    /// message size limits, retryPolicy, hedgingPolicy) and `retryThrottling`.
    pub fn default_service_config(mut self, json: impl Into<String>) -> Self {
        self.service_config = Some(json.into());
        self
    }

    /// Makes calls wait for a READY connection (until their deadline) instead of failing at
    /// once when the channel is in TRANSIENT_FAILURE. Default: `false` (fail fast); a call
    /// can say otherwise with [`Request::set_wait_for_ready`](crate::Request::set_wait_for_ready).
    pub fn wait_for_ready(mut self, wait: bool) -> Self {
        self.wait_for_ready = wait;
        self
    }

    /// Closes the channel's connections after this long without calls; the next call
    /// reconnects. `None` keeps them. Default: 30 minutes (gRPC-Go's).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Pings connections to find dead ones; see [`ClientParameters`]. Default: off.
    pub fn keepalive(mut self, keepalive: ClientParameters) -> Self {
        self.keepalive = Some(keepalive);
        self
    }

    /// The backoff between connection attempts to an address. Default: gRPC's (1 s, ×1.6,
    /// ±20%, at most 120 s).
    pub fn backoff(mut self, backoff: BackoffConfig) -> Self {
        self.backoff = backoff;
        self
    }

    /// How much of what client-streaming calls under a retry policy sent is kept for replay:
    /// per call, and for all the channel's calls together. A call that would pass either
    /// commits (it is not retried after). Defaults: 256 KiB and 16 MiB (gRPC-Go's).
    pub fn retry_buffer_limits(mut self, per_call: usize, per_channel: usize) -> Self {
        self.retry_buffer = (per_call, per_channel);
        self
    }

    /// Ignores service configs from the resolver: the default one
    /// ([`default_service_config`](Self::default_service_config)) stays in force (gRPC-Go's
    /// `WithDisableServiceConfig`).
    pub fn disable_service_config_lookup(mut self) -> Self {
        self.resolver_service_config = false;
        self
    }

    /// Turns off the service config's retry and hedging policies: each call makes one
    /// attempt (and, for a stream the server refused unprocessed, one transparent retry).
    /// gRPC-Go's `WithDisableRetry`.
    pub fn disable_retry(mut self) -> Self {
        self.retries = false;
        self
    }

    /// The HTTP CONNECT proxy connections go through. Default: [`Proxy::from_env`].
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = proxy;
        self
    }

    /// Builds the channel. It does not connect yet.
    ///
    /// # Errors
    ///
    /// If the target cannot be parsed or no resolver handles its scheme; if the transport's
    /// security is not set (a target without `https://` or `http://` and no
    /// [`credentials`](Self::credentials)) or contradicts the target's scheme; if call
    /// credentials that require security are set on a plaintext channel; if the
    /// load-balancing policy is unknown or the service config invalid; if the user agent
    /// is not a valid header value.
    pub fn build(mut self) -> Result<Channel, Error> {
        let custom = self.resolver.clone();
        let Parsed {
            target,
            mut authority,
            implied,
            host,
        } = if self.dialer.is_some() {
            // Any name will do: the dialer decides where connections go.
            target::parse(&self.target, custom.as_deref())
                .unwrap_or_else(|_| Parsed::named(&self.target))
        } else {
            target::parse(&self.target, custom.as_deref())?
        };
        let credentials = resolve_credentials(&self.target, implied, self.credentials)?;
        let insecure_call_credentials = self
            .call_credentials
            .as_ref()
            .is_some_and(|call| call.requires_transport_security());
        if insecure_call_credentials && !credentials.is_secure() {
            return Err(Error::invalid_config(
                "the call credentials require transport security, and the channel is \
                 plaintext (use TLS, or allow_insecure() on credentials meant for plaintext)",
            ));
        }
        if let Some(name) = credentials.tls_state().and_then(|t| t.authority_override()) {
            // gRPC-Go sends the override as `:authority` too.
            authority = Authority::try_from(name).map_err(|_| {
                Error::invalid_config(&format!(
                    "TLS server name {name:?} is not a valid authority"
                ))
            })?;
        }

        // The resolver: the dialer's one fixed address, the channel's own, or the registry's.
        // Proxies apply to names (dns: and passthrough: targets), as in gRFC A1; address
        // lists, sockets, custom resolvers and dialers connect directly.
        let named = matches!(target.scheme(), "dns" | "passthrough");
        let proxy = match &host {
            Some(host) if self.dialer.is_none() && named => self.proxy.for_host(host)?,
            _ => None,
        };
        let resolver: Arc<dyn ResolverBuilder> = if self.dialer.is_some() {
            Arc::new(resolver::SingleResolverBuilder::dialer())
        } else if proxy.is_some() && target.scheme() == "dns" {
            // gRFC A1: the proxy resolves the name; the channel does not.
            Arc::new(resolver::PassthroughResolverBuilder)
        } else if let Some(custom) =
            custom.filter(|c| c.scheme().eq_ignore_ascii_case(target.scheme()))
        {
            custom
        } else {
            resolver::lookup(target.scheme()).ok_or_else(|| {
                Error::invalid_target(
                    &self.target,
                    &format!("no resolver for scheme {:?}", target.scheme()),
                )
            })?
        };

        // The balancer: the service config's, else the policy named, else pick_first.
        let service_config = match &self.service_config {
            Some(json) => Some(ServiceConfig::parse(json).map_err(|e| {
                Error::invalid_config(&format!("invalid default service config: {e}"))
            })?),
            None => None,
        };
        let cell = Arc::new(ConfigCell::default());
        let load_balancing = service_config
            .as_ref()
            .and_then(|c| c.load_balancing.clone());
        if let Some(config) = service_config {
            cell.store(config);
        }
        let (policy, balancer_config) = match load_balancing {
            Some((name, config)) => (name, config),
            None => (self.policy.unwrap_or_else(|| "pick_first".to_owned()), None),
        };
        let balancer = conn::balancer_builder(&policy).ok_or_else(|| {
            Error::invalid_config(&format!("unknown load-balancing policy {policy:?}"))
        })?;

        let ua = match &self.user_agent {
            Some(prefix) => format!("{prefix} grpc-rust/{}", env!("CARGO_PKG_VERSION")),
            None => format!("grpc-rust/{}", env!("CARGO_PKG_VERSION")),
        };
        let user_agent = HeaderValue::try_from(ua)
            .map_err(|_| Error::invalid_config("user agent is not a valid header value"))?;
        let keepalive_ms = self
            .keepalive
            .map_or(0, |k| k.effective_time().as_millis() as u64);
        let secure = credentials.is_secure();
        let stats = std::mem::take(&mut self.stats).build();
        let channelz = crate::channelz::internal::register_channel(&self.target);
        let connector = Arc::new(Connector {
            stats: stats.clone(),
            channelz: channelz.clone(),
            target: self.target.clone(),
            dialer: self.dialer,
            credentials,
            tls_host: authority_host(&authority, &host),
            http2: self.http2,
            min_connect_timeout: self.connect_timeout,
            backoff: self.backoff,
            keepalive: self.keepalive,
            keepalive_time: AtomicU64::new(keepalive_ms),
            proxy,
            health: Some(HealthCheck {
                open: super::health_check::open_watch,
                authority: authority.clone(),
                config: Arc::clone(&cell),
            }),
        });
        let activity = Arc::new(Activity::new());
        let plan = Plan {
            target,
            resolver,
            balancer,
            policy,
            balancer_config,
            idle_timeout: self.idle_timeout,
            service_config: Arc::clone(&cell),
            resolver_service_config: self.resolver_service_config,
        };
        let (handles, pending) = conn::prepare(plan, connector, Arc::clone(&activity));
        let started = tokio::runtime::Handle::try_current().is_ok();
        let pending = if started {
            pending.start();
            None
        } else {
            Some(pending)
        };
        Ok(Channel {
            inner: Arc::new(Inner {
                target: self.target,
                authority,
                config: Config {
                    user_agent,
                    interceptors: Chain::new(self.interceptors, self.arounds),
                    stats,
                    max_recv_message_size: self.max_recv_message_size,
                    max_send_message_size: self.max_send_message_size,
                    wait_for_ready: self.wait_for_ready,
                    retry_buffer_per_call: self.retry_buffer.0,
                    retry_buffer_per_channel: self.retry_buffer.1,
                    retry_buffered: Arc::default(),
                    retries: self.retries,
                },
                secure,
                call_credentials: self.call_credentials,
                handles,
                service_config: cell,
                pending: Mutex::new(pending),
                started: AtomicBool::new(started),
                activity,
                channelz,
            }),
        })
    }
}

/// The host TLS checks the server's certificate against: the target's host name.
fn authority_host(authority: &Authority, host: &Option<String>) -> String {
    match host {
        Some(host) => host.clone(),
        None => authority.host().to_owned(),
    }
}
