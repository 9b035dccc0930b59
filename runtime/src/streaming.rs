//! [`Streaming`]: a stream of incoming messages.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use protobuf::Message;

use crate::codec::{self, FrameDecoder};
use crate::compression::{self, CompressionEncoding, Received};
use crate::interceptor::EndGuard;
use crate::metadata::MetadataMap;
use crate::status::Status;

/// A stream of messages received on a call: the requests a client-streaming or bidi handler
/// reads, or the responses a client reads from a server-streaming or bidi call.
///
/// Read with [`message`](Streaming::message) or as a [`futures_core::Stream`]. On the client,
/// the end of the stream carries the call's status: a non-OK status comes back as an `Err`,
/// after which the stream yields nothing more.
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
    /// Bidi calls return before the response headers arrive; they are awaited on first read.
    pending: Option<PendingHeaders>,
    body: Option<h2::RecvStream>,
    decoder: FrameDecoder,
    data_done: bool,
    finished: bool,
    client: Option<Box<ClientTail>>,
    _marker: PhantomData<fn() -> T>,
}

/// Client-only state: the deadline, the trailers, the outcome report, the sending task.
pub(crate) struct ClientTail {
    pub(crate) headers: Option<MetadataMap>,
    pub(crate) deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    pub(crate) trailers: Option<MetadataMap>,
    /// The status of a trailers-only response, known before any data.
    pub(crate) preset: Option<Status>,
    pub(crate) end: EndGuard,
    pub(crate) send_task: Option<tokio::task::JoinHandle<()>>,
    /// Why the sending task failed, if it did (reported instead of the reset it caused).
    pub(crate) send_error: Option<Arc<Mutex<Option<Status>>>>,
}

impl Drop for ClientTail {
    fn drop(&mut self) {
        if let Some(task) = &self.send_task {
            task.abort();
        }
    }
}

impl<T> fmt::Debug for Streaming<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Streaming")
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl<T: Message> Streaming<T> {
    pub(crate) fn new(body: Option<h2::RecvStream>, decoder: FrameDecoder) -> Streaming<T> {
        Streaming {
            pending: None,
            data_done: body.is_none(),
            body,
            decoder,
            finished: false,
            client: None,
            _marker: PhantomData,
        }
    }

    pub(crate) fn with_client_tail(mut self, tail: ClientTail) -> Streaming<T> {
        self.client = Some(Box::new(tail));
        self
    }

    /// A client stream whose response headers have not arrived yet.
    pub(crate) fn pending(headers: PendingHeaders, tail: ClientTail) -> Streaming<T> {
        let mut stream =
            Streaming::new(None, FrameDecoder::new(0, Received::Identity)).with_client_tail(tail);
        stream.data_done = false;
        stream.pending = Some(headers);
        stream
    }

    /// Client: the response header metadata, once received (`None` before; for bidi calls
    /// they arrive with the first message or the end of the stream).
    pub fn headers(&self) -> Option<&MetadataMap> {
        self.client.as_ref()?.headers.as_ref()
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

    /// Whether the last message returned arrived compressed (its compressed flag was set).
    pub fn last_message_compressed(&self) -> bool {
        self.decoder.last_compressed()
    }

    /// Client: the trailing metadata, once the stream has ended (`None` before).
    pub fn trailers(&self) -> Option<&MetadataMap> {
        self.client.as_ref()?.trailers.as_ref()
    }

    fn finish(&mut self, result: Result<(), Status>) -> Poll<Result<Option<T>, Status>> {
        self.finished = true;
        self.body = None;
        if let Some(tail) = &mut self.client {
            let status = match &result {
                Ok(()) => Status::ok(""),
                Err(status) => status.clone(),
            };
            tail.end.finish(&status);
            if let Some(task) = tail.send_task.take() {
                task.abort();
            }
        }
        Poll::Ready(result.map(|()| None))
    }

    fn sender_failure(&self) -> Option<Status> {
        let slot = self.client.as_ref()?.send_error.as_ref()?;
        slot.lock().ok()?.take()
    }

    /// Polls for the next message; see [`message`](Streaming::message).
    pub fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<T>, Status>> {
        if self.finished {
            return Poll::Ready(Ok(None));
        }
        if let Some(pending) = &mut self.pending {
            if let Some(tail) = &mut self.client
                && let Some(deadline) = &mut tail.deadline
                && deadline.as_mut().poll(cx).is_ready()
            {
                return self.finish(Err(Status::deadline_exceeded("deadline exceeded")));
            }
            let response = match ready!(Pin::new(&mut pending.future).poll(cx)) {
                Ok(response) => response,
                Err(e) => {
                    let status = self.sender_failure().unwrap_or_else(|| Status::from_h2(&e));
                    return self.finish(Err(status));
                }
            };
            let max = pending.max_recv;
            self.pending = None;
            match ResponseHead::parse(response, max) {
                Ok(head) => {
                    let tail = self.client.as_mut().expect("client stream");
                    tail.headers = Some(head.metadata);
                    tail.preset = head.preset;
                    self.data_done = head.body.is_none();
                    self.body = head.body;
                    self.decoder = head.decoder;
                }
                Err(status) => return self.finish(Err(status)),
            }
        }
        loop {
            match self.decoder.next_message() {
                Ok(Some(bytes)) => match codec::decode::<T>(bytes) {
                    Ok(message) => return Poll::Ready(Ok(Some(message))),
                    Err(status) => return self.finish(Err(status)),
                },
                Ok(None) => {}
                Err(status) => return self.finish(Err(status)),
            }
            if let Some(tail) = &mut self.client
                && let Some(deadline) = &mut tail.deadline
                && deadline.as_mut().poll(cx).is_ready()
            {
                return self.finish(Err(Status::deadline_exceeded("deadline exceeded")));
            }
            if self.data_done {
                return self.poll_end(cx);
            }
            let body = self.body.as_mut().expect("body present until data ends");
            match ready!(body.poll_data(cx)) {
                Some(Ok(chunk)) => {
                    let _ = body.flow_control().release_capacity(chunk.len());
                    self.decoder.push(chunk);
                }
                Some(Err(e)) => {
                    let status = self.sender_failure().unwrap_or_else(|| Status::from_h2(&e));
                    return self.finish(Err(status));
                }
                None => self.data_done = true,
            }
        }
    }

    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<T>, Status>> {
        if self.decoder.has_partial() {
            return self.finish(Err(Status::internal(
                "stream ended in the middle of a message",
            )));
        }
        let Some(tail) = &mut self.client else {
            return self.finish(Ok(()));
        };
        if let Some(status) = tail.preset.take() {
            tail.trailers = Some(status.metadata().clone());
            return self.finish(if status.code() == crate::Code::Ok {
                Ok(())
            } else {
                Err(status)
            });
        }
        let body = self.body.as_mut().expect("body present until trailers");
        let trailers = match ready!(body.poll_trailers(cx)) {
            Ok(Some(trailers)) => trailers,
            Ok(None) => {
                return self.finish(Err(Status::internal(
                    "server closed the stream without sending trailers",
                )));
            }
            Err(e) => {
                let status = self.sender_failure().unwrap_or_else(|| Status::from_h2(&e));
                return self.finish(Err(status));
            }
        };
        let status = Status::from_trailers(&trailers).unwrap_or_else(|| {
            Status::internal("server closed the stream without a grpc-status trailer")
        });
        if let Some(tail) = &mut self.client {
            tail.trailers = Some(status.metadata().clone());
        }
        if status.code() == crate::Code::Ok {
            self.finish(Ok(()))
        } else {
            self.finish(Err(status))
        }
    }
}

impl<T: Message> Stream for Streaming<T> {
    type Item = Result<T, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // `Streaming` holds nothing pinned; `T` appears only in `PhantomData<fn() -> T>`.
        let this = self.get_mut();
        this.poll_message(cx).map(Result::transpose)
    }
}

