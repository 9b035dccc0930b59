//! Stats handlers: the events of every call and connection, on the client and the server
//! (gRPC-Go's `stats` package).
//!
//! A [`Handler`] is told when a call begins ([`Handler::tag_rpc`], which makes the call's own
//! state), then of each event of the call in order ([`Handler::handle_rpc`]): headers out and
//! in, each message out and in with its sizes, trailers, and the end with the status. It is
//! also told when connections begin and end ([`Handler::handle_conn`]). Metrics, tracing,
//! binary logging and channelz are built on this seam; so can an application's own.
//!
//! On a client, a call is seen once per *attempt*, as gRPC-Go does: the first, each retry or
//! hedge of a service config's policy, each transparent retry ([`RpcInfo::attempt`]). An
//! attempt's [`RpcEvent::End`] carries the attempt's status; an attempt a hedge or a retry
//! made useless ends `CANCELLED`.
//!
//! The order of one call's events, on either side:
//!
//! | event | client (per attempt) | server |
//! | --- | --- | --- |
//! | [`Begin`](RpcEvent::Begin) | the attempt's stream is about to open | the request headers were accepted and routed |
//! | [`OutHeader`](RpcEvent::OutHeader) | request headers sent | response headers sent (not for a trailers-only answer) |
//! | [`InHeader`](RpcEvent::InHeader) | response headers received (not for a trailers-only answer) | the request headers |
//! | [`OutPayload`](RpcEvent::OutPayload) | each request message handed to HTTP/2 | each response message handed to HTTP/2 |
//! | [`InPayload`](RpcEvent::InPayload) | each response message received | each request message received |
//! | [`HalfClose`](RpcEvent::HalfClose) | the requests' end sent | the requests' end read |
//! | [`OutTrailer`](RpcEvent::OutTrailer) | | the trailers (status) sent |
//! | [`InTrailer`](RpcEvent::InTrailer) | the trailers received (or a trailers-only answer) | |
//! | [`End`](RpcEvent::End) | once, last | once, last |
//!
//! Events of one call may come from more than one task (a client's requests are sent by one,
//! its responses read by another), never at once for the same direction; a handler's
//! per-call state is `Sync` and uses atomics or a lock where it counts.
//!
//! With no handler set, none of this runs: a call carries one `None`.
//!
//! # Examples
//!
//! Counts the bytes each call sends and logs them at its end:
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use grpc_runtime::stats::{Handler, RpcEvent, RpcInfo};
//!
//! struct SentBytes;
//!
//! impl Handler for SentBytes {
//!     type Call = (String, AtomicUsize);
//!
//!     fn tag_rpc(&self, info: &RpcInfo<'_>) -> Self::Call {
//!         (info.method().to_owned(), AtomicUsize::new(0))
//!     }
//!
//!     fn handle_rpc(&self, (method, sent): &Self::Call, event: &RpcEvent<'_>) {
//!         match event {
//!             RpcEvent::OutPayload(payload) => {
//!                 sent.fetch_add(payload.wire_len(), Ordering::Relaxed);
//!             }
//!             RpcEvent::End { status, .. } => {
//!                 let sent = sent.load(Ordering::Relaxed);
//!                 println!("{method}: {sent} bytes sent, {:?}", status.code());
//!             }
//!             _ => {}
//!         }
//!     }
//! }
//!
//! let channel = grpc_runtime::client::Channel::builder("http://127.0.0.1:50051")
//!     .stats_handler(SentBytes)
//!     .build();
//! let server = grpc_runtime::server::Server::builder().stats_handler(SentBytes);
//! # let _ = (channel, server);
//! ```

#[cfg(feature = "opentelemetry")]
pub mod opentelemetry;

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::compression::{self, CompressionEncoding};
use crate::interceptor::AttemptInfo;
use crate::peer::Peer;
use crate::status::Status;

