//! The server side: [`Server`], its [`ServerBuilder`], and what handlers receive.
//!
//! A server hosts [`Service`]s (generated `FooServer<T>` types), accepts connections on TCP or
//! Unix listeners, and runs each call in its own task. [`Server::graceful_stop`] stops
//! accepting, sends GOAWAY and lets in-flight calls finish; [`Server::stop`] closes
//! everything at once.

mod call;
mod one_response;
mod responder;

use std::collections::HashMap;
use std::fmt;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use call::ServerCall;
pub use responder::ResponseSender;

use crate::codec::{DEFAULT_MAX_RECV_MESSAGE_SIZE, DEFAULT_MAX_SEND_MESSAGE_SIZE};
use crate::compression::CompressionEncoding;
use crate::error::Error;
use crate::interceptor::{Chain, Interceptor};
use crate::service::Service;
use crate::status::Status;
use crate::transport::{self, Http2Settings};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Serving,
    Graceful,
    Stopped,
}

#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) max_recv: usize,
    pub(crate) max_send: usize,
    pub(crate) send_compressed: Option<CompressionEncoding>,
    pub(crate) accept: Vec<CompressionEncoding>,
    http2: Http2Settings,
    max_concurrent_streams: Option<u32>,
    connection_timeout: Duration,
}

pub(crate) struct Shared {
    services: HashMap<&'static str, Arc<dyn Service>>,
    pub(crate) interceptors: Chain,
    pub(crate) config: Config,
}

struct Control {
    mode: watch::Sender<Mode>,
    /// Number of running serve loops.
    serving: watch::Sender<usize>,
}

/// A gRPC server. Cheap to clone: clones control the same server, so one task can serve
/// while another stops it.
///
/// # Examples
///
/// ```no_run
/// use grpc_runtime::server::Server;
///
/// # async fn f(greeter: impl grpc_runtime::service::Service) -> Result<(), grpc_runtime::Error> {
/// let server = Server::builder().add_service(greeter).build();
/// let handle = server.clone();
/// tokio::spawn(async move {
///     tokio::signal::ctrl_c().await.ok();
///     handle.graceful_stop().await;
/// });
/// server.serve("127.0.0.1:50051").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
    control: Arc<Control>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.shared.services.keys().collect();
        names.sort();
        f.debug_struct("Server")
            .field("services", &names)
            .field("mode", &*self.control.mode.borrow())
            .finish()
    }
}

/// Configures a [`Server`]; made by [`Server::builder`].
#[must_use]
pub struct ServerBuilder {
    services: HashMap<&'static str, Arc<dyn Service>>,
    interceptors: Vec<Arc<dyn Interceptor>>,
    config: Config,
}

impl fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ServerBuilder {
    /// Hosts `service`, routed by its descriptor's name. A second service with the same name
    /// replaces the first.
    pub fn add_service(mut self, service: impl Service) -> Self {
        let name = service.descriptor().name;
        self.services.insert(name, Arc::new(service));
        self
    }

    /// Adds an interceptor; they run in the order added. See [`crate::interceptor`].
    pub fn interceptor(mut self, interceptor: impl Interceptor) -> Self {
        self.interceptors.push(Arc::new(interceptor));
        self
    }

    /// The largest request message accepted; larger ones fail with `RESOURCE_EXHAUSTED`.
    /// Default: 4 MiB.
    pub fn max_recv_message_size(mut self, limit: usize) -> Self {
        self.config.max_recv = limit;
        self
    }

    /// The largest response message sent. Default: `i32::MAX` bytes.
    pub fn max_send_message_size(mut self, limit: usize) -> Self {
        self.config.max_send = limit;
        self
    }

    /// Compresses responses with `encoding` when the client accepts it. Default: none.
    pub fn send_compressed(mut self, encoding: CompressionEncoding) -> Self {
        self.config.send_compressed = Some(encoding);
        self
    }

    /// The encodings accepted on requests; others get `UNIMPLEMENTED`. Default: all
    /// supported ([`CompressionEncoding::ALL`]).
    pub fn accept_compressed(mut self, encodings: &[CompressionEncoding]) -> Self {
        self.config.accept = encodings.to_vec();
        self
    }

    /// The most concurrent calls per connection (HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`).
    /// Default: unlimited.
    pub fn max_concurrent_streams(mut self, limit: u32) -> Self {
        self.config.max_concurrent_streams = Some(limit);
        self
    }

