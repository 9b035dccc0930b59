//! The server side: [`Server`], its [`ServerBuilder`], and what handlers receive.
//!
//! A server hosts [`Service`]s (generated `FooServer<T>` types), accepts connections on TCP or
//! Unix listeners, and runs each call in its own task. [`Server::graceful_stop`] stops
//! accepting, sends GOAWAY and lets in-flight calls finish; [`Server::stop`] closes
//! everything at once.

mod builder;
mod call;
mod connection;
mod one_response;
mod responder;
mod routing;
mod serve;
mod service;
mod started;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

pub use builder::ServerBuilder;
pub use call::ServerCall;
pub use responder::ResponseSender;
pub use service::Service;

use crate::codec::DEFAULT_MAX_RECV_MESSAGE_SIZE;
use crate::compression::CompressionEncoding;
use crate::credentials::ServerCredentials;
use crate::interceptor::Chain;
use crate::request::Request;
use crate::status::Status;
use crate::streaming::Streaming;
use crate::transport::Http2Settings;

/// The future an unknown-service handler returns.
pub type UnknownFuture = Pin<Box<dyn Future<Output = Result<(), Status>> + Send>>;

/// A handler for calls to services the server does not host; see
/// [`ServerBuilder::unknown_service_handler`].
pub(crate) type UnknownHandler =
    dyn Fn(String, Request<Streaming<Bytes>>, ResponseSender<Bytes>) -> UnknownFuture + Send + Sync;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
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
    pub(crate) http2: Http2Settings,
    pub(crate) max_concurrent_streams: Option<u32>,
    pub(crate) connection_timeout: Duration,
    pub(crate) credentials: ServerCredentials,
    pub(crate) keepalive: crate::keepalive::ServerParameters,
    pub(crate) enforcement: crate::keepalive::EnforcementPolicy,
    /// The budget of large messages in flight, both ways (see `quota`).
    pub(crate) message_memory: Arc<crate::quota::MemoryQuota>,
    /// How long a stream may make no progress (see
    /// [`ServerBuilder::stream_progress_timeout`]).
    pub(crate) stream_progress_timeout: Option<Duration>,
    /// The most connections served at once; more are closed when accepted.
    pub(crate) max_connections: Option<usize>,
}

/// The largest response message a server sends by default: 4 MiB, where gRPC-Go allows
/// `i32::MAX`. Every gRPC implementation's clients refuse messages over 4 MiB by default, so
/// a larger response fails anyway unless the client raised its limit, and the server's own
/// limit keeps a small request from making it build (and hold, for a slow reader) a huge
/// one.
pub const DEFAULT_MAX_SEND_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

/// The most concurrent calls per connection by default, announced in
/// `SETTINGS_MAX_CONCURRENT_STREAMS` (RFC 9113 asks for no less than 100; gRPC-Go announces
/// no limit, which lets one connection hold any number of calls and their buffers).
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 100;

/// The largest header list (decoded) a server takes by default: 64 KiB, where gRPC-Go takes
/// 16 MiB. Generous for metadata (tokens of a few KiB), and it bounds what the headers of
/// the calls a connection may hold at once can cost.
pub const DEFAULT_MAX_HEADER_LIST_SIZE: u32 = 64 * 1024;

/// The default budget of large messages in flight, server-wide: 32 MiB (see
/// [`ServerBuilder::message_memory_limit`]).
pub const DEFAULT_MESSAGE_MEMORY_LIMIT: usize = 32 * 1024 * 1024;

/// How long a stream may make no progress by default: 60 s (see
/// [`ServerBuilder::stream_progress_timeout`]; nginx's `client_body_timeout` and
/// `send_timeout` have the same default and meaning).
pub const DEFAULT_STREAM_PROGRESS_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) struct Shared {
    pub(crate) services: routing::Services,
    pub(crate) unknown: Option<Arc<UnknownHandler>>,
    pub(crate) interceptors: Chain,
    /// The stats handlers (`stats`).
    pub(crate) stats: crate::stats::Handlers,
    /// The server in channelz; its listeners and connections register under it.
    pub(crate) channelz: crate::channelz::internal::ServerEntry,
    pub(crate) config: Config,
    /// Connections being served, across listeners (for `max_connections`).
    pub(crate) connections: std::sync::atomic::AtomicUsize,
}

