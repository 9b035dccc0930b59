//! [`OneResponse`]: the task of a call answered with one message (unary and client-streaming).
//!
//! A hand-written future rather than nested `async` blocks: each `async` layer keeps its own
//! copy of what it moves on (the request, the response, the responder), which made a unary
//! call's task 4 KB, memcpy'd several times per call. This one holds each piece once, owns
//! its responder outright (no `Arc<Mutex>`: the handler never sees it), and drops the
//! handler the moment the deadline passes or the client resets the stream.

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::cancel::CallScope;
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::responder::Responder;
use super::started::{self as call, AroundCtx, MaybeWrapped, Started, wrap_handler};
use crate::codec::{Decoder, Encoder, MessageCompressed};
use crate::interceptor::EndGuard;
use crate::metadata::MetadataMap;
use crate::request::{Request, Response};
use crate::status::Status;
use crate::streaming::Streaming;

pin_project! {
    /// One call's task: receive the request (unary), run the handler, send its response,
    /// end with the status.
    pub(super) struct OneResponse<Req, E, F, Fut: Future> {
        #[pin]
        stage: Stage<Req, F, Fut>,
        responder: Responder,
        encoder: E,
        // Boxed: most calls have no deadline, and a `Sleep` is 112 bytes.
        deadline: Option<Pin<Box<Sleep>>>,
        end: EndGuard,
        around: Option<Box<AroundCtx>>,
        _scope: CallScope,
    }
}

pin_project! {
    #[project = StageProj]
    enum Stage<Req, F, Fut: Future> {
        /// Unary: reading the one request message (and the end of the stream after it).
        Receiving {
            requests: Option<Request<Streaming<Req>>>,
            // The message, and whether it arrived compressed.
            message: Option<(Req, bool)>,
            handler: Option<F>,
        },
        /// The handler runs.
        Handling {
            #[pin]
            handler: MaybeWrapped<Fut>,
        },
        /// The response message is going out; these trailers follow it.
        Sending { trailers: Option<MetadataMap> },
        /// The status has been sent (or the stream reset).
        Done,
    }
}

impl<Req, E: Encoder, F, Fut, T> OneResponse<Req, E, F, Fut>
where
    Fut: Future<Output = Result<T, Status>> + Send + 'static,
    T: Send + 'static,
{
    /// A unary call: the task reads the request, then calls `handler` with it.
    pub(super) fn unary<D>(
        responder: Responder,
        mut call: Started,
        decoder: D,
        encoder: E,
        handler: F,
    ) -> Self
    where
        D: Decoder<Item = Req>,
    {
        let mut requests = call.take_requests(decoder);
        requests.get_mut().require_progress();
        OneResponse::new(
            Stage::Receiving {
                requests: Some(requests),
                message: None,
                handler: Some(handler),
            },
            responder,
            encoder,
            call,
        )
    }

    fn new(stage: Stage<Req, F, Fut>, responder: Responder, encoder: E, call: Started) -> Self {
        OneResponse {
            stage,
            responder,
            encoder,
            deadline: call
                .deadline
                .map(|deadline| Box::pin(tokio::time::sleep_until(deadline))),
            end: call.end,
            around: call.around,
            _scope: call.scope,
        }
    }
}

impl<Req, E: Encoder, Fut, T> OneResponse<Req, E, fn(Request<Req>) -> Fut, Fut>
where
    Fut: Future<Output = Result<T, Status>> + Send + 'static,
    T: Send + 'static,
{
    /// A client-streaming call: the handler reads the requests itself.
    pub(super) fn client_streaming<D, H>(
        responder: Responder,
        mut call: Started,
        decoder: D,
        encoder: E,
        handler: H,
    ) -> Self
    where
        D: Decoder<Item = Req>,
        H: FnOnce(Request<Streaming<Req>>) -> Fut,
    {
        let requests = call.take_requests(decoder);
        let handler = wrap_handler(call.around.take(), handler(requests));
        OneResponse::new(Stage::Handling { handler }, responder, encoder, call)
    }
}

