//! The sending half of a server call: headers, messages, trailers; and the typed
//! [`ResponseSender`] that streaming handlers get.

use std::fmt;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use h2::SendStream;
use h2::server::SendResponse;
use http::HeaderValue;

use tokio::sync::mpsc;

use crate::codec::Encoder;
use crate::codec::framing::{self, Kind};
use crate::compression::{AcceptSet, CompressionEncoding};
use crate::metadata::MetadataMap;
use crate::status::Status;
use crate::streaming::Streaming;
use crate::transport;

enum State {
    /// Nothing sent yet.
    Start(SendResponse<Bytes>),
    /// Headers sent; messages may follow.
    Open(SendStream<Bytes>),
    /// Trailers sent (or the stream is gone).
    Closed,
}

/// Sends one call's response. Shared (behind a mutex) by the runtime, which watches for a
/// client reset and sends the final status, and the handler's [`ResponseSender`].
pub(crate) struct Responder {
    state: State,
    headers: MetadataMap,
    trailers: MetadataMap,
    compression: Option<CompressionEncoding>,
    client_accepts: AcceptSet,
    max_send: usize,
    scratch: BytesMut,
    /// The part of the current message not yet handed to h2.
    pending: Bytes,
    /// A write is waiting for flow-control window: the writer's waker is registered with
    /// h2, so the reset watcher must not replace it.
    writing: bool,
    /// The request's content-type when it names a subtype (`application/grpc+proto`).
    content_type: Option<HeaderValue>,
    /// The server's message budget, and the reservation of the last large message: held
    /// until the next message is queued or the call ends, as h2 may still hold its bytes
    /// for a peer that does not read.
    quota: Option<Arc<crate::quota::MemoryQuota>>,
    reserved: Option<crate::quota::Reservation>,
}

pub(crate) type SharedResponder = Arc<Mutex<Responder>>;

pub(crate) fn lock(responder: &SharedResponder) -> MutexGuard<'_, Responder> {
    responder
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn closed_status(e: &h2::Error) -> Status {
    transport::request_status(e)
}

impl Responder {
    pub(crate) fn new(
        respond: SendResponse<Bytes>,
        client_accepts: AcceptSet,
        max_send: usize,
    ) -> Responder {
        Responder {
            state: State::Start(respond),
            headers: MetadataMap::new(),
            trailers: MetadataMap::new(),
            compression: None,
            client_accepts,
            max_send,
            scratch: BytesMut::new(),
            pending: Bytes::new(),
            writing: false,
            content_type: None,
            quota: None,
            reserved: None,
        }
    }

    /// Makes response messages over 64 KiB reserve their size from the server's budget.
    pub(crate) fn with_quota(mut self, quota: Arc<crate::quota::MemoryQuota>) -> Responder {
        self.quota = Some(quota);
        self
    }

    /// Chooses the response encoding, before the headers go out. An encoding the client
    /// did not list in `grpc-accept-encoding` is ignored: messages go uncompressed.
    pub(crate) fn set_compression(
        &mut self,
        encoding: Option<CompressionEncoding>,
    ) -> Result<(), Status> {
        if self.headers_sent() {
            return Err(Status::internal(
                "response compression must be chosen before the headers are sent",
            ));
        }
        self.compression = encoding.filter(|enc| self.client_accepts.contains(*enc));
        Ok(())
    }

    pub(crate) fn headers_sent(&self) -> bool {
        !matches!(self.state, State::Start(_))
    }