pub(crate) struct Control {
    pub(crate) mode: watch::Sender<Mode>,
    /// Number of running serve loops.
    pub(crate) serving: watch::Sender<usize>,
}

/// A gRPC server. Cheap to clone: clones control the same server, so one task can serve
/// while another stops it.
///
/// # Examples
///
/// ```no_run
/// use grpc_runtime::server::Server;
///
/// # async fn f(greeter: impl grpc_runtime::server::Service) -> Result<(), grpc_runtime::Error> {
/// let server = Server::builder().add_service(greeter).build();
/// let handle = server.clone();
/// tokio::spawn(async move {
///     tokio::signal::ctrl_c().await.ok();
///     handle.graceful_stop().await;
/// });
/// // `serve` borrows nothing: it can run in a task of its own.
/// tokio::spawn(server.serve("127.0.0.1:50051")).await.unwrap()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Server {
    pub(crate) shared: Arc<Shared>,
    pub(crate) control: Arc<Control>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.shared.services.names().collect();
        f.debug_struct("Server")
            .field("services", &names)
            .field("mode", &*self.control.mode.borrow())
            .finish()
    }
}

impl Server {
    /// A builder with default settings.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            services: HashMap::new(),
            unknown: None,
            interceptors: Vec::new(),
            arounds: Vec::new(),
            stats: crate::stats::HandlerList::default(),
            config: Config {
                max_recv: DEFAULT_MAX_RECV_MESSAGE_SIZE,
                max_send: DEFAULT_MAX_SEND_MESSAGE_SIZE,
                send_compressed: None,
                accept: CompressionEncoding::ALL.to_vec(),
                http2: Http2Settings {
                    max_header_list_size: DEFAULT_MAX_HEADER_LIST_SIZE,
                    ..Http2Settings::default()
                },
                max_concurrent_streams: Some(DEFAULT_MAX_CONCURRENT_STREAMS),
                connection_timeout: Duration::from_secs(120),
                credentials: ServerCredentials::insecure(),
                keepalive: crate::keepalive::ServerParameters::default(),
                enforcement: crate::keepalive::EnforcementPolicy::default(),
                message_memory: crate::quota::MemoryQuota::new(DEFAULT_MESSAGE_MEMORY_LIMIT),
                stream_progress_timeout: Some(DEFAULT_STREAM_PROGRESS_TIMEOUT),
                max_connections: None,
            },
        }
    }

    /// Stops accepting connections, tells clients to go away (HTTP/2 GOAWAY) and waits for
    /// in-flight calls to finish; then every `serve` call returns. gRPC-Go's `GracefulStop`.
    ///
    /// # Cancel safety
    ///
    /// The stop proceeds if the future is dropped; only the wait ends.
    pub async fn graceful_stop(&self) {
        self.tell_stopping();
        self.control.mode.send_if_modified(|mode| {
            let change = *mode == Mode::Serving;
            if change {
                *mode = Mode::Graceful;
            }
            change
        });
        self.wait_stopped().await;
    }

    /// Tells every service, once, that the server is stopping ([`Service::stopping`]).
    fn tell_stopping(&self) {
        if *self.control.mode.borrow() != Mode::Serving {
            return;
        }
        for service in self.shared.services.values() {
            service.stopping();
        }
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
        self.tell_stopping();
        self.control.mode.send_replace(Mode::Stopped);
        self.wait_stopped().await;
    }

    async fn wait_stopped(&self) {
        let mut serving = self.control.serving.subscribe();
        let _ = serving.wait_for(|n| *n == 0).await;
    }
}
