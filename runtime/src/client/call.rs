//! How a [`Channel`] runs the four kinds of calls over HTTP/2: interceptors, request
//! headers, the deadline, sending, and the response.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cancel::Cancellation;
use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_util::StreamExt;
use h2::SendStream;
use h2::client::ResponseFuture;
use http::HeaderValue;
use tokio::time::Instant;

use super::conn::CallGuard;
use super::response::{H2Response, SendError};
use super::sender::{H2Sender, RequestSender};
use super::{BidiCall, CallInvoker, Channel};
use crate::backoff;
use crate::codec::framing::{self, Kind};
use crate::codec::{BytesCodec, Codec, Decoder, Encoder, MessageCompressed, Outbound};
use crate::compression::{self, CompressionEncoding};
use crate::credentials::{self, CallCredentials, CallCredentialsInfo};
use crate::headers::{
    GRPC_ACCEPT_ENCODING, GRPC_ENCODING, GRPC_PREVIOUS_RPC_ATTEMPTS, GRPC_RETRY_PUSHBACK_MS,
    GRPC_TIMEOUT,
};
use crate::interceptor::{AroundFuture, CallInfo, EndGuard, run_around, wrap};
use crate::request::{Request, Response};
use crate::service::{MethodKind, MethodRef};
use crate::service_config::{HedgingPolicy, RetryPolicy, Throttle};
use crate::status::Status;
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
    /// The service config's retry policy for the method, and the channel's throttle.
    retry: Option<Retry>,
    /// The service config's hedging policy for the method (unary calls), and the throttle.
    hedge: Option<Hedge>,
    /// A streaming call's request headers, kept to open another attempt (with a retry
    /// policy only).
    replay: Option<http::Request<()>>,
}

/// A hedging policy in force for one call.
#[derive(Clone)]
struct Hedge {
    policy: Arc<HedgingPolicy>,
    throttle: Option<Arc<Throttle>>,
}

/// A retry policy in force for one call.
#[derive(Clone)]
struct Retry {
    policy: Arc<RetryPolicy>,
    throttle: Option<Arc<Throttle>>,
}

/// What each attempt of a call needs to open its stream.
#[derive(Clone)]
struct Attempt {
    deadline: Option<Instant>,
    credentials: Option<Arc<dyn CallCredentials>>,
    wait_for_ready: bool,
}

/// A stream whose request headers are out, and the count that keeps its channel busy.
struct Opened {
    response: ResponseFuture,
    send: SendStream<Bytes>,
    guard: CallGuard,
}

