//! [`Request`] and [`Response`]: a message with its metadata and per-call options.

use std::sync::Arc;
use std::time::Duration;

use crate::cancel::Cancellation;
use futures_core::Stream;
use tokio::time::Instant;

use crate::compression::CompressionEncoding;
use crate::credentials::CallCredentials;
use crate::metadata::MetadataMap;
use crate::peer::Peer;
use crate::service::MethodDescriptor;

/// A request: a message (or a stream of them) with metadata and per-call options.
///
/// On the client, set the call's metadata, timeout or deadline and compression here. On the
/// server, a handler reads the metadata, the deadline, the [`Peer`], the method, and can
/// watch the call's [`cancellation`](Request::cancellation).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use grpc_runtime::{CompressionEncoding, Request};
///
/// let mut request = Request::new("payload");
/// request.metadata_mut().insert("x-request-id", "7").unwrap();
/// request.set_timeout(Duration::from_millis(250));
/// request.set_send_compressed(CompressionEncoding::Gzip);
/// assert_eq!(*request.get_ref(), "payload");
/// ```
#[derive(Debug)]
pub struct Request<T> {
    pub(crate) metadata: MetadataMap,
    message: T,
    pub(crate) extensions: http::Extensions,
    pub(crate) timeout: Option<Duration>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) compression: Option<CompressionEncoding>,
    pub(crate) max_recv_message_size: Option<usize>,
    pub(crate) max_send_message_size: Option<usize>,
    pub(crate) peer: Option<Arc<Peer>>,
    pub(crate) method: Option<&'static MethodDescriptor>,
    pub(crate) cancellation: Option<Cancellation>,
    pub(crate) call_credentials: Option<Arc<dyn CallCredentials>>,
    pub(crate) wait_for_ready: Option<bool>,
}

impl<T> Request<T> {
    /// Wraps `message` with empty metadata and no per-call options.
    pub fn new(message: T) -> Request<T> {
        Request {
            metadata: MetadataMap::new(),
            message,
            extensions: http::Extensions::new(),
            timeout: None,
            deadline: None,
            compression: None,
            max_recv_message_size: None,
            max_send_message_size: None,
            peer: None,
            method: None,
            cancellation: None,
            call_credentials: None,
            wait_for_ready: None,
        }
    }

    pub(crate) fn from_parts(
        metadata: MetadataMap,
        extensions: http::Extensions,
        message: T,
    ) -> Request<T> {
        let mut request = Request::new(message);
        request.metadata = metadata;
        request.extensions = extensions;
        request
    }

    /// The message.
    pub fn get_ref(&self) -> &T {
        &self.message
    }

