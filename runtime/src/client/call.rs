//! How a [`Channel`] runs the four kinds of calls over HTTP/2: interceptors, request
//! headers, the deadline, sending, and the response.

use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::cancel::Cancellation;
use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_util::StreamExt;
use h2::SendStream;
use h2::client::ResponseFuture;
use http::HeaderValue;
use tokio::time::Instant;
use tracing::Instrument;

use super::conn::CallGuard;
use super::response::{H2Response, SendError};
use super::retry::{self, Committing, Hedge, Pending, Policy, Retry, RetryState, copy_request};
use super::sender::{Encoding, FrameSender, H2Sender, RequestSender};
use super::{BidiCall, CallInvoker, Channel};
use crate::channelz::internal::{SocketEntry, SubchannelEntry};
use crate::codec::framing::{self, Batch, Kind};
use crate::codec::{BytesCodec, Codec, Decoder, Encoder, MessageCompressed, Outbound};
use crate::compression::{self, CompressionEncoding};
use crate::credentials::{self, CallCredentials, CallCredentialsInfo};
use crate::headers::{GRPC_ACCEPT_ENCODING, GRPC_ENCODING, GRPC_TIMEOUT};
use crate::interceptor::{AroundFuture, AttemptInfo, CallInfo, Chain, EndGuard, run_around, wrap};
use crate::request::{Request, Response};
use crate::service::{MethodKind, MethodRef};
use crate::spans;
use crate::stats::Stats;
use crate::status::{Code, Status};
use crate::streaming::{ResponseSource, Streaming};
use crate::timeout;
use crate::transport;

/// A call whose request headers are out.
struct Call {
    end: EndGuard,
    deadline: Option<Instant>,
    cancellation: Option<Cancellation>,
    compression: Option<CompressionEncoding>,
    max_recv: usize,
    max_send: usize,
    /// The call's own credentials (the channel's are the channel's).
    credentials: Option<Arc<dyn CallCredentials>>,
    wait_for_ready: bool,
    /// The service config's retry or hedging policy for the method, with the channel's
    /// throttle.
    policy: Option<Policy>,
    /// A streaming call's request headers, kept to open another attempt (under a policy
    /// only).
    replay: Option<http::Request<()>>,
    /// Whether the call goes through a method descriptor (generated code), for stats.
    registered: bool,
}

/// What each attempt of a call needs to open its stream.
#[derive(Clone)]
pub(super) struct Attempt {
    deadline: Option<Instant>,
    credentials: Option<Arc<dyn CallCredentials>>,
    wait_for_ready: bool,
    /// The interceptors and the call they see, told of each attempt (`None` without
    /// interceptors).
    observer: Option<Arc<(Chain, CallInfo)>>,
    /// The request messages' compression, for stats handlers that read sent messages.
    pub(super) compression: Option<CompressionEncoding>,
    /// Whether the call goes through a method descriptor, for stats.
    registered: bool,
}

/// A stream whose request headers are out, and the count that keeps its channel busy.
pub(super) struct Opened {
    pub(super) response: ResponseFuture,
    pub(super) send: SendStream<Bytes>,
    pub(super) guard: CallGuard,
    /// The attempt's stats handlers (`None`: no handler).
    pub(super) stats: Stats,
    /// The attempt's subchannel and connection in channelz, which count it.
    pub(super) channelz: Counted,
}

/// An attempt's subchannel and connection in channelz (`None` off a subchannel).
pub(super) type Counted = Option<(SubchannelEntry, SocketEntry)>;

/// A request message went out on the attempt's connection.
pub(super) fn count_sent(counted: &Counted) {
    if let Some((_, socket)) = counted {
        socket.message_sent();
    }
}

impl Call {
    fn attempt(&self) -> Attempt {
        Attempt {
            deadline: self.deadline,
            credentials: self.credentials.clone(),
            wait_for_ready: self.wait_for_ready,
            observer: self.end.observer(),
            compression: self.compression,
            registered: self.registered,
        }
    }

    /// Encodes a call's one request message as a frame (consuming it: it is not needed once
    /// its bytes are, and a held message would make the call's future need `Sync` types).
    fn encode<E: Encoder>(&self, mut encoder: E, message: E::Item) -> Result<Bytes, Status> {
        framing::encode(
            &mut encoder,
            &message,
            self.compression,
            self.max_send,
            Kind::Request,
            &mut BytesMut::new(),
        )
    }
}

/// What the call's own interceptors leave for the `Around`s: the call as they see it.
type AroundInfo = Option<CallInfo>;

