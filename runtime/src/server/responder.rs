//! The sending half of a server call: headers, messages, trailers; and the typed
//! [`ResponseSender`] that streaming handlers get.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::SendStream;
use h2::server::SendResponse;
use http::HeaderValue;

use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

use crate::channelz::internal::{ServerEntry, SocketEntry};
use crate::codec::Encoder;
use crate::codec::framing::{self, Batch, Kind};
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
    /// The part of the current message (or batch) not yet handed to h2.
    pending: Bytes,
    /// Messages a streaming handler sent, encoded straight in here, not yet handed to h2
    /// (they go after `pending`): a batch goes once full or when the handler's task stops
    /// sending for now ([`FlushOnYield`]).
    batch: Batch,
    /// A write is waiting for flow-control window: the writer's waker is registered with
    /// h2, so the reset watcher must not replace it.
    writing: bool,
    /// The reset watcher's waker is registered with h2 ([`poll_reset`](Self::poll_reset)
    /// was pending). h2 keeps one waker a stream for a reset and for send capacity, and
    /// wakes it whenever it grants capacity, our own `reserve_capacity` included: each
    /// flush woke the call's task while it ran, and the task was polled once more for
    /// nothing (tonic's streams are polled twice a message the same way). A send first
    /// swaps the registration for a no-op one; the watcher registers again when the
    /// task next waits. What it buys, 1-byte ping-pong (callgrind, server): 2 -> 1 polls
    /// of the call's task a message, 17.8k -> 17.0k instructions a ping-pong.
    reset_registered: bool,
    /// The request's content-type when it names a subtype (`application/grpc+proto`).
    content_type: Option<HeaderValue>,
    /// The server's message budget, and the reservation of the last large message: held
    /// until the next message is queued or the call ends, as h2 may still hold its bytes
    /// for a peer that does not read.
    quota: Option<Arc<crate::quota::MemoryQuota>>,
    reserved: Option<crate::quota::Reservation>,
    /// How long a message may wait for flow-control window without any of it going out
    /// before the stream is reset (`None`: forever).
    progress_timeout: Option<Duration>,
    /// Running while a write waits for window; boxed and made only when one does.
    stall: Option<Pin<Box<Sleep>>>,
    /// The client's SETTINGS_MAX_HEADER_LIST_SIZE (`u32::MAX`: none announced).
    peer_max_header_list: u32,
    /// The call's stats handlers (`None`: no handler).
    stats: crate::stats::Stats,
    /// The call's span (`spans`), which records the status (disabled: no subscriber).
    span: tracing::Span,
    /// The server and the connection in channelz, counting the call, its stream and its
    /// messages (atomics; `None` for a call refused before it was routed).
    channelz: Option<(ServerEntry, SocketEntry)>,
    /// Messages encoded but not yet counted in channelz: they are counted once `pending`
    /// is handed to h2, a batch at a time (per message, the atomic increment and clock read
    /// were 5% of a server stream's CPU).
    unreported_sent: u32,
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
            batch: Batch::default(),
            writing: false,
            reset_registered: false,
            content_type: None,
            quota: None,
            reserved: None,
            progress_timeout: None,
            stall: None,
            peer_max_header_list: u32::MAX,
            stats: None,
            span: tracing::Span::none(),
            channelz: None,
            unreported_sent: 0,
        }
    }

    /// Counts the call on its server and its connection in channelz, from now to its end.
    pub(crate) fn set_channelz(&mut self, server: &ServerEntry, socket: &SocketEntry) {
        server.call_started();
        socket.stream_started(false);
        self.channelz = Some((server.clone(), socket.clone()));
    }

    /// The call ended: counted as succeeded or failed.
    fn channelz_end(&mut self, ok: bool) {
        if let Some((server, socket)) = self.channelz.take() {
            server.call_ended(ok);
            socket.stream_ended(ok);
        }
    }

    /// The call's span, for its task and its status.
    pub(crate) fn set_span(&mut self, span: tracing::Span) {
        self.span = span;
    }

    pub(crate) fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Tells the call's stats handlers of what goes out, and of the call's end.
    pub(crate) fn set_stats(&mut self, stats: crate::stats::Stats) {
        self.stats = stats;
    }

    /// Makes response messages over 64 KiB reserve their size from the server's budget, and
    /// a write that makes no progress for `progress_timeout` reset the stream.
    pub(crate) fn with_limits(
        mut self,
        quota: Arc<crate::quota::MemoryQuota>,
        progress_timeout: Option<Duration>,
    ) -> Responder {
        self.quota = Some(quota);
        self.progress_timeout = progress_timeout;
        self
    }

    /// The most header bytes the client takes in one block (its SETTINGS).
    pub(crate) fn set_peer_max_header_list(&mut self, limit: u32) {
        self.peer_max_header_list = limit;
    }

    /// `INTERNAL` if a block of `headers` (and `pseudo` bytes of pseudo-headers) is over the
    /// client's header list limit, which h2 does not check on sending: the client would
    /// refuse the block, and its call would end with whatever its HTTP/2 stack makes of that.
    fn over_peer_limit(
        &self,
        headers: &http::HeaderMap,
        pseudo: usize,
        what: &str,
    ) -> Option<Status> {
        if self.peer_max_header_list == u32::MAX {
            return None;
        }
        let size = pseudo + header_list_size(headers);
        let limit = self.peer_max_header_list as usize;
        (size > limit).then(|| {
            tracing::debug!("response {what} of {size} bytes are over the client's limit of {limit}");
            Status::internal(format!(
                "the server's response {what} ({size} bytes) exceed the client's header list limit ({limit} bytes)"
            ))
        })
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
        if let Some(status) = self.over_peer_limit(response.headers(), STATUS_FIELD, "headers") {
            return Err(status);
        }
        let State::Start(mut respond) = std::mem::replace(&mut self.state, State::Closed) else {
            unreachable!()
        };
        if let Some(stats) = &self.stats {
            stats.emit(&crate::stats::RpcEvent::OutHeader {
                headers: response.headers(),
                peer: None,
            });
        }
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
        debug_assert!(self.pending.is_empty() && self.batch.is_empty());
        self.pending = self.encode(encoder, item, compress)?;
        Ok(())
    }

    /// Before a message is encoded: sends the headers if they are not out yet, lets the
    /// last message's budget reservation go, and says which compression the message gets.
    fn start_message(&mut self, compress: bool) -> Result<Option<CompressionEncoding>, Status> {
        self.send_headers()?;
        self.reserved = None;
        Ok(self.compression.filter(|_| compress))
    }

    /// Encodes and counts `item` as the next frame (sending the headers first if they are
    /// not out yet), compressed if the call compresses and `compress` allows.
    fn encode<E: Encoder + ?Sized>(
        &mut self,
        encoder: &mut E,
        item: &E::Item,
        compress: bool,
    ) -> Result<Bytes, Status> {
        let compression = self.start_message(compress)?;
        let frame = framing::encode(
            encoder,
            item,
            compression,
            self.max_send,
            Kind::Response,
            &mut self.scratch,
        )?;
        self.count_frame(&frame, compression)?;
        Ok(frame)
    }

    /// Queues a message encoded once for many streams: its compressed form if it was
    /// prepared with this call's compression, else its plain one.
    pub(crate) fn queue_prepared(
        &mut self,
        prepared: &crate::codec::PreparedMessage,
    ) -> Result<(), Status> {
        debug_assert!(self.pending.is_empty());
        self.send_headers()?;
        self.reserved = None;
        let frame = prepared.frame_for(self.compression).clone();
        let size = frame.len() - framing::HEADER_LEN;
        if size > self.max_send {
            return Err(Status::resource_exhausted(format!(
                "trying to send response message larger than max ({size} vs. {})",
                self.max_send
            )));
        }
        let compression = self.compression.filter(|_| frame[0] == 1);
        self.count_frame(&frame, compression)?;
        self.pending = frame;
        Ok(())
    }

    /// Counts an encoded frame (stats, channelz, the message budget).
    fn count_frame(
        &mut self,
        frame: &[u8],
        compression: Option<CompressionEncoding>,
    ) -> Result<(), Status> {
        if let Some(stats) = &self.stats {
            stats.out_frame(frame, compression);
        }
        if self.channelz.is_some() {
            self.unreported_sent += 1;
        }
        if let Some(quota) = &self.quota
            && frame.len() > crate::quota::RESERVE_ABOVE
        {
            self.reserved = Some(crate::quota::Reservation::take(quota, frame.len())?);
        }
        Ok(())
    }

    /// Encodes and counts `item` at the end of the batch (sending the headers first if they
    /// are not out yet); returns whether the batch is full.
    fn encode_batched<E: Encoder + ?Sized>(
        &mut self,
        encoder: &mut E,
        item: &E::Item,
        compress: bool,
    ) -> Result<bool, Status> {
        let compression = self.start_message(compress)?;
        let mut batch = std::mem::take(&mut self.batch);
        let mut scratch = std::mem::take(&mut self.scratch);
        let max_send = self.max_send;
        let pushed = batch.push(
            encoder,
            item,
            compression,
            max_send,
            Kind::Response,
            &mut scratch,
            |frame| self.count_frame(frame, compression),
        );
        (self.batch, self.scratch) = (batch, scratch);
        pushed.map(|()| self.batch.is_full())
    }

    /// Ready once everything queued (the current message and the batch) is handed to h2.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        loop {
            std::task::ready!(self.poll_flush_pending(cx))?;
            if self.batch.is_empty() {
                return Poll::Ready(Ok(()));
            }
            self.pending = self.batch.take();
        }
    }

    /// Ready once the current message (not the batch) is handed to h2.
    fn poll_flush_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        if self.pending.is_empty() {
            return Poll::Ready(Ok(()));
        }
        let State::Open(stream) = &mut self.state else {
            self.pending = Bytes::new();
            return Poll::Ready(Err(Status::internal("the call has already ended")));
        };
        if std::mem::take(&mut self.reset_registered) {
            // A reset already there fails the send below; its state is checked again, under
            // h2's lock, when the watcher registers next.
            let _ = stream.poll_reset(&mut Context::from_waker(std::task::Waker::noop()));
        }
        let before = self.pending.len();
        match transport::poll_send(stream, &mut self.pending, false, cx) {
            Poll::Pending => {
                self.writing = true;
                self.poll_stall(before, cx)
            }
            Poll::Ready(result) => {
                self.writing = false;
                self.stall = None;
                if result.is_err() {
                    self.pending = Bytes::new();
                    self.batch.clear();
                } else if let Some((_, socket)) = &self.channelz
                    && self.unreported_sent > 0
                {
                    socket.messages_sent(std::mem::take(&mut self.unreported_sent));
                }
                Poll::Ready(result.map_err(|e| closed_status(&e)))
            }
        }
    }

    /// A write waits for window: resets the stream once `progress_timeout` has gone by
    /// since anything went out (`before`: the bytes pending when this poll began). The
    /// timer is made at the first wait, so writes that never wait cost nothing.
    fn poll_stall(&mut self, before: usize, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        let Some(timeout) = self.progress_timeout else {
            return Poll::Pending;
        };
        let stall = match &mut self.stall {
            Some(stall) => {
                if self.pending.len() < before {
                    stall.as_mut().reset(Instant::now() + timeout);
                }
                stall
            }
            None => self.stall.insert(Box::pin(tokio::time::sleep(timeout))),
        };
        if stall.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        tracing::info!(
            "a response made no progress for {timeout:?}: the client reads nothing; resetting its stream"
        );
        self.stall = None;
        self.writing = false;
        self.pending = Bytes::new();
        self.batch.clear();
        self.reserved = None;
        // Only a reset frees what h2 holds for the stream: trailers would queue behind it.
        self.reset(h2::Reason::CANCEL);
        Poll::Ready(Err(Status::cancelled(format!(
            "the client read none of the response for {timeout:?}"
        ))))
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
            Poll::Pending => {
                self.reset_registered = true;
                Poll::Pending
            }
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
        self.channelz_end(status.code() == crate::status::Code::Ok);
        crate::spans::record(&self.span, status.code());
        if let Some(stats) = self.stats.take() {
            stats.end(status);
        }
    }

    /// Ends the call with OK (without building a `Status`).
    pub(crate) fn finish_ok(&mut self, extra: Option<MetadataMap>) {
        let mut trailers = http::HeaderMap::new();
        trailers.insert(crate::headers::GRPC_STATUS, HeaderValue::from_static("0"));
        self.append_trailers(&mut trailers, extra);
        self.send_trailers(trailers);
        self.channelz_end(true);
        crate::spans::record(&self.span, crate::status::Code::Ok);
        if let Some(stats) = self.stats.take() {
            stats.end(crate::stats::ok_status());
        }
    }

    fn append_trailers(&mut self, trailers: &mut http::HeaderMap, extra: Option<MetadataMap>) {
        std::mem::take(&mut self.trailers).write_to(trailers);
        if let Some(extra) = extra {
            extra.write_to(trailers);
        }
    }

    fn send_trailers(&mut self, mut trailers: http::HeaderMap) {
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
                if let Some(status) = self.over_peer_limit(headers, STATUS_FIELD, "trailers") {
                    // The status alone, without the metadata.
                    response = self.base_response();
                    status.write_trailers(response.headers_mut());
                    if self
                        .over_peer_limit(response.headers(), STATUS_FIELD, "trailers")
                        .is_some()
                    {
                        respond.send_reset(h2::Reason::INTERNAL_ERROR);
                        return;
                    }
                }
                if let Some(stats) = &self.stats {
                    stats.emit(&crate::stats::RpcEvent::OutTrailer {
                        trailers: response.headers(),
                    });
                }
                if let Err(e) = respond.send_response(response, true) {
                    tracing::debug!("failed to send trailers-only response: {e}");
                }
            }
            State::Open(mut stream) => {
                if let Some(status) = self.over_peer_limit(&trailers, 0, "trailers") {
                    trailers.clear();
                    status.write_trailers(&mut trailers);
                    if self.over_peer_limit(&trailers, 0, "trailers").is_some() {
                        stream.send_reset(h2::Reason::INTERNAL_ERROR);
                        return;
                    }
                }
                if let Some(stats) = &self.stats {
                    stats.emit(&crate::stats::RpcEvent::OutTrailer {
                        trailers: &trailers,
                    });
                }
                if let Err(e) = stream.send_trailers(trailers) {
                    tracing::debug!("failed to send trailers: {e}");
                }
            }
            State::Closed => {}
        }
    }

    /// Abandons the call: resets the stream if it is still open.
    pub(crate) fn reset(&mut self, reason: h2::Reason) {
        self.channelz_end(false);
        crate::spans::record(&self.span, crate::status::Code::Cancelled);
        if let Some(stats) = self.stats.take() {
            stats.end(&Status::cancelled(format!("stream reset ({reason:?})")));
        }
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

/// What `:status: 200` counts toward a header list (RFC 9113 6.5.2: name, value, 32).
const STATUS_FIELD: usize = ":status".len() + "200".len() + 32;

/// The size of a header block as SETTINGS_MAX_HEADER_LIST_SIZE counts it (RFC 9113 6.5.2):
/// each field's name and value, and 32 bytes more.
fn header_list_size(headers: &http::HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 32)
        .sum()
}

