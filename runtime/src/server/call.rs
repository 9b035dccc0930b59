//! [`ServerCall`]: one incoming call, and the pipeline that runs a handler on it.

use std::fmt;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use http::HeaderValue;
use protobuf::Message;
use tokio::time::Instant;

use super::Shared;
use super::responder::{self, Responder, ResponseSender, SharedResponder, lock};
use crate::codec::{FrameDecoder, MessageCompressed};
use crate::compression;
use crate::headers::{GRPC_ACCEPT_ENCODING, GRPC_ENCODING, GRPC_TIMEOUT};
use crate::interceptor::{CallInfo, EndGuard};
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
/// or [`unimplemented`](ServerCall::unimplemented). The runners start a task that decodes the
/// request, runs the handler (dropping it if the deadline passes or the client cancels) and
/// sends the response: one task per call, holding the handler's future itself, unboxed.
pub struct ServerCall {
    pub(crate) head: http::request::Parts,
    pub(crate) body: h2::RecvStream,
    pub(crate) respond: SendResponse<Bytes>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) remote_addr: Option<SocketAddr>,
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
struct Started {
    responder: SharedResponder,
    requests: Option<(h2::RecvStream, FrameDecoder)>,
    metadata: MetadataMap,
    extensions: http::Extensions,
    deadline: Option<Instant>,
    remote_addr: Option<SocketAddr>,
    end: EndGuard,
}

/// How a handler's run ended.
enum Outcome<T> {
    Done(T),
    DeadlineExceeded,
    Cancelled,
}

impl ServerCall {
    /// Checks the request headers, runs the interceptors and sets the call up. On failure,
    /// the error status has been sent and `None` comes back.
    async fn start(self, kind: MethodKind) -> Option<Started> {
        let ServerCall {
            head,
            body,
            respond,
            shared,
            remote_addr,
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

        let metadata = MetadataMap::from_headers(head.headers);
        let chain = &shared.interceptors;
        let (metadata, extensions, end) = if chain.is_empty() {
            (metadata, head.extensions, EndGuard::none())
        } else {
            let mut info = CallInfo {
                path: head.uri.path().to_owned(),
                kind,
                metadata,
                extensions: head.extensions,
                timeout,
                remote_addr,
            };
            if let Err(status) = chain.start(&mut info).await {
                responder.finish(&status, None);
                return None;
            }
            // The guard reports the outcome; it needs the call's description, not its
            // metadata, which moves to the handler.
            let described = CallInfo {
                path: std::mem::take(&mut info.path),
                kind,
                metadata: MetadataMap::new(),
                extensions: http::Extensions::new(),
                timeout,
                remote_addr,
            };
            (
                info.metadata,
                info.extensions,
                EndGuard::new(chain.clone(), described),
            )
        };
        Some(Started {
            responder: Arc::new(Mutex::new(responder)),
            requests: Some((body, FrameDecoder::new(config.max_recv, encoding))),
            metadata,
            extensions,
            deadline,
            remote_addr,
            end,
        })
    }

    /// The one driver behind the four runners: checks and interceptors, then `work` (the
    /// handler and what it sends) raced against the deadline and a client reset, then the
    /// final status. `work` returns the trailers to end an OK call with.
    async fn drive<Req, W, Fut>(self, kind: MethodKind, work: W)
    where
        Req: Message,
        W: FnOnce(Request<Streaming<Req>>, SharedResponder) -> Fut,
        Fut: Future<Output = Result<Option<MetadataMap>, Status>>,
    {
        let Some(mut call) = self.start(kind).await else {
            return;
        };
        let requests = call.take_requests::<Req>();
        let responder = Arc::clone(&call.responder);
        let outcome = call.run(work(requests, responder)).await;
        call.complete(outcome);
    }

    /// Runs a unary handler.
    pub fn unary<Req, Resp, F, Fut>(self, handler: F)
    where
        Req: Message,
        Resp: Message,
        F: FnOnce(Request<Req>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Response<Resp>, Status>> + Send + 'static,
    {
        tokio::spawn(
            self.drive(MethodKind::Unary, |requests, responder| async move {
                let response = handler(single_request(requests).await?).await?;
                send_response(&responder, response).await
            }),
        );
    }

    /// Runs a server-streaming handler.
    pub fn server_streaming<Req, Resp, F, Fut>(self, handler: F)
    where
        Req: Message,
        Resp: Message,
        F: FnOnce(Request<Req>, ResponseSender<Resp>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Status>> + Send + 'static,
    {
        tokio::spawn(self.drive(
            MethodKind::ServerStreaming,
            |requests, responder| async move {
                let request = single_request(requests).await?;
                handler(request, ResponseSender::new(responder))
                    .await
                    .map(|()| None)
            },
        ));
    }

    /// Runs a client-streaming handler.
    pub fn client_streaming<Req, Resp, F, Fut>(self, handler: F)
    where
        Req: Message,
        Resp: Message,
        F: FnOnce(Request<Streaming<Req>>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Response<Resp>, Status>> + Send + 'static,
    {
        tokio::spawn(self.drive(
            MethodKind::ClientStreaming,
            |requests, responder| async move {
                let response = handler(requests).await?;
                send_response(&responder, response).await
            },
        ));
    }

    /// Runs a bidi-streaming handler.
    pub fn streaming<Req, Resp, F, Fut>(self, handler: F)
    where
        Req: Message,
        Resp: Message,
        F: FnOnce(Request<Streaming<Req>>, ResponseSender<Resp>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Status>> + Send + 'static,
    {
        tokio::spawn(self.drive(
            MethodKind::BidiStreaming,
            |requests, responder| async move {
                handler(requests, ResponseSender::new(responder))
                    .await
                    .map(|()| None)
            },
        ));
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
    /// The request stream, as the handler sees it (with metadata, deadline, peer).
    fn take_requests<Req: Message>(&mut self) -> Request<Streaming<Req>> {
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
    async fn run<F>(&mut self, work: F) -> Outcome<Result<Option<MetadataMap>, Status>>
    where
        F: Future<Output = Result<Option<MetadataMap>, Status>>,
    {
        let reset = poll_fn(|cx| lock(&self.responder).poll_reset(cx));
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
    fn complete(mut self, outcome: Outcome<Result<Option<MetadataMap>, Status>>) {
        let mut responder = lock(&self.responder);
        let status = match outcome {
            Outcome::Done(Ok(trailers)) => {
                responder.finish_ok(trailers);
                drop(responder);
                self.end.finish_ok();
                return;
            }
            Outcome::Done(Err(status)) => {
                responder.finish(&status, None);
                status
            }
            Outcome::DeadlineExceeded => {
                let status = Status::deadline_exceeded("deadline exceeded");
                responder.finish(&status, None);
                responder.reset(h2::Reason::CANCEL);
                status
            }
            Outcome::Cancelled => {
                responder.reset(h2::Reason::CANCEL);
                Status::cancelled("call cancelled by the client")
            }
        };
        drop(responder);
        self.end.finish(&status);
    }
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

/// Sends a unary response: headers, the message; returns the trailers to end with.
async fn send_response<Resp: Message>(
    responder: &SharedResponder,
    response: Response<Resp>,
) -> Result<Option<MetadataMap>, Status> {
    let compression = response.send_compressed();
    let (metadata, message, trailers) = response.into_parts();
    {
        let mut responder = lock(responder);
        if let Some(enc) = compression {
            responder.set_compression(Some(enc))?;
        }
        responder.add_headers(metadata);
    }
    responder::write(responder, &message).await?;
    Ok(Some(trailers))
}