    /// The message, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.message
    }

    /// Takes the message out.
    pub fn into_inner(self) -> T {
        self.message
    }

    /// The request metadata (headers).
    pub fn metadata(&self) -> &MetadataMap {
        &self.metadata
    }

    /// The request metadata, mutably.
    pub fn metadata_mut(&mut self) -> &mut MetadataMap {
        &mut self.metadata
    }

    /// Typed values attached by interceptors or the runtime.
    pub fn extensions(&self) -> &http::Extensions {
        &self.extensions
    }

    /// Typed values, mutably.
    pub fn extensions_mut(&mut self) -> &mut http::Extensions {
        &mut self.extensions
    }

    /// Client: sets the call's timeout, sent as `grpc-timeout` (what is left of it when the
    /// request goes out) and enforced locally. Overrides the client's default.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = Some(timeout);
    }

    /// Client: the timeout set with [`set_timeout`](Request::set_timeout).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Client: sets the instant the call must end by. With a timeout as well, the earlier
    /// of the two wins.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = Some(deadline);
    }

    /// When the call's deadline passes: on the server, from the client's `grpc-timeout`; on
    /// the client, the one set with [`set_deadline`](Request::set_deadline).
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Client: makes this outgoing call a part of the server call `incoming`: it gets the
    /// incoming call's deadline (what is left of it) and is cancelled when the incoming call
    /// ends (gRPC-Go's context propagation).
    ///
    /// # Examples
    ///
    /// ```
    /// # use grpc_runtime::Request;
    /// fn downstream<T>(incoming: &Request<T>) -> Request<&'static str> {
    ///     Request::new("lookup").propagate(incoming)
    /// }
    /// ```
    #[must_use]
    pub fn propagate<U>(mut self, incoming: &Request<U>) -> Request<T> {
        if let Some(deadline) = incoming.deadline {
            self.deadline = Some(self.deadline.map_or(deadline, |d| d.min(deadline)));
        }
        if let Some(token) = &incoming.cancellation {
            self.cancellation = Some(token.clone());
        }
        self
    }

    /// Client: cancels the call (`CANCELLED`, and the stream is reset) when `cancellation`
    /// fires (a [`CancellationToken`](crate::CancellationToken) converts into one): gRPC-Go's
    /// cancellable context, for ending a call from elsewhere.
    pub fn set_cancellation(&mut self, cancellation: impl Into<Cancellation>) {
        self.cancellation = Some(cancellation.into());
    }

    /// Client: whether this call waits for a READY connection (until its deadline) when the
    /// channel is in TRANSIENT_FAILURE, instead of failing at once (gRPC-Go's
    /// `grpc.WaitForReady`). Default: the channel's (fail fast).
    pub fn set_wait_for_ready(&mut self, wait: bool) {
        self.wait_for_ready = Some(wait);
    }

    /// Client: adds `credentials` to this call, after the channel's (gRPC-Go's
    /// `grpc.PerRPCCredentials` call option).
    pub fn set_call_credentials(&mut self, credentials: impl CallCredentials) {
        self.call_credentials = Some(Arc::new(credentials));
    }

    /// Client: compresses this call's messages with `encoding`.
    pub fn set_send_compressed(&mut self, encoding: CompressionEncoding) {
        self.compression = Some(encoding);
    }

    /// Client: the largest response message this call accepts (`RESOURCE_EXHAUSTED` beyond).
    /// Overrides the client's and the channel's limit.
    pub fn set_max_recv_message_size(&mut self, limit: usize) {
        self.max_recv_message_size = Some(limit);
    }

    /// Client: the largest request message this call sends. Overrides the client's and the
    /// channel's limit.
    pub fn set_max_send_message_size(&mut self, limit: usize) {
        self.max_send_message_size = Some(limit);
    }

    /// Server: the other end of the call's connection.
    pub fn peer(&self) -> Option<&Peer> {
        self.peer.as_deref()
    }

    /// Server: the method called (`None` for calls served by an unknown-service handler).
    pub fn method(&self) -> Option<&'static MethodDescriptor> {
        self.method
    }

    /// Server: the call's [`Cancellation`], signalled when the call ends, whichever way: the
    /// client cancels or disconnects, the deadline passes, or the handler returns. Work the
    /// handler spawns can watch it and stop. (The handler's own future is simply dropped in
    /// the first cases.) On the client, the one set with
    /// [`set_cancellation`](Request::set_cancellation) or [propagated](Request::propagate).
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn f(request: grpc_runtime::Request<()>) {
    /// let cancelled = request.cancellation().cloned().unwrap_or_default();
    /// tokio::spawn(async move {
    ///     tokio::select! {
    ///         () = cancelled.cancelled() => { /* the call is over: stop */ }
    ///         () = std::future::pending::<()>() => {}
    ///     }
    /// });
    /// # }
    /// ```
    pub fn cancellation(&self) -> Option<&Cancellation> {
        self.cancellation.as_ref()
    }

    /// Replaces the message with `f(message)`, keeping metadata and options.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Request<U> {
        Request {
            metadata: self.metadata,
            message: f(self.message),
            extensions: self.extensions,
            timeout: self.timeout,
            deadline: self.deadline,
            compression: self.compression,
            max_recv_message_size: self.max_recv_message_size,
            max_send_message_size: self.max_send_message_size,
            peer: self.peer,
            method: self.method,
            cancellation: self.cancellation,
            call_credentials: self.call_credentials,
            wait_for_ready: self.wait_for_ready,
        }
    }

    /// Splits off the message, keeping the rest as a `Request<()>`.
    pub(crate) fn split(self) -> (Request<()>, T) {
        let mut message = None;
        let head = self.map(|m| message = Some(m));
        (head, message.expect("set by map"))
    }
}

/// Converts a message, or a [`Request`] around one, into a [`Request`].
///
/// Generated client methods take `impl IntoRequest<T>`, so both `client.say_hello(msg)` and
/// `client.say_hello(Request::new(msg))` work.
pub trait IntoRequest<T> {
    /// Wraps `self` in a request, or returns it if it is one already.
    fn into_request(self) -> Request<T>;
}

impl<T> IntoRequest<T> for T {
    fn into_request(self) -> Request<T> {
        Request::new(self)
    }
}