impl Call {
    fn attempt(&self) -> Attempt {
        Attempt {
            deadline: self.deadline,
            credentials: self.credentials.clone(),
            wait_for_ready: self.wait_for_ready,
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
        // timeout and limits win; a call's own wait-for-ready wins over the config's).
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
        let mut retry = None;
        let mut hedge = None;
        if let Some(method) = &method_config {
            timeout = match (timeout, method.timeout) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            wait_for_ready = wait_for_ready.or(method.wait_for_ready);
            max_recv = max_recv.min(method.max_response_bytes.unwrap_or(usize::MAX));
            max_send = max_send.min(method.max_request_bytes.unwrap_or(usize::MAX));
            let throttle = service_config.as_ref().and_then(|c| c.throttle.clone());
            if let Some(policy) = &method.retry {
                retry = Some(Retry {
                    policy: policy.clone(),
                    throttle: throttle.clone(),
                });
            }
            if let Some(policy) = &method.hedging {
                hedge = Some(Hedge {
                    policy: policy.clone(),
                    throttle,
                });
            }
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
            retry,
            hedge,
            replay: None,
            end,
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
    /// channel is connecting), with the call credentials' metadata.
    async fn send_headers(
        &self,
        attempt: &Attempt,
        mut request: http::Request<()>,
    ) -> Result<Opened, Status> {
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
        match sender.send_request(request, false) {
            Ok((response, send)) => Ok(Opened {
                response,
                send,
                guard,
            }),
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
        if call.retry.is_some()
            && matches!(
                kind,
                MethodKind::ServerStreaming | MethodKind::ClientStreaming
            )
        {
            call.replay = Some(copy_request(&request));
        }
        let opened = with_deadline(&call, async {
            let attempt = call.attempt();
            match around {
                None => self.send_headers(&attempt, request).await,
                Some(info) => {
                    let arounds = self.config().interceptors.arounds();
                    let channel = self.clone();
                    let open = async move { channel.send_headers(&attempt, request).await };
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

    /// A unary call's attempts under its retry policy (gRFC A6), if it has one: each
    /// attempt sends the encoded request anew (with `grpc-previous-rpc-attempts`), until one
    /// succeeds, fails with a code the policy does not retry, commits (response headers
    /// arrived), runs out of attempts or throttle tokens, or the server's pushback says stop.
    /// The caller's deadline bounds the whole, backoffs included.
    async fn unary_retrying(
        self,
        attempt: Attempt,
        max_recv: usize,
        request: http::Request<()>,
        frame: Bytes,
        retry: Option<Retry>,
        hedge: Option<Hedge>,
    ) -> Result<Response<Bytes>, Status> {
        if let Some(hedge) = hedge {
            return self
                .unary_hedged(attempt, max_recv, request, frame, hedge)
                .await;
        }
        let Some(retry) = retry else {
            return self
                .unary_attempt(attempt, max_recv, request, frame)
                .await
                .0;
        };
        let mut state = RetryState::new(&retry);
        loop {
            let this = state.request(&request);
            let (result, committed) = self
                .clone()
                .unary_attempt(attempt.clone(), max_recv, this, frame.clone())
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

        let policy = &hedge.policy;
        let mut in_flight = FuturesUnordered::new();
        let mut sent = 0u32;
        let mut last = None;
        let mut next = Some(Instant::now());
        loop {
            if let Some(at) = next
                && Instant::now() >= at
            {
                let throttled = sent > 0 && hedge.throttle.as_ref().is_some_and(|t| !t.allows());
                if sent < policy.max_attempts && !throttled {
                    let mut this = copy_request(&request);
                    if sent > 0 {
                        this.headers_mut()
                            .insert(GRPC_PREVIOUS_RPC_ATTEMPTS, HeaderValue::from(sent));
                    }
                    sent += 1;
                    in_flight.push(self.clone().unary_attempt(
                        attempt.clone(),
                        max_recv,
                        this,
                        frame.clone(),
                    ));
                    next = (sent < policy.max_attempts).then(|| Instant::now() + policy.delay);
                } else {
                    next = None;
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
                        if let Some(throttle) = &hedge.throttle {
                            throttle.success();
                        }
                        // Dropping the rest cancels them.
                        return Ok(response);
                    }
                    Err(status) => {
                        let non_fatal = policy.non_fatal.contains(&status.code());
                        let pushback = pushback(&status);
                        if (non_fatal || pushback.is_some())
                            && let Some(throttle) = &hedge.throttle
                        {
                            throttle.failure();
                        }
                        if !non_fatal {
                            return Err(status);
                        }
                        next = match pushback {
                            Some(Some(ms)) => Some(Instant::now() + Duration::from_millis(ms)),
                            Some(None) => None,
                            None if sent < policy.max_attempts => Some(Instant::now()),
                            None => None,
                        };
                        last = Some(status);
                    }
                },
                () = timer => {}
            }
        }
    }

    /// One attempt at a unary call: the headers, the encoded request, the raw response; and
    /// whether the call committed (response headers arrived).
    async fn unary_attempt(
        self,
        attempt: Attempt,
        max_recv: usize,
        request: http::Request<()>,
        frame: Bytes,
    ) -> (Result<Response<Bytes>, Status>, bool) {
        // gRFC A6's transparent retry: a stream the server refused before processing it
        // (REFUSED_STREAM, or past a GOAWAY's last stream) is sent once more, on whatever
        // connection the picker gives.
        let mut again = Some(copy_request(&request));
        let mut request = request;
        loop {
            let Opened {
                response,
                mut send,
                guard,
            } = match self.send_headers(&attempt, request).await {
                Ok(opened) => opened,
                Err(status) => return (Err(status), false),
            };
            let sent = transport::send_data(&mut send, frame.clone(), true).await;
            if let Err(e) = sent {
                // The response (an early error status, say) explains it better if there is
                // one.
                tracing::trace!("request body not sent: {e}");
            }
            let mut response = H2Response::new(response, max_recv).tracked(guard);
            let result = single_response(&mut response, BytesCodec).await;
            match (result, again.take()) {
                (Err(status), Some(retry)) if transport::never_processed(&status) => {
                    tracing::debug!("transparent retry: {status}");
                    request = retry;
                }
                (result, _) => return (result, response.committed()),
            }
        }
    }
}

impl Retry {
    /// A call succeeded: a token back to the throttle.
    fn succeeded(&self) {
        if let Some(throttle) = &self.throttle {
            throttle.success();
        }
    }
}

/// Where a call stands in its retry policy.
struct RetryState {
    /// Attempts made.
    attempts: u32,
    backoff: Duration,
}

impl RetryState {
    fn new(retry: &Retry) -> RetryState {
        RetryState {
            attempts: 0,
            backoff: retry.policy.initial_backoff,
        }
    }

    /// For a call whose first attempt is out already.
    fn started(retry: &Retry) -> RetryState {
        RetryState {
            attempts: 1,
            ..RetryState::new(retry)
        }
    }

    /// The next attempt's request headers: `request`'s, with `grpc-previous-rpc-attempts`
    /// after the first.
    fn request(&mut self, request: &http::Request<()>) -> http::Request<()> {
        let mut this = copy_request(request);
        if self.attempts > 0 {
            this.headers_mut()
                .insert(GRPC_PREVIOUS_RPC_ATTEMPTS, HeaderValue::from(self.attempts));
        }
        self.attempts += 1;
        this
    }

    /// After an attempt failed with `status`: how long to wait before the next, or `None`
    /// to give up (a code the policy does not retry, committed, out of attempts or of
    /// throttle tokens, or the server's pushback says stop).
    fn next_delay(&mut self, retry: &Retry, status: &Status, committed: bool) -> Option<Duration> {
        let policy = &retry.policy;
        let retryable = policy.retryable.contains(&status.code());
        let pushback = pushback(status);
        if (retryable || pushback.is_some())
            && let Some(throttle) = &retry.throttle
        {
            throttle.failure();
        }
        let throttled = retry.throttle.as_ref().is_some_and(|t| !t.allows());
        if committed || !retryable || self.attempts >= policy.max_attempts || throttled {
            return None;
        }
        match pushback {
            // The server's word: wait this long, and start the backoff over.
            Some(Some(ms)) => {
                self.backoff = policy.initial_backoff;
                Some(Duration::from_millis(ms))
            }
            // A negative or malformed pushback: no more attempts.
            Some(None) => None,
            None => {
                // Full jitter: anywhere between 0 and the current backoff.
                let delay = self.backoff.mul_f64(backoff::random());
                self.backoff = self
                    .backoff
                    .mul_f64(policy.multiplier)
                    .min(policy.max_backoff);
                Some(delay)
            }
        }
    }
}

/// The server's `grpc-retry-pushback-ms`: `None` if absent, `Some(None)` if negative or
/// malformed (stop retrying), `Some(Some(ms))` to wait that long.
fn pushback(status: &Status) -> Option<Option<u64>> {
    let value = status.metadata().get(GRPC_RETRY_PUSHBACK_MS)?;
    Some(value.trim().parse::<u64>().ok())
}

/// Where an attempt run by the `Around`s leaves its raw response.
type AttemptSlot = Arc<Mutex<Option<Result<Response<Bytes>, Status>>>>;

/// A copy of a request's head, for another attempt.
fn copy_request(request: &http::Request<()>) -> http::Request<()> {
    let mut copy = http::Request::new(());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.headers_mut() = request.headers().clone();
    copy
}

impl CallInvoker for Channel {
    async fn unary<C: Codec>(
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
                    call.retry.clone(),
                    call.hedge.clone(),
                );
                with_deadline(&call, attempt).await
            }
            Some(info) => {
                // The request is encoded once; each run of the `Around`s' `next` sends it
                // again as a new attempt, and the last attempt's response is kept.
                let channel = self.clone();
                let attempt = call.attempt();
                let (retry, hedge) = (call.retry.clone(), call.hedge.clone());
                let slot: AttemptSlot = Arc::default();
                let out = Arc::clone(&slot);
                let mut core = move || -> AroundFuture<'static> {
                    let attempt = channel.clone().unary_retrying(
                        attempt.clone(),
                        max_recv,
                        copy_request(&request),
                        frame.clone(),
                        retry.clone(),
                        hedge.clone(),
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

    async fn server_streaming<C: Codec>(
        &self,
        method: MethodRef,
        request: Request<C::Encode>,
        mut codec: C,
    ) -> Result<Streaming<C::Decode>, Status> {
        let (head, message) = request.split();
        let (mut call, mut opened) = self.open(method, MethodKind::ServerStreaming, head).await?;
        let frame = call.encode(codec.encoder(), message);
        // With a retry policy, an attempt that fails before response headers (trailers-only)
        // is made again: the request is one message, kept encoded.
        let mut retrying = call.retry.as_ref().map(RetryState::started);
        let mut response = loop {
            let Opened {
                response,
                mut send,
                guard,
            } = opened;
            let mut response = H2Response::new(response, call.max_recv).tracked(guard);
            let this = frame.clone();
            let headers = with_deadline(&call, async {
                let frame = this?;
                let _ = transport::send_data(&mut send, frame, true).await;
                std::future::poll_fn(|cx| response.poll_headers(cx)).await
            })
            .await;
            let status = match headers {
                Ok(()) => break response,
                Err(status) => status,
            };
            let next = match (&call.retry, &mut retrying, &call.replay) {
                (Some(retry), Some(state), Some(replay)) => state
                    .next_delay(retry, &status, response.committed())
                    .map(|delay| (delay, state.request(replay))),
                _ => None,
            };
            let Some((delay, request)) = next else {
                call.end.finish(&status);
                return Err(status);
            };
            drop(response);
            tracing::debug!(?delay, "retrying after {status}");
            let attempt = call.attempt();
            let reopened = with_deadline(&call, async {
                tokio::time::sleep(delay).await;
                self.send_headers(&attempt, request).await
            })
            .await;
            opened = match reopened {
                Ok(reopened) => reopened,
                Err(status) => {
                    call.end.finish(&status);
                    return Err(status);
                }
            };
        };
        if let Some(retry) = &call.retry {
            retry.succeeded();
        }
        response.watch(call.deadline, call.cancellation.take());
        response.set_end(std::mem::replace(&mut call.end, EndGuard::none()));
        Ok(Streaming::from_response(
            Box::new(response),
            Box::new(codec.decoder()),
        ))
    }

    async fn client_streaming<C, S>(
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
        if call.retry.is_some() && call.replay.is_some() {
            return self
                .client_streaming_retrying(call, opened, messages, codec)
                .await;
        }
        let send = opened.send;
        let send_error: SendError = Arc::new(Mutex::new(None));
        let mut response = H2Response::new(opened.response, call.max_recv).tracked(opened.guard);
        // Aborted however this call ends, dropped mid-call included: the sender holds the
        // stream open, so a detached sender would keep the call alive on the server.
        let task = spawn_sender(
            messages,
            send,
            &call,
            codec.encoder(),
            Arc::clone(&send_error),
        );
        response.set_sender(task, Some(send_error));
        let result = with_deadline(&call, single_response(&mut response, codec.decoder())).await;
        drop(response);
        call.end.finish(status_of(&result));
        result
    }

    async fn bidi_streaming<C: Codec>(
        &self,
        method: MethodRef,
        request: Request<()>,
        mut codec: C,
    ) -> Result<BidiCall<C::Encode, C::Decode>, Status> {
        let (mut call, opened) = self
            .open(method, MethodKind::BidiStreaming, request)
            .await?;
        let send = Arc::new(Mutex::new(opened.send));
        let mut response = H2Response::new(opened.response, call.max_recv).tracked(opened.guard);
        response.reset_on_drop(Arc::clone(&send));
        let sender = RequestSender::h2(H2Sender {
            stream: send,
            encoder: Box::new(codec.encoder()),
            compression: call.compression,
            max_send: call.max_send,
            scratch: BytesMut::new(),
        });
        response.watch(call.deadline, call.cancellation.take());
        response.set_end(std::mem::replace(&mut call.end, EndGuard::none()));
        let stream = Streaming::from_response(Box::new(response), Box::new(codec.decoder()));
        Ok((sender, stream))
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
async fn with_deadline<T>(
    call: &Call,
    fut: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    let deadline = async {
        match call.deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    let cancelled = async {
        match &call.cancellation {
            Some(token) => token.cancelled().await,
            None => std::future::pending().await,
        }
    };
    if call.deadline.is_none() && call.cancellation.is_none() {
        return fut.await;
    }
    tokio::select! {
        biased;
        result = fut => result,
        () = deadline => Err(Status::deadline_exceeded("deadline exceeded")),
        () = cancelled => Err(Status::cancelled("the call it was propagated from ended")),
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
fn spawn_sender<S, E>(
    messages: S,
    mut send: SendStream<Bytes>,
    call: &Call,
    mut encoder: E,
    send_error: SendError,
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
        while let Some(message) = messages.next().await {
            let frame = framing::encode_request(
                &mut encoder,
                message.into(),
                compression,
                max_send,
                &mut scratch,
            );
            let frame = match frame {
                Ok(frame) => frame,
                Err(status) => {
                    *send_error.lock().expect("send error lock") = Some(status);
                    send.send_reset(h2::Reason::CANCEL);
                    return;
                }
            };
            if transport::send_data(&mut send, frame, false).await.is_err() {
                // The stream is gone (the server answered or reset it); the response says why.
                return;
            }
        }
        let _ = send.send_data(Bytes::new(), true);
    })
}

impl Channel {
    /// A client-streaming call under a retry policy (gRFC A6): the messages sent are kept
    /// (within the channel's retry buffer limits) and sent again on each new attempt, until an attempt
    /// succeeds, fails for good, commits (response headers, or the buffer overflows), or
    /// runs out of attempts.
    async fn client_streaming_retrying<C, S>(
        &self,
        mut call: Call,
        opened: Opened,
        messages: S,
        mut codec: C,
    ) -> Result<Response<C::Decode>, Status>
    where
        C: Codec,
        S: Stream + Send + 'static,
        S::Item: Into<Outbound<C::Encode>> + Send,
    {
        let retry = call.retry.clone().expect("a retry policy");
        let replay = call.replay.take().expect("the request kept for replay");
        let (next_tx, next_rx) = tokio::sync::mpsc::unbounded_channel();
        let overflowed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let send_error: SendError = Arc::new(Mutex::new(None));
        let config = self.config();
        let buffer = ReplayBuffer {
            per_call: config.retry_buffer_per_call,
            per_channel: config.retry_buffer_per_channel,
            channel: Arc::clone(&config.retry_buffered),
            kept: 0,
        };
        let sender = AbortOnDrop(spawn_replaying_sender(
            messages,
            opened.send,
            next_rx,
            &call,
            codec.encoder(),
            Arc::clone(&send_error),
            Arc::clone(&overflowed),
            buffer,
        ));
        let mut state = RetryState::started(&retry);
        let (mut response_future, mut guard) = (opened.response, opened.guard);
        let result = loop {
            let mut response = H2Response::new(response_future, call.max_recv).tracked(guard);
            let result =
                with_deadline(&call, single_response(&mut response, codec.decoder())).await;
            let status = match result {
                Ok(reply) => {
                    retry.succeeded();
                    break Ok(reply);
                }
                Err(status) => status,
            };
            if let Some(error) = send_error.lock().expect("send error lock").take() {
                break Err(error);
            }
            let committed =
                response.committed() || overflowed.load(std::sync::atomic::Ordering::Acquire);
            let Some(delay) = state.next_delay(&retry, &status, committed) else {
                break Err(status);
            };
            drop(response);
            tracing::debug!(attempt = state.attempts, ?delay, "retrying after {status}");
            let request = state.request(&replay);
            let attempt = call.attempt();
            let reopened = with_deadline(&call, async {
                tokio::time::sleep(delay).await;
                self.send_headers(&attempt, request).await
            })
            .await;
            match reopened {
                Ok(opened) => {
                    // The sender replays what it kept on the new stream, then goes on.
                    let _ = next_tx.send(opened.send);
                    (response_future, guard) = (opened.response, opened.guard);
                }
                Err(status) => break Err(status),
            }
        };
        drop(sender);
        call.end.finish(status_of(&result));
        result
    }
}

/// Aborts a task when dropped: however a call ends, its sender does not outlive it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a call keeps for replay, counted against its own limit and its channel's.
struct ReplayBuffer {
    per_call: usize,
    per_channel: usize,
    /// The channel's total kept bytes.
    channel: Arc<std::sync::atomic::AtomicUsize>,
    /// This call's kept bytes (given back to the channel when the call ends).
    kept: usize,
}

impl ReplayBuffer {
    /// Counts `bytes` more; `false` if that passes a limit (then nothing of this call is
    /// counted any more).
    fn take(&mut self, bytes: usize) -> bool {
        use std::sync::atomic::Ordering;
        let within_call = self.kept + bytes <= self.per_call;
        let per_channel = self.per_channel;
        let within_channel = within_call
            && self
                .channel
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |total| {
                    (total + bytes <= per_channel).then_some(total + bytes)
                })
                .is_ok();
        if within_channel {
            self.kept += bytes;
        } else {
            self.release();
        }
        within_channel
    }

    fn release(&mut self) {
        self.channel
            .fetch_sub(self.kept, std::sync::atomic::Ordering::AcqRel);
        self.kept = 0;
    }
}

impl Drop for ReplayBuffer {
    fn drop(&mut self) {
        self.release();
    }
}

/// Sends every message of `messages` on the current attempt's stream, keeping the frames
/// (within `buffer`'s limits, then `overflowed`) to send again on each stream that arrives
/// through `next`; ends each stream once the messages have.
#[allow(clippy::too_many_arguments)]
fn spawn_replaying_sender<S, E>(
    messages: S,
    first: SendStream<Bytes>,
    mut next: tokio::sync::mpsc::UnboundedReceiver<SendStream<Bytes>>,
    call: &Call,
    mut encoder: E,
    send_error: SendError,
    overflowed: Arc<std::sync::atomic::AtomicBool>,
    mut buffer: ReplayBuffer,
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
        let mut kept: Vec<Bytes> = Vec::new();
        // The stream of the attempt in progress; `None` while it is gone and the next has
        // not come.
        let mut send = Some(first);
        let mut done = false;
        loop {
            let Some(stream) = send.as_mut() else {
                // This attempt's stream failed: the next attempt's, with everything kept.
                if overflowed.load(std::sync::atomic::Ordering::Acquire) {
                    return;
                }
                let Some(mut stream) = next.recv().await else {
                    return;
                };
                let mut ok = true;
                for frame in &kept {
                    if transport::send_data(&mut stream, frame.clone(), false)
                        .await
                        .is_err()
                    {
                        ok = false;
                        break;
                    }
                }
                if ok && done {
                    let _ = stream.send_data(Bytes::new(), true);
                }
                send = ok.then_some(stream);
                continue;
            };
            if done {
                // Everything is out on this stream; wait for another attempt, if any.
                send = None;
                continue;
            }
            let Some(message) = messages.next().await else {
                let _ = stream.send_data(Bytes::new(), true);
                done = true;
                continue;
            };
            let frame = framing::encode_request(
                &mut encoder,
                message.into(),
                compression,
                max_send,
                &mut scratch,
            );
            let frame = match frame {
                Ok(frame) => frame,
                Err(status) => {
                    *send_error.lock().expect("send error lock") = Some(status);
                    stream.send_reset(h2::Reason::CANCEL);
                    return;
                }
            };
            if !overflowed.load(std::sync::atomic::Ordering::Relaxed) {
                if buffer.take(frame.len()) {
                    kept.push(frame.clone());
                } else {
                    // Too much to replay: the call commits to this attempt.
                    overflowed.store(true, std::sync::atomic::Ordering::Release);
                    kept = Vec::new();
                }
            }
            if transport::send_data(stream, frame, false).await.is_err() {
                send = None;
            }
        }
    })
}
