//! Flow-control windows that grow to the link: bandwidth-delay product (BDP) estimation, as
//! gRPC-Go's transport does it.
//!
//! The receiving side of a connection measures how many DATA bytes arrive within one round
//! trip: when data starts to arrive it sends a PING, counts the DATA payload bytes until the
//! PING's answer, and times the round trip. A sample that filled at least two thirds of the
//! current window at the best bandwidth seen so far means the window, not the link, held the
//! sender back: the windows (the streams' initial window and the connection's) grow to twice
//! the sample, up to [`BDP_LIMIT`]. gRPC-Go's constants and rule
//! (`internal/transport/bdp_estimator.go`); the windows start at our static defaults (2 MiB
//! a stream, 8 MiB the connection), not at HTTP/2's 64 KiB, so a fast local link starts
//! with windows that nearly fit it.
//!
//! Measured (benchmark/README.md, `delay-proxy`): 1 MiB messages streamed through a 40 ms
//! round trip, either way, ran at 41-43 messages/s with the windows fixed at 2 MiB / 8 MiB
//! and 249-276/s grown.
//!
//! Off when the application sets either window itself (gRPC-Go's rule), as it then owns them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::time::{Instant, Sleep};

/// The largest window BDP estimation grows to (gRPC-Go's `bdpLimit`, 16 MiB).
pub(crate) const BDP_LIMIT: u32 = 16 * 1024 * 1024;

/// The weight of a new round-trip sample, once ten are in (gRPC-Go's `alpha`).
const ALPHA: f64 = 0.9;
/// After a sample that did not grow the windows, the next starts no sooner than this. By
/// gRPC-Go's rule alone a connection whose windows already fit its link pings once per round
/// trip for as long as data flows: unary 1 B calls at c=64 from h2load, on loopback, lost
/// 4-15% of their rate and took 4-19% more server CPU per call to those pings (3 alternating
/// pairs). Ten samples a second still notice a transfer that needs more window within 100
/// ms, and samples that grow the windows follow each other at once (gRPC C-core likewise
/// spaces its samples once its estimate is stable).
const SETTLED_INTERVAL: Duration = Duration::from_millis(100);

/// A sample of at least this share of the window may grow it (gRPC-Go's `beta`).
const BETA: f64 = 0.66;
/// The window grows to this many times the sample (gRPC-Go's `gamma`).
const GAMMA: f64 = 2.0;

/// What the connection's reader ([`Paced`](super::Paced)) and its task share: the DATA bytes
/// received, and the task's waker for the first of them.
#[derive(Debug, Default)]
pub(crate) struct Received {
    /// DATA payload bytes received on the connection, ever.
    bytes: AtomicU64,
    /// The task waits for data to start a sample.
    wanted: AtomicBool,
    waker: AtomicWaker,
}

impl Received {
    /// A DATA frame with `len` payload bytes arrived. Called per frame header on the read
    /// path: one relaxed add, and one load while no sample is waiting for data.
    pub(crate) fn data(&self, len: usize) {
        self.bytes.fetch_add(len as u64, Ordering::Relaxed);
        if self.wanted.load(Ordering::Relaxed) && self.wanted.swap(false, Ordering::AcqRel) {
            self.waker.wake();
        }
    }

    fn total(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// The windows to apply after a sample grew them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Windows {
    /// Every stream's window (SETTINGS_INITIAL_WINDOW_SIZE, which moves open streams too).
    pub(crate) stream: u32,
    /// The connection's window.
    pub(crate) connection: u32,
}

/// Windows handed from the task that estimates them to the one that owns the connection
/// (a client's connection is driven inside a boxed future of its own).
#[derive(Debug, Default)]
pub(crate) struct Handoff(AtomicU64);

impl Handoff {
    /// Leaves `windows` to be applied (replacing any not yet taken).
    pub(crate) fn put(&self, windows: Windows) {
        let packed = u64::from(windows.stream) << 32 | u64::from(windows.connection);
        self.0.store(packed, Ordering::Release);
    }

