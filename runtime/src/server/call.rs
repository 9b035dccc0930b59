//! [`ServerCall`]: one incoming call, and the pipeline that runs a handler on it.

use std::fmt;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use http::HeaderValue;
use protobuf::Message;
use tokio::time::Instant;

use super::Shared;
use super::one_response::OneResponse;
use super::responder::{Responder, ResponseSender, SharedResponder, lock};
use crate::codec::{FrameDecoder, MessageCompressed};
use crate::compression;
use crate::headers::{GRPC_ACCEPT_ENCODING, GRPC_ENCODING, GRPC_TIMEOUT};
use crate::interceptor::{CallInfo, Chain, EndGuard};
use crate::metadata::MetadataMap;
use crate::request::{Request, Response};
use crate::service::MethodKind;
use crate::status::Status;
use crate::streaming::Streaming;
use crate::timeout;

/// One incoming call, handed to [`Service::call`](crate::service::Service::call).
///
/// Generated servers pass it to one of [`unary`](ServerCall::unary),
/// [`server_streaming`](ServerCall::server_streaming),
/// [`client_streaming`](ServerCall::client_streaming), [`streaming`](ServerCall::streaming)
/// or [`unimplemented`](ServerCall::unimplemented). The runners start the call: decode the
/// request, run the handler (dropping it if the deadline passes or the client cancels) and
/// send the response. On a current-thread runtime a call is first polled in its connection's
/// task and gets a task of its own only if it does not finish there; on a multi-thread
/// runtime each call is a task, so calls spread over the threads.
pub struct ServerCall {
    pub(crate) head: http::request::Parts,
    pub(crate) body: h2::RecvStream,
    pub(crate) respond: SendResponse<Bytes>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) remote_addr: Option<SocketAddr>,
    /// Set when the call may take its first step in the connection's task (a current-thread
    /// runtime): the connection task's waker, for that first poll.
    pub(crate) inline: Option<Waker>,
}

impl fmt::Debug for ServerCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCall")
            .field("path", &self.head.uri.path())
            .field("remote_addr", &self.remote_addr)
            .finish_non_exhaustive()
    }
}

/// A call past its checks, with its handler still to run.
pub(super) struct Started {
    requests: Option<(h2::RecvStream, FrameDecoder)>,
    metadata: MetadataMap,
    extensions: http::Extensions,
    pub(super) deadline: Option<Instant>,
    remote_addr: Option<SocketAddr>,
    pub(super) end: EndGuard,
}

/// What the interceptors need that the call itself does not keep.
struct Described {
    uri: http::Uri,
    timeout: Option<Duration>,
}

/// How a handler's run ended.
enum Outcome<T> {
    Done(T),
    DeadlineExceeded,
    Cancelled,
}

impl ServerCall {
    /// Checks the request headers and sets the call up, without blocking: this runs in the
    /// connection's task. On failure, the error status has been sent and `None` comes back.
    fn begin(self) -> Option<(Responder, Started, Described)> {
        let ServerCall {
            head,
            body,
            respond,
            shared,
            remote_addr,
            inline: _,
        } = self;
        let config = &shared.config;
        let headers = &head.headers;

        let mut failure: Option<(Status, bool)> = None;
        let timeout = match headers.get(GRPC_TIMEOUT) {
            None => None,
            Some(value) => match timeout::decode(value.as_bytes()) {
                Some(t) => Some(t),
                None => {
                    failure = Some((
                        Status::internal(format!("malformed grpc-timeout {value:?}")),
                        false,
                    ));
                    None
                }
            },
        };
        let deadline = timeout.map(|t: Duration| Instant::now() + t);
        let encoding = match compression::parse_encoding(headers.get(GRPC_ENCODING), &config.accept)
        {
            Ok(encoding) => encoding,
            Err(status) => {
                failure.get_or_insert((status, true));
                compression::Received::Identity
            }
        };
        // A client that compressed its request with an encoding can decode it too.
        let mut client_accepts = compression::accept_set(headers.get(GRPC_ACCEPT_ENCODING));
        if let compression::Received::Known(enc) = encoding {
            client_accepts.insert(enc);
        }
        let mut responder = Responder::new(respond, client_accepts, config.max_send);
        let _ = responder.set_compression(config.send_compressed);
        if let Some((status, list_accepted)) = failure {
            if list_accepted {
                let mut md = MetadataMap::new();
                // `grpc-accept-encoding` is reserved for users; set it as the runtime.
                md.insert_raw(
                    "grpc-accept-encoding",
                    HeaderValue::try_from(compression::accept_list(&config.accept))
                        .expect("ASCII list"),
                );
                responder.add_headers(md);
            }
            responder.finish(&status, None);
            return None;
        }
        let started = Started {
            requests: Some((body, FrameDecoder::new(config.max_recv, encoding))),
            metadata: MetadataMap::from_headers(head.headers),
            extensions: head.extensions,
            deadline,
            remote_addr,
            end: EndGuard::none(),
        };
        let described = Described {
            uri: head.uri,
            timeout,
        };
        Some((responder, started, described))
    }

