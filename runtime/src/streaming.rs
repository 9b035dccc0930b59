//! [`Streaming`]: a stream of incoming messages, and the request or response body it reads.

use std::fmt;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;

use crate::codec::Decoder;
use crate::codec::framing::FrameDecoder;
use crate::metadata::MetadataMap;
use crate::status::Status;

/// A stream of messages received on a call: the requests a client-streaming or bidi handler
/// reads, or the responses a client reads from a server-streaming or bidi call.
///
/// Read with [`message`](Streaming::message) or as a [`futures_core::Stream`]. On the client,
/// the end of the stream carries the call's status: a non-OK status comes back as an `Err`,
/// after which the stream yields nothing more. A client's stream also holds the response's
/// [`headers`](Streaming::headers) and, once it has ended, its
/// [`trailers`](Streaming::trailers).
///
/// Tests and channel implementations build one from any stream of messages with
/// [`from_stream`](Streaming::from_stream).
///
/// # Examples
///
/// ```no_run
/// # async fn f(mut stream: grpc_runtime::Streaming<protobuf::well_known_types::empty::Empty>)
/// # -> Result<(), grpc_runtime::Status> {
/// while let Some(message) = stream.message().await? {
///     println!("got {message:?}");
/// }
/// # Ok(()) }
/// ```
pub struct Streaming<T> {
    source: Source<T>,
    finished: bool,
}

enum Source<T> {
    /// A request body, read in place (server).
    Body {
        body: Body,
        decoder: Box<dyn Decoder<Item = T>>,
    },
    /// A response with its headers, trailers and status (client).
    Response {
        source: Box<dyn ResponseSource>,
        decoder: Box<dyn Decoder<Item = T>>,
    },
    /// Messages from a stream of the user's (tests, channel implementations). Its metadata
    /// is boxed: `Streaming` stays the size of the server's variant, which every call moves.
    Local {
        stream: Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>,
        metadata: Box<(MetadataMap, Option<MetadataMap>)>,
    },
}

impl<T> fmt::Debug for Streaming<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Streaming")
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

fn empty_metadata() -> &'static MetadataMap {
    static EMPTY: OnceLock<MetadataMap> = OnceLock::new();
    EMPTY.get_or_init(MetadataMap::new)
}

impl<T> Streaming<T> {
    /// A server's request stream that its reader needs whole (unary, server-streaming): a
    /// wait for any of it counts toward the server's progress timeout.
    pub(crate) fn require_progress(&mut self) {
        if let Source::Body { body, .. } = &mut self.source {
            body.require_progress();
        }
    }
}

