//! [`ServerCall`]: one incoming call, and the pipeline that runs a handler on it.

use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::cancel::CallScope;
use bytes::Bytes;
use futures_util::FutureExt;
use h2::server::SendResponse;
use http::HeaderValue;
use tokio::time::Instant;
use tracing::Instrument;

use super::Shared;
use super::one_response::OneResponse;
use super::responder::{Responder, ResponseSender, lock};
use super::started::{Described, Outcome, Started, wrap_handler};
use crate::codec::framing::{FrameDecoder, Kind};
use crate::codec::{BytesCodec, Codec, MessageCompressed};
use crate::compression;
use crate::interceptor::EndGuard;
use crate::metadata::MetadataMap;
use crate::peer::Peer;
use crate::request::{Request, Response};
use crate::service::MethodDescriptor;
use crate::service::MethodRef;
use crate::status::Status;
use crate::streaming::{Body, Streaming};
use crate::timeout;

/// One incoming call, handed to [`Service::call`](super::Service::call).
///
/// Generated servers pass it to one of [`unary`](ServerCall::unary),
/// [`server_streaming`](ServerCall::server_streaming),
/// [`client_streaming`](ServerCall::client_streaming),
/// [`bidi_streaming`](ServerCall::bidi_streaming) or
/// [`unimplemented`](ServerCall::unimplemented), with the method's descriptor and
/// [`Codec`]. The runners start the call: decode the request, run the handler (dropping it
/// if the deadline passes or the client cancels; answering `INTERNAL` if it panics) and
/// send the response. On a current-thread runtime a call is first polled in its
/// connection's task and gets a task of its own only if it does not finish there; on a
/// multi-thread runtime each call is a task, so calls spread over the threads.
pub struct ServerCall {
    pub(crate) head: http::request::Parts,
    pub(crate) body: h2::RecvStream,
    pub(crate) respond: SendResponse<Bytes>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) peer: Arc<Peer>,
    /// The connection in channelz: the call's stream and messages count on it.
    pub(crate) socket: crate::channelz::internal::SocketEntry,
    /// The client's SETTINGS_MAX_HEADER_LIST_SIZE (`u32::MAX`: none), which the response's
    /// headers and trailers must respect.
    pub(crate) peer_max_header_list: u32,
    /// Set when the call may take its first step in the connection's task (a current-thread
    /// runtime): the connection task's waker, for that first poll.
    pub(crate) inline: Option<Waker>,
    /// The request's content-type when it names a subtype (`application/grpc+proto`), to
    /// echo back.
    pub(crate) subtype: Option<HeaderValue>,
}

