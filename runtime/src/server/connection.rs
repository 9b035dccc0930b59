//! One HTTP/2 connection: the handshake, then accepting streams in bursts and routing them.

use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;

use super::routing::dispatch;
use super::{Mode, Shared};
use crate::credentials::tls::{ServerTlsState, TlsInfo};
use crate::keepalive::ServerParameters;
use crate::peer::Peer;
use crate::transport::{self, ConnectionShared, SideWaker};

/// How many streams a connection's task accepts before it starts their calls and lets their
/// responses out. h2 reads every request that has arrived before handing out the first, and
/// writes queued responses only when the connection is polled again; taking a burst of 64
/// requests whole, they are answered in one write after all 64 are handled, and the client
/// sits idle meanwhile. Taking 16 at a time lets the first responses leave while the rest
/// are handled (on two cores, h2load's 1-byte unary calls at concurrency 64 went from ~110k
/// to ~170k per second at the same CPU per call), for at most one extra write per 16.
const ACCEPT_BURST: usize = 16;

/// The HTTP/2 handshake of a new connection, by the server's connection deadline.
async fn handshake<IO>(
    io: IO,
    peer: &Peer,
    shared: &Shared,
    deadline: Instant,
    mode: &mut watch::Receiver<Mode>,
    watch: &Arc<ConnectionShared>,
    received: Option<Arc<transport::bdp::Received>>,
) -> Option<h2::server::Connection<transport::Paced<IO>, Bytes>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut builder = shared.config.http2.server_builder();
    if let Some(limit) = shared.config.max_concurrent_streams {
        builder.max_concurrent_streams(limit);
    }
    let mut io = transport::Paced::server(io)
        .police_pings(shared.config.enforcement, Arc::clone(watch))
        .write_timeout(shared.config.stream_progress_timeout);
    if let Some(received) = received {
        io = io.count_data(received);
    }
    let handshake = builder.handshake::<_, Bytes>(io);
    let handshake = tokio::select! {
        handshake = tokio::time::timeout_at(deadline, handshake) => handshake,
        _ = mode.changed() => return None,
    };
    match handshake {
        Ok(Ok(connection)) => Some(connection),
        Ok(Err(e)) => {
            tracing::debug!(remote_addr = ?peer.remote_addr(), "HTTP/2 handshake failed: {e}");
            None
        }
        Err(_) => {
            tracing::debug!(
                remote_addr = ?peer.remote_addr(),
                "no HTTP/2 handshake within {:?}; closing",
                shared.config.connection_timeout
            );
            None
        }
    }
}

/// The TLS handshake of a new connection, by the server's connection deadline. Failures (no
/// certificate when one is required, an unknown CA, no ALPN `h2`) are the client's to see;
/// here they are logged at debug, and only this connection closes.
async fn secure<IO>(
    tls: &ServerTlsState,
    io: IO,
    peer: &Peer,
    deadline: Instant,
    mode: &mut watch::Receiver<Mode>,
) -> Option<(tokio_rustls::server::TlsStream<IO>, TlsInfo)>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let accepted = tokio::select! {
        accepted = tokio::time::timeout_at(deadline, tls.accept(io)) => accepted,
        _ = mode.changed() => return None,
    };
    match accepted {
        Ok(Ok(secured)) => Some(secured),
        Ok(Err(e)) => {
            tracing::debug!(remote_addr = ?peer.remote_addr(), "TLS handshake failed: {e}");
            None
        }
        Err(_) => {
            tracing::debug!(remote_addr = ?peer.remote_addr(), "no TLS handshake in time; closing");
            None
        }
    }
}

