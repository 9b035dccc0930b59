//! The response side of a client call: checking the headers, reading messages, trailers and
//! the final status, for every kind of call.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use h2::client::ResponseFuture;
use tokio::time::Sleep;

use super::conn::CallGuard;
use super::sender::{self, SharedSend};
use crate::codec::framing::{FrameDecoder, Kind};
use crate::compression::{self, CompressionEncoding};
use crate::interceptor::EndGuard;
use crate::metadata::MetadataMap;
use crate::status::{Code, Status};
use crate::streaming::{Body, ReadError, ResponseSource};
use crate::transport;

/// Why the sending half of a client-streaming call failed, if it did: reported instead of
/// the reset it caused.
pub(crate) type SendError = Arc<Mutex<Option<Status>>>;

enum State {
    /// The response headers are still to come.
    Waiting(ResponseFuture),
    /// Reading messages, then the trailers.
    Body(Body),
    /// A trailers-only response: its status, known before any data.
    Preset(Status),
    /// Ended; the result was reported.
    Done,
}

/// One call's response. Used in place by unary and client-streaming calls, boxed behind a
/// [`Streaming`](crate::Streaming) by the others.
pub(crate) struct H2Response {
    state: State,
    max_recv: usize,
    headers: Option<MetadataMap>,
    trailers: Option<MetadataMap>,
    deadline: Option<Pin<Box<Sleep>>>,
    cancelled: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    end: EndGuard,
    send_error: Option<SendError>,
    send_task: Option<tokio::task::JoinHandle<()>>,
    /// A bidi call's send stream: reset if this response is dropped before the call ends.
    reset_on_drop: Option<SharedSend>,
    /// Counts the call on its channel and connection while the response lives.
    _guard: Option<CallGuard>,
    /// Response headers a body follows have arrived: the call is committed (gRFC A6).
    committed: bool,
    /// The attempt's stats handlers (`None`: no handler).
    stats: crate::stats::Stats,
    /// A streaming call's span, which records its status (`spans`).
    span: Option<tracing::Span>,
    /// The attempt's subchannel and connection in channelz.
    channelz: super::call::Counted,
    /// A streaming call's channel in channelz, which counts its end.
    call_channelz: Option<crate::channelz::internal::ChannelEntry>,
}

impl H2Response {
    /// Counts the call as in flight (for idleness and keepalive) until this is dropped.
    pub(crate) fn tracked(mut self, guard: CallGuard) -> H2Response {
        self._guard = Some(guard);
        self
    }

    pub(crate) fn new(future: ResponseFuture, max_recv: usize) -> H2Response {
        H2Response {
            state: State::Waiting(future),
            max_recv,
            headers: None,
            trailers: None,
            deadline: None,
            cancelled: None,
            end: EndGuard::none(),
            send_error: None,
            send_task: None,
            reset_on_drop: None,
            _guard: None,
            committed: false,
            stats: None,
            span: None,
            channelz: None,
            call_channelz: None,
        }
    }

    /// Counts the attempt on its subchannel and connection in channelz: messages received,
    /// and how it ended.
    pub(crate) fn with_channelz(mut self, channelz: super::call::Counted) -> H2Response {
        self.channelz = channelz;
        self
    }

    /// Counts a streaming call's end on its channel in channelz.
    pub(crate) fn set_call_channelz(&mut self, channel: crate::channelz::internal::ChannelEntry) {
        self.call_channelz = Some(channel);
    }

    /// The attempt (and a streaming call) ended: counted as succeeded or failed.
    fn channelz_end(&mut self, ok: bool) {
        if let Some((subchannel, socket)) = self.channelz.take() {
            subchannel.call_ended(ok);
            socket.stream_ended(ok);
        }
        if let Some(channel) = self.call_channelz.take() {
            channel.call_ended(ok);
        }
    }

    /// Records the call's status in `span` when it ends (a streaming call's response ends
    /// after the function that opened it).
    pub(crate) fn set_span(&mut self, span: tracing::Span) {
        self.span = (!span.is_disabled()).then_some(span);
    }

    /// Tells the attempt's stats handlers of what comes in, and of the attempt's end.
    pub(crate) fn with_stats(mut self, stats: crate::stats::Stats) -> H2Response {
        self.stats = stats;
        self
    }

    /// Watches the call's deadline and cancellation while reading (calls whose response
    /// outlives the call's function: streams).
    pub(crate) fn watch(
        &mut self,
        deadline: Option<tokio::time::Instant>,
        cancellation: Option<crate::cancel::Cancellation>,
    ) {
        self.deadline = deadline.map(|d| Box::pin(tokio::time::sleep_until(d)));
        self.cancelled = cancellation.map(|c| Box::pin(c.cancelled_owned()) as Pin<Box<_>>);
    }