impl Channel {
    /// Runs the observing interceptors' `on_call` and builds the request headers (all but
    /// `grpc-timeout`, which is computed when they go out).
    async fn prepare(
        &self,
        method: MethodRef,
        kind: MethodKind,
        head: Request<()>,
    ) -> Result<(Call, http::Request<()>, AroundInfo), Status> {
        let uri = self.uri(&method)?;
        let registered = method.descriptor().is_some();
        let config = self.config();
        let chain = &config.interceptors;
        let mut timeout = head.timeout;
        let mut end = EndGuard::none();
        let mut around = None;
        // Without interceptors the metadata's header map becomes the request's headers as is;
        // with them, they see (and may change) it first and keep a copy for `on_end`.
        let metadata = if chain.is_empty() {
            head.metadata
        } else {
            let mut info = CallInfo {
                method,
                kind,
                metadata: head.metadata,
                extensions: head.extensions,
                timeout,
                peer: None,
            };
            chain.start(&mut info).await?;
            timeout = info.timeout;
            let metadata = info.metadata.clone();
            if !chain.arounds().is_empty() {
                around = Some(CallInfo {
                    method: info.method.clone(),
                    kind,
                    metadata: metadata.clone(),
                    extensions: info.extensions.clone(),
                    timeout,
                    peer: None,
                });
            }
            end = EndGuard::new(chain.clone(), info);
            metadata
        };
        // The service config's settings for the method (gRPC-Go's precedence: the smaller
        // timeout and limits win; a call's own wait-for-ready wins over the config's), once
        // the resolver has said whether it has one.
        if let Err(status) = self.resolved(timeout, head.deadline).await {
            end.finish(&status);
            return Err(status);
        }
        let service_config = self.service_config();
        let method_config = service_config
            .as_ref()
            .and_then(|c| c.config.method(uri.path()).cloned());
        let mut max_recv = head
            .max_recv_message_size
            .unwrap_or(config.max_recv_message_size);
        let mut max_send = head
            .max_send_message_size
            .unwrap_or(config.max_send_message_size);
        let mut wait_for_ready = head.wait_for_ready;
        let mut policy = None;
        if let Some(method) = &method_config {
            timeout = match (timeout, method.timeout) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            wait_for_ready = wait_for_ready.or(method.wait_for_ready);
            max_recv = max_recv.min(method.max_response_bytes.unwrap_or(usize::MAX));
            max_send = max_send.min(method.max_request_bytes.unwrap_or(usize::MAX));
            let throttle = service_config.as_ref().and_then(|c| c.throttle.clone());
            // The parser lets a method have one of the two at most.
            policy = match (&method.retry, &method.hedging) {
                _ if !config.retries => None,
                (Some(retry), _) => Some(Policy::Retry(Retry {
                    policy: retry.clone(),
                    throttle,
                })),
                (None, Some(hedging)) => Some(Policy::Hedge(Hedge {
                    policy: hedging.clone(),
                    throttle,
                })),
                (None, None) => None,
            };
        }
        let deadline = match (timeout.map(|t| Instant::now() + t), head.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let call = Call {
            deadline,
            cancellation: head.cancellation,
            compression: head.compression,
            max_recv,
            max_send,
            credentials: head.call_credentials,
            wait_for_ready: wait_for_ready.unwrap_or(config.wait_for_ready),
            policy,
            replay: None,
            end,
            registered,
        };

        let mut request = http::Request::new(());
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = uri;
        // The call-definition headers first, then custom metadata (the spec's grammar order).
        // `grpc-timeout` holds its place here; its value, what is left of the deadline, is
        // set when the headers go out.
        let metadata = metadata.into_headers();
        let headers = request.headers_mut();
        // Room for the six at most below: HeaderMap rounds 6 up to 8 slots, 7 to 16.
        headers.reserve(6 + metadata.len());
        headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
        if deadline.is_some() {
            headers.insert(GRPC_TIMEOUT, HeaderValue::from_static("0n"));
        }
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        if let Some(enc) = call.compression {
            headers.insert(GRPC_ENCODING, enc.header_value());
        }
        headers.insert(
            GRPC_ACCEPT_ENCODING,
            HeaderValue::from_static("identity,gzip,deflate"),
        );
        debug_assert_eq!(
            compression::accept_list(&CompressionEncoding::ALL),
            "identity,gzip,deflate"
        );
        headers.insert(http::header::USER_AGENT, config.user_agent.clone());
        if !metadata.is_empty() {
            headers.extend(metadata);
        }
        Ok((call, request, around))
    }

    /// Sends the request headers on a connection the picker chooses (waiting for one if the
    /// channel is connecting), with the call credentials' metadata. The attempt begins for
    /// the stats handlers here, and ends here if it fails before its stream opens.
    pub(super) async fn send_headers(
        &self,
        attempt: &Attempt,
        request: http::Request<()>,
        info: AttemptInfo,
    ) -> Result<Opened, Status> {
        let stats = self.config().stats.begin(&crate::stats::RpcInfo {
            method: request.uri().path(),
            client: true,
            registered: attempt.registered,
            target: Some(self.target()),
            attempt: Some(info),
            peer: None,
            authority: request.uri().authority().map(|a| a.as_str()),
        });
        match self.open_stream(attempt, request, info, &stats).await {
            Ok(mut opened) => {
                opened.stats = stats;
                Ok(opened)
            }
            Err(status) => {
                if let Some(stats) = stats {
                    stats.end(&status);
                }
                Err(status)
            }
        }
    }

    async fn open_stream(
        &self,
        attempt: &Attempt,
        mut request: http::Request<()>,
        info: AttemptInfo,
        stats: &Stats,
    ) -> Result<Opened, Status> {
        if info != AttemptInfo::FIRST {
            tracing::debug!(
                method = request.uri().path(),
                attempt = info.number,
                transparent = info.transparent,
                hedge = info.hedge,
                "another attempt"
            );
        }
        if let Some(observer) = &attempt.observer {
            let (chain, call) = &**observer;
            chain.attempt(call, &info);
        }
        let method = request.uri().path();
        let (mut subchannel, mut connection) = self.pick(method, attempt.wait_for_ready).await?;
        // A connection that stopped taking streams (a GOAWAY arrived, it closed) since the
        // picker chose it is replaced once, transparently: nothing was sent on it.
        let sender = match connection.sender.clone().ready().await {
            Ok(ready) => ready,
            Err(e) => {
                tracing::debug!("connection not usable ({e}); picking another");
                subchannel.connection_failed(&connection);
                (subchannel, connection) = self.pick(method, attempt.wait_for_ready).await?;
                connection
                    .sender
                    .clone()
                    .ready()
                    .await
                    .map_err(|e| transport::status_from_h2(&e))?
            }
        };
        let mut sender = sender;
        let channel_credentials = self.call_credentials();
        if channel_credentials.is_some() || attempt.credentials.is_some() {
            self.add_call_credentials(
                channel_credentials,
                attempt.credentials.as_deref(),
                &mut request,
            )
            .await?;
        }
        // What is left of the deadline once connected, as gRPC-Go sends it.
        if let Some(deadline) = attempt.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            request.headers_mut().insert(
                GRPC_TIMEOUT,
                HeaderValue::try_from(timeout::encode(left)).expect("ASCII"),
            );
        }
        let guard = CallGuard::new(self.activity(), &connection);
        if let Some(stats) = stats {
            stats.emit(&crate::stats::RpcEvent::OutHeader {
                headers: request.headers(),
                peer: connection.peer.as_deref(),
            });
        }
        match sender.send_request(request, false) {
            Ok((response, send)) => {
                let channelz = connection.subchannel.clone().zip(connection.socket.clone());
                if let Some((subchannel, socket)) = &channelz {
                    subchannel.call_started();
                    socket.stream_started(true);
                }
                Ok(Opened {
                    response,
                    send,
                    guard,
                    stats: None,
                    channelz,
                })
            }
            Err(e) => {
                subchannel.connection_failed(&connection);
                Err(transport::status_from_h2(&e))
            }
        }
    }