/// Serves one accepted connection: the security handshake its credentials call for, then
/// HTTP/2, both within the server's connection timeout.
pub(super) async fn serve_connection<IO>(
    io: IO,
    peer: Peer,
    shared: Arc<Shared>,
    mut mode: watch::Receiver<Mode>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let deadline = Instant::now() + shared.config.connection_timeout;
    match shared.config.credentials.tls_state() {
        None => serve_h2(io, Arc::new(peer), shared, deadline, mode).await,
        Some(tls) => {
            // Boxed for the reason `serve_h2` boxes its handshake.
            let secured = Box::pin(secure(tls, io, &peer, deadline, &mut mode)).await;
            if let Some((io, info)) = secured {
                let peer = Arc::new(peer.with_tls(info));
                // Boxed too: this future holds the TLS session inline, and unboxed it would
                // size every plaintext connection's task as well (6.4 KB, not 1.7 KB).
                Box::pin(serve_h2(io, peer, shared, deadline, mode)).await;
            }
        }
    }
}

async fn serve_h2<IO>(
    io: IO,
    peer: Arc<Peer>,
    shared: Arc<Shared>,
    deadline: Instant,
    mut mode: watch::Receiver<Mode>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Boxed: the handshake's state is as large as the connection's, and a connection's task
    // keeps its largest state for its whole life (idle connections are counted per KiB).
    let watch = Arc::new(ConnectionShared::default());
    let (estimator, received) = shared.config.http2.estimator().unzip();
    let handshake = Box::pin(handshake(
        io, &peer, &shared, deadline, &mut mode, &watch, received,
    ));
    let Some(mut connection) = handshake.await else {
        return;
    };
    let _conn_stats = shared.stats.conn_begin(false, &peer);
    // The connection in channelz, while this task runs; its calls count on it.
    let socket = shared.channelz.register_peer_socket(&peer);
    // Each call runs in its own task (or, on a current-thread runtime, first in this one).
    // They need no tracking: when this connection ends (closed, or dropped by a hard stop),
    // h2 errors every open stream, and a call whose stream errors drops its handler.
    let inline = tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::CurrentThread;
    // Allocated when a burst arrives, freed after it: an idle connection holds none.
    let mut burst = Vec::new();
    let mut going_away = false;
    let mut manager = Manager::new(shared.config.keepalive, connection.ping_pong(), deadline);
    manager.bdp = estimator;
    let mut calmed = false;
    let mut side = SideWaker::new();
    loop {
        // For the ping policing (one lock of h2's state per turn).
        watch.has_streams.store(
            connection.has_streams(),
            std::sync::atomic::Ordering::Relaxed,
        );
        if !going_away && *mode.borrow_and_update() != Mode::Serving {
            connection.graceful_shutdown();
            going_away = true;
            manager.draining();
        }
        if *mode.borrow() == Mode::Stopped {
            return;
        }
        manager.arm(&watch);
        // A new turn: the rare branches are new futures, or their conditions changed.
        side.open();
        let turn = {
            let changed = mode.changed();
            tokio::pin!(changed);
            poll_fn(|cx| {
                // The connection first: it is what wakes the task, frame after frame.
                if let Poll::Ready(accepted) = accept_burst(&mut connection, &mut burst, cx) {
                    return Poll::Ready(Turn::Accepted(accepted));
                }
                // The rest only when one of them woke the task (see `SideWaker`).
                let Some(mut side_cx) = side.context(cx) else {
                    return Poll::Pending;
                };
                let cx = &mut side_cx;
                if changed.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Turn::Mode);
                }
                if manager.timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Turn::Timer);
                }
                if !calmed && watch.poll_tripped(cx).is_ready() {
                    return Poll::Ready(Turn::Tripped);
                }
                if manager.pinging() {
                    if let Poll::Ready(pong) = poll_pong(&mut manager.ping, cx) {
                        return Poll::Ready(Turn::Pong(pong));
                    }
                } else if poll_sample(&mut manager.bdp, cx).is_ready() {
                    return Poll::Ready(Turn::Sample);
                }
                Poll::Pending
            })
            .await
        };
        let accepted = match turn {
            Turn::Accepted(accepted) => accepted,
            Turn::Mode => continue,
            Turn::Timer => {
                let pinging = manager.pong_due.is_some();
                let step = manager.on_timer(&connection, &watch);
                if !pinging && manager.pong_due.is_some() {
                    socket.keepalive_sent();
                }
                match step {
                    Step::Continue => {}
                    Step::GoAway(why) => {
                        tracing::debug!(remote_addr = ?peer.remote_addr(), "sending GOAWAY: {why}");
                        if !going_away {
                            connection.graceful_shutdown();
                            going_away = true;
                            manager.draining();
                        }
                    }
                    Step::Close(why) => {
                        tracing::debug!(remote_addr = ?peer.remote_addr(), "closing the connection: {why}");
                        return;
                    }
                }
                continue;
            }
            Turn::Tripped => {
                tracing::warn!(
                    remote_addr = ?peer.remote_addr(),
                    "the client pings too often: GOAWAY ENHANCE_YOUR_CALM too_many_pings"
                );
                calmed = true;
                connection.abrupt_shutdown(h2::Reason::ENHANCE_YOUR_CALM);
                continue;
            }
            Turn::Pong(pong) => {
                if let Err(e) = pong {
                    manager.answered();
                    tracing::debug!(remote_addr = ?peer.remote_addr(), "ping failed: {e}");
                } else if let Some(windows) = manager.answered() {
                    connection.set_target_window_size(windows.connection);
                    // Refused while our last SETTINGS is unacknowledged: the next sample
                    // retries.
                    match connection.set_initial_window_size(windows.stream) {
                        Ok(()) => tracing::debug!(
                            remote_addr = ?peer.remote_addr(),
                            "windows raised to the link's BDP: {} a stream, {} the connection",
                            windows.stream,
                            windows.connection
                        ),
                        Err(e) => tracing::debug!("stream window not raised: {e}"),
                    }
                }
                continue;
            }
            Turn::Sample => {
                manager.start_sample();
                continue;
            }
        };
        match accepted {
            Ok(waker) => {
                manager.calls_seen();
                // Routing runs here; each call starts once its method is known.
                let inline = inline.then_some(waker);
                let limit = watch.max_header_list_size();
                for (request, respond) in std::mem::take(&mut burst) {
                    dispatch(
                        request,
                        respond,
                        &shared,
                        &peer,
                        &socket,
                        limit,
                        inline.clone(),
                    );
                }
                if inline.is_none() {
                    // Let the calls just started run before taking more: their responses go
                    // out on the next accept (h2 writes there), while the rest are handled.
                    tokio::task::yield_now().await;
                }
            }
            Err(Some(e)) => {
                if e.get_io()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
                {
                    // The write timeout (`Paced`): a peer that reads nothing.
                    tracing::info!(remote_addr = ?peer.remote_addr(), "closing the connection: {e}");
                } else {
                    tracing::debug!(remote_addr = ?peer.remote_addr(), "connection error: {e}");
                }
                break;
            }
            Err(None) => break,
        }
    }
}