impl<Req: 'static, E, F, Fut> Future for OneResponse<Req, E, F, Fut>
where
    E: Encoder,
    E::Item: Send + 'static,
    F: FnOnce(Request<Req>) -> Fut,
    Fut: Future<Output = Result<Response<E::Item>, Status>> + Send + 'static,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        let failed = loop {
            match this.stage.as_mut().project() {
                StageProj::Receiving {
                    requests,
                    message,
                    handler,
                } => {
                    let stream = requests.as_mut().expect("requests until handled").get_mut();
                    match stream.poll_message(cx) {
                        Poll::Pending => break None,
                        Poll::Ready(Err(status)) => break Some(status),
                        Poll::Ready(Ok(Some(_))) if message.is_some() => {
                            break Some(Status::internal(
                                "more than one request message for a method taking one",
                            ));
                        }
                        Poll::Ready(Ok(Some(first))) => {
                            *message = Some((first, stream.last_message_compressed()));
                        }
                        Poll::Ready(Ok(None)) => {
                            let Some((first, compressed)) = message.take() else {
                                break Some(Status::internal(
                                    "request stream ended without a message",
                                ));
                            };
                            let requests = requests.take().expect("requests until handled");
                            let mut request = requests.map(|_| first);
                            if compressed {
                                request.extensions_mut().insert(MessageCompressed);
                            }
                            let handler = handler.take().expect("handler called once");
                            this.stage.set(Stage::Handling {
                                handler: wrap_handler(this.around.take(), handler(request)),
                            });
                        }
                    }
                }
                StageProj::Handling { handler } => match catch(handler, cx) {
                    Poll::Pending => {
                        if this.responder.poll_reset(cx).is_ready() {
                            call::cancelled(this.responder, this.end);
                            this.stage.set(Stage::Done);
                            return Poll::Ready(());
                        }
                        break None;
                    }
                    Poll::Ready(Err(status)) => break Some(status),
                    Poll::Ready(Ok(response)) => {
                        match queue_response(this.responder, this.encoder, response) {
                            Ok(trailers) => this.stage.set(Stage::Sending {
                                trailers: Some(trailers),
                            }),
                            Err(status) => break Some(status),
                        }
                    }
                },
                StageProj::Sending { trailers } => match this.responder.poll_flush(cx) {
                    Poll::Pending => break None,
                    Poll::Ready(Err(status)) => break Some(status),
                    Poll::Ready(Ok(())) => {
                        call::finish_ok(this.responder, this.end, trailers.take());
                        this.stage.set(Stage::Done);
                        return Poll::Ready(());
                    }
                },
                StageProj::Done => return Poll::Ready(()),
            }
        };
        if let Some(status) = failed {
            call::finish_err(this.responder, this.end, status);
        } else if let Some(deadline) = this.deadline
            && deadline.as_mut().poll(cx).is_ready()
        {
            call::deadline_exceeded(this.responder, this.end);
        } else {
            return Poll::Pending;
        }
        this.stage.set(Stage::Done);
        Poll::Ready(())
    }
}

/// Polls a handler, turning a panic into `INTERNAL` (the server logs it; the client gets
/// a status that blames the server, not a reset).
fn catch<Fut, T>(handler: Pin<&mut Fut>, cx: &mut Context<'_>) -> Poll<Result<T, Status>>
where
    Fut: Future<Output = Result<T, Status>>,
{
    match panic::catch_unwind(AssertUnwindSafe(|| handler.poll(cx))) {
        Ok(polled) => polled,
        Err(_) => {
            tracing::error!("a call's handler panicked; answering INTERNAL");
            Poll::Ready(Err(Status::internal("the server's handler panicked")))
        }
    }
}

/// Queues the response's headers and message; returns the trailers to end with.
fn queue_response<E: Encoder>(
    responder: &mut Responder,
    encoder: &mut E,
    response: Response<E::Item>,
) -> Result<MetadataMap, Status> {
    let compression = response.send_compressed();
    let (metadata, message, trailers) = response.into_parts();
    if let Some(enc) = compression {
        responder.set_compression(Some(enc))?;
    }
    responder.add_headers(metadata);
    responder.queue(encoder, &message, true)?;
    Ok(trailers)
}
