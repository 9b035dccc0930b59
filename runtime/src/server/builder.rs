//! [`ServerBuilder`]: a server's services, interceptors and limits.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use super::{Config, Control, Mode, ResponseSender, Server, Service, Shared, UnknownHandler};
use crate::compression::CompressionEncoding;
use crate::credentials::ServerCredentials;
use crate::interceptor::{Around, Chain, Interceptor};
use crate::request::Request;
use crate::service::ServiceDescriptor;
use crate::status::Status;
use crate::streaming::Streaming;

/// Configures a [`Server`]; made by [`Server::builder`].
#[must_use]
pub struct ServerBuilder {
    pub(super) services: HashMap<&'static str, Arc<dyn Service>>,
    pub(super) unknown: Option<Arc<UnknownHandler>>,
    pub(super) interceptors: Vec<Arc<dyn Interceptor>>,
    pub(super) arounds: Vec<Arc<dyn Around>>,
    pub(super) stats: crate::stats::HandlerList,
    pub(super) config: Config,
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

    /// The descriptors of the services added so far (for reflection).
    pub(crate) fn descriptors(&self) -> impl Iterator<Item = &'static ServiceDescriptor> + '_ {
        self.services.values().map(|service| service.descriptor())
    }

    /// Sends every call to a service this server does not host to `handler` (gRPC-Go's
    /// `UnknownServiceHandler`), instead of answering `UNIMPLEMENTED`: the base of a proxy.
    /// The handler gets the method path and the call as a bidi stream of raw messages (see
    /// [`BytesCodec`](crate::codec::BytesCodec)), whatever the method's real kind.
    ///
    /// # Examples
    ///
    /// ```
    /// use grpc_runtime::server::Server;
    ///
    /// // Echoes every message of every unknown method back.
    /// let server = Server::builder()
    ///     .unknown_service_handler(|path, mut requests, mut responses| async move {
    ///         let _ = path;
    ///         while let Some(message) = requests.get_mut().message().await? {
    ///             responses.send(message).await?;
    ///         }
    ///         Ok(())
    ///     })
    ///     .build();
    /// # let _ = server;
    /// ```
    pub fn unknown_service_handler<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(String, Request<Streaming<Bytes>>, ResponseSender<Bytes>) -> Fut
            + Send
            + Sync
            + 'static,
        Fut: Future<Output = Result<(), Status>> + Send + 'static,
    {
        self.unknown = Some(Arc::new(move |path, requests, responses| {
            Box::pin(handler(path, requests, responses))
        }));
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

    /// Adds a stats handler, told of every call and connection; several may be added. See
    /// [`crate::stats`].
    pub fn stats_handler(mut self, handler: impl crate::stats::Handler) -> Self {
        self.stats.push(handler);
        self
    }

    /// The largest request message accepted; larger ones fail with `RESOURCE_EXHAUSTED`.
    /// Default: 4 MiB.
    pub fn max_recv_message_size(mut self, limit: usize) -> Self {
        self.config.max_recv = limit;
        self
    }

    /// The largest response message sent; larger ones fail the call with
    /// `RESOURCE_EXHAUSTED`. Default: 4 MiB ([`DEFAULT_MAX_SEND_MESSAGE_SIZE`](super::DEFAULT_MAX_SEND_MESSAGE_SIZE),
    /// which says why it is not gRPC-Go's `i32::MAX`).
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
    /// Default: 100 ([`DEFAULT_MAX_CONCURRENT_STREAMS`](super::DEFAULT_MAX_CONCURRENT_STREAMS)).
    pub fn max_concurrent_streams(mut self, limit: u32) -> Self {
        self.config.max_concurrent_streams = Some(limit);
        self
    }

    /// The largest header list (decoded) accepted on a request (HTTP/2
    /// `SETTINGS_MAX_HEADER_LIST_SIZE`, gRPC-Go's `MaxHeaderListSize`). Default: 64 KiB
    /// ([`DEFAULT_MAX_HEADER_LIST_SIZE`](super::DEFAULT_MAX_HEADER_LIST_SIZE)).
    pub fn max_header_list_size(mut self, size: u32) -> Self {
        self.config.http2.max_header_list_size = size;
        self
    }

    /// The server-wide budget for large messages in flight (gRPC C-core's resource quota,
    /// for the memory peers control). A request message over 64 KiB reserves its size when
    /// its length prefix arrives and gives it back when complete; a response message over
    /// 64 KiB reserves its encoded size until the next message is queued or the call ends
    /// (a peer that does not read keeps it). When the budget is spent, such messages fail
    /// their call with `RESOURCE_EXHAUSTED` while the calls holding reservations go on. It
    /// bounds what peers sending large messages slowly (or never finishing them), or not
    /// reading large responses, can make the server hold. Default: 32 MiB
    /// ([`DEFAULT_MESSAGE_MEMORY_LIMIT`](super::DEFAULT_MESSAGE_MEMORY_LIMIT)); raise it
    /// for many concurrent large messages.
    pub fn message_memory_limit(mut self, bytes: usize) -> Self {
        self.config.message_memory = crate::quota::MemoryQuota::new(bytes);
        self
    }

    /// HTTP/2 flow-control window of each stream, fixed. Default: 2 MiB, grown to the
    /// link's bandwidth-delay product (up to 16 MiB) as data arrives, as gRPC-Go's windows
    /// grow; setting this or
    /// [`initial_connection_window_size`](Self::initial_connection_window_size) turns that
    /// growth off.
    pub fn initial_stream_window_size(mut self, size: u32) -> Self {
        self.config.http2.initial_stream_window_size = size;
        self.config.http2.dynamic_window = false;
        self
    }

    /// HTTP/2 flow-control window of each connection, fixed. Default: 8 MiB, grown with the
    /// streams' window (see [`initial_stream_window_size`](Self::initial_stream_window_size));
    /// setting this turns that growth off.
    pub fn initial_connection_window_size(mut self, size: u32) -> Self {
        self.config.http2.initial_connection_window_size = size;
        self.config.http2.dynamic_window = false;
        self
    }

    /// How long a new connection may take to complete its handshakes (TLS, then HTTP/2)
    /// before it is closed. Default: 120 s (gRPC-Go's `ConnectionTimeout`).
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.config.connection_timeout = timeout;
        self
    }