    /// Starts the call's task: `task` builds its future from the set-up call. The checks run
    /// here; the interceptors (if any) run first in the task.
    fn launch<T>(
        mut self,
        kind: MethodKind,
        task: impl FnOnce(Responder, Started) -> T + Send + 'static,
    ) where
        T: Future<Output = ()> + Send + 'static,
    {
        let chain = &self.shared.interceptors;
        if chain.is_empty() {
            let inline = self.inline.take();
            if let Some((responder, started, _)) = self.begin() {
                match inline {
                    Some(waker) => run_inline(task(responder, started), &waker),
                    None => drop(tokio::spawn(task(responder, started))),
                }
            }
            return;
        }
        let chain = chain.clone();
        let Some((mut responder, started, described)) = self.begin() else {
            return;
        };
        tokio::spawn(async move {
            if let Some(started) = started
                .intercept(kind, described, &chain, &mut responder)
                .await
            {
                task(responder, started).await;
            }
        });
    }

    /// The driver of server-streaming and bidi calls, whose handler shares the responder:
    /// `work` (the handler and what it sends) raced against the deadline and a client
    /// reset, then the final status. `work` returns the trailers to end an OK call with.
    fn drive<Req, W, Fut>(self, kind: MethodKind, work: W)
    where
        Req: Message,
        W: FnOnce(Request<Streaming<Req>>, SharedResponder) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Option<MetadataMap>, Status>> + Send + 'static,
    {
        self.launch(kind, |responder, mut call| async move {
            let responder = Arc::new(Mutex::new(responder));
            let requests = call.take_requests::<Req>();
            let outcome = call
                .run(&responder, work(requests, Arc::clone(&responder)))
                .await;
            call.complete(&mut lock(&responder), outcome);
        });
    }

