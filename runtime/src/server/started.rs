//! [`Started`]: a call past its checks, and how a call ends (status, reset, the outcome
//! reported to interceptors). Shared by the call runners and [`OneResponse`](super::one_response).

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::cancel::CallScope;
use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::responder::{Responder, SharedResponder, lock};
use crate::codec::Decoder;
use crate::interceptor::{CallInfo, Chain, EndGuard, wrap};
use crate::metadata::MetadataMap;
use crate::peer::Peer;
use crate::request::Request;
use crate::service::MethodRef;
use crate::service::{MethodDescriptor, MethodKind};
use crate::status::Status;
use crate::streaming::{Body, Streaming};

/// A call past its checks, with its handler still to run.
pub(super) struct Started {
    pub(super) body: Option<Body>,
    pub(super) metadata: MetadataMap,
    pub(super) extensions: http::Extensions,
    pub(super) deadline: Option<Instant>,
    pub(super) peer: Arc<Peer>,
    pub(super) method: Option<&'static MethodDescriptor>,
    /// Signals the call's `Cancellation` when the call's task ends, however it ends.
    pub(super) scope: CallScope,
    pub(super) end: EndGuard,
    /// The call for the `Around` interceptors, when there are some.
    pub(super) around: Option<Box<AroundCtx>>,
}

/// What the `Around` interceptors wrap a handler with.
pub(super) struct AroundCtx {
    chain: Chain,
    info: CallInfo,
}

pin_project! {
    /// A handler's future, wrapped by the `Around` interceptors or not (no box without them).
    #[project = MaybeWrappedProj]
    pub(super) enum MaybeWrapped<F: Future> {
        Plain { #[pin] fut: F },
        Wrapped { fut: Pin<Box<dyn Future<Output = F::Output> + Send>> },
    }
}

impl<F: Future> Future for MaybeWrapped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        match self.project() {
            MaybeWrappedProj::Plain { fut } => fut.poll(cx),
            MaybeWrappedProj::Wrapped { fut } => fut.as_mut().poll(cx),
        }
    }
}

/// Wraps a handler's future in the `Around` interceptors of `ctx`, if any.
pub(super) fn wrap_handler<F, T>(ctx: Option<Box<AroundCtx>>, fut: F) -> MaybeWrapped<F>
where
    F: Future<Output = Result<T, Status>> + Send + 'static,
    T: Send + 'static,
{
    match ctx {
        None => MaybeWrapped::Plain { fut },
        Some(ctx) => MaybeWrapped::Wrapped {
            fut: Box::pin(async move { wrap(ctx.chain.arounds(), &ctx.info, fut).await }),
        },
    }
}

/// What the interceptors need that the call itself does not keep.
pub(super) struct Described {
    pub(super) method: MethodRef,
    pub(super) timeout: Option<Duration>,
}

/// How a handler's run ended.
pub(super) enum Outcome<T> {
    Done(T),
    DeadlineExceeded,
    Cancelled,
}

impl Started {
    /// Runs the interceptors' `on_call`. On a rejection, the status has been sent and `None`
    /// comes back.
    pub(super) async fn intercept(
        self,
        described: Described,
        chain: &Chain,
        responder: &mut Responder,
    ) -> Option<Started> {
        let Started {
            body,
            metadata,
            extensions,
            deadline,
            peer,
            method,
            scope,
            end: _,
            around: _,
        } = self;
        let kind = described
            .method
            .descriptor()
            .map_or(MethodKind::BidiStreaming, |m| m.kind);
        let mut info = CallInfo {
            kind,
            method: described.method,
            metadata,
            extensions,
            timeout: described.timeout,
            peer: Some(Arc::clone(&peer)),
        };
        // A slow `on_call` (an authorization lookup, say) still ends with the call: when the
        // client resets the stream, or the deadline passes.
        let started = tokio::select! {
            started = chain.start(&mut info) => started,
            _ = std::future::poll_fn(|cx| responder.poll_reset(cx)) => return None,
            () = sleep_until(deadline) => {
                responder.finish(&Status::deadline_exceeded("deadline exceeded on the server"), None);
                return None;
            }
        };
        if let Err(status) = started {
            responder.finish(&status, None);
            return None;
        }
        // The guard reports the outcome; it sees what `on_call` left in the extensions (a
        // copy: the originals go on to the handler), not the metadata, which moves on.
        let report = CallInfo {
            kind,
            method: info.method.clone(),
            metadata: MetadataMap::new(),
            extensions: info.extensions.clone(),
            timeout: described.timeout,
            peer: info.peer.clone(),
        };
        let around = (!chain.arounds().is_empty()).then(|| {
            Box::new(AroundCtx {
                chain: chain.clone(),
                info: CallInfo {
                    kind,
                    method: info.method.clone(),
                    metadata: info.metadata.clone(),
                    extensions: info.extensions.clone(),
                    timeout: described.timeout,
                    peer: info.peer.clone(),
                },
            })
        });
        Some(Started {
            body,
            metadata: info.metadata,
            extensions: info.extensions,
            deadline,
            peer,
            method,
            scope,
            end: EndGuard::new(chain.clone(), report),
            around,
        })
    }