/// Told of every call and connection of a channel or a server. See the [module docs](self).
pub trait Handler: Send + Sync + 'static {
    /// The state a call carries from its beginning to its end (`()` if none is needed).
    type Call: Send + Sync + 'static;

    /// A call (on a client, an attempt) begins: makes its state. Runs before any of the
    /// call's events, including [`RpcEvent::Begin`].
    fn tag_rpc(&self, info: &RpcInfo<'_>) -> Self::Call;

    /// One event of a call, with the state [`tag_rpc`](Handler::tag_rpc) made for it.
    fn handle_rpc(&self, call: &Self::Call, event: &RpcEvent<'_>);

    /// A connection began or ended.
    fn handle_conn(&self, event: &ConnEvent<'_>) {
        let _ = event;
    }
}

/// What a handler is told of a call as it begins.
#[derive(Debug, Clone, Copy)]
pub struct RpcInfo<'a> {
    pub(crate) method: &'a str,
    pub(crate) client: bool,
    pub(crate) registered: bool,
    pub(crate) target: Option<&'a str>,
    pub(crate) attempt: Option<AttemptInfo>,
    pub(crate) peer: Option<&'a Peer>,
    pub(crate) authority: Option<&'a str>,
}

impl<'a> RpcInfo<'a> {
    /// The method path (`"/helloworld.Greeter/SayHello"`).
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// Whether this side is the client.
    pub fn is_client(&self) -> bool {
        self.client
    }

    /// Whether the method is one this side declared: on a server, a method of a service it
    /// hosts; on a client, a call made through generated code (a method descriptor). Metrics
    /// record other methods as `"other"` (gRFC A66), so a peer cannot fill them with names.
    pub fn is_registered_method(&self) -> bool {
        self.registered
    }

    /// Client: the channel's target, as given to
    /// [`Channel::builder`](crate::client::Channel::builder).
    pub fn target(&self) -> Option<&'a str> {
        self.target
    }

    /// Client: which attempt of the call this is.
    pub fn attempt(&self) -> Option<AttemptInfo> {
        self.attempt
    }

    /// Server: the other end of the connection.
    pub fn peer(&self) -> Option<&'a Peer> {
        self.peer
    }

    /// The request's `:authority`: the host the client addressed.
    pub fn authority(&self) -> Option<&'a str> {
        self.authority
    }
}

/// One event of a call; see the [module docs](self) for their order.
#[derive(Debug)]
#[non_exhaustive]
pub enum RpcEvent<'a> {
    /// The call (client: the attempt) began.
    #[non_exhaustive]
    Begin,
    /// Headers went out: a client's request headers (its metadata with the call's own
    /// `te`, `content-type`, `grpc-timeout`...), a server's response headers.
    #[non_exhaustive]
    OutHeader {
        /// The headers, without HTTP/2 pseudo-headers.
        headers: &'a http::HeaderMap,
        /// Client: the server the attempt went to (its address, when the connection has
        /// one).
        peer: Option<&'a Peer>,
    },
    /// Headers came in: a server's request headers, a client's response headers.
    #[non_exhaustive]
    InHeader {
        /// The headers, without HTTP/2 pseudo-headers.
        headers: &'a http::HeaderMap,
    },
    /// A message was handed to HTTP/2 to send.
    OutPayload(Payload<'a>),
    /// A message was received whole.
    InPayload(Payload<'a>),
    /// The client's requests ended (END_STREAM): on a client when it sent the end, on a
    /// server when it read it. Not reported for a call that ends before its requests do.
    #[non_exhaustive]
    HalfClose,
    /// A server's trailers went out (the call's status with its trailing metadata).
    #[non_exhaustive]
    OutTrailer {
        /// The trailers.
        trailers: &'a http::HeaderMap,
    },
    /// A client received the trailers (or a trailers-only answer).
    #[non_exhaustive]
    InTrailer {
        /// The trailers.
        trailers: &'a http::HeaderMap,
    },
    /// The call (client: the attempt) ended. Always the last event, exactly once.
    #[non_exhaustive]
    End {
        /// How it ended (OK included).
        status: &'a Status,
        /// From [`RpcEvent::Begin`] to now.
        duration: Duration,
    },
}

/// One message, sent or received: its bytes and sizes.
#[derive(Clone, Copy)]
pub struct Payload<'a> {
    /// The message as it is at hand: serialized, compressed with `compression` if that is
    /// set.
    bytes: &'a [u8],
    /// Set when `bytes` are compressed (a sent message is seen after compression).
    compression: Option<CompressionEncoding>,
    /// The length on the wire after the 5-byte prefix (compressed, if it was).
    compressed_len: usize,
}

impl fmt::Debug for Payload<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Payload")
            .field("compressed_len", &self.compressed_len)
            .field("compression", &self.compression)
            .finish_non_exhaustive()
    }
}