    /// HTTP/2 flow-control window of each stream. Default: 2 MiB.
    pub fn initial_stream_window_size(mut self, size: u32) -> Self {
        self.config.http2.initial_stream_window_size = size;
        self
    }

    /// HTTP/2 flow-control window of each connection. Default: 8 MiB.
    pub fn initial_connection_window_size(mut self, size: u32) -> Self {
        self.config.http2.initial_connection_window_size = size;
        self
    }

    /// How long a new connection may take to complete the HTTP/2 handshake before it is
    /// closed. Default: 120 s (gRPC-Go's `ConnectionTimeout`).
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.config.connection_timeout = timeout;
        self
    }

    /// Builds the server; it serves once given a listener.
    pub fn build(self) -> Server {
        Server {
            shared: Arc::new(Shared {
                services: self.services,
                interceptors: Chain::new(self.interceptors),
                config: self.config,
            }),
            control: Arc::new(Control {
                mode: watch::Sender::new(Mode::Serving),
                serving: watch::Sender::new(0),
            }),
        }
    }
}

/// A source of connections: a TCP or a Unix listener.
trait Listener: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(
        &mut self,
    ) -> impl Future<Output = std::io::Result<(Self::Io, Option<SocketAddr>)>> + Send;
}

impl Listener for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&mut self) -> std::io::Result<(Self::Io, Option<SocketAddr>)> {
        let (stream, addr) = tokio::net::TcpListener::accept(self).await?;
        transport::set_nodelay(&stream);
        Ok((stream, Some(addr)))
    }
}

#[cfg(unix)]
impl Listener for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept(&mut self) -> std::io::Result<(Self::Io, Option<SocketAddr>)> {
        let (stream, _) = tokio::net::UnixListener::accept(self).await?;
        Ok((stream, None))
    }
}

impl Server {
    /// A builder with default settings.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            services: HashMap::new(),
            interceptors: Vec::new(),
            config: Config {
                max_recv: DEFAULT_MAX_RECV_MESSAGE_SIZE,
                max_send: DEFAULT_MAX_SEND_MESSAGE_SIZE,
                send_compressed: None,
                accept: CompressionEncoding::ALL.to_vec(),
                http2: Http2Settings::default(),
                max_concurrent_streams: None,
                connection_timeout: Duration::from_secs(120),
            },
        }
    }

    /// Binds `addr` and serves until stopped.
    ///
    /// # Errors
    ///
    /// If the address cannot be bound.
    pub async fn serve(&self, addr: impl tokio::net::ToSocketAddrs) -> Result<(), Error> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::io("failed to bind".to_owned(), e))?;
        self.serve_tcp(listener).await
    }

    /// Serves connections from a bound TCP listener until stopped.
    ///
    /// # Errors
    ///
    /// Never at present; the `Result` leaves room for listener failures.
    pub async fn serve_tcp(&self, listener: tokio::net::TcpListener) -> Result<(), Error> {
        self.run(listener).await
    }

    /// Serves connections from a Unix domain socket listener until stopped.
    ///
    /// # Errors
    ///
    /// As [`serve_tcp`](Server::serve_tcp).
    #[cfg(unix)]
    pub async fn serve_unix(&self, listener: tokio::net::UnixListener) -> Result<(), Error> {
        self.run(listener).await
    }

    /// Stops accepting connections, tells clients to go away (HTTP/2 GOAWAY) and waits for
    /// in-flight calls to finish; then every `serve` call returns. gRPC-Go's `GracefulStop`.
    ///
    /// # Cancel safety
    ///
    /// The stop proceeds if the future is dropped; only the wait ends.
    pub async fn graceful_stop(&self) {
        self.control.mode.send_if_modified(|mode| {
            let change = *mode == Mode::Serving;
            if change {
                *mode = Mode::Graceful;
            }
            change
        });
        self.wait_stopped().await;
    }

    /// As [`graceful_stop`](Server::graceful_stop), but closes whatever is still running
    /// after `timeout`. Returns whether every call finished in time.
    pub async fn graceful_stop_timeout(&self, timeout: Duration) -> bool {
        if tokio::time::timeout(timeout, self.graceful_stop())
            .await
            .is_ok()
        {
            return true;
        }
        self.stop().await;
        false
    }

    /// Closes every listener and connection at once; in-flight calls are dropped (their
    /// clients see `UNAVAILABLE`). gRPC-Go's `Stop`. Returns once every `serve` call has.
    pub async fn stop(&self) {
        self.control.mode.send_replace(Mode::Stopped);
        self.wait_stopped().await;
    }

    async fn wait_stopped(&self) {
        let mut serving = self.control.serving.subscribe();
        let _ = serving.wait_for(|n| *n == 0).await;
    }

    async fn run<L: Listener>(&self, mut listener: L) -> Result<(), Error> {
        let mut mode = self.control.mode.subscribe();
        if *mode.borrow_and_update() != Mode::Serving {
            return Ok(());
        }
        self.control.serving.send_modify(|n| *n += 1);
        let _serving = ServingGuard(&self.control);
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((io, addr)) => {
                        let shared = Arc::clone(&self.shared);
                        let mode = self.control.mode.subscribe();
                        connections.spawn(serve_connection(io, addr, shared, mode));
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: wait rather than spin.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next() => {}
                _ = mode.changed() => break,
            }
        }
        drop(listener);
        loop {
            if *mode.borrow_and_update() == Mode::Stopped {
                connections.abort_all();
                while connections.join_next().await.is_some() {}
                break;
            }
            tokio::select! {
                next = connections.join_next() => if next.is_none() { break },
                _ = mode.changed() => {}
            }
        }
        Ok(())
    }
}