impl fmt::Debug for ServerCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCall")
            .field("path", &self.head.uri.path())
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl ServerCall {
    /// The method path (`"/helloworld.Greeter/SayHello"`).
    pub fn path(&self) -> &str {
        self.head.uri.path()
    }

    /// Checks the request headers and sets the call up, without blocking: this runs in the
    /// connection's task. On failure, the error status has been sent and `None` comes back.
    fn begin(self, method: MethodRef) -> Option<(Responder, Started, Described)> {
        let ServerCall {
            head,
            body,
            respond,
            shared,
            peer,
            socket,
            peer_max_header_list,
            inline: _,
            subtype,
        } = self;
        let config = &shared.config;
        let stats = begin_stats(&shared, &head, &method, &peer);
        // One pass over the headers: the metadata, and the few the runtime reads.
        let (metadata, headers) = MetadataMap::from_request(head.headers);
        // RFC 9113 8.3.1 and gRPC-Go: one `host` at most (h2 already refuses two
        // `:authority`); gRPC-Go answers 400 with a gRPC status.
        if headers.hosts > 1 {
            let mut respond = respond;
            let status = Status::internal("the request has more than one host header");
            super::responder::early_abort(&mut respond, http::StatusCode::BAD_REQUEST, &status);
            if let Some(stats) = stats {
                stats.end(&status);
            }
            return None;
        }

        let mut failure: Option<(Status, bool)> = None;
        let timeout = match &headers.timeout {
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
        let now = Instant::now();
        let deadline = timeout.map(|t: Duration| now + t);
        // A deadline already passed (`grpc-timeout: 0n`, or one that ran out on the way):
        // answer DEADLINE_EXCEEDED without running the handler, as gRPC-Go does.
        let expired =
            timeout.is_some_and(|t| t.is_zero() || deadline.is_some_and(|d| d <= Instant::now()));
        if expired {
            failure.get_or_insert((
                Status::deadline_exceeded("deadline exceeded before the call started"),
                false,
            ));
        }
        let encoding = match compression::parse_encoding(headers.encoding.as_ref(), &config.accept)
        {
            Ok(encoding) => encoding,
            Err(status) => {
                failure.get_or_insert((status, true));
                compression::Received::Identity
            }
        };
        // A client that compressed its request with an encoding can decode it too.
        let mut client_accepts = compression::accept_set(headers.accept_encoding.as_ref());
        if let compression::Received::Known(enc) = encoding {
            client_accepts.insert(enc);
        }
        let mut responder = Responder::new(respond, client_accepts, config.max_send).with_limits(
            Arc::clone(&config.message_memory),
            config.stream_progress_timeout,
        );
        responder.set_peer_max_header_list(peer_max_header_list);
        responder.set_stats(stats.clone());
        responder.set_channelz(&shared.channelz, &socket);
        responder.set_span(crate::spans::server(head.uri.path(), &peer));
        let _ = responder.set_compression(config.send_compressed);
        // `application/grpc+<subtype>` is echoed (gRPC-Go does), plain `application/grpc` is
        // the default.
        if let Some(content_type) = subtype {
            responder.set_content_type(content_type);
        }
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
            // The body drops with this call: if the client is still sending, h2 resets the
            // stream (CANCEL) after the status.
            responder.finish(&status, None);
            return None;
        }
        let metadata = match metadata {
            Ok(metadata) => metadata,
            Err(status) => {
                responder.finish(&status, None);
                return None;
            }
        };
        let scope = CallScope::new();
        let mut body = Body::new(
            body,
            FrameDecoder::new(config.max_recv, encoding, Kind::Request)
                .with_quota(Arc::clone(&config.message_memory)),
        )
        .with_progress_timeout(config.stream_progress_timeout);
        body.set_stats(stats);
        body.set_half_close();
        body.set_channelz(socket);
        let started = Started {
            body: Some(body),
            metadata,
            extensions: head.extensions,
            deadline,
            peer,
            method: match &method {
                MethodRef::Known(m) => Some(m),
                MethodRef::Path(_) => None,
            },
            scope,
            end: EndGuard::none(),
            around: None,
        };
        let described = Described { method, timeout };
        Some((responder, started, described))
    }

    /// Starts the call's task: `task` builds its future from the set-up call. The checks run
    /// here; the interceptors (if any) run first in the task.
    fn launch<T>(
        mut self,
        method: MethodRef,
        task: impl FnOnce(Responder, Started) -> T + Send + 'static,
    ) where
        T: Future<Output = ()> + Send + 'static,
    {
        let chain = &self.shared.interceptors;
        if chain.is_empty() {
            let inline = self.inline.take();
            if let Some((responder, started, _)) = self.begin(method) {
                // The call's span is entered while its task runs: the handler's logs nest
                // under it.
                let span = responder.span().clone();
                let task = task(responder, started).instrument(span);
                match inline {
                    Some(waker) => run_inline(task, &waker),
                    None => drop(tokio::spawn(task)),
                }
            }
            return;
        }
        let chain = chain.clone();
        let Some((mut responder, started, described)) = self.begin(method) else {
            return;
        };
        let span = responder.span().clone();
        tokio::spawn(
            async move {
                if let Some(started) = started.intercept(described, &chain, &mut responder).await {
                    task(responder, started).await;
                }
            }
            .instrument(span),
        );
    }

    /// The driver of server-streaming and bidi calls, whose handler shares the responder:
    /// `work` (the handler and what it sends) raced against the deadline and a client
    /// reset, then the final status.
    fn drive<C, W, Fut>(self, method: MethodRef, mut codec: C, work: W)
    where
        C: Codec,
        W: FnOnce(Request<Streaming<C::Decode>>, ResponseSender<C::Encode>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Status>> + Send + 'static,
    {
        self.launch(method, move |responder, mut call| async move {
            let responder = Arc::new(Mutex::new(responder));
            let requests = call.take_requests(codec.decoder());
            let sender = ResponseSender::new(Arc::clone(&responder), Box::new(codec.encoder()));
            let work = wrap_handler(call.around.take(), work(requests, sender));
            let work = super::responder::FlushOnYield::new(Arc::clone(&responder), work);
            let work = AssertUnwindSafe(work).catch_unwind();
            let outcome = call.run(&responder, work).await;
            let outcome = match outcome {
                Outcome::Done(Ok(result)) => Outcome::Done(result),
                Outcome::Done(Err(_panic)) => Outcome::Done(Err(handler_panicked())),
                Outcome::DeadlineExceeded => Outcome::DeadlineExceeded,
                Outcome::Cancelled => Outcome::Cancelled,
            };
            call.complete(&mut lock(&responder), outcome);
        });
    }

    /// Runs a unary handler for `method`, with `codec` (responses out, requests in).
    pub fn unary<C, F, Fut>(self, method: &'static MethodDescriptor, mut codec: C, handler: F)
    where
        C: Codec,
        F: FnOnce(Request<C::Decode>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Response<C::Encode>, Status>> + Send + 'static,
    {
        self.launch(MethodRef::Known(method), move |responder, call| {
            OneResponse::unary(responder, call, codec.decoder(), codec.encoder(), handler)
        });
    }

    /// Runs a server-streaming handler.
    pub fn server_streaming<C, F, Fut>(
        self,
        method: &'static MethodDescriptor,
        codec: C,
        handler: F,
    ) where
        C: Codec,
        F: FnOnce(Request<C::Decode>, ResponseSender<C::Encode>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Status>> + Send + 'static,
    {
        self.drive(
            MethodRef::Known(method),
            codec,
            |requests, sender| async move {
                let request = single_request(requests).await?;
                handler(request, sender).await
            },
        );
    }

    /// Runs a client-streaming handler.
    pub fn client_streaming<C, F, Fut>(
        self,
        method: &'static MethodDescriptor,
        mut codec: C,
        handler: F,
    ) where
        C: Codec,
        F: FnOnce(Request<Streaming<C::Decode>>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Response<C::Encode>, Status>> + Send + 'static,
    {
        self.launch(MethodRef::Known(method), move |responder, call| {
            OneResponse::client_streaming(
                responder,
                call,
                codec.decoder(),
                codec.encoder(),
                handler,
            )
        });
    }

    /// Runs a bidi-streaming handler.
    pub fn bidi_streaming<C, F, Fut>(self, method: &'static MethodDescriptor, codec: C, handler: F)
    where
        C: Codec,
        F: FnOnce(Request<Streaming<C::Decode>>, ResponseSender<C::Encode>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Status>> + Send + 'static,
    {
        self.drive(MethodRef::Known(method), codec, handler);
    }

    /// Runs a handler of raw messages for a method the server does not know (the
    /// unknown-service handler): a bidi stream whatever the method's real kind.
    pub(crate) fn raw<F, Fut>(self, handler: F)
    where
        F: FnOnce(Request<Streaming<Bytes>>, ResponseSender<Bytes>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Status>> + Send + 'static,
    {
        let path = self
            .head
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        self.drive(MethodRef::Path(path), BytesCodec, handler);
    }

    /// Answers `UNIMPLEMENTED`: the service has no such method.
    pub fn unimplemented(self) {
        let status =
            Status::unimplemented(format!("unknown method for path {}", self.head.uri.path()));
        self.reject(status);
    }

    /// Answers with `status` without running a handler.
    pub(crate) fn reject(self, status: Status) {
        let method = MethodRef::Path(http::uri::PathAndQuery::from_static("/"));
        let stats = begin_stats(&self.shared, &self.head, &method, &self.peer);
        let ServerCall {
            respond,
            shared,
            socket,
            peer_max_header_list,
            ..
        } = self;
        let mut responder = Responder::new(respond, Default::default(), shared.config.max_send);
        responder.set_peer_max_header_list(peer_max_header_list);
        responder.set_stats(stats);
        responder.set_channelz(&shared.channelz, &socket);
        responder.finish(&status, None);
    }
}

/// Begins a call's stats, if the server has handlers: `Begin`, then the request headers.
fn begin_stats(
    shared: &Shared,
    head: &http::request::Parts,
    method: &MethodRef,
    peer: &Arc<Peer>,
) -> crate::stats::Stats {
    if shared.stats.is_empty() {
        return None;
    }
    let stats = shared.stats.begin(&crate::stats::RpcInfo {
        method: head.uri.path(),
        client: false,
        registered: matches!(method, MethodRef::Known(_)),
        target: None,
        attempt: None,
        peer: Some(peer),
        authority: head.uri.authority().map(|a| a.as_str()),
    })?;
    stats.emit(&crate::stats::RpcEvent::InHeader {
        headers: &head.headers,
    });
    Some(stats)
}

fn handler_panicked() -> Status {
    tracing::error!("a call's handler panicked; answering INTERNAL");
    Status::internal("the server's handler panicked")
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
        // Handlers' panics are caught inside the task; this is the runtime's own.
        Err(_) => tracing::error!("a call panicked; its stream is reset"),
    }
}

/// Reads the one request message of a unary or server-streaming call.
async fn single_request<Req: 'static>(
    mut requests: Request<Streaming<Req>>,
) -> Result<Request<Req>, Status> {
    let stream = requests.get_mut();
    stream.require_progress();
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