    /// Adds the metadata of the channel's and then the call's credentials to `request`.
    async fn add_call_credentials(
        &self,
        channel: Option<&Arc<dyn CallCredentials>>,
        call: Option<&dyn CallCredentials>,
        request: &mut http::Request<()>,
    ) -> Result<(), Status> {
        let uri = request.uri();
        let path = uri.path();
        // The audience: the service's URL, without the method.
        let service = path.rsplit_once('/').map_or(path, |(service, _)| service);
        let authority = uri.authority().map_or("", |a| a.as_str());
        let info = CallCredentialsInfo {
            service_url: format!("https://{authority}{service}"),
            method: path.to_owned(),
            secure: self.is_secure(),
        };
        let headers = request.headers_mut();
        for credentials in channel.map(|c| &**c).into_iter().chain(call) {
            credentials::apply_call_credentials(credentials, &info, headers).await?;
        }
        Ok(())
    }

    /// Runs interceptors and opens the HTTP/2 stream.
    async fn open(
        &self,
        method: MethodRef,
        kind: MethodKind,
        head: Request<()>,
    ) -> Result<(Call, Opened), Status> {
        let (mut call, request, around) = self.prepare(method, kind, head).await?;
        if call.policy.is_some() {
            call.replay = Some(copy_request(&request));
        }
        let opened = with_deadline(&call, async {
            let attempt = call.attempt();
            match around {
                None => {
                    self.send_headers(&attempt, request, AttemptInfo::FIRST)
                        .await
                }
                Some(info) => {
                    let arounds = self.config().interceptors.arounds();
                    let channel = self.clone();
                    let open = async move {
                        channel
                            .send_headers(&attempt, request, AttemptInfo::FIRST)
                            .await
                    };
                    wrap(arounds, &info, open).await
                }
            }
        })
        .await;
        match opened {
            Ok(opened) => Ok((call, opened)),
            Err(status) => {
                call.end.finish(&status);
                Err(status)
            }
        }
    }