/// Writes one message on a shared responder: waits for the previous batch to be handed to
/// h2, then encodes the message into the batch, which goes out when it is full (then this
/// waits until flow control lets all of it out) or when the handler's task yields.
async fn write<E: Encoder + ?Sized>(
    responder: &SharedResponder,
    encoder: &mut E,
    item: &E::Item,
    compress: bool,
) -> Result<(), Status> {
    // One lock for both steps: a message that needs no wait (nearly all of a stream's)
    // takes the responder's lock once.
    let full = poll_fn(|cx| {
        let mut locked = lock(responder);
        std::task::ready!(locked.poll_flush_pending(cx))?;
        Poll::Ready(locked.encode_batched(&mut *encoder, item, compress))
    })
    .await?;
    if full {
        poll_fn(|cx| lock(responder).poll_flush(cx)).await
    } else {
        Ok(())
    }
}

pin_project_lite::pin_project! {
    /// Runs a streaming handler's `work` so that what it sends goes out: each time the
    /// handler stops to wait for something else, the batch of small messages it sent is
    /// handed to h2; when it returns, all it sent is, before its status.
    ///
    /// Written out, not an `async fn`: an `async fn` kept the handler's future twice over
    /// (its argument and the pinned local), 4.6 KiB more per open stream.
    pub(crate) struct FlushOnYield<F> {
        #[pin]
        work: F,
        responder: SharedResponder,
        // The handler's result, once it returned, while the last of what it sent goes out.
        done: Option<Result<(), Status>>,
    }
}