impl<T> IntoRequest<T> for Request<T> {
    fn into_request(self) -> Request<T> {
        self
    }
}

/// Converts a stream of messages, or a [`Request`] around one, into a streaming request.
///
/// Generated client-streaming and bidi methods take `impl IntoStreamingRequest<Message = M>`,
/// so both `client.record_route(stream)` and `client.record_route(Request::new(stream))` work.
pub trait IntoStreamingRequest {
    /// The messages sent.
    type Message;
    /// The stream carrying them.
    type Stream: Stream<Item = Self::Message> + Send + 'static;

    /// Wraps `self` in a request, or returns it if it is one already.
    fn into_streaming_request(self) -> Request<Self::Stream>;
}

impl<S> IntoStreamingRequest for S
where
    S: Stream + Send + 'static,
{
    type Message = S::Item;
    type Stream = S;

    fn into_streaming_request(self) -> Request<S> {
        Request::new(self)
    }
}

impl<S> IntoStreamingRequest for Request<S>
where
    S: Stream + Send + 'static,
{
    type Message = S::Item;
    type Stream = S;

    fn into_streaming_request(self) -> Request<S> {
        self
    }
}

/// A response: a message (or a stream of them) with header and trailer metadata.
///
/// # Examples
///
/// ```
/// use grpc_runtime::Response;
///
/// let mut response = Response::new(42u32);
/// response.metadata_mut().insert("x-served-by", "a").unwrap();
/// response.trailers_mut().insert("x-cost", "3").unwrap();
/// assert_eq!(response.into_inner(), 42);
/// ```
#[derive(Debug)]
pub struct Response<T> {
    metadata: MetadataMap,
    message: T,
    trailers: MetadataMap,
    extensions: http::Extensions,
    compression: Option<CompressionEncoding>,
}

impl<T> Response<T> {
    /// Wraps `message` with empty metadata.
    pub fn new(message: T) -> Response<T> {
        Response {
            metadata: MetadataMap::new(),
            message,
            trailers: MetadataMap::new(),
            extensions: http::Extensions::new(),
            compression: None,
        }
    }

    pub(crate) fn from_parts(metadata: MetadataMap, message: T, trailers: MetadataMap) -> Self {
        Response {
            metadata,
            message,
            trailers,
            extensions: http::Extensions::new(),
            compression: None,
        }
    }

    /// Server: compresses this response with `encoding`, overriding the server's setting,
    /// if the client accepts it (otherwise it goes uncompressed).
    pub fn set_send_compressed(&mut self, encoding: CompressionEncoding) {
        self.compression = Some(encoding);
    }

    pub(crate) fn send_compressed(&self) -> Option<CompressionEncoding> {
        self.compression
    }

    /// The message.
    pub fn get_ref(&self) -> &T {
        &self.message
    }

    /// The message, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.message
    }

    /// Takes the message out.
    pub fn into_inner(self) -> T {
        self.message
    }

    /// The response header metadata.
    pub fn metadata(&self) -> &MetadataMap {
        &self.metadata
    }

    /// The response header metadata, mutably (server: set before returning).
    pub fn metadata_mut(&mut self) -> &mut MetadataMap {
        &mut self.metadata
    }

    /// The trailing metadata. On the client of a streaming response these arrive with the end
    /// of the stream: read them from [`Streaming::trailers`](crate::Streaming::trailers).
    pub fn trailers(&self) -> &MetadataMap {
        &self.trailers
    }

    /// The trailing metadata, mutably (server: sent after the message).
    pub fn trailers_mut(&mut self) -> &mut MetadataMap {
        &mut self.trailers
    }

    /// Typed values attached by the runtime or interceptors.
    pub fn extensions(&self) -> &http::Extensions {
        &self.extensions
    }

    /// Typed values, mutably.
    pub fn extensions_mut(&mut self) -> &mut http::Extensions {
        &mut self.extensions
    }

    /// Replaces the message with `f(message)`.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Response<U> {
        Response {
            metadata: self.metadata,
            message: f(self.message),
            trailers: self.trailers,
            extensions: self.extensions,
            compression: self.compression,
        }
    }

    pub(crate) fn into_parts(self) -> (MetadataMap, T, MetadataMap) {
        (self.metadata, self.message, self.trailers)
    }

    pub(crate) fn into_all_parts(self) -> (MetadataMap, T, MetadataMap, http::Extensions) {
        (self.metadata, self.message, self.trailers, self.extensions)
    }
}