    /// The request stream, as the handler sees it (with metadata, deadline, peer).
    pub(super) fn take_requests<D: Decoder>(&mut self, decoder: D) -> Request<Streaming<D::Item>> {
        let body = self.body.take().expect("requests taken once");
        let mut request = Request::from_parts(
            std::mem::take(&mut self.metadata),
            std::mem::take(&mut self.extensions),
            Streaming::from_body(body, Box::new(decoder)),
        );
        request.deadline = self.deadline;
        request.peer = Some(Arc::clone(&self.peer));
        request.method = self.method;
        request.cancellation = Some(self.scope.cancellation());
        request
    }

    /// Runs `work`, dropping it if the deadline passes or the client resets the stream.
    pub(super) async fn run<F, T>(&mut self, responder: &SharedResponder, work: F) -> Outcome<T>
    where
        F: Future<Output = T>,
    {
        let reset = poll_fn(|cx| lock(responder).poll_reset(cx));
        let deadline = async {
            match self.deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            result = work => Outcome::Done(result),
            _ = reset => Outcome::Cancelled,
            () = deadline => Outcome::DeadlineExceeded,
        }
    }

    /// Sends the final status and reports the outcome to the interceptors.
    pub(super) fn complete(
        mut self,
        responder: &mut Responder,
        outcome: Outcome<Result<(), Status>>,
    ) {
        match outcome {
            Outcome::Done(Ok(())) => finish_ok(responder, &mut self.end, None),
            Outcome::Done(Err(status)) => finish_err(responder, &mut self.end, status),
            Outcome::DeadlineExceeded => deadline_exceeded(responder, &mut self.end),
            Outcome::Cancelled => cancelled(responder, &mut self.end),
        }
    }
}

/// Ends a call with OK and `trailers`.
pub(super) fn finish_ok(
    responder: &mut Responder,
    end: &mut EndGuard,
    trailers: Option<MetadataMap>,
) {
    responder.finish_ok(trailers);
    end.finish_ok();
}

/// Ends a call with a handler's (or the runtime's) error status.
pub(super) fn finish_err(responder: &mut Responder, end: &mut EndGuard, status: Status) {
    responder.finish(&status, None);
    end.finish(&status);
}

/// Ends a call whose deadline passed: DEADLINE_EXCEEDED in trailers (then h2's implicit
/// reset of a request still open). A bare RST_STREAM(CANCEL) reached clients whose own timer
/// had not fired yet (grpcio's and grpc-js's coarse timers, a 1 ms deadline) as CANCELLED;
/// the status in trailers is read first, whatever the clients' timers do.
pub(super) fn deadline_exceeded(responder: &mut Responder, end: &mut EndGuard) {
    finish_err(
        responder,
        end,
        Status::deadline_exceeded("deadline exceeded on the server"),
    );
}

/// Ends a call the client reset.
pub(super) fn cancelled(responder: &mut Responder, end: &mut EndGuard) {
    responder.reset(h2::Reason::CANCEL);
    end.finish(&Status::cancelled("call cancelled by the client"));
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