    fn base_response(&self) -> http::Response<()> {
        let mut response = http::Response::new(());
        let content_type = self
            .content_type
            .clone()
            .unwrap_or_else(|| HeaderValue::from_static("application/grpc"));
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, content_type);
        response
    }

    /// Answers with `content_type` (the request's `application/grpc+<subtype>`, echoed as
    /// gRPC-Go does) instead of `application/grpc`.
    pub(crate) fn set_content_type(&mut self, content_type: HeaderValue) {
        self.content_type = Some(content_type);
    }

    /// Sends the response headers if they have not been sent.
    pub(crate) fn send_headers(&mut self) -> Result<(), Status> {
        let State::Start(_) = self.state else {
            return match self.state {
                State::Open(_) => Ok(()),
                _ => Err(Status::internal("the call has already ended")),
            };
        };
        let mut response = self.base_response();
        let headers = response.headers_mut();
        if let Some(enc) = self.compression {
            headers.insert(crate::headers::GRPC_ENCODING, enc.header_value());
        }
        std::mem::take(&mut self.headers).write_to(headers);
        let State::Start(mut respond) = std::mem::replace(&mut self.state, State::Closed) else {
            unreachable!()
        };
        match respond.send_response(response, false) {
            Ok(stream) => {
                self.state = State::Open(stream);
                Ok(())
            }
            Err(e) => Err(closed_status(&e)),
        }
    }

    /// Encodes `item` as the next frame to write (after the previous one is flushed),
    /// compressed if the call compresses and `compress` allows.
    pub(crate) fn queue<E: Encoder + ?Sized>(
        &mut self,
        encoder: &mut E,
        item: &E::Item,
        compress: bool,
    ) -> Result<(), Status> {
        debug_assert!(self.pending.is_empty());
        self.send_headers()?;
        self.reserved = None;
        let compression = self.compression.filter(|_| compress);
        let frame = framing::encode(
            encoder,
            item,
            compression,
            self.max_send,
            Kind::Response,
            &mut self.scratch,
        )?;
        if let Some(quota) = &self.quota
            && frame.len() > crate::quota::RESERVE_ABOVE
        {
            self.reserved = Some(crate::quota::Reservation::take(quota, frame.len())?);
        }
        self.pending = frame;
        Ok(())
    }

    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        if self.pending.is_empty() {
            return Poll::Ready(Ok(()));
        }
        let State::Open(stream) = &mut self.state else {
            self.pending = Bytes::new();
            return Poll::Ready(Err(Status::internal("the call has already ended")));
        };
        match transport::poll_send(stream, &mut self.pending, false, cx) {
            Poll::Pending => {
                self.writing = true;
                Poll::Pending
            }
            Poll::Ready(result) => {
                self.writing = false;
                if result.is_err() {
                    self.pending = Bytes::new();
                }
                Poll::Ready(result.map_err(|e| closed_status(&e)))
            }
        }
    }

    /// Ready with the reason when the client resets the stream.
    pub(crate) fn poll_reset(&mut self, cx: &mut Context<'_>) -> Poll<h2::Reason> {
        if self.writing {
            // The writer's registration wakes it on a reset; its write then fails.
            return Poll::Pending;
        }
        let polled = match &mut self.state {
            State::Start(respond) => respond.poll_reset(cx),
            State::Open(stream) => stream.poll_reset(cx),
            State::Closed => return Poll::Pending,
        };
        match polled {
            Poll::Ready(Ok(reason)) => Poll::Ready(reason),
            Poll::Ready(Err(_)) => Poll::Ready(h2::Reason::CANCEL),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Ends the call with `status`: trailers after the messages, or a trailers-only response
    /// if nothing was sent. `extra` trailers (the response's) are sent with it.
    ///
    /// Once the call's handles are dropped, h2 follows the status with RST_STREAM(NO_ERROR)
    /// if the client is still sending (an implicit reset, queued behind the trailers): what
    /// gRPC-Go's `writeStatus` sends, and RFC 9113 8.1's way to stop a request after a
    /// complete response. An explicit `send_reset` would not do: h2 drops the frames of a
    /// stream still queued when it is reset, the status among them.
    pub(crate) fn finish(&mut self, status: &Status, extra: Option<MetadataMap>) {
        // The status first, then its metadata, then the call's trailers (the spec's order).
        let mut trailers = http::HeaderMap::new();
        status.write_trailers(&mut trailers);
        self.append_trailers(&mut trailers, extra);
        self.send_trailers(trailers);
    }

    /// Ends the call with OK (without building a `Status`).
    pub(crate) fn finish_ok(&mut self, extra: Option<MetadataMap>) {
        let mut trailers = http::HeaderMap::new();
        trailers.insert(crate::headers::GRPC_STATUS, HeaderValue::from_static("0"));
        self.append_trailers(&mut trailers, extra);
        self.send_trailers(trailers);
    }

    fn append_trailers(&mut self, trailers: &mut http::HeaderMap, extra: Option<MetadataMap>) {
        std::mem::take(&mut self.trailers).write_to(trailers);
        if let Some(extra) = extra {
            extra.write_to(trailers);
        }
    }

    fn send_trailers(&mut self, trailers: http::HeaderMap) {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Start(mut respond) => {
                // Trailers-only: content-type, the status and trailers, then the header
                // metadata, each value kept (a key in both keeps both).
                let mut response = self.base_response();
                let headers = response.headers_mut();
                for (key, value) in &trailers {
                    headers.append(key.clone(), value.clone());
                }
                std::mem::take(&mut self.headers).write_to(headers);
                if let Err(e) = respond.send_response(response, true) {
                    tracing::debug!("failed to send trailers-only response: {e}");
                }
            }
            State::Open(mut stream) => {
                if let Err(e) = stream.send_trailers(trailers) {
                    tracing::debug!("failed to send trailers: {e}");
                }
            }
            State::Closed => {}
        }
    }

    /// Abandons the call: resets the stream if it is still open.
    pub(crate) fn reset(&mut self, reason: h2::Reason) {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Start(mut respond) => respond.send_reset(reason),
            State::Open(mut stream) => stream.send_reset(reason),
            State::Closed => {}
        }
    }

    pub(crate) fn add_headers(&mut self, metadata: MetadataMap) {
        self.headers.merge(metadata);
    }
}

