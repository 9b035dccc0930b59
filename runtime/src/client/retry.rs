//! gRFC A6 on a channel: the retry or hedging policy in force for a call, where a call stands
//! in it, the server's pushback, and the attempts of streaming calls, whose sent messages
//! are kept and replayed on each new attempt until one attempt commits.
//!
//! A streaming call under a policy runs as two parts:
//! - [`Attempts::commit`] opens attempts (after a backoff for retries, every `hedgingDelay`
//!   for hedges) and races their response headers. The first attempt to get headers (or to
//!   end OK trailers-only) wins and is the call from then on; the others are dropped, which
//!   resets their streams with CANCEL.
//! - A sender task owns the attempts' send streams. It sends each request frame to every
//!   live attempt, keeps it (within the replay buffer's limits) for attempts still to come,
//!   and replays what it kept on each new one. Once the call commits it sends to the winner
//!   only and lets the buffer go.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use h2::SendStream;
use http::HeaderValue;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Channel;
use super::call::{Attempt, Counted, Opened};
use super::response::{H2Response, SendError};
use crate::backoff;
use crate::compression::CompressionEncoding;
use crate::headers::{GRPC_PREVIOUS_RPC_ATTEMPTS, GRPC_RETRY_PUSHBACK_MS};
use crate::interceptor::{AttemptInfo, EndGuard};
use crate::metadata::MetadataMap;
use crate::service_config::{HedgingPolicy, RetryPolicy, Throttle};
use crate::stats::Stats;
use crate::status::Status;
use crate::streaming::ResponseSource;
use crate::transport;

/// A retry policy in force for one call.
#[derive(Clone)]
pub(super) struct Retry {
    pub(super) policy: Arc<RetryPolicy>,
    pub(super) throttle: Option<Arc<Throttle>>,
}

impl Retry {
    /// A call succeeded: a token back to the throttle.
    pub(super) fn succeeded(&self) {
        if let Some(throttle) = &self.throttle {
            throttle.success();
        }
    }
}

/// A hedging policy in force for one call.
#[derive(Clone)]
pub(super) struct Hedge {
    pub(super) policy: Arc<HedgingPolicy>,
    pub(super) throttle: Option<Arc<Throttle>>,
}

impl Hedge {
    /// After an attempt failed with `status`, given the next hedge `planned`: when the next
    /// hedge goes now (`None`: no more), or `Err` if the call fails with this status (a
    /// code the policy does not call non-fatal). Counts the failure against the throttle.
    pub(super) fn after_failure(
        &self,
        status: &Status,
        sent: u32,
        planned: Option<Instant>,
    ) -> Result<Option<Instant>, ()> {
        let non_fatal = self.policy.non_fatal.contains(&status.code());
        let pushback = pushback(status);
        if (non_fatal || pushback.is_some())
            && let Some(throttle) = &self.throttle
        {
            throttle.failure();
        }
        if !non_fatal {
            return Err(());
        }
        Ok(match pushback {
            // The server's word replaces the plan: the next hedge in this long, or none.
            Some(Some(ms)) => Some(Instant::now() + Duration::from_millis(ms)),
            Some(None) => None,
            // A non-fatal failure sends the next hedge at once.
            None if sent < self.policy.max_attempts => Some(Instant::now()),
            None => planned,
        })
    }

    /// Whether another hedge may go after `sent` attempts.
    pub(super) fn allows(&self, sent: u32) -> bool {
        let throttled = sent > 0 && self.throttle.as_ref().is_some_and(|t| !t.allows());
        sent < self.policy.max_attempts && !throttled
    }

    pub(super) fn succeeded(&self) {
        if let Some(throttle) = &self.throttle {
            throttle.success();
        }
    }
}

/// The policy a streaming call runs its attempts under.
#[derive(Clone)]
pub(super) enum Policy {
    Retry(Retry),
    Hedge(Hedge),
}

/// Where a call stands in its retry policy.
pub(super) struct RetryState {
    /// Attempts made.
    pub(super) attempts: u32,
    backoff: Duration,
}

impl RetryState {
    pub(super) fn new(initial_backoff: Duration) -> RetryState {
        RetryState {
            attempts: 0,
            backoff: initial_backoff,
        }
    }