    /// The windows left to apply, if any. One relaxed load when there are none (the
    /// connection's poll calls it every time).
    pub(crate) fn take(&self) -> Option<Windows> {
        if self.0.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let packed = self.0.swap(0, Ordering::Acquire);
        (packed != 0).then_some(Windows {
            stream: (packed >> 32) as u32,
            connection: packed as u32,
        })
    }
}

/// One connection's estimator, kept by the task that owns the connection's PING handle.
#[derive(Debug)]
pub(crate) struct Estimator {
    received: Arc<Received>,
    /// The current estimate: the streams' window.
    bdp: u32,
    /// The connection's window as configured: it never shrinks below it.
    connection_floor: u32,
    /// `received` when the current sample began (the end of the last one).
    base: u64,
    /// When the sample's PING went out, while it is out.
    sent_at: Option<Instant>,
    samples: u32,
    /// Smoothed round trip, in seconds.
    rtt: f64,
    /// The best bandwidth seen, in bytes per second.
    bw_max: f64,
    /// Until when no sample starts, after one that did not grow the windows (made the first
    /// time, then reset: one allocation per connection at most).
    settled: Option<Pin<Box<Sleep>>>,
    settling: bool,
}

impl Estimator {
    /// An estimator for a connection whose windows start at `stream` and `connection`, and
    /// the counter its reader feeds.
    pub(crate) fn new(stream: u32, connection: u32) -> (Estimator, Arc<Received>) {
        let received = Arc::new(Received::default());
        let estimator = Estimator {
            received: received.clone(),
            bdp: stream,
            connection_floor: connection,
            base: 0,
            sent_at: None,
            samples: 0,
            rtt: 0.0,
            bw_max: 0.0,
            settled: None,
            settling: false,
        };
        (estimator, received)
    }

    /// Whether a sample's PING is out.
    pub(crate) fn pinging(&self) -> bool {
        self.sent_at.is_some()
    }

