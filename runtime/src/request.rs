//! [`Request`] and [`Response`]: a message with its metadata and per-call options.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_core::Stream;

use crate::compression::CompressionEncoding;
use crate::metadata::MetadataMap;

/// A request: a message (or a stream of them) with metadata and per-call options.
///
/// On the client, set the call's metadata, timeout and compression here. On the server, a
/// handler reads the metadata, the deadline and the peer address.
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
    metadata: MetadataMap,
    message: T,
    extensions: http::Extensions,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    compression: Option<CompressionEncoding>,
    max_recv_message_size: Option<usize>,
    max_send_message_size: Option<usize>,
    remote_addr: Option<SocketAddr>,
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
            remote_addr: None,
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

    /// Client: sets the call's timeout, sent as `grpc-timeout` and enforced locally.
    /// Overrides the client's default.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = Some(timeout);
    }

    /// Client: the timeout set with [`set_timeout`](Request::set_timeout).
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
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

    /// Server: when the call's deadline (from the client's `grpc-timeout`) passes.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    pub(crate) fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    /// Server: the address of the client, for TCP connections.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote_addr
    }

    pub(crate) fn set_remote_addr(&mut self, addr: Option<SocketAddr>) {
        self.remote_addr = addr;
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
            remote_addr: self.remote_addr,
        }
    }

    pub(crate) fn into_parts(self) -> (RequestHead, T) {
        (
            RequestHead {
                metadata: self.metadata,
                extensions: self.extensions,
                timeout: self.timeout,
                compression: self.compression,
                max_recv_message_size: self.max_recv_message_size,
                max_send_message_size: self.max_send_message_size,
            },
            self.message,
        )
    }
}

/// The parts of a client request other than its message.
#[derive(Debug)]
pub(crate) struct RequestHead {
    pub(crate) metadata: MetadataMap,
    pub(crate) extensions: http::Extensions,
    pub(crate) timeout: Option<Duration>,
    pub(crate) compression: Option<CompressionEncoding>,
    pub(crate) max_recv_message_size: Option<usize>,
    pub(crate) max_send_message_size: Option<usize>,
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
}