    /// A unary call's attempts under its retry or hedging policy (gRFC A6), if it has one.
    /// Under a retry policy each attempt sends the encoded request anew (with
    /// `grpc-previous-rpc-attempts`), until one succeeds, fails with a code the policy does
    /// not retry, commits (response headers arrived), runs out of attempts or throttle
    /// tokens, or the server's pushback says stop. The caller's deadline bounds the whole,
    /// backoffs included.
    async fn unary_retrying(
        self,
        attempt: Attempt,
        max_recv: usize,
        request: http::Request<()>,
        frame: Bytes,
        policy: Option<Policy>,
    ) -> Result<Response<Bytes>, Status> {
        let retry = match policy {
            None => {
                return self
                    .unary_attempt(attempt, max_recv, request, None, AttemptInfo::FIRST, frame)
                    .await
                    .0;
            }
            Some(Policy::Hedge(hedge)) => {
                return self
                    .unary_hedged(attempt, max_recv, request, frame, hedge)
                    .await;
            }
            Some(Policy::Retry(retry)) => retry,
        };
        let mut state = RetryState::new(retry.policy.initial_backoff);
        loop {
            let (this, info) = state.request(&request, false);
            let (result, committed) = self
                .unary_attempt(
                    attempt.clone(),
                    max_recv,
                    this,
                    Some(&request),
                    info,
                    frame.clone(),
                )
                .await;
            let status = match result {
                Ok(response) => {
                    retry.succeeded();
                    return Ok(response);
                }
                Err(status) => status,
            };
            let Some(delay) = state.next_delay(&retry, &status, committed) else {
                return Err(status);
            };
            tracing::debug!(attempt = state.attempts, ?delay, "retrying after {status}");
            tokio::time::sleep(delay).await;
        }
    }

    /// A unary call hedged (gRFC A6): the request goes out again every `hedgingDelay` (up to
    /// `maxAttempts`, while the throttle allows) until an attempt answers. The first answer
    /// wins and the others are dropped, which resets their streams with CANCEL. A status the
    /// policy calls non-fatal sends the next hedge at once (or after the server's pushback);
    /// any other ends the call. The caller's deadline bounds the whole.
    async fn unary_hedged(
        self,
        attempt: Attempt,
        max_recv: usize,
        request: http::Request<()>,
        frame: Bytes,
        hedge: Hedge,
    ) -> Result<Response<Bytes>, Status> {
        use futures_util::stream::{FuturesUnordered, StreamExt as _};

        let mut in_flight = FuturesUnordered::new();
        let mut state = RetryState::new(Duration::ZERO);
        let mut last = None;
        let mut next = Some(Instant::now());
        loop {
            if let Some(at) = next
                && Instant::now() >= at
            {
                next = None;
                if hedge.allows(state.attempts) {
                    let (this, info) = state.request(&request, true);
                    in_flight.push(self.unary_attempt(
                        attempt.clone(),
                        max_recv,
                        this,
                        Some(&request),
                        info,
                        frame.clone(),
                    ));
                    if hedge.allows(state.attempts) {
                        next = Some(Instant::now() + hedge.policy.delay);
                    }
                }
            }
            if in_flight.is_empty() && next.is_none() {
                return Err(last.unwrap_or_else(|| Status::unavailable("no attempt was made")));
            }
            let timer = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some((result, _)) = in_flight.next() => match result {
                    Ok(response) => {
                        hedge.succeeded();
                        // Dropping the rest cancels them.
                        return Ok(response);
                    }
                    Err(status) => {
                        next = match hedge.after_failure(&status, state.attempts, next) {
                            Err(()) => return Err(status),
                            Ok(next) => next,
                        };
                        last = Some(status);
                    }
                },
                () = timer => {}
            }
        }
    }

    /// One attempt at a unary call: the headers, the encoded request, the raw response; and
    /// whether the call committed (response headers arrived). `template` is the call's
    /// request under a policy, kept by the policy's loop: a transparent retry copies it
    /// only if it happens, where a call without a policy keeps a copy of its own.
    async fn unary_attempt(
        &self,
        attempt: Attempt,
        max_recv: usize,
        request: http::Request<()>,
        template: Option<&http::Request<()>>,
        info: AttemptInfo,
        frame: Bytes,
    ) -> (Result<Response<Bytes>, Status>, bool) {
        // gRFC A6's transparent retry: a stream the server refused before processing it
        // (REFUSED_STREAM, or past a GOAWAY's last stream) is sent once more, on whatever
        // connection the picker gives.
        let mut again = match template {
            Some(_) => None,
            None => Some(copy_request(&request)),
        };
        let mut transparent_left = true;
        let mut request = request;
        let mut info = info;
        loop {
            let Opened {
                response,
                mut send,
                guard,
                stats,
                channelz,
            } = match self.send_headers(&attempt, request, info).await {
                Ok(opened) => opened,
                Err(status) => return (Err(status), false),
            };
            if let Some(stats) = &stats {
                stats.out_frame(&frame, attempt.compression);
                stats.half_close();
            }
            count_sent(&channelz);
            let sent = transport::send_whole(&mut send, frame.clone()).await;
            if let Err(e) = sent {
                // The response (an early error status, say) explains it better if there is
                // one.
                tracing::trace!("request body not sent: {e}");
            }
            let mut response = H2Response::new(response, max_recv)
                .tracked(guard)
                .with_stats(stats)
                .with_channelz(channelz);
            let result = single_response(&mut response, BytesCodec).await;
            match result {
                Err(status) if transparent_left && transport::never_processed(&status) => {
                    tracing::debug!("transparent retry: {status}");
                    request = match (again.take(), template) {
                        (Some(copy), _) => copy,
                        (None, Some(template)) => retry::attempt_request(template, info.number),
                        (None, None) => unreachable!("a copy or the template"),
                    };
                    transparent_left = false;
                    info.transparent = true;
                }
                result => return (result, response.committed()),
            }
        }
    }
}