impl<F> FlushOnYield<F> {
    pub(crate) fn new(responder: SharedResponder, work: F) -> FlushOnYield<F> {
        FlushOnYield {
            work,
            responder,
            done: None,
        }
    }
}

impl<F: Future<Output = Result<(), Status>>> Future for FlushOnYield<F> {
    type Output = Result<(), Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if this.done.is_none() {
            match this.work.poll(cx) {
                Poll::Ready(result) => *this.done = Some(result),
                Poll::Pending => {
                    let mut locked = lock(this.responder);
                    if !locked.batch.is_empty() {
                        // A failure shows on the handler's next send, or as the client's
                        // reset.
                        let _ = locked.poll_flush(cx);
                    }
                    return Poll::Pending;
                }
            }
        }
        let flushed = std::task::ready!(lock(this.responder).poll_flush(cx));
        let result = this.done.take().unwrap_or(Ok(()));
        Poll::Ready(result.and(flushed))
    }
}

/// Sends the responses of a server-streaming or bidi call.
///
/// Small messages are encoded into a batch that goes to HTTP/2 as one DATA frame when
/// another message would take it past 32 KiB or when the handler stops sending to wait for
/// something else (its task yields), so a burst of small messages costs one write, not one
/// each. A
/// [`send`](ResponseSender::send) that fills the batch waits for HTTP/2 flow control, so a
/// slow client slows the handler down rather than filling memory. Header metadata goes out with the first
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

    /// Sends one message: it joins the batch (see the [type's docs](ResponseSender)) and
    /// goes out with it; this waits only when the batch is full.
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

    /// Sends one message the handler keeps: as [`send`](ResponseSender::send), encoded from
    /// the reference, so a message sent again and again (a snapshot, a fixed reply) is not
    /// cloned for each send. gRPC-Go's `Send` takes a pointer likewise.
    ///
    /// # Errors
    ///
    /// As [`send`](ResponseSender::send).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use grpc_runtime::{ResponseSender, Status};
    /// use protobuf::well_known_types::wrappers::StringValue;
    ///
    /// async fn repeat(mut tx: ResponseSender<StringValue>) -> Result<(), Status> {
    ///     let mut tick = StringValue::new();
    ///     tick.value = "tick".into();
    ///     for _ in 0..3 {
    ///         tx.send_ref(&tick).await?;
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub async fn send_ref(&mut self, message: &T) -> Result<(), Status>
    where
        T: Clone,
    {
        match &mut self.inner {
            SenderInner::H2 { responder, encoder } => {
                write(responder, &mut **encoder, message, true).await
            }
            // A test sender hands messages over, so it takes a copy.
            SenderInner::Channel { .. } => self.write(message.clone(), true).await,
        }
    }

    /// Sends a message encoded once for many streams (see [`PreparedMessage`]): compressed
    /// if it was prepared with the encoding this call compresses with, else as it is.
    ///
    /// # Errors
    ///
    /// As [`send`](ResponseSender::send); `UNIMPLEMENTED` on a [`channel`](Self::channel)
    /// sender (it carries typed messages, not bytes).
    ///
    /// [`PreparedMessage`]: crate::codec::PreparedMessage
    pub async fn send_prepared(
        &mut self,
        message: &crate::codec::PreparedMessage,
    ) -> Result<(), Status> {
        match &mut self.inner {
            SenderInner::H2 { responder, .. } => {
                poll_fn(|cx| lock(responder).poll_flush(cx)).await?;
                lock(responder).queue_prepared(message)?;
                poll_fn(|cx| lock(responder).poll_flush(cx)).await
            }
            SenderInner::Channel { .. } => Err(Status::unimplemented(
                "a test sender takes typed messages, not prepared ones",
            )),
        }
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