    /// The next attempt's request headers: `request`'s, with `grpc-previous-rpc-attempts`
    /// after the first; and what interceptors are told of it.
    pub(super) fn request(
        &mut self,
        request: &http::Request<()>,
        hedge: bool,
    ) -> (http::Request<()>, AttemptInfo) {
        self.attempts += 1;
        let this = attempt_request(request, self.attempts);
        let info = AttemptInfo {
            number: self.attempts,
            transparent: false,
            hedge: hedge && self.attempts > 1,
        };
        (this, info)
    }

    /// After an attempt failed with `status`: how long to wait before the next, or `None`
    /// to give up (a code the policy does not retry, committed, out of attempts or of
    /// throttle tokens, or the server's pushback says stop).
    pub(super) fn next_delay(
        &mut self,
        retry: &Retry,
        status: &Status,
        committed: bool,
    ) -> Option<Duration> {
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

/// The server's `grpc-retry-pushback-ms`: `None` if absent, `Some(None)` if negative,
/// malformed or longer than [`MAX_PUSHBACK_MS`] (all mean: no more attempts).
pub(crate) fn pushback(status: &Status) -> Option<Option<u64>> {
    let value = status.metadata().get(GRPC_RETRY_PUSHBACK_MS)?;
    Some(
        value
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|ms| *ms <= MAX_PUSHBACK_MS),
    )
}

/// The longest pushback obeyed: about 49 days, past any call's patience. A longer one can
/// only mean "stop", and one near `u64::MAX` would overflow the clock it is added to.
pub(crate) const MAX_PUSHBACK_MS: u64 = u32::MAX as u64;

/// The request of attempt `number` (from 1): a copy of `template`, with
/// `grpc-previous-rpc-attempts` after the first.
pub(super) fn attempt_request(template: &http::Request<()>, number: u32) -> http::Request<()> {
    let mut request = copy_request(template);
    if number > 1 {
        request
            .headers_mut()
            .insert(GRPC_PREVIOUS_RPC_ATTEMPTS, HeaderValue::from(number - 1));
    }
    request
}

/// A copy of a request's head, for another attempt.
pub(super) fn copy_request(request: &http::Request<()>) -> http::Request<()> {
    let mut copy = http::Request::new(());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.headers_mut() = request.headers().clone();
    copy
}

/// What a call keeps for replay, counted against its own limit and its channel's.
pub(super) struct ReplayBuffer {
    pub(super) per_call: usize,
    pub(super) per_channel: usize,
    /// The channel's total kept bytes.
    pub(super) channel: Arc<AtomicUsize>,
    /// This call's kept bytes (given back to the channel when the call ends).
    pub(super) kept: usize,
}

impl ReplayBuffer {
    /// Counts `bytes` more; `false` if that passes a limit (then nothing of this call is
    /// counted any more).
    fn take(&mut self, bytes: usize) -> bool {
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
        self.channel.fetch_sub(self.kept, Ordering::AcqRel);
        self.kept = 0;
    }
}

impl Drop for ReplayBuffer {
    fn drop(&mut self) {
        self.release();
    }
}

/// What the attempts loop tells the sender task.
enum Control {
    /// A new attempt's stream: replay what was kept on it, then send it what comes.
    Open(u32, SendStream<Bytes>, Tally),
    /// The attempt failed: drop its stream.
    Close(u32),
    /// The call committed to this attempt: drop the others' streams and the buffer.
    Commit(u32),
}

/// What the sender task and the attempts share.
struct Shared {
    /// The replay buffer overflowed: no attempt can be replayed any more, so the call is
    /// committed to those in flight.
    overflowed: AtomicBool,
    /// Why sending failed (an encoding error, a message over the limit), reported as the
    /// call's status instead of the reset it caused.
    send_error: SendError,
}

/// The request frames of a streaming call: encoded in the caller's task (client-streaming
/// calls encode in the sender task, as the stream is polled).
pub(super) type Frames = Pin<Box<dyn Stream<Item = Result<Bytes, Status>> + Send>>;

/// A streaming call's attempts under its policy, up to the commit.
pub(super) struct Attempts {
    channel: Channel,
    attempt: Attempt,
    /// The request headers each attempt sends (with its own `grpc-previous-rpc-attempts`).
    request: http::Request<()>,
    max_recv: usize,
    policy: Policy,
    state: RetryState,
    control: mpsc::UnboundedSender<Control>,
    shared: Arc<Shared>,
    sender: Option<tokio::task::JoinHandle<()>>,
    /// The first attempt's response (its stream is the sender task's from the start).
    first: Option<H2Response>,
}

impl Drop for Attempts {
    fn drop(&mut self) {
        if let Some(task) = &self.sender {
            task.abort();
        }
    }
}

/// What an attempt in flight is waiting on.
enum Step {
    /// Its headers went out (or could not).
    Opened(Result<Opened, Status>),
    /// Its response headers came (or it failed before them).
    Headers(Box<H2Response>, Result<(), Status>),
}

/// An attempt's next step, with its id, whether its transparent retry is used, and what
/// interceptors were told of it.
type Event = (u32, bool, AttemptInfo, Step);

type EventFuture = Pin<Box<dyn Future<Output = Event> + Send>>;

/// A streaming call under a policy whose first attempt is open, before its request frames
/// are known.
pub(super) struct Pending {
    pub(super) channel: Channel,
    pub(super) attempt: Attempt,
    /// The request headers each attempt sends (with its own `grpc-previous-rpc-attempts`).
    pub(super) request: http::Request<()>,
    pub(super) max_recv: usize,
    pub(super) policy: Policy,
    /// The first attempt's open stream.
    pub(super) first: Opened,
}

impl Pending {
    /// Starts the call's attempts with `frames`, the request messages: a task spawned here
    /// sends, keeps and replays them.
    pub(super) fn start(self, frames: Frames) -> Attempts {
        let Pending {
            channel,
            attempt,
            request,
            max_recv,
            policy,
            first,
        } = self;
        let config = channel.config();
        let buffer = ReplayBuffer {
            per_call: config.retry_buffer_per_call,
            per_channel: config.retry_buffer_per_channel,
            channel: Arc::clone(&config.retry_buffered),
            kept: 0,
        };
        let shared = Arc::new(Shared {
            overflowed: AtomicBool::new(false),
            send_error: SendError::default(),
        });
        let (control, control_rx) = mpsc::unbounded_channel();
        let Opened {
            response: first,
            send,
            guard,
            stats,
            channelz,
        } = first;
        let first = H2Response::new(first, max_recv)
            .tracked(guard)
            .with_stats(stats.clone())
            .with_channelz(channelz.clone());
        let sender = tokio::spawn(send_frames(
            (send, (stats, channelz)),
            frames,
            control_rx,
            Arc::clone(&shared),
            buffer,
            attempt.compression,
        ));
        let initial = match &policy {
            Policy::Retry(retry) => retry.policy.initial_backoff,
            Policy::Hedge(_) => Duration::ZERO,
        };
        let mut state = RetryState::new(initial);
        // The first attempt is out already.
        state.attempts = 1;
        Attempts {
            channel,
            attempt,
            request,
            max_recv,
            policy,
            state,
            control,
            shared,
            sender: Some(sender),
            first: Some(first),
        }
    }
}

impl Attempts {
    /// Runs attempts until one commits, and returns its response (its headers read, the
    /// sender task attached); or the call's final status.
    pub(super) async fn commit(mut self) -> Result<H2Response, Status> {
        let mut events: FuturesUnordered<EventFuture> = FuturesUnordered::new();
        let mut next_id = 1;
        let first = self.first.take().expect("the first attempt");
        events.push(Box::pin(headers(0, false, AttemptInfo::FIRST, first)));
        // When the next attempt goes: after a retry's backoff, or the next hedge.
        let mut timer = match &self.policy {
            Policy::Hedge(hedge) if hedge.allows(1) => Some(Instant::now() + hedge.policy.delay),
            _ => None,
        };
        let mut last = None;
        loop {
            if events.is_empty() && timer.is_none() {
                return Err(last.unwrap_or_else(|| Status::unavailable("no attempt was made")));
            }
            let sleep = async {
                match timer {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let (id, transparent_used, info, step) = tokio::select! {
                Some(event) = events.next() => event,
                () = sleep => {
                    timer = None;
                    if self.shared.overflowed.load(Ordering::Acquire) {
                        continue;
                    }
                    let hedge = match &self.policy {
                        Policy::Retry(_) => false,
                        Policy::Hedge(hedge) => {
                            if !hedge.allows(self.state.attempts) {
                                continue;
                            }
                            if hedge.allows(self.state.attempts + 1) {
                                timer = Some(Instant::now() + hedge.policy.delay);
                            }
                            true
                        }
                    };
                    let (request, info) = self.state.request(&self.request, hedge);
                    tracing::debug!(attempt = info.number, hedge, "starting another attempt");
                    events.push(self.open(next_id, false, info, request));
                    next_id += 1;
                    continue;
                }
            };
            let (status, committed) = match step {
                Step::Opened(Ok(opened)) => {
                    let tally = (opened.stats.clone(), opened.channelz.clone());
                    let _ = self.control.send(Control::Open(id, opened.send, tally));
                    let response = H2Response::new(opened.response, self.max_recv)
                        .tracked(opened.guard)
                        .with_stats(opened.stats)
                        .with_channelz(opened.channelz);
                    events.push(Box::pin(headers(id, transparent_used, info, response)));
                    continue;
                }
                Step::Opened(Err(status)) => (status, false),
                Step::Headers(mut response, Ok(())) => {
                    let _ = self.control.send(Control::Commit(id));
                    match &self.policy {
                        Policy::Retry(retry) => retry.succeeded(),
                        Policy::Hedge(hedge) => hedge.succeeded(),
                    }
                    if let Some(task) = self.sender.take() {
                        response.set_sender(task, Some(Arc::clone(&self.shared.send_error)));
                    }
                    // Dropping the other attempts resets their streams.
                    return Ok(*response);
                }
                Step::Headers(response, Err(status)) => {
                    let _ = self.control.send(Control::Close(id));
                    (status, response.committed())
                }
            };
            if let Some(error) = self.shared.send_error.lock().expect("send error").take() {
                return Err(error);
            }
            // gRFC A6's transparent retry: once per attempt, a stream the server refused
            // unprocessed goes again, not counted against the policy.
            if !transparent_used && transport::never_processed(&status) {
                tracing::debug!(attempt = info.number, "transparent retry: {status}");
                let request = attempt_request(&self.request, info.number);
                let info = AttemptInfo {
                    transparent: true,
                    ..info
                };
                events.push(self.open(next_id, true, info, request));
                next_id += 1;
                continue;
            }
            let committed = committed || self.shared.overflowed.load(Ordering::Acquire);
            match &self.policy {
                Policy::Retry(retry) => {
                    let Some(delay) = self.state.next_delay(retry, &status, committed) else {
                        return Err(status);
                    };
                    tracing::debug!(
                        attempt = self.state.attempts,
                        ?delay,
                        "retrying after {status}"
                    );
                    timer = Some(Instant::now() + delay);
                }
                Policy::Hedge(hedge) => {
                    if committed {
                        return Err(status);
                    }
                    match hedge.after_failure(&status, self.state.attempts, timer) {
                        Err(()) => return Err(status),
                        Ok(next) => {
                            timer = next;
                            last = Some(status);
                        }
                    }
                }
            }
        }
    }

    /// Sends an attempt's request headers.
    fn open(
        &self,
        id: u32,
        transparent_used: bool,
        info: AttemptInfo,
        request: http::Request<()>,
    ) -> EventFuture {
        let channel = self.channel.clone();
        let attempt = self.attempt.clone();
        Box::pin(async move {
            let opened = channel.send_headers(&attempt, request, info).await;
            (id, transparent_used, info, Step::Opened(opened))
        })
    }
}

/// Waits for an attempt's response headers.
async fn headers(
    id: u32,
    transparent_used: bool,
    info: AttemptInfo,
    mut response: H2Response,
) -> Event {
    let result = poll_fn(|cx| response.poll_headers(cx)).await;
    (
        id,
        transparent_used,
        info,
        Step::Headers(Box::new(response), result),
    )
}

/// The sender task: sends each frame of `frames` to every live attempt, keeping it (within
/// `buffer`) for attempts to come; replays what it kept on each new attempt; ends every
/// attempt's stream once the frames end. It stops when the call ends: the attempts loop
/// is gone without a commit, or the committed attempt's stream is done.
async fn send_frames(
    (first, stats): (SendStream<Bytes>, Tally),
    frames: Frames,
    mut control: mpsc::UnboundedReceiver<Control>,
    shared: Arc<Shared>,
    mut buffer: ReplayBuffer,
    compression: Option<CompressionEncoding>,
) {
    let mut frames = frames;
    let mut task = SendTask {
        live: vec![(0, first, stats)],
        compression,
        kept: Vec::new(),
        done: false,
        committed: false,
        control_open: true,
        deferred: Vec::new(),
    };
    loop {
        if task.committed && (task.live.is_empty() || task.done) {
            return;
        }
        if !task.control_open && !task.committed {
            // The attempts loop gave up: the call failed.
            return;
        }
        tokio::select! {
            biased;
            ctl = control.recv(), if task.control_open => match ctl {
                Some(ctl) => {
                    task.apply(ctl, &mut control, &shared).await;
                }
                None => task.control_open = false,
            },
            // Frames are read only while an attempt can take them: between a retry's
            // attempts the caller's messages wait.
            frame = frames.next(), if !task.done && !task.live.is_empty() => match frame {
                None => {
                    task.done = true;
                    for (_, stream, (stats, _)) in &mut task.live {
                        if let Some(stats) = stats {
                            stats.half_close();
                        }
                        let _ = stream.send_data(Bytes::new(), true);
                    }
                }
                Some(Err(status)) => {
                    *shared.send_error.lock().expect("send error") = Some(status);
                    for (_, stream, _) in &mut task.live {
                        stream.send_reset(h2::Reason::CANCEL);
                    }
                    return;
                }
                Some(Ok(frame)) => {
                    if !task.committed && !shared.overflowed.load(Ordering::Relaxed) {
                        if buffer.take(frame.len()) {
                            task.kept.push(frame.clone());
                        } else {
                            // Too much to replay: no new attempt can start.
                            shared.overflowed.store(true, Ordering::Release);
                            task.kept = Vec::new();
                        }
                    }
                    task.broadcast(&frame, &mut control).await;
                }
            },
        }
        let deferred = std::mem::take(&mut task.deferred);
        for ctl in deferred {
            task.apply(ctl, &mut control, &shared).await;
        }
        if task.committed && buffer.kept > 0 {
            task.kept = Vec::new();
            buffer.release();
        }
    }
}

/// The sender task's state.
struct SendTask {
    /// The attempts' streams that take frames, with their stats handlers.
    live: Vec<(u32, SendStream<Bytes>, Tally)>,
    /// The request messages' compression, for the stats handlers.
    compression: Option<CompressionEncoding>,
    /// The frames sent so far, for attempts to come.
    kept: Vec<Bytes>,
    /// All frames are out (each live stream is ended).
    done: bool,
    committed: bool,
    control_open: bool,
    /// Controls that came while a frame was going out, applied after it.
    deferred: Vec<Control>,
}

impl SendTask {
    async fn apply(
        &mut self,
        ctl: Control,
        control: &mut mpsc::UnboundedReceiver<Control>,
        shared: &Shared,
    ) {
        match ctl {
            Control::Open(id, mut stream, stats) => {
                if self.committed || shared.overflowed.load(Ordering::Acquire) {
                    // Nothing to replay it with.
                    stream.send_reset(h2::Reason::CANCEL);
                    return;
                }
                for frame in &self.kept {
                    let watch = Watch {
                        control,
                        open: &mut self.control_open,
                        deferred: &mut self.deferred,
                    };
                    if !send_one(id, &mut stream, frame.clone(), watch).await {
                        return;
                    }
                    sent(&stats, frame, self.compression);
                }
                if self.done {
                    if let Some(stats) = &stats.0 {
                        stats.half_close();
                    }
                    let _ = stream.send_data(Bytes::new(), true);
                }
                self.live.push((id, stream, stats));
            }
            Control::Close(id) => self.live.retain(|(live, _, _)| *live != id),
            Control::Commit(id) => {
                self.committed = true;
                self.live.retain(|(live, _, _)| *live == id);
            }
        }
    }

    /// Sends `frame` to every live stream in turn, dropping those that fail or that a
    /// control arriving meanwhile removes.
    async fn broadcast(&mut self, frame: &Bytes, control: &mut mpsc::UnboundedReceiver<Control>) {
        let mut i = 0;
        while i < self.live.len() {
            let (id, stream, stats) = &mut self.live[i];
            let watch = Watch {
                control,
                open: &mut self.control_open,
                deferred: &mut self.deferred,
            };
            if send_one(*id, stream, frame.clone(), watch).await {
                sent(stats, frame, self.compression);
                i += 1;
            } else {
                self.live.remove(i);
            }
        }
    }
}

/// What counts an attempt's messages: its stats handlers and its place in channelz.
type Tally = (Stats, Counted);

/// A frame went out on an attempt.
fn sent((stats, channelz): &Tally, frame: &[u8], compression: Option<CompressionEncoding>) {
    if let Some(stats) = stats {
        stats.out_frame(frame, compression);
    }
    super::call::count_sent(channelz);
}

/// The controls, watched while a frame waits for flow control.
struct Watch<'a> {
    control: &'a mut mpsc::UnboundedReceiver<Control>,
    open: &'a mut bool,
    deferred: &'a mut Vec<Control>,
}

/// Sends `frame` on one attempt's stream, waiting for its flow control while watching the
/// controls (a stalled attempt must not hold the others back once it is dropped). `false`
/// if the stream is gone: failed, closed, or another attempt committed.
async fn send_one(
    id: u32,
    stream: &mut SendStream<Bytes>,
    mut frame: Bytes,
    watch: Watch<'_>,
) -> bool {
    loop {
        tokio::select! {
            biased;
            ctl = watch.control.recv(), if *watch.open => match ctl {
                Some(Control::Close(closed)) if closed == id => return false,
                Some(Control::Commit(winner)) if winner != id => {
                    watch.deferred.push(Control::Commit(winner));
                    return false;
                }
                Some(ctl) => watch.deferred.push(ctl),
                None => *watch.open = false,
            },
            sent = poll_fn(|cx| transport::poll_send(stream, &mut frame, false, cx)) => {
                return sent.is_ok();
            }
        }
    }
}

/// A bidi call's response under a policy: the attempts race (the call's deadline, its
/// cancellation and its end already wrapped around them) until one commits; then that
/// attempt's response. The race runs as a task of its own: a caller that sends before it
/// reads must not wait on a retry that only reading would drive.
pub(super) struct Committing {
    state: Race,
}

enum Race {
    Running(tokio::task::JoinHandle<Result<H2Response, Status>>),
    Committed(Box<H2Response>),
    /// The call failed before any attempt committed: its status, until reported.
    Failed(Option<Status>),
}

impl Committing {
    pub(super) fn new(
        race: impl Future<Output = Result<H2Response, Status>> + Send + 'static,
    ) -> Committing {
        Committing {
            state: Race::Running(tokio::spawn(race)),
        }
    }