impl Channel {
    async fn unary_call<C: Codec>(
        &self,
        method: MethodRef,
        request: Request<C::Encode>,
        mut codec: C,
    ) -> Result<Response<C::Decode>, Status> {
        let (head, message) = request.split();
        let (mut call, request, around) = self.prepare(method, MethodKind::Unary, head).await?;
        let frame = match call.encode(codec.encoder(), message) {
            Ok(frame) => frame,
            Err(status) => {
                call.end.finish(&status);
                return Err(status);
            }
        };
        let max_recv = call.max_recv;
        let raw = match around {
            None => {
                let attempt = self.clone().unary_retrying(
                    call.attempt(),
                    max_recv,
                    request,
                    frame,
                    call.policy.clone(),
                );
                with_deadline(&call, attempt).await
            }
            Some(info) => {
                // The request is encoded once; each run of the `Around`s' `next` sends it
                // again as a new attempt, and the last attempt's response is kept.
                let channel = self.clone();
                let attempt = call.attempt();
                let policy = call.policy.clone();
                let slot: AttemptSlot = Arc::default();
                let out = Arc::clone(&slot);
                let mut core = move || -> AroundFuture<'static> {
                    let attempt = channel.clone().unary_retrying(
                        attempt.clone(),
                        max_recv,
                        copy_request(&request),
                        frame.clone(),
                        policy.clone(),
                    );
                    let out = Arc::clone(&out);
                    Box::pin(async move {
                        let result = attempt.await;
                        let status = result.as_ref().map(drop).map_err(Status::clone);
                        *out.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
                        status
                    })
                };
                let arounds = self.config().interceptors.arounds();
                with_deadline(&call, async {
                    let status = run_around(arounds, &info, &mut core).await;
                    let kept = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
                    match (status, kept) {
                        (Err(status), _) => Err(status),
                        (Ok(()), Some(result)) => result,
                        (Ok(()), None) => Err(Status::internal(
                            "an interceptor returned OK without running the call",
                        )),
                    }
                })
                .await
            }
        };
        let result = raw.and_then(|response| {
            let mut decoder = codec.decoder();
            let (metadata, bytes, trailers, extensions) = response.into_all_parts();
            let message = decoder.decode(bytes)?;
            let mut response = Response::from_parts(metadata, message, trailers);
            *response.extensions_mut() = extensions;
            Ok(response)
        });
        call.end.finish(status_of(&result));
        result
    }

    async fn server_streaming_call<C: Codec>(
        &self,
        span: &tracing::Span,
        method: MethodRef,
        request: Request<C::Encode>,
        mut codec: C,
    ) -> Result<Streaming<C::Decode>, Status> {
        let (head, message) = request.split();
        let (mut call, opened) = self.open(method, MethodKind::ServerStreaming, head).await?;
        let frame = call.encode(codec.encoder(), message);
        let mut response = match self.first(&mut call, opened) {
            // Under a policy, the attempts race to the response headers.
            First::UnderPolicy(pending) => {
                let frames = futures_util::stream::once(std::future::ready(frame));
                let committed =
                    with_deadline(&call, pending.start(Box::pin(frames)).commit()).await;
                match committed {
                    Ok(response) => response,
                    Err(status) => {
                        call.end.finish(&status);
                        return Err(status);
                    }
                }
            }
            First::Alone(Opened {
                response,
                mut send,
                guard,
                stats,
                channelz,
            }) => {
                count_sent(&channelz);
                let mut response = H2Response::new(response, call.max_recv)
                    .tracked(guard)
                    .with_stats(stats.clone())
                    .with_channelz(channelz);
                let headers = with_deadline(&call, async {
                    let frame = frame?;
                    if let Some(stats) = &stats {
                        stats.out_frame(&frame, call.compression);
                        stats.half_close();
                    }
                    let _ = transport::send_whole(&mut send, frame).await;
                    std::future::poll_fn(|cx| response.poll_headers(cx)).await
                })
                .await;
                if let Err(status) = headers {
                    call.end.finish(&status);
                    return Err(status);
                }
                response
            }
        };
        response.watch(call.deadline, call.cancellation.take());
        response.set_end(std::mem::replace(&mut call.end, EndGuard::none()));
        response.set_span(span.clone());
        response.set_call_channelz(self.channelz().clone());
        Ok(Streaming::from_response(
            Box::new(response),
            Box::new(codec.decoder()),
        ))
    }

    async fn client_streaming_call<C, S>(
        &self,
        method: MethodRef,
        request: Request<S>,
        mut codec: C,
    ) -> Result<Response<C::Decode>, Status>
    where
        C: Codec,
        S: Stream + Send + 'static,
        S::Item: Into<Outbound<C::Encode>> + Send,
    {
        let (head, messages) = request.split();
        let (mut call, opened) = self.open(method, MethodKind::ClientStreaming, head).await?;
        let mut response = match self.first(&mut call, opened) {
            // Under a policy, the messages are encoded as the sender task sends them, kept
            // and replayed on each attempt until one commits.
            First::UnderPolicy(pending) => {
                let mut encoder = codec.encoder();
                let (compression, max_send) = (call.compression, call.max_send);
                let mut scratch = BytesMut::new();
                let frames = messages.map(move |message| {
                    framing::encode_request(
                        &mut encoder,
                        message.into(),
                        compression,
                        max_send,
                        &mut scratch,
                    )
                });
                match with_deadline(&call, pending.start(Box::pin(frames)).commit()).await {
                    Ok(response) => response,
                    Err(status) => {
                        call.end.finish(&status);
                        return Err(status);
                    }
                }
            }
            First::Alone(opened) => {
                let send_error: SendError = Arc::new(Mutex::new(None));
                let mut response = H2Response::new(opened.response, call.max_recv)
                    .tracked(opened.guard)
                    .with_stats(opened.stats.clone())
                    .with_channelz(opened.channelz.clone());
                // Aborted however this call ends, dropped mid-call included: the sender holds
                // the stream open, so a detached sender would keep the call alive on the
                // server.
                let task = spawn_sender(
                    messages,
                    opened.send,
                    &call,
                    codec.encoder(),
                    Arc::clone(&send_error),
                    (opened.stats, opened.channelz),
                );
                response.set_sender(task, Some(send_error));
                response
            }
        };
        let result = with_deadline(&call, single_response(&mut response, codec.decoder())).await;
        drop(response);
        call.end.finish(status_of(&result));
        result
    }

    async fn bidi_streaming_call<C: Codec>(
        &self,
        span: &tracing::Span,
        method: MethodRef,
        request: Request<()>,
        mut codec: C,
    ) -> Result<BidiCall<C::Encode, C::Decode>, Status> {
        let (mut call, opened) = self
            .open(method, MethodKind::BidiStreaming, request)
            .await?;
        let encoding = Encoding {
            encoder: Box::new(codec.encoder()),
            compression: call.compression,
            max_send: call.max_send,
            scratch: BytesMut::new(),
        };
        let decoder = Box::new(codec.decoder());
        let first = self.first(&mut call, opened);
        let end = std::mem::replace(&mut call.end, EndGuard::none());
        match first {
            // Under a policy, the requests go to the sender task, which keeps and replays
            // them; the response is the race of the attempts until one commits.
            First::UnderPolicy(pending) => {
                // One frame waits in the queue while the task sends the one before: `send`
                // still waits for flow control, one message behind.
                let (frames, mut queued) = tokio::sync::mpsc::channel(1);
                let queued = futures_util::stream::poll_fn(move |cx| queued.poll_recv(cx));
                let attempts = pending.start(Box::pin(queued));
                let race = retry::race(attempts, call.deadline, call.cancellation.take(), end);
                // The committed attempt's response records the call's end, as a response
                // alone does; a call no attempt committed ends here.
                let (span, channel) = (span.clone(), self.channelz().clone());
                let race = async move {
                    match race.await {
                        Ok(mut response) => {
                            response.set_span(span);
                            response.set_call_channelz(channel);
                            Ok(response)
                        }
                        Err(status) => {
                            channel.call_ended(false);
                            spans::record(&span, status.code());
                            Err(status)
                        }
                    }
                };
                let sender = RequestSender::frames(FrameSender { frames, encoding });
                let stream = Streaming::from_response(Box::new(Committing::new(race)), decoder);
                Ok((sender, stream))
            }
            First::Alone(opened) => {
                let send = Arc::new(Mutex::new(opened.send));
                let mut response = H2Response::new(opened.response, call.max_recv)
                    .tracked(opened.guard)
                    .with_stats(opened.stats.clone())
                    .with_channelz(opened.channelz.clone());
                response.reset_on_drop(Arc::clone(&send));
                let sender = RequestSender::h2(H2Sender {
                    stream: send,
                    encoding,
                    stats: opened.stats,
                    channelz: opened.channelz,
                });
                response.watch(call.deadline, call.cancellation.take());
                response.set_end(end);
                response.set_span(span.clone());
                response.set_call_channelz(self.channelz().clone());
                Ok((
                    sender,
                    Streaming::from_response(Box::new(response), decoder),
                ))
            }
        }
    }
}