impl<T: 'static> Streaming<T> {
    /// A stream reading a request body (server side).
    pub(crate) fn from_body(body: Body, decoder: Box<dyn Decoder<Item = T>>) -> Streaming<T> {
        Streaming {
            source: Source::Body { body, decoder },
            finished: false,
        }
    }

    /// A stream reading a response (client side).
    pub(crate) fn from_response(
        source: Box<dyn ResponseSource>,
        decoder: Box<dyn Decoder<Item = T>>,
    ) -> Streaming<T> {
        Streaming {
            source: Source::Response { source, decoder },
            finished: false,
        }
    }

    /// A stream of the messages (and errors) of `stream`: for unit tests of handlers, and for
    /// channel implementations and test doubles that answer calls without HTTP/2. An `Err`
    /// item ends the stream with that status. Its headers and trailers are empty until set
    /// with [`with_headers`](Streaming::with_headers) and
    /// [`with_trailers`](Streaming::with_trailers).
    ///
    /// # Examples
    ///
    /// ```
    /// use grpc_runtime::{Status, Streaming};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let items = vec![Ok(1u32), Ok(2), Err(Status::aborted("stop"))];
    /// let mut stream = Streaming::from_stream(futures_util::stream::iter(items));
    /// assert_eq!(stream.message().await.unwrap(), Some(1));
    /// assert_eq!(stream.message().await.unwrap(), Some(2));
    /// assert_eq!(stream.message().await.unwrap_err().message(), "stop");
    /// assert_eq!(stream.message().await.unwrap(), None);
    /// # });
    /// ```
    pub fn from_stream<S>(stream: S) -> Streaming<T>
    where
        S: Stream<Item = Result<T, Status>> + Send + 'static,
    {
        Streaming {
            source: Source::Local {
                stream: Box::pin(stream),
                metadata: Box::default(),
            },
            finished: false,
        }
    }

    /// Sets the headers of a stream made with [`from_stream`](Streaming::from_stream).
    #[must_use]
    pub fn with_headers(mut self, metadata: MetadataMap) -> Streaming<T> {
        if let Source::Local {
            metadata: local, ..
        } = &mut self.source
        {
            local.0 = metadata;
        }
        self
    }

    /// Sets the trailers a stream made with [`from_stream`](Streaming::from_stream) has once
    /// it has ended.
    #[must_use]
    pub fn with_trailers(mut self, metadata: MetadataMap) -> Streaming<T> {
        if let Source::Local {
            metadata: local, ..
        } = &mut self.source
        {
            local.1 = Some(metadata);
        }
        self
    }

    /// Client: the response header metadata, waiting for it if it has not arrived (a bidi
    /// call returns before the server answers). On the server, a request's metadata is in
    /// its [`Request`](crate::Request); this is empty.
    ///
    /// # Errors
    ///
    /// The call's status if it failed before sending headers (it is not returned again by
    /// [`message`](Streaming::message)).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn headers(&mut self) -> Result<&MetadataMap, Status> {
        if let Source::Response { source, .. } = &mut self.source {
            let ready = std::future::poll_fn(|cx| source.poll_headers(cx)).await;
            if let Err(status) = ready {
                self.finished = true;
                return Err(status);
            }
        }
        Ok(self.headers_now().unwrap_or_else(|| empty_metadata()))
    }

    /// Client: the response header metadata if it has arrived (`None` before).
    pub fn headers_now(&self) -> Option<&MetadataMap> {
        match &self.source {
            Source::Response { source, .. } => source.headers(),
            Source::Local { metadata, .. } => Some(&metadata.0),
            Source::Body { .. } => Some(empty_metadata()),
        }
    }

    /// Client: the trailing metadata, once the stream has ended (`None` before).
    pub fn trailers(&self) -> Option<&MetadataMap> {
        match &self.source {
            Source::Response { source, .. } => source.trailers(),
            Source::Local { metadata, .. } => metadata.1.as_ref().filter(|_| self.finished),
            Source::Body { .. } => None,
        }
    }

    /// Whether the last message returned arrived compressed (its compressed flag was set).
    pub fn last_message_compressed(&self) -> bool {
        match &self.source {
            Source::Body { body, .. } => body.frames.last_compressed(),
            Source::Response { source, .. } => source.last_compressed(),
            Source::Local { .. } => false,
        }
    }

    /// The next message, `None` at the end of the stream.
    ///
    /// # Errors
    ///
    /// The call's status if it failed: a non-OK status from the server (client side), a
    /// reset or broken connection, a message that does not decode or is over the size limit,
    /// or the deadline passing (`DEADLINE_EXCEEDED`).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a message is never lost if the future is dropped before completing.
    pub async fn message(&mut self) -> Result<Option<T>, Status> {
        std::future::poll_fn(|cx| self.poll_message(cx)).await
    }

    /// Polls for the next message; see [`message`](Streaming::message).
    pub fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<T>, Status>> {
        if self.finished {
            return Poll::Ready(Ok(None));
        }
        let result = match &mut self.source {
            Source::Body { body, decoder } => match ready!(body.poll_frame(cx)) {
                Ok(Some(bytes)) => decoder.decode(bytes).map(Some),
                Ok(None) => Ok(None),
                Err(ReadError::Status(status)) => Err(status),
                Err(ReadError::H2(e)) => Err(crate::transport::request_status(&e)),
            },
            Source::Response { source, decoder } => match ready!(source.poll_message(cx)) {
                Ok(Some(bytes)) => match decoder.decode(bytes) {
                    Ok(message) => Ok(Some(message)),
                    Err(status) => {
                        source.fail(&status);
                        Err(status)
                    }
                },
                other => other.map(|_| None),
            },
            Source::Local { stream, .. } => match ready!(stream.as_mut().poll_next(cx)) {
                Some(item) => item.map(Some),
                None => Ok(None),
            },
        };
        if !matches!(result, Ok(Some(_))) {
            self.finished = true;
        }
        Poll::Ready(result)
    }
}

impl<T: 'static> Stream for Streaming<T> {
    type Item = Result<T, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // `Streaming` is `Unpin`: it holds its parts boxed or by value.
        let this = self.get_mut();
        this.poll_message(cx).map(Result::transpose)
    }
}

/// A client's response, as [`Streaming`] reads it: implemented by the client, which keeps
/// the response's headers, deadline, trailers and outcome report behind it.
pub(crate) trait ResponseSource: Send {
    /// Ready once the response headers are known; `Err` if the call failed before them.
    fn poll_headers(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>>;
    /// The next message's bytes; `Ok(None)` at an OK end.
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Status>>;
    fn headers(&self) -> Option<&MetadataMap>;
    fn trailers(&self) -> Option<&MetadataMap>;
    fn last_compressed(&self) -> bool;
    /// Ends the call with `status` (a message that did not decode).
    fn fail(&mut self, status: &Status);
}

/// Why reading a body stopped.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// A framing failure (bad prefix, over the limit, bad compression).
    Status(Status),
    /// The stream failed (reset, connection lost).
    H2(h2::Error),
}