    fn response(&self) -> Option<&H2Response> {
        match &self.state {
            Race::Committed(response) => Some(response),
            _ => None,
        }
    }
}

impl ResponseSource for Committing {
    fn poll_headers(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        loop {
            match &mut self.state {
                Race::Running(race) => {
                    self.state = match ready!(Pin::new(race).poll(cx)) {
                        Ok(Ok(response)) => Race::Committed(Box::new(response)),
                        Ok(Err(status)) => Race::Failed(Some(status)),
                        Err(e) => Race::Failed(Some(Status::internal(format!(
                            "the call's attempts stopped: {e}"
                        )))),
                    };
                }
                Race::Committed(response) => return response.poll_headers(cx),
                Race::Failed(status) => return Poll::Ready(status.take().map_or(Ok(()), Err)),
            }
        }
    }

    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, Status>> {
        if let Race::Running(_) = self.state {
            ready!(self.poll_headers(cx))?;
        }
        match &mut self.state {
            Race::Committed(response) => response.poll_message(cx),
            Race::Failed(status) => Poll::Ready(status.take().map_or(Ok(None), Err)),
            Race::Running(_) => unreachable!("polled to its end above"),
        }
    }

    fn headers(&self) -> Option<&MetadataMap> {
        self.response()?.headers()
    }