/// Response headers still to come.
pub(crate) struct PendingHeaders {
    pub(crate) future: h2::client::ResponseFuture,
    pub(crate) max_recv: usize,
}

/// What the response headers tell: metadata, and either a body to read or a final status.
pub(crate) struct ResponseHead {
    pub(crate) metadata: MetadataMap,
    pub(crate) body: Option<h2::RecvStream>,
    pub(crate) decoder: FrameDecoder,
    /// The status of a trailers-only response (OK included).
    pub(crate) preset: Option<Status>,
}

impl ResponseHead {
    /// Checks the response headers: HTTP status, content-type, trailers-only status,
    /// `grpc-encoding`.
    pub(crate) fn parse(
        response: http::Response<h2::RecvStream>,
        max_recv: usize,
    ) -> Result<ResponseHead, Status> {
        let (parts, body) = response.into_parts();
        let trailers_only = Status::from_trailers(&parts.headers);
        if parts.status != http::StatusCode::OK {
            return Err(trailers_only
                .filter(|s| s.code() != crate::Code::Ok)
                .unwrap_or_else(|| Status::from_http_status(parts.status)));
        }
        // A trailers-only response carries its status; trust it whatever the content-type.
        if trailers_only.is_none() {
            check_content_type(&parts)?;
        }
        if let Some(status) = trailers_only {
            if status.code() != crate::Code::Ok {
                return Err(status);
            }
            return Ok(ResponseHead {
                metadata: MetadataMap::from_headers(parts.headers),
                body: None,
                decoder: FrameDecoder::new(max_recv, Received::Identity),
                preset: Some(status),
            });
        }
        let encoding = compression::parse_encoding(
            parts.headers.get(crate::headers::GRPC_ENCODING),
            &CompressionEncoding::ALL,
        )
        .map_err(|s| Status::internal(s.message().to_owned()))?;
        Ok(ResponseHead {
            metadata: MetadataMap::from_headers(parts.headers),
            body: Some(body),
            decoder: FrameDecoder::new(max_recv, encoding),
            preset: None,
        })
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