/// Each call runs inside its span (`spans`): the channel's own logs nest under it, and it
/// records the status (a streaming call's when its response ends).
impl CallInvoker for Channel {
    async fn unary<C: Codec>(
        &self,
        method: MethodRef,
        request: Request<C::Encode>,
        codec: C,
    ) -> Result<Response<C::Decode>, Status> {
        let span = spans::client(method.path(), self.target());
        self.channelz().call_started();
        let result = self
            .unary_call(method, request, codec)
            .instrument(span.clone())
            .await;
        let code = status_of(&result).code();
        self.channelz().call_ended(code == Code::Ok);
        spans::record(&span, code);
        result
    }

    async fn server_streaming<C: Codec>(
        &self,
        method: MethodRef,
        request: Request<C::Encode>,
        codec: C,
    ) -> Result<Streaming<C::Decode>, Status> {
        let span = spans::client(method.path(), self.target());
        self.channelz().call_started();
        let result = self
            .server_streaming_call(&span, method, request, codec)
            .instrument(span.clone())
            .await;
        if let Err(status) = &result {
            self.channelz().call_ended(false);
            spans::record(&span, status.code());
        }
        result
    }

    async fn client_streaming<C, S>(
        &self,
        method: MethodRef,
        request: Request<S>,
        codec: C,
    ) -> Result<Response<C::Decode>, Status>
    where
        C: Codec,
        S: Stream + Send + 'static,
        S::Item: Into<Outbound<C::Encode>> + Send,
    {
        let span = spans::client(method.path(), self.target());
        self.channelz().call_started();
        let result = self
            .client_streaming_call(method, request, codec)
            .instrument(span.clone())
            .await;
        let code = status_of(&result).code();
        self.channelz().call_ended(code == Code::Ok);
        spans::record(&span, code);
        result
    }