/// How long a draining connection without calls waits for the peer to acknowledge the
/// GOAWAY (a round trip, normally) before it closes anyway.
const DRAIN_ACK_WAIT: Duration = Duration::from_secs(10);

/// What ended a turn of a connection's loop.
enum Turn {
    /// Streams came in (the connection task's waker, for their first polls), or the
    /// connection ended.
    Accepted(Result<Waker, Option<h2::Error>>),
    /// The server's mode changed (or its sender is gone).
    Mode,
    /// The manager's timer fired.
    Timer,
    /// The client pinged too often.
    Tripped,
    /// The ping out was answered (or failed).
    Pong(Result<(), h2::Error>),
    /// A BDP sample is due.
    Sample,
}

/// What the connection does when one of its timers fires.
enum Step {
    Continue,
    GoAway(&'static str),
    Close(&'static str),
}

/// A connection's management per the server's keepalive parameters (gRPC-Go's): GOAWAY when
/// idle too long or too old, close after the age grace, ping every `time` and close when a
/// ping goes unanswered. One timer, re-armed only when its deadline moves: the accept loop's
/// hot path pays a comparison.
struct Manager {
    params: ServerParameters,
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    armed: Instant,
    /// Since when the connection has had no calls, as last seen (idleness is checked only
    /// when `max_connection_idle` is set).
    idle_since: Option<Instant>,
    /// When the age GOAWAY is due (jittered), until sent.
    age_at: Option<Instant>,
    /// After the age GOAWAY, when the connection closes regardless.
    close_at: Option<Instant>,
    ping: Option<h2::PingPong>,
    /// When the next ping goes.
    next_ping: Instant,
    /// Since when a GOAWAY has been out: a connection without calls this long after it
    /// closes (h2 waits for the peer's acknowledgement, which a peer may never send).
    draining_since: Option<Instant>,
    /// A keepalive ping is out: its answer is due by this.
    pong_due: Option<Instant>,
    /// BDP estimation, when the windows grow to the link (its samples' pings share `ping`
    /// with keepalive's, one out at a time).
    bdp: Option<transport::bdp::Estimator>,
    /// Until the client's SETTINGS arrive: when the connection closes without them (the
    /// connection timeout; h2's handshake ends with the 24-byte preface, and a peer that
    /// sends only that must not hold a connection).
    settings_due: Option<Instant>,
}

impl Manager {
    fn new(params: ServerParameters, ping: Option<h2::PingPong>, settings_due: Instant) -> Manager {
        let now = Instant::now();
        let age_at = params.max_connection_age.map(|age| {
            // ±10%, so that connections made together do not all go away together.
            now + age.mul_f64(0.9 + 0.2 * crate::backoff::random())
        });
        let mut manager = Manager {
            params,
            timer: Box::pin(tokio::time::sleep_until(now)),
            armed: now,
            idle_since: Some(now),
            age_at,
            close_at: None,
            ping,
            next_ping: now + params.time,
            pong_due: None,
            bdp: None,
            draining_since: None,
            settings_due: Some(settings_due),
        };
        manager.armed = manager.deadline() + Duration::from_secs(1);
        manager
    }

    /// The earliest thing to do.
    fn deadline(&self) -> Instant {
        let ping = self.pong_due.unwrap_or(self.next_ping);
        let idle = match (self.params.max_connection_idle, self.idle_since) {
            (Some(idle), Some(since)) => Some(since + idle),
            // Calls in flight: look again a quarter of the limit later.
            (Some(idle), None) => Some(Instant::now() + idle / 4),
            (None, _) => None,
        };
        let drained = self.draining_since.map(|since| since + DRAIN_ACK_WAIT);
        [
            Some(ping),
            idle,
            self.age_at,
            self.close_at,
            drained,
            self.settings_due,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(ping)
    }

    /// Re-arms the timer if its deadline moved.
    fn arm(&mut self, watch: &ConnectionShared) {
        if self.settings_due.is_some() && watch.settings_seen() {
            self.settings_due = None;
        }
        let deadline = self.deadline();
        if deadline != self.armed {
            self.armed = deadline;
            self.timer.as_mut().reset(deadline);
        }
    }

    /// A GOAWAY went out.
    fn draining(&mut self) {
        self.draining_since.get_or_insert(Instant::now());
    }

    /// Calls came in: the connection is not idle.
    fn calls_seen(&mut self) {
        if self.params.max_connection_idle.is_some() {
            self.idle_since = None;
        }
    }

    fn on_timer<IO, B>(
        &mut self,
        connection: &h2::server::Connection<IO, B>,
        watch: &ConnectionShared,
    ) -> Step
    where
        IO: AsyncRead + AsyncWrite + Unpin,
        B: bytes::Buf,
    {
        let now = Instant::now();
        if self.settings_due.is_some_and(|at| at <= now) && !watch.settings_seen() {
            return Step::Close("no SETTINGS from the client within the connection timeout");
        }
        if self.close_at.is_some_and(|at| at <= now) {
            return Step::Close("the connection is past its age and grace");
        }
        if let Some(since) = self.draining_since
            && since + DRAIN_ACK_WAIT <= now
        {
            if !connection.has_streams() {
                return Step::Close("no calls left, and the GOAWAY was not acknowledged");
            }
            self.draining_since = Some(now);
        }
        if let Some(due) = self.pong_due
            && due <= now
        {
            return Step::Close("keepalive ping not answered in time");
        }
        if self.pong_due.is_none() && self.next_ping <= now {
            if self.bdp.as_ref().is_some_and(|b| b.pinging()) {
                // A sample's ping is out: its answer serves keepalive too.
                self.pong_due = Some(now + self.params.timeout);
            } else {
                match self.ping.as_mut().map(|p| p.send_ping(h2::Ping::opaque())) {
                    Some(Ok(())) => self.pong_due = Some(now + self.params.timeout),
                    // Pings are unavailable: try later.
                    _ => self.next_ping = now + self.params.time,
                }
            }
        }
        if let Some(at) = self.age_at
            && at <= now
        {
            self.age_at = None;
            self.close_at = self
                .params
                .max_connection_age_grace
                .map(|grace| now + grace);
            return Step::GoAway("max_connection_age");
        }
        if let Some(idle) = self.params.max_connection_idle {
            if connection.has_streams() {
                self.idle_since = None;
            } else {
                let since = *self.idle_since.get_or_insert(now);
                if since + idle <= now {
                    self.params.max_connection_idle = None;
                    // A GOAWAY an idle peer never acknowledges must not hold the
                    // connection: it closes after the ping timeout.
                    self.close_at = Some(now + self.params.timeout);
                    return Step::GoAway("max_connection_idle");
                }
            }
        }
        Step::Continue
    }

    /// Whether a ping is out, keepalive's or a BDP sample's.
    fn pinging(&self) -> bool {
        self.pong_due.is_some() || self.bdp.as_ref().is_some_and(|b| b.pinging())
    }

    /// The ping out was answered: the next keepalive ping goes `time` later; the windows to
    /// grow to, if it ended a BDP sample that grows them.
    fn answered(&mut self) -> Option<transport::bdp::Windows> {
        let now = Instant::now();
        self.pong_due = None;
        self.next_ping = now + self.params.time;
        let bdp = self.bdp.as_mut().filter(|b| b.pinging())?;
        bdp.answered(now)
    }

    /// Sends a BDP sample's ping.
    fn start_sample(&mut self) {
        let Some(bdp) = &mut self.bdp else { return };
        match self.ping.as_mut().map(|p| p.send_ping(h2::Ping::opaque())) {
            Some(Ok(())) => bdp.started(Instant::now()),
            _ => bdp.abandoned(Instant::now()),
        }
    }
}

/// Ready when a BDP sample should start (data has arrived since the last one).
fn poll_sample(bdp: &mut Option<transport::bdp::Estimator>, cx: &mut Context<'_>) -> Poll<()> {
    match bdp {
        Some(bdp) => bdp.poll_start(cx),
        None => Poll::Pending,
    }
}

/// The answer to the ping out.
fn poll_pong(ping: &mut Option<h2::PingPong>, cx: &mut Context<'_>) -> Poll<Result<(), h2::Error>> {
    match ping {
        Some(ping) => ping.poll_pong(cx).map_ok(drop),
        None => Poll::Pending,
    }
}

type Incoming = (
    http::Request<h2::RecvStream>,
    h2::server::SendResponse<Bytes>,
);

/// Accepts up to [`ACCEPT_BURST`] streams into `burst`. Ready with this task's waker once
/// some are in; `Err` when the connection ends (`None`: closed cleanly).
fn accept_burst<IO>(
    connection: &mut h2::server::Connection<IO, Bytes>,
    burst: &mut Vec<Incoming>,
    cx: &mut Context<'_>,
) -> Poll<Result<Waker, Option<h2::Error>>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    while burst.len() < ACCEPT_BURST {
        match connection.poll_accept(cx) {
            Poll::Ready(Some(Ok(incoming))) => {
                if burst.capacity() == 0 {
                    burst.reserve_exact(ACCEPT_BURST);
                }
                burst.push(incoming);
            }
            Poll::Ready(Some(Err(e))) if burst.is_empty() => return Poll::Ready(Err(Some(e))),
            Poll::Ready(None) if burst.is_empty() => return Poll::Ready(Err(None)),
            // Serve what came first; the end is seen on the next call.
            Poll::Ready(_) | Poll::Pending => break,
        }
    }
    if burst.is_empty() {
        Poll::Pending
    } else {
        Poll::Ready(Ok(cx.waker().clone()))
    }
}