struct ServingGuard<'a>(&'a Control);

impl Drop for ServingGuard<'_> {
    fn drop(&mut self) {
        self.0.serving.send_modify(|n| *n -= 1);
    }
}

/// How many streams a connection's task accepts before it starts their calls and lets their
/// responses out. h2 reads every request that has arrived before handing out the first, and
/// writes queued responses only when the connection is polled again; taking a burst of 64
/// requests whole, they are answered in one write after all 64 are handled, and the client
/// sits idle meanwhile. Taking 16 at a time lets the first responses leave while the rest
/// are handled (on two cores, h2load's 1-byte unary calls at concurrency 64 went from ~110k
/// to ~170k per second at the same CPU per call), for at most one extra write per 16.
const ACCEPT_BURST: usize = 16;

/// The HTTP/2 handshake of a new connection, within the server's connection timeout.
async fn handshake<IO>(
    io: IO,
    remote_addr: Option<SocketAddr>,
    shared: &Shared,
    mode: &mut watch::Receiver<Mode>,
) -> Option<h2::server::Connection<transport::Paced<IO>, Bytes>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let s = &shared.config.http2;
    let mut builder = h2::server::Builder::new();
    builder
        .initial_window_size(s.initial_stream_window_size)
        .initial_connection_window_size(s.initial_connection_window_size)
        .max_frame_size(s.max_frame_size)
        .max_send_buffer_size(s.max_send_buffer_size)
        .max_header_list_size(s.max_header_list_size);
    if let Some(limit) = shared.config.max_concurrent_streams {
        builder.max_concurrent_streams(limit);
    }
    let timeout = shared.config.connection_timeout;
    let handshake = builder.handshake::<_, Bytes>(transport::Paced::server(io));
    let handshake = tokio::select! {
        handshake = tokio::time::timeout(timeout, handshake) => handshake,
        _ = mode.changed() => return None,
    };
    match handshake {
        Ok(Ok(connection)) => Some(connection),
        Ok(Err(e)) => {
            tracing::debug!(?remote_addr, "HTTP/2 handshake failed: {e}");
            None
        }
        Err(_) => {
            tracing::debug!(
                ?remote_addr,
                "no HTTP/2 handshake within {timeout:?}; closing"
            );
            None
        }
    }
}