    async fn bidi_streaming<C: Codec>(
        &self,
        method: MethodRef,
        request: Request<()>,
        codec: C,
    ) -> Result<BidiCall<C::Encode, C::Decode>, Status> {
        let span = spans::client(method.path(), self.target());
        self.channelz().call_started();
        let result = self
            .bidi_streaming_call(&span, method, request, codec)
            .instrument(span.clone())
            .await;
        if let Err(status) = &result {
            self.channelz().call_ended(false);
            spans::record(&span, status.code());
        }
        result
    }
}

/// Where an attempt run by the `Around`s leaves its raw response.
type AttemptSlot = Arc<Mutex<Option<Result<Response<Bytes>, Status>>>>;

/// A streaming call's first attempt: alone, or the start of attempts under a policy.
enum First {
    Alone(Opened),
    UnderPolicy(Box<Pending>),
}

impl Channel {
    fn first(&self, call: &mut Call, opened: Opened) -> First {
        let (Some(policy), Some(request)) = (call.policy.clone(), call.replay.take()) else {
            return First::Alone(opened);
        };
        First::UnderPolicy(Box::new(Pending {
            channel: self.clone(),
            attempt: call.attempt(),
            request,
            max_recv: call.max_recv,
            policy,
            first: opened,
        }))
    }
}

fn status_of<T>(result: &Result<T, Status>) -> &Status {
    static OK: std::sync::OnceLock<Status> = std::sync::OnceLock::new();
    match result {
        Ok(_) => OK.get_or_init(|| Status::ok("")),
        Err(status) => status,
    }
}

/// Runs `fut`, failing with `DEADLINE_EXCEEDED` when the call's deadline passes, or
/// `CANCELLED` when the call it was propagated from ends (dropping `fut` resets the stream
/// with CANCEL).
fn with_deadline<F>(call: &Call, fut: F) -> Watched<F> {
    watched(call.deadline, call.cancellation.as_ref(), fut)
}

/// Runs `fut` until `deadline` (DEADLINE_EXCEEDED) or `cancellation` (CANCELLED).
pub(super) fn watched<F>(
    deadline: Option<Instant>,
    cancellation: Option<&Cancellation>,
    fut: F,
) -> Watched<F> {
    Watched {
        fut,
        deadline,
        sleep: None,
        cancelled: cancellation.map(|c| Box::pin(c.clone().cancelled_owned()) as CancelledFuture),
    }
}

/// A propagated call's end, boxed: only calls made from inside a server's call have one.
type CancelledFuture = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