/// Writes one message on a shared responder: waits for the previous write, queues the
/// message, then waits until flow control lets all of it out.
async fn write<E: Encoder + ?Sized>(
    responder: &SharedResponder,
    encoder: &mut E,
    item: &E::Item,
    compress: bool,
) -> Result<(), Status> {
    poll_fn(|cx| lock(responder).poll_flush(cx)).await?;
    lock(responder).queue(encoder, item, compress)?;
    poll_fn(|cx| lock(responder).poll_flush(cx)).await
}

/// Sends the responses of a server-streaming or bidi call.
///
/// Each [`send`](ResponseSender::send) waits for HTTP/2 flow control, so a slow client slows
/// the handler down rather than filling memory. Header metadata goes out with the first
/// message (or [`send_headers`](ResponseSender::send_headers)); trailer metadata goes out
/// with the status when the handler returns.
///
/// A unit test of a handler makes one with [`channel`](ResponseSender::channel).
///
/// # Examples
///
/// ```no_run
/// use grpc_runtime::{MetadataMap, ResponseSender, Status};
/// use protobuf::well_known_types::wrappers::UInt32Value;
///
/// async fn count(mut tx: ResponseSender<UInt32Value>) -> Result<(), Status> {
///     let mut trailers = MetadataMap::new();
///     trailers.insert("x-total", "3").unwrap();
///     tx.set_trailers(trailers);
///     for i in 0..3 {
///         let mut n = UInt32Value::new();
///         n.value = i;
///         tx.send(n).await?;
///     }
///     Ok(())
/// }
/// ```
pub struct ResponseSender<T> {
    inner: SenderInner<T>,
}

enum SenderInner<T> {
    H2 {
        responder: SharedResponder,
        encoder: Box<dyn Encoder<Item = T>>,
    },
    Channel {
        tx: mpsc::Sender<T>,
        headers_sent: bool,
    },
}

impl<T> fmt::Debug for ResponseSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseSender").finish_non_exhaustive()
    }
}