    /// Runs a unary handler.
    pub fn unary<Req, Resp, F, Fut>(self, handler: F)
    where
        Req: Message,
        Resp: Message,
        F: FnOnce(Request<Req>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Response<Resp>, Status>> + Send + 'static,
    {
        self.launch(MethodKind::Unary, |responder, call| {
            OneResponse::unary(responder, call, handler)
        });
    }

    /// Runs a server-streaming handler.
    pub fn server_streaming<Req, Resp, F, Fut>(self, handler: F)
    where
        Req: Message,
        Resp: Message,
        F: FnOnce(Request<Req>, ResponseSender<Resp>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Status>> + Send + 'static,
    {
        self.drive(
            MethodKind::ServerStreaming,
            |requests, responder| async move {
                let request = single_request(requests).await?;
                handler(request, ResponseSender::new(responder))
                    .await
                    .map(|()| None)
            },
        );
    }

    /// Runs a client-streaming handler.
    pub fn client_streaming<Req, Resp, F, Fut>(self, handler: F)
    where
        Req: Message,
        Resp: Message,
        F: FnOnce(Request<Streaming<Req>>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Response<Resp>, Status>> + Send + 'static,
    {
        self.launch(MethodKind::ClientStreaming, |responder, call| {
            OneResponse::client_streaming(responder, call, handler)
        });
    }

    /// Runs a bidi-streaming handler.
    pub fn streaming<Req, Resp, F, Fut>(self, handler: F)
    where
        Req: Message,
        Resp: Message,
        F: FnOnce(Request<Streaming<Req>>, ResponseSender<Resp>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Status>> + Send + 'static,
    {
        self.drive(
            MethodKind::BidiStreaming,
            |requests, responder| async move {
                handler(requests, ResponseSender::new(responder))
                    .await
                    .map(|()| None)
            },
        );
    }

    /// Answers `UNIMPLEMENTED`: the service has no such method.
    pub fn unimplemented(self) {
        let status =
            Status::unimplemented(format!("unknown method for path {}", self.head.uri.path()));
        self.reject(status);
    }

    /// Answers with `status` without running a handler.
    pub(crate) fn reject(self, status: Status) {
        let ServerCall {
            respond, shared, ..
        } = self;
        let mut responder = Responder::new(respond, Default::default(), shared.config.max_send);
        responder.finish(&status, None);
    }
}

impl Started {
    /// Runs the interceptors' `on_call`. On a rejection, the status has been sent and `None`
    /// comes back.
    async fn intercept(
        self,
        kind: MethodKind,
        described: Described,
        chain: &Chain,
        responder: &mut Responder,
    ) -> Option<Started> {
        let Started {
            requests,
            metadata,
            extensions,
            deadline,
            remote_addr,
            end: _,
        } = self;
        let mut info = CallInfo {
            path: described.uri.path().to_owned(),
            kind,
            metadata,
            extensions,
            timeout: described.timeout,
            remote_addr,
        };
        if let Err(status) = chain.start(&mut info).await {
            responder.finish(&status, None);
            return None;
        }
        // The guard reports the outcome; it needs the call's description, not its
        // metadata, which moves to the handler.
        let report = CallInfo {
            path: std::mem::take(&mut info.path),
            kind,
            metadata: MetadataMap::new(),
            extensions: http::Extensions::new(),
            timeout: described.timeout,
            remote_addr,
        };
        Some(Started {
            requests,
            metadata: info.metadata,
            extensions: info.extensions,
            deadline,
            remote_addr,
            end: EndGuard::new(chain.clone(), report),
        })
    }

    /// The request stream, as the handler sees it (with metadata, deadline, peer).
    pub(super) fn take_requests<Req: Message>(&mut self) -> Request<Streaming<Req>> {
        let (body, decoder) = self.requests.take().expect("requests taken once");
        let mut request = Request::from_parts(
            std::mem::take(&mut self.metadata),
            std::mem::take(&mut self.extensions),
            Streaming::new(Some(body), decoder),
        );
        request.set_deadline(self.deadline.map(Instant::into_std));
        request.set_remote_addr(self.remote_addr);
        request
    }

    /// Runs `work`, dropping it if the deadline passes or the client resets the stream.
    async fn run<F>(
        &mut self,
        responder: &SharedResponder,
        work: F,
    ) -> Outcome<Result<Option<MetadataMap>, Status>>
    where
        F: Future<Output = Result<Option<MetadataMap>, Status>>,
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
    fn complete(
        mut self,
        responder: &mut Responder,
        outcome: Outcome<Result<Option<MetadataMap>, Status>>,
    ) {
        match outcome {
            Outcome::Done(Ok(trailers)) => finish_ok(responder, &mut self.end, trailers),
            Outcome::Done(Err(status)) => finish_err(responder, &mut self.end, status),
            Outcome::DeadlineExceeded => deadline_exceeded(responder, &mut self.end),
            Outcome::Cancelled => cancelled(responder, &mut self.end),
        }
    }
}

/// Polls `task` once here, in the connection's task, and spawns it only if it is not done:
/// a unary call whose handler answers at once costs no task of its own, and its response
/// goes out with the connection's next write. Only on a current-thread runtime, where a
/// spawned task would run on this same thread anyway.
fn run_inline<T>(task: T, waker: &Waker)
where
    T: Future<Output = ()> + Send + 'static,
{
    let mut task = Box::pin(task);
    let polled = panic::catch_unwind(AssertUnwindSafe(|| {
        task.as_mut().poll(&mut Context::from_waker(waker))
    }));
    match polled {
        Ok(Poll::Ready(())) => {}
        // The spawned task polls it again at once, registering its own waker.
        Ok(Poll::Pending) => drop(tokio::spawn(task)),
        // A panicking handler ends its own call (its stream is reset when the task drops),
        // as it would in a task of its own, not the connection.
        Err(_) => tracing::error!("a call's handler panicked; its stream is reset"),
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

/// Ends a call whose deadline passed: the status, then a reset (as gRPC-Go does).
pub(super) fn deadline_exceeded(responder: &mut Responder, end: &mut EndGuard) {
    let status = Status::deadline_exceeded("deadline exceeded");
    responder.finish(&status, None);
    responder.reset(h2::Reason::CANCEL);
    end.finish(&status);
}

/// Ends a call the client reset.
pub(super) fn cancelled(responder: &mut Responder, end: &mut EndGuard) {
    responder.reset(h2::Reason::CANCEL);
    end.finish(&Status::cancelled("call cancelled by the client"));
}

/// Reads the one request message of a unary or server-streaming call.
async fn single_request<Req: Message>(
    mut requests: Request<Streaming<Req>>,
) -> Result<Request<Req>, Status> {
    let stream = requests.get_mut();
    let Some(message) = stream.message().await? else {
        return Err(Status::internal("request stream ended without a message"));
    };
    let compressed = stream.last_message_compressed();
    if stream.message().await?.is_some() {
        return Err(Status::internal(
            "more than one request message for a method taking one",
        ));
    }
    if compressed {
        requests.extensions_mut().insert(MessageCompressed);
    }
    Ok(requests.map(|_| message))
}