impl<'a> Payload<'a> {
    /// A sent message as it goes out: the bytes after the 5-byte prefix, compressed with
    /// `compression` if set.
    pub(crate) fn sent(bytes: &'a [u8], compression: Option<CompressionEncoding>) -> Self {
        Payload {
            bytes,
            compression,
            compressed_len: bytes.len(),
        }
    }

    /// A received message: its bytes (decompressed) and its length on the wire.
    pub(crate) fn received(bytes: &'a [u8], compressed_len: usize) -> Self {
        Payload {
            bytes,
            compression: None,
            compressed_len,
        }
    }

    /// The message's length on the wire, without the 5-byte prefix: compressed if it was
    /// (gRFC A66's "compressed message size").
    pub fn compressed_len(&self) -> usize {
        self.compressed_len
    }

    /// The message's length on the wire with its 5-byte prefix.
    pub fn wire_len(&self) -> usize {
        self.compressed_len + crate::codec::framing::HEADER_LEN
    }

    /// The serialized message's length, uncompressed. A sent message that was compressed
    /// is decompressed to count it (only for whoever asks).
    pub fn uncompressed_len(&self) -> usize {
        match self.compression {
            None => self.bytes.len(),
            Some(_) => self.message().map_or(0, |message| message.len()),
        }
    }

    /// Whether the message travels compressed.
    pub fn is_compressed(&self) -> bool {
        self.compression.is_some() || self.compressed_len != self.bytes.len()
    }

    /// The serialized message, uncompressed. A sent message that was compressed is
    /// decompressed here (only for whoever asks).
    ///
    /// # Errors
    ///
    /// `INTERNAL` if a sent message's compressed bytes do not decompress (they were made
    /// by this process, so only a bug does this).
    pub fn message(&self) -> Result<Cow<'a, [u8]>, Status> {
        match self.compression {
            None => Ok(Cow::Borrowed(self.bytes)),
            Some(encoding) => compression::decompress(encoding, self.bytes, usize::MAX)
                .map(|bytes| Cow::Owned(bytes.to_vec())),
        }
    }
}

/// A connection began or ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnEvent<'a> {
    /// A connection is up (client: HTTP/2 handshake done; server: accepted, handshake
    /// done).
    #[non_exhaustive]
    Begin {
        /// Whether this side is the client.
        client: bool,
        /// The other end.
        peer: &'a Peer,
    },
    /// A connection ended.
    #[non_exhaustive]
    End {
        /// Whether this side is the client.
        client: bool,
        /// The other end.
        peer: &'a Peer,
    },
}

/// A [`Handler`] with its call state's type erased, so handlers of any kind share a list.
trait DynHandler: Send + Sync {
    fn tag(&self, info: &RpcInfo<'_>) -> Box<dyn Any + Send + Sync>;
    fn handle(&self, call: &(dyn Any + Send + Sync), event: &RpcEvent<'_>);
    fn conn(&self, event: &ConnEvent<'_>);
}

impl<H: Handler> DynHandler for H {
    fn tag(&self, info: &RpcInfo<'_>) -> Box<dyn Any + Send + Sync> {
        // A zero-sized state (most handlers') boxes without allocating.
        Box::new(self.tag_rpc(info))
    }

    fn handle(&self, call: &(dyn Any + Send + Sync), event: &RpcEvent<'_>) {
        if let Some(call) = call.downcast_ref::<H::Call>() {
            self.handle_rpc(call, event);
        }
    }

    fn conn(&self, event: &ConnEvent<'_>) {
        self.handle_conn(event);
    }
}

/// The handlers of a channel or a server: empty (the usual case) costs one check per call.
#[derive(Clone, Default)]
pub(crate) struct Handlers(Option<Arc<[Arc<dyn DynHandler>]>>);

impl fmt::Debug for Handlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handlers({})", self.0.as_ref().map_or(0, |h| h.len()))
    }
}

/// Handlers being collected by a builder.
#[derive(Default)]
pub(crate) struct HandlerList(Vec<Arc<dyn DynHandler>>);

impl fmt::Debug for HandlerList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HandlerList({})", self.0.len())
    }
}

impl HandlerList {
    pub(crate) fn push(&mut self, handler: impl Handler) {
        self.0.push(Arc::new(handler));
    }