    pub(crate) fn set_end(&mut self, end: EndGuard) {
        self.end = end;
    }

    pub(crate) fn set_sender(
        &mut self,
        task: tokio::task::JoinHandle<()>,
        send_error: Option<SendError>,
    ) {
        self.send_task = Some(task);
        self.send_error = send_error;
    }

    pub(crate) fn reset_on_drop(&mut self, send: SharedSend) {
        self.reset_on_drop = Some(send);
    }

    fn h2_status(&self, e: &h2::Error) -> Status {
        self.send_error
            .as_ref()
            .and_then(|slot| slot.lock().ok()?.take())
            .unwrap_or_else(|| transport::status_from_h2(e))
    }

    fn finish(&mut self, result: Result<(), Status>) -> Result<Option<Bytes>, Status> {
        self.state = State::Done;
        self.channelz_end(result.is_ok());
        if let Some(span) = self.span.take() {
            let code = result.as_ref().err().map_or(Code::Ok, Status::code);
            crate::spans::record(&span, code);
        }
        if let Some(stats) = self.stats.take() {
            stats.end(result.as_ref().err().unwrap_or(crate::stats::ok_status()));
        }
        match &result {
            Ok(()) => self.end.finish_ok(),
            Err(status) => self.end.finish(status),
        }
        if let Some(task) = self.send_task.take() {
            task.abort();
        }
        result.map(|()| None)
    }

    /// Deadline or cancellation, if one has fired.
    fn poll_watch(&mut self, cx: &mut Context<'_>) -> Option<Status> {
        if let Some(deadline) = &mut self.deadline
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Some(Status::deadline_exceeded("deadline exceeded"));
        }
        if let Some(cancelled) = &mut self.cancelled
            && cancelled.as_mut().poll(cx).is_ready()
        {
            return Some(Status::cancelled("the call it was propagated from ended"));
        }
        None
    }

    fn parse(&mut self, response: http::Response<h2::RecvStream>) -> Result<(), Status> {
        let (parts, recv) = response.into_parts();
        // Only a HEADERS frame that ends the stream is trailers-only: a `grpc-status` in
        // headers that a body follows is not the call's status (gRPC-Go ignores it too).
        let trailers_only = if recv.is_end_stream() {
            Status::from_trailers(&parts.headers)
        } else {
            None
        };
        if parts.status != http::StatusCode::OK {
            return Err(trailers_only
                .filter(|s| s.code() != Code::Ok)
                .unwrap_or_else(|| Status::from_http_status(parts.status)));
        }
        // Whatever it carries, a 200 response must be gRPC's (gRPC-Go: UNKNOWN otherwise).
        check_content_type(&parts)?;
        if let Some(status) = trailers_only {
            if let Some(stats) = &self.stats {
                stats.emit(&crate::stats::RpcEvent::InTrailer {
                    trailers: &parts.headers,
                });
            }
            crate::metadata::check_bin(&parts.headers)?;
            self.headers = Some(MetadataMap::from_headers(parts.headers));
            if status.code() != Code::Ok {
                return Err(status);
            }
            self.state = State::Preset(status);
            return Ok(());
        }
        // An encoding we do not support fails the call only if a message uses it (gRPC-Go).
        let encoding = compression::parse_encoding(
            parts.headers.get(crate::headers::GRPC_ENCODING),
            &CompressionEncoding::ALL,
        )
        .unwrap_or(compression::Received::Unsupported);
        self.committed = true;
        if let Some(stats) = &self.stats {
            stats.emit(&crate::stats::RpcEvent::InHeader {
                headers: &parts.headers,
            });
        }
        self.headers = Some(MetadataMap::from_headers_checked(parts.headers)?);
        let mut body = Body::new(
            recv,
            FrameDecoder::new(self.max_recv, encoding, Kind::Response),
        );
        body.set_stats(self.stats.clone());
        if let Some((_, socket)) = &self.channelz {
            body.set_channelz(socket.clone());
        }
        self.state = State::Body(body);
        Ok(())
    }

    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Status>> {
        let trailers = match &mut self.state {
            State::Preset(status) => {
                let status = std::mem::replace(status, Status::ok(""));
                self.trailers = Some(status.metadata().clone());
                return Poll::Ready(self.finish(Ok(())));
            }
            State::Body(body) => ready!(body.poll_trailers(cx)),
            _ => return Poll::Ready(Ok(None)),
        };
        if let (Ok(Some(trailers)), Some(stats)) = (&trailers, &self.stats) {
            stats.emit(&crate::stats::RpcEvent::InTrailer { trailers });
        }
        let status = match trailers {
            Ok(Some(trailers)) => match crate::metadata::check_bin(&trailers) {
                Err(status) => status,
                // The usual end, OK: the trailers become the call's trailer metadata as they
                // are, without building a status (a box and two copies of the map).
                Ok(()) if Status::is_ok_trailers(&trailers) => {
                    self.trailers = Some(MetadataMap::from_headers(trailers));
                    return Poll::Ready(self.finish(Ok(())));
                }
                Ok(()) => Status::from_trailers(&trailers).unwrap_or_else(|| {
                    Status::internal("server closed the stream without a grpc-status trailer")
                }),
            },
            Ok(None) => Status::internal("server closed the stream without sending trailers"),
            Err(e) => self.h2_status(&e),
        };
        self.trailers = Some(status.metadata().clone());
        let result = if status.code() == Code::Ok {
            Ok(())
        } else {
            Err(status)
        };
        Poll::Ready(self.finish(result))
    }

    /// Whether the last message read arrived compressed.
    pub(crate) fn last_compressed(&self) -> bool {
        match &self.state {
            State::Body(body) => body.frames.last_compressed(),
            _ => false,
        }
    }

    /// Whether response headers (not trailers-only) arrived: past this, a retry would lose
    /// what the application may have seen (gRFC A6's commit point).
    pub(crate) fn committed(&self) -> bool {
        self.committed
    }

    pub(crate) fn take_headers(&mut self) -> MetadataMap {
        self.headers.take().unwrap_or_default()
    }

    pub(crate) fn take_trailers(&mut self) -> MetadataMap {
        self.trailers.take().unwrap_or_default()
    }
}