pin_project_lite::pin_project! {
    /// [`watched`]'s future. Written out, not an `async fn` with `select!`: that kept `fut`
    /// twice (its argument and the `select!`'s copy) and `with_deadline` around it a third
    /// time, so a unary call's future was 12 KB, moved by `memcpy` at each layer (now 5.4 KB,
    /// `make bench-alloc` prints it).
    pub(super) struct Watched<F> {
        #[pin]
        fut: F,
        deadline: Option<Instant>,
        // Made at the first poll (a timer needs the runtime's context).
        #[pin]
        sleep: Option<tokio::time::Sleep>,
        cancelled: Option<CancelledFuture>,
    }
}

impl<T, F: Future<Output = Result<T, Status>>> Future for Watched<F> {
    type Output = Result<T, Status>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(result) = this.fut.poll(cx) {
            return Poll::Ready(result);
        }
        if let Some(deadline) = *this.deadline {
            if this.sleep.is_none() {
                this.sleep.set(Some(tokio::time::sleep_until(deadline)));
            }
            if let Some(sleep) = this.sleep.as_pin_mut()
                && sleep.poll(cx).is_ready()
            {
                return Poll::Ready(Err(Status::deadline_exceeded("deadline exceeded")));
            }
        }
        if let Some(cancelled) = this.cancelled
            && cancelled.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(Status::cancelled(
                "the call it was propagated from ended",
            )));
        }
        Poll::Pending
    }
}

/// Reads a response that must hold exactly one message, then its status.
async fn single_response<D: Decoder>(
    response: &mut H2Response,
    mut decoder: D,
) -> Result<Response<D::Item>, Status> {
    let Some(bytes) = std::future::poll_fn(|cx| response.poll_message(cx)).await? else {
        return Err(Status::internal(
            "server sent OK without a response message to a unary call",
        ));
    };
    let message = match decoder.decode(bytes) {
        Ok(message) => message,
        Err(status) => {
            response.fail(&status);
            return Err(status);
        }
    };
    let compressed = response.last_compressed();
    if std::future::poll_fn(|cx| response.poll_message(cx))
        .await?
        .is_some()
    {
        let status = Status::internal("server sent more than one response message to a unary call");
        response.fail(&status);
        return Err(status);
    }
    let mut out = Response::from_parts(response.take_headers(), message, response.take_trailers());
    if compressed {
        out.extensions_mut().insert(MessageCompressed);
    }
    Ok(out)
}

/// Sends every message of `messages`, then ends the stream. On failure (an encoding error,
/// a message over the limit) the stream is reset and the reason left in `send_error`.
///
/// The messages the stream has ready at once are encoded into one [`Batch`] and go to h2
/// together, as one DATA frame, when the stream has nothing more ready or the batch is full
/// (h2 makes a system call per DATA frame over 256 bytes); the last batch carries
/// END_STREAM.
fn spawn_sender<S, E>(
    messages: S,
    mut send: SendStream<Bytes>,
    call: &Call,
    mut encoder: E,
    send_error: SendError,
    (stats, channelz): (Stats, Counted),
) -> tokio::task::JoinHandle<()>
where
    S: Stream + Send + 'static,
    E: Encoder,
    S::Item: Into<Outbound<E::Item>> + Send,
{
    let compression = call.compression;
    let max_send = call.max_send;
    tokio::spawn(async move {
        let mut messages = std::pin::pin!(messages);
        let mut scratch = BytesMut::new();
        let mut batch = Batch::default();
        let mut unreported = 0u32;
        loop {
            let gathered = poll_fn(|cx| {
                loop {
                    let message = match messages.as_mut().poll_next(cx) {
                        Poll::Ready(Some(message)) => message.into(),
                        Poll::Ready(None) => return Poll::Ready(Ok(true)),
                        Poll::Pending if batch.is_empty() => return Poll::Pending,
                        Poll::Pending => return Poll::Ready(Ok(false)),
                    };
                    let compression = compression.filter(|_| message.is_compressed());
                    batch.push(
                        &mut encoder,
                        message.get_ref(),
                        compression,
                        max_send,
                        Kind::Request,
                        &mut scratch,
                        |frame| {
                            if let Some(stats) = &stats {
                                stats.out_frame(frame, compression);
                            }
                            unreported += 1;
                            Ok(())
                        },
                    )?;
                    if batch.is_full() {
                        return Poll::Ready(Ok(false));
                    }
                }
            })
            .await;
            let end = match gathered {
                Ok(end) => end,
                Err(status) => {
                    *send_error.lock().expect("send error lock") = Some(status);
                    send.send_reset(h2::Reason::CANCEL);
                    return;
                }
            };
            if end && let Some(stats) = &stats {
                stats.half_close();
            }
            if transport::send_data(&mut send, batch.take(), end)
                .await
                .is_err()
            {
                // An error: the stream is gone (the server answered or reset it); the
                // response says why.
                return;
            }
            // Counted in channelz a batch at a time: one atomic add and clock read for up
            // to 32 KiB of messages.
            if let Some((_, socket)) = &channelz {
                socket.messages_sent(std::mem::take(&mut unreported));
            }
            if end {
                return;
            }
        }
    })
}