async fn serve_connection<IO>(
    io: IO,
    remote_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    mut mode: watch::Receiver<Mode>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Boxed: the handshake's state is as large as the connection's, and a connection's task
    // keeps its largest state for its whole life (idle connections are counted per KiB).
    let handshake = Box::pin(handshake(io, remote_addr, &shared, &mut mode));
    let Some(mut connection) = handshake.await else {
        return;
    };
    // Each call runs in its own task (or, on a current-thread runtime, first in this one).
    // They need no tracking: when this connection ends (closed, or dropped by a hard stop),
    // h2 errors every open stream, and a call whose stream errors drops its handler.
    let inline = tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::CurrentThread;
    // Allocated when a burst arrives, freed after it: an idle connection holds none.
    let mut burst = Vec::new();
    let mut going_away = false;
    loop {
        if !going_away && *mode.borrow_and_update() != Mode::Serving {
            connection.graceful_shutdown();
            going_away = true;
        }
        if *mode.borrow() == Mode::Stopped {
            return;
        }
        let accepted = tokio::select! {
            biased;
            accepted = poll_fn(|cx| accept_burst(&mut connection, &mut burst, cx)) => accepted,
            _ = mode.changed() => continue,
        };
        match accepted {
            Ok(waker) => {
                // Routing runs here; each call starts once its method is known.
                let inline = inline.then_some(waker);
                for (request, respond) in std::mem::take(&mut burst) {
                    dispatch(request, respond, &shared, remote_addr, inline.clone());
                }
                if inline.is_none() {
                    // Let the calls just started run before taking more: their responses go
                    // out on the next accept (h2 writes there), while the rest are handled.
                    tokio::task::yield_now().await;
                }
            }
            Err(Some(e)) => {
                tracing::debug!(?remote_addr, "connection error: {e}");
                break;
            }
            Err(None) => break,
        }
    }
}

type Incoming = (
    http::Request<h2::RecvStream>,
    h2::server::SendResponse<Bytes>,
);

/// Accepts up to [`ACCEPT_BURST`] streams into `burst`. Ready with this task's waker once
/// some are in; `Err` when the connection ends (`None`: closed cleanly).
fn accept_burst<IO>(
    connection: &mut h2::server::Connection<IO, Bytes>,
    burst: &mut Vec<Incoming>,
    cx: &mut Context<'_>,
) -> Poll<Result<Waker, Option<h2::Error>>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    while burst.len() < ACCEPT_BURST {
        match connection.poll_accept(cx) {
            Poll::Ready(Some(Ok(incoming))) => {
                if burst.capacity() == 0 {
                    burst.reserve_exact(ACCEPT_BURST);
                }
                burst.push(incoming);
            }
            Poll::Ready(Some(Err(e))) if burst.is_empty() => return Poll::Ready(Err(Some(e))),
            Poll::Ready(None) if burst.is_empty() => return Poll::Ready(Err(None)),
            // Serve what came first; the end is seen on the next call.
            Poll::Ready(_) | Poll::Pending => break,
        }
    }
    if burst.is_empty() {
        Poll::Pending
    } else {
        Poll::Ready(Ok(cx.waker().clone()))
    }
}

/// Routes one request to its service, which starts the call's task.
fn dispatch(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    shared: &Arc<Shared>,
    remote_addr: Option<SocketAddr>,
    inline: Option<Waker>,
) {
    let (head, body) = request.into_parts();
    if head.method != http::Method::POST {
        plain_response(&mut respond, http::StatusCode::METHOD_NOT_ALLOWED);
        return;
    }
    let grpc_content_type = head
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|ct| crate::status::is_grpc_content_type(ct.as_bytes()));
    if !grpc_content_type {
        plain_response(&mut respond, http::StatusCode::UNSUPPORTED_MEDIA_TYPE);
        return;
    }
    // A clone of the URI shares its bytes: the names below borrow from it, not from `head`,
    // which moves into the call.
    let uri = head.uri.clone();
    let path = uri.path();
    let (service_name, method) = match path.strip_prefix('/').and_then(|p| p.rsplit_once('/')) {
        Some((service, method)) if !service.is_empty() && !method.is_empty() => (service, method),
        _ => {
            let status = Status::unimplemented(format!("malformed method name {path:?}"));
            let call = ServerCall {
                head,
                body,
                respond,
                shared: Arc::clone(shared),
                remote_addr,
                inline: None,
            };
            call.reject(status);
            return;
        }
    };
    let service = shared.services.get(service_name);
    let call = ServerCall {
        head,
        body,
        respond,
        shared: Arc::clone(shared),
        remote_addr,
        inline,
    };
    match service {
        Some(service) => service.call(method, call),
        None => {
            let status = Status::unimplemented(format!("unknown service {service_name}"));
            call.reject(status);
        }
    }
}

/// A non-gRPC HTTP answer, for requests that are not gRPC at all.
fn plain_response(respond: &mut h2::server::SendResponse<Bytes>, status: http::StatusCode) {
    let mut response = http::Response::new(());
    *response.status_mut() = status;
    if let Err(e) = respond.send_response(response, true) {
        tracing::debug!("failed to send HTTP {status}: {e}");
    }
}