impl ResponseSource for H2Response {
    fn poll_headers(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        let State::Waiting(future) = &mut self.state else {
            return Poll::Ready(Ok(()));
        };
        let polled = Pin::new(future).poll(cx);
        let result = match polled {
            Poll::Ready(Ok(response)) => self.parse(response),
            Poll::Ready(Err(e)) => Err(self.h2_status(&e)),
            Poll::Pending => match self.poll_watch(cx) {
                Some(status) => Err(status),
                None => return Poll::Pending,
            },
        };
        if let Err(status) = &result {
            let _ = self.finish(Err(status.clone()));
        }
        Poll::Ready(result)
    }

    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Status>> {
        if let State::Waiting(_) = self.state {
            ready!(self.poll_headers(cx))?;
        }
        if let Some(status) = self.poll_watch(cx)
            && !matches!(self.state, State::Done)
        {
            return Poll::Ready(self.finish(Err(status)));
        }
        let frame = match &mut self.state {
            State::Body(body) => ready!(body.poll_frame(cx)),
            State::Preset(_) => Ok(None),
            State::Waiting(_) | State::Done => return Poll::Ready(Ok(None)),
        };
        match frame {
            Ok(Some(bytes)) => Poll::Ready(Ok(Some(bytes))),
            Ok(None) => self.poll_end(cx),
            Err(ReadError::Status(status)) => Poll::Ready(self.finish(Err(status))),
            Err(ReadError::H2(e)) => {
                let status = self.h2_status(&e);
                Poll::Ready(self.finish(Err(status)))
            }
        }
    }

    fn headers(&self) -> Option<&MetadataMap> {
        self.headers.as_ref()
    }

    fn trailers(&self) -> Option<&MetadataMap> {
        self.trailers.as_ref()
    }

    fn last_compressed(&self) -> bool {
        H2Response::last_compressed(self)
    }

    fn fail(&mut self, status: &Status) {
        let _ = self.finish(Err(status.clone()));
    }
}

impl Drop for H2Response {
    fn drop(&mut self) {
        self.channelz_end(false);
        if let Some(stats) = self.stats.take() {
            stats.end(&Status::cancelled("the attempt was abandoned"));
        }
        if let Some(task) = &self.send_task {
            task.abort();
        }
        if let Some(send) = &self.reset_on_drop
            && !matches!(self.state, State::Done)
        {
            sender::lock(send).send_reset(h2::Reason::CANCEL);
        }
    }
}

fn check_content_type(parts: &http::response::Parts) -> Result<(), Status> {
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.as_bytes());
    match content_type {
        Some(ct) if crate::status::is_grpc_content_type(ct) => Ok(()),
        Some(ct) => Err(Status::new(
            Status::from_http_status(parts.status).code(),
            format!(
                "unexpected content-type {:?} in the response",
                String::from_utf8_lossy(ct)
            ),
        )),
        None => Err(Status::new(
            Status::from_http_status(parts.status).code(),
            "response has no content-type",
        )),
    }
}