    fn trailers(&self) -> Option<&MetadataMap> {
        self.response()?.trailers()
    }

    fn last_compressed(&self) -> bool {
        self.response().is_some_and(|r| r.last_compressed())
    }

    fn fail(&mut self, status: &Status) {
        match &mut self.state {
            Race::Committed(response) => response.fail(status),
            Race::Running(race) => {
                race.abort();
                self.state = Race::Failed(None);
            }
            Race::Failed(_) => {}
        }
    }
}

impl Drop for Committing {
    fn drop(&mut self) {
        // Dropping the response stream cancels the call, attempts in flight included.
        if let Race::Running(race) = &self.state {
            race.abort();
        }
    }
}

/// Runs a bidi call's attempts under `deadline` and `cancellation`, and hands the call's
/// end to the committed attempt (or reports the failure to it).
pub(super) async fn race(
    attempts: Attempts,
    deadline: Option<Instant>,
    cancellation: Option<crate::cancel::Cancellation>,
    mut end: EndGuard,
) -> Result<H2Response, Status> {
    let committed = super::call::watched(deadline, cancellation.as_ref(), attempts.commit());
    match committed.await {
        Ok(mut response) => {
            response.watch(deadline, cancellation);
            response.set_end(end);
            Ok(response)
        }
        Err(status) => {
            end.finish(&status);
            Err(status)
        }
    }
}