impl<T: Send + 'static> ResponseSender<T> {
    pub(crate) fn new(
        responder: SharedResponder,
        encoder: Box<dyn Encoder<Item = T>>,
    ) -> ResponseSender<T> {
        ResponseSender {
            inner: SenderInner::H2 { responder, encoder },
        }
    }

    /// A sender whose messages come out of the returned stream, for unit tests of streaming
    /// handlers (no server, no socket). Up to `buffer` messages wait; the stream ends when
    /// the sender is dropped. Metadata set on it goes nowhere.
    ///
    /// # Examples
    ///
    /// ```
    /// use grpc_runtime::ResponseSender;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let (mut tx, mut sent) = ResponseSender::channel(8);
    /// tx.send(7u32).await.unwrap();
    /// drop(tx);
    /// assert_eq!(sent.message().await.unwrap(), Some(7));
    /// assert_eq!(sent.message().await.unwrap(), None);
    /// # });
    /// ```
    pub fn channel(buffer: usize) -> (ResponseSender<T>, Streaming<T>) {
        let (tx, mut rx) = mpsc::channel(buffer.max(1));
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|m| m.map(Ok)));
        (
            ResponseSender {
                inner: SenderInner::Channel {
                    tx,
                    headers_sent: false,
                },
            },
            Streaming::from_stream(stream),
        )
    }

    async fn write(&mut self, message: T, compress: bool) -> Result<(), Status> {
        match &mut self.inner {
            SenderInner::H2 { responder, encoder } => {
                write(responder, &mut **encoder, &message, compress).await
            }
            SenderInner::Channel { tx, headers_sent } => {
                *headers_sent = true;
                tx.send(message)
                    .await
                    .map_err(|_| Status::cancelled("the receiving end is gone"))
            }
        }
    }

    /// Sends one message.
    ///
    /// # Errors
    ///
    /// `CANCELLED` if the client went away, `RESOURCE_EXHAUSTED` if the message is over the
    /// server's send limit, `INTERNAL` after the call ended.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped, the message may have been partly written; the next send
    /// completes that write first.
    pub async fn send(&mut self, message: T) -> Result<(), Status> {
        self.write(message, true).await
    }

    /// Sends one message without compression, even if the call compresses its responses.
    ///
    /// # Errors
    ///
    /// As [`send`](ResponseSender::send).
    pub async fn send_uncompressed(&mut self, message: T) -> Result<(), Status> {
        self.write(message, false).await
    }

    /// Compresses this call's responses with `encoding` (`None`: no compression), overriding
    /// the server's setting. If the client did not list `encoding` in
    /// `grpc-accept-encoding`, responses go uncompressed.
    ///
    /// # Errors
    ///
    /// `INTERNAL` if the response headers were already sent.
    pub fn set_send_compressed(
        &mut self,
        encoding: Option<CompressionEncoding>,
    ) -> Result<(), Status> {
        match &self.inner {
            SenderInner::H2 { responder, .. } => lock(responder).set_compression(encoding),
            SenderInner::Channel { .. } => Ok(()),
        }
    }

    /// Adds header metadata, sent with the first message.
    ///
    /// # Errors
    ///
    /// `INTERNAL` if the headers were already sent.
    pub fn set_headers(&mut self, metadata: MetadataMap) -> Result<(), Status> {
        match &self.inner {
            SenderInner::H2 { responder, .. } => {
                let mut responder = lock(responder);
                if responder.headers_sent() {
                    return Err(Status::internal("response headers already sent"));
                }
                responder.add_headers(metadata);
                Ok(())
            }
            SenderInner::Channel { headers_sent, .. } => {
                if *headers_sent {
                    return Err(Status::internal("response headers already sent"));
                }
                Ok(())
            }
        }
    }

    /// Sends the response headers now, before any message.
    ///
    /// # Errors
    ///
    /// `CANCELLED` if the client went away.
    pub async fn send_headers(&mut self) -> Result<(), Status> {
        match &mut self.inner {
            SenderInner::H2 { responder, .. } => lock(responder).send_headers(),
            SenderInner::Channel { headers_sent, .. } => {
                *headers_sent = true;
                Ok(())
            }
        }
    }

    /// Adds trailer metadata, sent with the final status.
    pub fn set_trailers(&mut self, metadata: MetadataMap) {
        if let SenderInner::H2 { responder, .. } = &self.inner {
            lock(responder).trailers.merge(metadata);
        }
    }
}

/// An HTTP error answer that also carries a gRPC status, for a request that is not a gRPC
/// call (gRPC-Go's early abort): a client reads the status either way. If the client is
/// still sending, h2 resets the stream after the answer once its handles drop (NO_ERROR, as
/// gRPC-Go does).
pub(crate) fn early_abort(
    respond: &mut h2::server::SendResponse<Bytes>,
    http_status: http::StatusCode,
    status: &Status,
) {
    let mut response = http::Response::new(());
    *response.status_mut() = http_status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    status.write_trailers(headers);
    if let Err(e) = respond.send_response(response, true) {
        tracing::debug!("failed to send HTTP {http_status}: {e}");
    }
}