    pub(crate) fn build(self) -> Handlers {
        if self.0.is_empty() {
            Handlers(None)
        } else {
            Handlers(Some(self.0.into()))
        }
    }
}

impl Handlers {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Begins a call: `None` without handlers, so the call pays nothing more.
    pub(crate) fn begin(&self, info: &RpcInfo<'_>) -> Option<Arc<CallStats>> {
        let handlers = self.0.as_ref()?;
        let states = handlers.iter().map(|h| h.tag(info)).collect();
        let stats = CallStats {
            handlers: Arc::clone(handlers),
            states,
            began: Instant::now(),
            ended: AtomicBool::new(false),
        };
        stats.emit(&RpcEvent::Begin);
        Some(Arc::new(stats))
    }

    pub(crate) fn conn(&self, event: &ConnEvent<'_>) {
        if let Some(handlers) = &self.0 {
            for handler in handlers.iter() {
                handler.conn(event);
            }
        }
    }

    /// A connection began: `ConnEvent::Begin` now, `ConnEvent::End` when the guard drops
    /// (however the connection's task ends). `None` without handlers.
    pub(crate) fn conn_begin(&self, client: bool, peer: &Arc<Peer>) -> Option<ConnGuard> {
        self.0.as_ref()?;
        self.conn(&ConnEvent::Begin { client, peer });
        Some(ConnGuard {
            handlers: self.clone(),
            peer: Arc::clone(peer),
            client,
        })
    }
}

/// Reports a connection's end to the handlers when dropped.
#[derive(Debug)]
pub(crate) struct ConnGuard {
    handlers: Handlers,
    peer: Arc<Peer>,
    client: bool,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.handlers.conn(&ConnEvent::End {
            client: self.client,
            peer: &self.peer,
        });
    }
}

/// One call's handlers and their states, shared by the tasks that see its events.
pub(crate) struct CallStats {
    handlers: Arc<[Arc<dyn DynHandler>]>,
    states: Box<[Box<dyn Any + Send + Sync>]>,
    began: Instant,
    ended: AtomicBool,
}

impl fmt::Debug for CallStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallStats")
            .field("handlers", &self.handlers.len())
            .field("ended", &self.ended.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl CallStats {
    pub(crate) fn emit(&self, event: &RpcEvent<'_>) {
        if self.ended.load(Ordering::Acquire) {
            return;
        }
        for (handler, state) in self.handlers.iter().zip(self.states.iter()) {
            handler.handle(&**state, event);
        }
    }

    /// Ends the call with `status`; later events (and a second end) are ignored.
    pub(crate) fn end(&self, status: &Status) {
        if self.ended.swap(true, Ordering::AcqRel) {
            return;
        }
        let duration = self.began.elapsed();
        let end = RpcEvent::End { status, duration };
        for (handler, state) in self.handlers.iter().zip(self.states.iter()) {
            handler.handle(&**state, &end);
        }
    }

    pub(crate) fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// A sent frame (prefix and message): `OutPayload`.
    pub(crate) fn out_frame(&self, frame: &[u8], compression: Option<CompressionEncoding>) {
        let Some(body) = frame.get(crate::codec::framing::HEADER_LEN..) else {
            return;
        };
        let compression = compression.filter(|_| frame[0] == 1);
        self.emit(&RpcEvent::OutPayload(Payload::sent(body, compression)));
    }

    /// The requests ended: `HalfClose`.
    pub(crate) fn half_close(&self) {
        self.emit(&RpcEvent::HalfClose);
    }

    /// A received message: `InPayload`.
    pub(crate) fn in_message(&self, message: &[u8], compressed_len: usize) {
        self.emit(&RpcEvent::InPayload(Payload::received(
            message,
            compressed_len,
        )));
    }
}

impl Drop for CallStats {
    fn drop(&mut self) {
        if !self.is_ended() {
            self.end(&Status::cancelled("call dropped before it finished"));
        }
    }
}

/// The OK status, for ends that do not build one.
pub(crate) fn ok_status() -> &'static Status {
    static OK: std::sync::OnceLock<Status> = std::sync::OnceLock::new();
    OK.get_or_init(|| Status::ok(""))
}

/// The stats of one call, if any handler is set: `None` costs nothing.
pub(crate) type Stats = Option<Arc<CallStats>>;