    /// Ready when a sample should start (data has arrived since the last one ended, and the
    /// windows may still grow): the caller sends a PING and calls [`started`](Self::started).
    /// Never ready while a sample's PING is out or once the windows are at the limit.
    pub(crate) fn poll_start(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.sent_at.is_some() || self.bdp >= BDP_LIMIT {
            return Poll::Pending;
        }
        if self.settling {
            if let Some(settled) = &mut self.settled
                && settled.as_mut().poll(cx).is_pending()
            {
                return Poll::Pending;
            }
            self.settling = false;
        }
        if self.received.total() > self.base {
            return Poll::Ready(());
        }
        self.received.waker.register(cx.waker());
        self.received.wanted.store(true, Ordering::Release);
        // Data may have arrived between the look and the registration.
        if self.received.total() > self.base {
            self.received.wanted.store(false, Ordering::Relaxed);
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// The sample's PING went out at `now`.
    pub(crate) fn started(&mut self, now: Instant) {
        self.sent_at = Some(now);
        self.samples = self.samples.saturating_add(1);
    }

    /// The PING could not be sent at `now`: the sample is dropped, and the next waits as
    /// after one that did not grow the windows.
    pub(crate) fn abandoned(&mut self, now: Instant) {
        self.sent_at = None;
        self.base = self.received.total();
        self.settle(now);
    }

    /// No sample starts until [`SETTLED_INTERVAL`] after `now`.
    fn settle(&mut self, now: Instant) {
        let until = now + SETTLED_INTERVAL;
        match &mut self.settled {
            Some(settled) => settled.as_mut().reset(until),
            None => self.settled = Some(Box::pin(tokio::time::sleep_until(until))),
        }
        self.settling = true;
    }

    /// The sample's PING was answered at `now`: the new windows, if the sample grows them.
    pub(crate) fn answered(&mut self, now: Instant) -> Option<Windows> {
        let sent_at = self.sent_at.take()?;
        let total = self.received.total();
        let sample = total.saturating_sub(self.base) as f64;
        self.base = total;
        let rtt_sample = now.saturating_duration_since(sent_at).as_secs_f64();
        if self.samples < 10 {
            // The first ten: their average.
            self.rtt += (rtt_sample - self.rtt) / f64::from(self.samples.max(1));
        } else {
            self.rtt += (rtt_sample - self.rtt) * ALPHA;
        }
        // Bytes that arrived within a round trip are at most 1.5 times the link's BDP (the
        // PING left some way into the sample).
        let rtt = self.rtt.max(1e-6);
        let bw = sample / (rtt * 1.5);
        if bw > self.bw_max {
            self.bw_max = bw;
        }
        if sample >= BETA * f64::from(self.bdp) && bw >= self.bw_max && self.bdp < BDP_LIMIT {
            // As u32: saturating, and capped right after.
            self.bdp = ((GAMMA * sample) as u32).clamp(self.bdp, BDP_LIMIT);
            return Some(Windows {
                stream: self.bdp,
                connection: self.bdp.max(self.connection_floor),
            });
        }
        self.settle(now);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MIB: u32 = 1024 * 1024;

    fn noop() -> Context<'static> {
        Context::from_waker(futures_util::task::noop_waker_ref())
    }

    /// One sample: `bytes` arrive, the PING goes at `at`, its answer `rtt` later.
    fn sample(
        e: &mut Estimator,
        r: &Received,
        bytes: u32,
        at: Instant,
        rtt: Duration,
    ) -> Option<Windows> {
        r.data(bytes as usize);
        assert_eq!(e.poll_start(&mut noop()), Poll::Ready(()));
        e.started(at);
        e.answered(at + rtt)
    }

    #[test]
    fn a_sample_that_fills_the_window_doubles_it_up_to_the_limit() {
        let (mut e, r) = Estimator::new(2 * MIB, 8 * MIB);
        let t = Instant::now();
        let rtt = Duration::from_millis(40);
        // The whole 2 MiB window arrived within the round trip: the window held it back.
        assert_eq!(
            sample(&mut e, &r, 2 * MIB, t, rtt),
            Some(Windows {
                stream: 4 * MIB,
                connection: 8 * MIB
            })
        );
        assert_eq!(
            sample(&mut e, &r, 4 * MIB, t + rtt, rtt),
            Some(Windows {
                stream: 8 * MIB,
                connection: 8 * MIB
            })
        );
        assert_eq!(
            sample(&mut e, &r, 8 * MIB, t + rtt * 2, rtt),
            Some(Windows {
                stream: BDP_LIMIT,
                connection: BDP_LIMIT
            })
        );
        // At the limit no sample starts: no more PINGs.
        r.data(1);
        assert_eq!(e.poll_start(&mut noop()), Poll::Pending);
    }

    #[tokio::test(start_paused = true)]
    async fn a_sample_well_inside_the_window_leaves_it_and_the_next_waits() {
        let (mut e, r) = Estimator::new(2 * MIB, 8 * MIB);
        let t = Instant::now();
        // 1 MiB in a round trip: under two thirds of 2 MiB.
        assert_eq!(sample(&mut e, &r, MIB, t, Duration::from_millis(40)), None);
        assert_eq!(e.bdp, 2 * MIB);
        // More data: no sample until SETTLED_INTERVAL after the answer.
        r.data(1024);
        tokio::time::advance(Duration::from_millis(40 + 99)).await;
        assert_eq!(e.poll_start(&mut noop()), Poll::Pending);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(e.poll_start(&mut noop()), Poll::Ready(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slower_sample_does_not_grow_the_window() {
        let (mut e, r) = Estimator::new(2 * MIB, 8 * MIB);
        let t = Instant::now();
        let rtt = Duration::from_millis(10);
        assert!(sample(&mut e, &r, 2 * MIB, t, rtt).is_some());
        // Enough bytes for the new window's two thirds, but over a far longer round trip:
        // less bandwidth than the best seen, so the link, not the window, is the limit.
        assert_eq!(
            sample(&mut e, &r, 3 * MIB, t + rtt, Duration::from_millis(200)),
            None
        );
        assert_eq!(e.bdp, 4 * MIB);
    }

    #[tokio::test(start_paused = true)]
    async fn no_sample_starts_without_data_and_the_first_data_wakes_the_task() {
        let (mut e, r) = Estimator::new(2 * MIB, 8 * MIB);
        let woken = Arc::new(AtomicBool::new(false));
        let waker = futures_util::task::waker(Arc::new(Flag(woken.clone())));
        let mut cx = Context::from_waker(&waker);
        assert_eq!(e.poll_start(&mut cx), Poll::Pending);
        assert!(!woken.load(Ordering::SeqCst));
        r.data(16 * 1024);
        assert!(woken.load(Ordering::SeqCst));
        assert_eq!(e.poll_start(&mut cx), Poll::Ready(()));
        e.started(Instant::now());
        assert!(e.pinging());
        // While the PING is out, data does not start another.
        r.data(16 * 1024);
        assert_eq!(e.poll_start(&mut cx), Poll::Pending);
        e.abandoned(Instant::now());
        assert!(!e.pinging());
        // What arrived before the abandoned sample ended is not counted again, and new data
        // starts one only after the settling interval.
        assert_eq!(e.poll_start(&mut cx), Poll::Pending);
        r.data(1);
        assert_eq!(e.poll_start(&mut cx), Poll::Pending);
        tokio::time::advance(SETTLED_INTERVAL).await;
        assert_eq!(e.poll_start(&mut cx), Poll::Ready(()));
    }

    struct Flag(Arc<AtomicBool>);

    impl futures_util::task::ArcWake for Flag {
        fn wake_by_ref(arc_self: &Arc<Self>) {
            arc_self.0.store(true, Ordering::SeqCst);
        }
    }
}