/// The messages of an HTTP/2 body: the data frames, split into gRPC messages.
#[derive(Debug)]
pub(crate) struct Body {
    recv: h2::RecvStream,
    pub(crate) frames: FrameDecoder,
    data_done: bool,
    /// Whether the reader waits for the whole body (a unary or server-streaming request),
    /// so that no data for a while is a stall, not a quiet stream.
    eager: bool,
    /// How long a read may wait without data while the body stalls (`None`: forever).
    progress_timeout: Option<Duration>,
    /// Running while a stalled read waits; boxed and made only when one does.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The call's stats handlers, told of each message (`None`: no handler).
    stats: crate::stats::Stats,
    /// The connection in channelz, counting messages received.
    channelz: Option<crate::channelz::internal::SocketEntry>,
    /// Messages read but not yet counted in channelz: counted when the read buffer is
    /// drained (and on drop), so one atomic add and clock read cover every message a read
    /// brought in.
    unreported: u32,
    /// Whether the body's end is the client's half-close (a server's request body).
    half_close: bool,
}

impl Body {
    pub(crate) fn new(recv: h2::RecvStream, frames: FrameDecoder) -> Body {
        Body {
            recv,
            frames,
            data_done: false,
            eager: false,
            progress_timeout: None,
            stall: None,
            stats: None,
            channelz: None,
            unreported: 0,
            half_close: false,
        }
    }

    /// Counts in channelz the messages read since the last count.
    fn report_received(&mut self) {
        if self.unreported > 0
            && let Some(socket) = &self.channelz
        {
            socket.messages_received(std::mem::take(&mut self.unreported));
        }
    }

    /// A server's request body: its end is the client's half-close, for the stats handlers.
    pub(crate) fn set_half_close(&mut self) {
        self.half_close = true;
    }

    /// Counts each message read on the connection's channelz socket.
    pub(crate) fn set_channelz(&mut self, socket: crate::channelz::internal::SocketEntry) {
        self.channelz = Some(socket);
    }

    /// Tells the call's stats handlers of each message read.
    pub(crate) fn set_stats(&mut self, stats: crate::stats::Stats) {
        self.stats = stats;
    }

    /// A server's request body: a read that waits `timeout` without data, in the middle of
    /// a message or for a request the handler cannot start without, ends the call (nginx's
    /// `client_body_timeout`). A stream quiet between messages is not stalled.
    pub(crate) fn with_progress_timeout(mut self, timeout: Option<Duration>) -> Body {
        self.progress_timeout = timeout;
        self
    }

    /// The reader needs the whole body before it can go on: waiting for any of it counts
    /// toward the progress timeout.
    pub(crate) fn require_progress(&mut self) {
        self.eager = true;
    }

    /// No data now: whether the wait has gone on too long.
    fn poll_stall(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, ReadError>> {
        let Some(timeout) = self.progress_timeout else {
            return Poll::Pending;
        };
        if !self.eager && !self.frames.has_partial() {
            self.stall = None;
            return Poll::Pending;
        }
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(stall.as_mut().poll(cx));
        self.stall = None;
        tracing::info!("a request made no progress for {timeout:?}; ending its call");
        Poll::Ready(Err(ReadError::Status(Status::cancelled(format!(
            "the server received none of the request for {timeout:?}"
        )))))
    }

    /// The next message's bytes (decompressed); `None` once the data has ended.
    pub(crate) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, ReadError>> {
        loop {
            match self.frames.next_message() {
                Ok(Some(bytes)) => {
                    if let Some(stats) = &self.stats {
                        stats.in_message(&bytes, self.frames.last_len());
                    }
                    if self.channelz.is_some() {
                        self.unreported += 1;
                    }
                    return Poll::Ready(Ok(Some(bytes)));
                }
                Ok(None) => self.report_received(),
                Err(status) => return Poll::Ready(Err(ReadError::Status(status))),
            }
            if self.data_done {
                if self.frames.has_partial() {
                    return Poll::Ready(Err(ReadError::Status(Status::internal(
                        "stream ended in the middle of a message",
                    ))));
                }
                // The end is reported once, on a server's request body (a client's
                // response has no half-close).
                if self.half_close
                    && let Some(stats) = self.stats.take()
                {
                    stats.half_close();
                }
                return Poll::Ready(Ok(None));
            }
            let Poll::Ready(data) = self.recv.poll_data(cx) else {
                return self.poll_stall(cx);
            };
            match data {
                Some(Ok(chunk)) => {
                    if let (Some(stall), Some(timeout)) = (&mut self.stall, self.progress_timeout) {
                        stall.as_mut().reset(tokio::time::Instant::now() + timeout);
                    }
                    let _ = self.recv.flow_control().release_capacity(chunk.len());
                    self.frames.push(chunk);
                }
                Some(Err(e)) => return Poll::Ready(Err(ReadError::H2(e))),
                None => self.data_done = true,
            }
        }
    }

    /// The trailers, once the data has ended.
    pub(crate) fn poll_trailers(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<http::HeaderMap>, h2::Error>> {
        self.recv.poll_trailers(cx)
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        // Messages read since the last drain (a unary call's one response, say).
        self.report_received();
    }
}
