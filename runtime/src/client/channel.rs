//! [`Channel`]: a lazily connected, shareable HTTP/2 connection to one target.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use http::HeaderValue;
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use tokio::io::{AsyncRead, AsyncWrite};

use super::target::{self, Address, Implied, Target};
use crate::codec::{DEFAULT_MAX_RECV_MESSAGE_SIZE, DEFAULT_MAX_SEND_MESSAGE_SIZE};
use crate::credentials::tls::ClientTlsConfig;
use crate::credentials::{CallCredentials, ChannelCredentials};
use crate::error::Error;
use crate::interceptor::{Around, Chain, Interceptor};
use crate::service::MethodRef;
use crate::status::Status;
use crate::transport::{self, BoxedIo, Http2Settings};

/// Makes a channel's connections instead of TCP or a Unix socket: see
/// [`ChannelBuilder::dialer`].
type DialFn =
    dyn Fn() -> Pin<Box<dyn Future<Output = std::io::Result<BoxedIo>> + Send>> + Send + Sync;

/// A client connection to one target, shared by every client made from it.
///
/// Cheap to clone: clones share one HTTP/2 connection, on which concurrent calls are
/// multiplexed. The channel connects on its first call (or [`connect`](Channel::connect)),
/// and if the connection drops, the next call connects again.
///
/// This is gRPC-Go's `ClientConn`.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use grpc_runtime::client::Channel;
///
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let channel = Channel::builder("http://localhost:50051")
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
    address: Address,
    dialer: Option<Arc<DialFn>>,
    authority: Authority,
    /// The host a TLS handshake checks the certificate against (and sends as SNI), unless
    /// the credentials override it.
    tls_host: String,
    credentials: ChannelCredentials,
    call_credentials: Option<Arc<dyn CallCredentials>>,
    config: Config,
    current: Mutex<Option<Connection>>,
    connecting: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct Connection {
    sender: SendRequest<Bytes>,
    closed: Arc<AtomicBool>,
}

