//! [`OneResponse`]: the task of a call answered with one message (unary and client-streaming).
//!
//! A hand-written future rather than nested `async` blocks: each `async` layer keeps its own
//! copy of what it moves on (the request, the response, the responder), which made a unary
//! call's task 4 KB, memcpy'd several times per call. This one holds each piece once, owns
//! its responder outright (no `Arc<Mutex>`: the handler never sees it), and drops the
//! handler the moment the deadline passes or the client resets the stream.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use protobuf::Message;
use tokio::time::Sleep;

use super::call::{self, Started};
use super::responder::Responder;
use crate::codec::MessageCompressed;
use crate::interceptor::EndGuard;
use crate::metadata::MetadataMap;
use crate::request::{Request, Response};
use crate::status::Status;
use crate::streaming::Streaming;

pin_project! {
    /// One call's task: receive the request (unary), run the handler, send its response,
    /// end with the status.
    pub(super) struct OneResponse<Req, F, Fut> {
        #[pin]
        stage: Stage<Req, F, Fut>,
        responder: Responder,
        // Boxed: most calls have no deadline, and a `Sleep` is 112 bytes.
        deadline: Option<Pin<Box<Sleep>>>,
        end: EndGuard,
    }
}

pin_project! {
    #[project = StageProj]
    enum Stage<Req, F, Fut> {
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
            handler: Fut,
        },
        /// The response message is going out; these trailers follow it.
        Sending { trailers: Option<MetadataMap> },
        /// The status has been sent (or the stream reset).
        Done,
    }
}

impl<Req: Message, F, Fut> OneResponse<Req, F, Fut> {
    /// A unary call: the task reads the request, then calls `handler` with it.
    pub(super) fn unary(responder: Responder, mut call: Started, handler: F) -> Self {
        let requests = call.take_requests::<Req>();
        OneResponse::new(
            Stage::Receiving {
                requests: Some(requests),
                message: None,
                handler: Some(handler),
            },
            responder,
            call,
        )
    }

    fn new(stage: Stage<Req, F, Fut>, responder: Responder, call: Started) -> Self {
        OneResponse {
            stage,
            responder,
            deadline: call
                .deadline
                .map(|deadline| Box::pin(tokio::time::sleep_until(deadline))),
            end: call.end,
        }
    }
}

impl<Req: Message, Fut> OneResponse<Req, fn(Request<Req>) -> Fut, Fut> {
    /// A client-streaming call: the handler reads the requests itself.
    pub(super) fn client_streaming<H>(responder: Responder, mut call: Started, handler: H) -> Self
    where
        H: FnOnce(Request<Streaming<Req>>) -> Fut,
    {
        let handler = handler(call.take_requests::<Req>());
        OneResponse::new(Stage::Handling { handler }, responder, call)
    }
}

impl<Req, Resp, F, Fut> Future for OneResponse<Req, F, Fut>
where
    Req: Message,
    Resp: Message,
    F: FnOnce(Request<Req>) -> Fut,
    Fut: Future<Output = Result<Response<Resp>, Status>>,
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
                                handler: handler(request),
                            });
                        }
                    }
                }
                StageProj::Handling { handler } => match handler.poll(cx) {
                    Poll::Pending => {
                        if this.responder.poll_reset(cx).is_ready() {
                            call::cancelled(this.responder, this.end);
                            this.stage.set(Stage::Done);
                            return Poll::Ready(());
                        }
                        break None;
                    }
                    Poll::Ready(Err(status)) => break Some(status),
                    Poll::Ready(Ok(response)) => match queue_response(this.responder, response) {
                        Ok(trailers) => this.stage.set(Stage::Sending {
                            trailers: Some(trailers),
                        }),
                        Err(status) => break Some(status),
                    },
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

/// Queues the response's headers and message; returns the trailers to end with.
fn queue_response<Resp: Message>(
    responder: &mut Responder,
    response: Response<Resp>,
) -> Result<MetadataMap, Status> {
    let compression = response.send_compressed();
    let (metadata, message, trailers) = response.into_parts();
    if let Some(enc) = compression {
        responder.set_compression(Some(enc))?;
    }
    responder.add_headers(metadata);
    responder.queue(&message)?;
    Ok(trailers)
}