    /// How long a stream may go without progress where it must make some, before its call
    /// ends: a response message waiting for flow-control window of which nothing goes out
    /// (the stream is reset with `CANCEL`), or a request the handler waits for of which
    /// nothing arrives (the call ends `CANCELLED`): the one request of a unary or
    /// server-streaming call, or the rest of a message begun. A stream quiet between
    /// messages is not stalled. A connection whose socket takes no bytes for as long while
    /// the server has some to write is closed (the peer reads nothing at all, and h2's
    /// buffers would hold what it was sent). Default: 60 s
    /// ([`DEFAULT_STREAM_PROGRESS_TIMEOUT`](super::DEFAULT_STREAM_PROGRESS_TIMEOUT));
    /// `None` waits forever (gRPC-Go's behaviour).
    ///
    /// It bounds how long a peer that stops reading, or sends headers and nothing after,
    /// can hold a call and its buffers.
    pub fn stream_progress_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.stream_progress_timeout = timeout;
        self
    }

    /// The most connections the server serves at once, over all its listeners: a connection
    /// accepted past it is closed at once (gRPC C-core's `max_incoming_connections`), and a
    /// warning is logged when the limit is first reached. Default: no limit.
    pub fn max_connections(mut self, limit: usize) -> Self {
        self.config.max_connections = Some(limit);
        self
    }

    /// Connection management: idle and age limits, keepalive pings. See
    /// [`ServerParameters`](crate::keepalive::ServerParameters) (gRPC-Go's
    /// `grpc.KeepaliveParams`).
    pub fn keepalive(mut self, keepalive: crate::keepalive::ServerParameters) -> Self {
        self.config.keepalive = keepalive;
        self
    }

    /// How often clients may ping (gRPC-Go's `grpc.KeepaliveEnforcementPolicy`); see
    /// [`EnforcementPolicy`](crate::keepalive::EnforcementPolicy). Default: every 5
    /// minutes, only while calls are in flight.
    pub fn keepalive_enforcement_policy(
        mut self,
        policy: crate::keepalive::EnforcementPolicy,
    ) -> Self {
        self.config.enforcement = policy;
        self
    }

    /// How connections are secured (gRPC-Go's `grpc.Creds`). Default: plaintext
    /// ([`ServerCredentials::insecure`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use grpc_runtime::credentials::ServerCredentials;
    /// use grpc_runtime::credentials::tls::{Identity, ServerTlsConfig};
    /// use grpc_runtime::server::Server;
    ///
    /// let identity = Identity::from_pem_files("server.pem", "server.key")?;
    /// let server = Server::builder()
    ///     .credentials(ServerCredentials::tls(ServerTlsConfig::new(identity))?)
    ///     .build();
    /// # let _ = server;
    /// # Ok::<(), grpc_runtime::Error>(())
    /// ```
    pub fn credentials(mut self, credentials: ServerCredentials) -> Self {
        self.config.credentials = credentials;
        self
    }

    /// Builds the server; it serves once given a listener.
    pub fn build(self) -> Server {
        Server {
            shared: Arc::new(Shared {
                services: super::routing::Services::new(self.services),
                unknown: self.unknown,
                interceptors: Chain::new(self.interceptors, self.arounds),
                stats: self.stats.build(),
                channelz: crate::channelz::internal::register_server(""),
                config: self.config,
                connections: std::sync::atomic::AtomicUsize::new(0),
            }),
            control: Arc::new(Control {
                mode: watch::Sender::new(Mode::Serving),
                serving: watch::Sender::new(0),
            }),
        }
    }
}