#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) connect_timeout: Duration,
    pub(crate) user_agent: HeaderValue,
    pub(crate) interceptors: Chain,
    pub(crate) max_recv_message_size: usize,
    pub(crate) max_send_message_size: usize,
    pub(crate) http2: Http2Settings,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("target", &self.inner.target)
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

    /// A builder for a channel to `target` (`host:port`, `dns:///host:port`,
    /// `https://host[:port]`, `http://host[:port]`, `unix:path` or `unix:///absolute/path`).
    /// A `host:port` or `dns:` target needs [`credentials`](ChannelBuilder::credentials).
    pub fn builder(target: &str) -> ChannelBuilder {
        ChannelBuilder {
            target: target.to_owned(),
            connect_timeout: Duration::from_secs(20),
            user_agent: None,
            interceptors: Vec::new(),
            arounds: Vec::new(),
            max_recv_message_size: DEFAULT_MAX_RECV_MESSAGE_SIZE,
            max_send_message_size: DEFAULT_MAX_SEND_MESSAGE_SIZE,
            http2: Http2Settings::default(),
            dialer: None,
            credentials: None,
            call_credentials: None,
        }
    }

    /// The target this channel was made for.
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    /// Connects now rather than on the first call; does nothing if already connected.
    ///
    /// # Errors
    ///
    /// `UNAVAILABLE`, with the cause, if the connection cannot be made.
    pub async fn connect(&self) -> Result<(), Status> {
        self.sender().await.map(drop)
    }

    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Whether connections are secured (TLS).
    pub(crate) fn is_secure(&self) -> bool {
        self.inner.credentials.is_secure()
    }

    /// The channel's own call credentials.
    pub(crate) fn call_credentials(&self) -> Option<&Arc<dyn CallCredentials>> {
        self.inner.call_credentials.as_ref()
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

    /// A handle to a live connection, connecting first if there is none.
    pub(crate) async fn sender(&self) -> Result<SendRequest<Bytes>, Status> {
        if let Some(sender) = self.live() {
            return Ok(sender);
        }
        let _connecting = self.inner.connecting.lock().await;
        if let Some(sender) = self.live() {
            return Ok(sender);
        }
        let connection = self.dial().await.map_err(|e| {
            let to = match &self.inner.address {
                Address::Tcp { host, port } => format!("{host}:{port}"),
                Address::Unix(path) => path.display().to_string(),
            };
            Status::unavailable(format!(
                "failed to connect to {to} (target {}): {e}",
                self.inner.target
            ))
        })?;
        let sender = connection.sender.clone();
        *self.inner.current.lock().expect("channel lock") = Some(connection);
        Ok(sender)
    }

    fn live(&self) -> Option<SendRequest<Bytes>> {
        let current = self.inner.current.lock().expect("channel lock");
        current
            .as_ref()
            .filter(|c| !c.closed.load(Ordering::Acquire))
            .map(|c| c.sender.clone())
    }

    /// Forgets the current connection (it failed), so the next call connects again.
    pub(crate) fn reset_connection(&self) {
        let mut current = self.inner.current.lock().expect("channel lock");
        if let Some(c) = current.take() {
            c.closed.store(true, Ordering::Release);
        }
    }

    async fn dial(&self) -> std::io::Result<Connection> {
        let timeout = self.inner.config.connect_timeout;
        if let Some(dialer) = &self.inner.dialer {
            let io = transport::with_connect_timeout(timeout, &self.inner.target, dialer()).await?;
            return self.secure(io).await;
        }
        match &self.inner.address {
            Address::Tcp { host, port } => {
                let what = format!("{host}:{port}");
                let stream = transport::with_connect_timeout(
                    timeout,
                    &what,
                    tokio::net::TcpStream::connect((host.as_str(), *port)),
                )
                .await?;
                transport::set_nodelay(&stream);
                self.secure(stream).await
            }
            #[cfg(unix)]
            Address::Unix(path) => {
                let what = path.display().to_string();
                let stream = transport::with_connect_timeout(
                    timeout,
                    &what,
                    tokio::net::UnixStream::connect(path),
                )
                .await?;
                self.secure(stream).await
            }
            #[cfg(not(unix))]
            Address::Unix(_) => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "Unix domain sockets are not supported on this platform",
            )),
        }
    }

    /// The TLS handshake if the credentials call for one (within the connect timeout), then
    /// HTTP/2's.
    async fn secure<IO>(&self, io: IO) -> std::io::Result<Connection>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        match self.inner.credentials.tls_state() {
            None => self.handshake(io).await,
            Some(tls) => {
                let timeout = self.inner.config.connect_timeout;
                let what = format!("TLS handshake with {}", self.inner.tls_host);
                let connecting = tls.connect(&self.inner.tls_host, io);
                let stream = transport::with_connect_timeout(timeout, &what, connecting).await?;
                self.handshake(stream).await
            }
        }
    }

    /// HTTP/2 handshake, then a PING round trip: a peer that accepts TCP but does not speak
    /// HTTP/2 fails here, within the connect timeout, instead of hanging the first call
    /// (gRPC-Go likewise waits for the server's preface).
    async fn handshake<IO>(&self, io: IO) -> std::io::Result<Connection>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let s = &self.inner.config.http2;
        let timeout = self.inner.config.connect_timeout;
        let (sender, mut connection) = s
            .client_builder()
            .handshake::<_, Bytes>(crate::transport::Paced::client(io))
            .await
            .map_err(|e| std::io::Error::other(format!("HTTP/2 handshake failed: {e}")))?;
        let ping = connection.ping_pong();
        let closed = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&closed);
        let target = self.inner.target.clone();
        let mut driver = tokio::spawn(async move {
            let ended = connection.await;
            if let Err(e) = &ended {
                tracing::debug!(%target, "connection ended: {e}");
            }
            flag.store(true, Ordering::Release);
            ended
        });
        if let Some(mut ping) = ping {
            let answered = tokio::time::timeout(timeout, ping.ping(h2::Ping::opaque())).await;
            let failure = match answered {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => {
                    // The ping only learns that the connection is gone; the connection's own
                    // error says why (a TLS alert: the server wanted a client certificate).
                    let why = match tokio::time::timeout(Duration::from_secs(1), &mut driver).await
                    {
                        Ok(Ok(Err(cause))) => cause.to_string(),
                        _ => e.to_string(),
                    };
                    Some((
                        std::io::ErrorKind::ConnectionAborted,
                        format!("HTTP/2 handshake failed: {why}"),
                    ))
                }
                Err(_) => Some((
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "timed out after {timeout:?} waiting for the server's HTTP/2 handshake"
                    ),
                )),
            };
            if let Some((kind, failure)) = failure {
                driver.abort();
                return Err(std::io::Error::new(kind, failure));
            }
        }
        Ok(Connection { sender, closed })
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
    max_recv_message_size: usize,
    max_send_message_size: usize,
    http2: Http2Settings,
    dialer: Option<Arc<DialFn>>,
    credentials: Option<ChannelCredentials>,
    call_credentials: Option<Arc<dyn CallCredentials>>,
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
    /// How long to wait for a connection to be made. Default: 20 s (gRPC-Go's).
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

    /// HTTP/2 flow-control window of each stream. Default: 2 MiB.
    pub fn initial_stream_window_size(mut self, size: u32) -> Self {
        self.http2.initial_stream_window_size = size;
        self
    }

    /// HTTP/2 flow-control window of the connection. Default: 8 MiB.
    pub fn initial_connection_window_size(mut self, size: u32) -> Self {
        self.http2.initial_connection_window_size = size;
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

    /// Builds the channel. It does not connect yet.
    ///
    /// # Errors
    ///
    /// If the target cannot be parsed; if the transport's security is not set (a target
    /// without `https://` or `http://` and no [`credentials`](Self::credentials)) or
    /// contradicts the target's scheme; if call credentials that require security are set on
    /// a plaintext channel; if the user agent is not a valid header value.
    pub fn build(self) -> Result<Channel, Error> {
        let Target {
            address,
            mut authority,
            implied,
        } = if self.dialer.is_some() {
            // Any name will do: the dialer decides where connections go.
            target::parse(&self.target).unwrap_or(Target {
                address: Address::Unix(Default::default()),
                authority: Authority::from_static("localhost"),
                implied: Implied::Nothing,
            })
        } else {
            target::parse(&self.target)?
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
        let tls_host = authority.host().to_owned();
        if let Some(name) = credentials.tls_state().and_then(|t| t.authority_override()) {
            // gRPC-Go sends the override as `:authority` too.
            authority = Authority::try_from(name).map_err(|_| {
                Error::invalid_config(&format!(
                    "TLS server name {name:?} is not a valid authority"
                ))
            })?;
        }
        let ua = match &self.user_agent {
            Some(prefix) => format!("{prefix} grpc-rust/{}", env!("CARGO_PKG_VERSION")),
            None => format!("grpc-rust/{}", env!("CARGO_PKG_VERSION")),
        };
        let user_agent = HeaderValue::try_from(ua)
            .map_err(|_| Error::invalid_config("user agent is not a valid header value"))?;
        Ok(Channel {
            inner: Arc::new(Inner {
                target: self.target,
                address,
                dialer: self.dialer,
                authority,
                tls_host,
                credentials,
                call_credentials: self.call_credentials,
                config: Config {
                    connect_timeout: self.connect_timeout,
                    user_agent,
                    interceptors: Chain::new(self.interceptors, self.arounds),
                    max_recv_message_size: self.max_recv_message_size,
                    max_send_message_size: self.max_send_message_size,
                    http2: self.http2,
                },
                current: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
            }),
        })
    }
}
