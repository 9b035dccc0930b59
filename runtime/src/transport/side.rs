//! [`SideWaker`]: a connection task's second waker, for its rare events.
//!
//! A connection's task waits on its HTTP/2 connection (woken for every frame in or out) and
//! on a handful of rare things beside it: its keepalive timer, the server's mode, a ping's
//! answer, a BDP sample's start. `select!` polls every branch on every wake, so each frame
//! paid for polling all of them again, with nothing to find. The rare branches are polled
//! with this waker instead: it records that one of them woke the task, and the task polls
//! them only then (and once after each turn of its loop, when they are new futures or their
//! conditions changed). What it buys, the server on 1-byte ping-pongs (callgrind): 15.5k ->
//! 14.6k user-space instructions a message; the connection task's own share, beside h2's
//! poll, 1,370 -> 250.
//!
//! ```text
//! loop {
//!     side.open();                      // a new turn: poll everything once
//!     poll_fn(|cx| {
//!         if let Ready(x) = connection.poll(cx) { return Ready(x) }
//!         let Some(mut cx) = side.context(cx) else { return Pending };
//!         // poll the rare branches with `cx`
//!     }).await
//! }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Wake, Waker};

use futures_util::task::AtomicWaker;

/// A waker for a task's rare events, and whether one of them fired since the task last
/// looked. One per connection task.
pub(crate) struct SideWaker {
    shared: Arc<Shared>,
    /// `shared` as a waker, made once.
    waker: Waker,
    /// The task's waker as last registered in `shared`: re-registered only when it changes
    /// (a tokio task's waker never does), so a look costs a pointer comparison.
    task: Option<Waker>,
}

struct Shared {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Shared {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Release: what the event's source wrote before waking is seen by the poll that
        // reads the flag (with Acquire).
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl SideWaker {
    /// A side waker whose first look polls the rare branches.
    pub(crate) fn new() -> SideWaker {
        let shared = Arc::new(Shared {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        SideWaker {
            waker: Waker::from(Arc::clone(&shared)),
            shared,
            task: None,
        }
    }

    /// The next [`context`](Self::context) polls the rare branches whether or not they woke
    /// the task: they are new, or the task changed what they wait for.
    pub(crate) fn open(&mut self) {
        self.shared.woken.store(true, Ordering::Relaxed);
    }

    /// A context to poll the rare branches with, if one of them woke the task since the last
    /// look (or [`open`](Self::open) was called); `None` if not, and they need no polling.
    /// Whatever is polled with the context wakes the task that called this, through it.
    pub(crate) fn context(&mut self, cx: &Context<'_>) -> Option<Context<'_>> {
        if !self.task.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            self.shared.task.register(cx.waker());
            self.task = Some(cx.waker().clone());
        }
        // Not set: no wake since the last look, so the registration is still there, and a
        // wake from here on reaches the task.
        if !self.shared.woken.swap(false, Ordering::Acquire) {
            return None;
        }
        // The wake that set it took the registration (`AtomicWaker::wake` does): made again
        // before the branches are polled. A wake in between is seen by those polls.
        self.shared.task.register(cx.waker());
        Some(Context::from_waker(&self.waker))
    }
}

impl std::fmt::Debug for SideWaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SideWaker")
            .field("woken", &self.shared.woken.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn looks_only_after_a_wake_or_an_open() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let task = Waker::from(Arc::clone(&count));
        let cx = Context::from_waker(&task);
        let mut side = SideWaker::new();

        // The first look polls; the second finds nothing.
        let side_waker = side.context(&cx).expect("first look").waker().clone();
        assert!(side.context(&cx).is_none());

        // A rare event wakes the task, and the next look polls.
        side_waker.wake_by_ref();
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert!(side.context(&cx).is_some());
        assert!(side.context(&cx).is_none());

        // Every wake reaches the task, not only the first.
        side_waker.wake_by_ref();
        assert_eq!(count.0.load(Ordering::Relaxed), 2);
        assert!(side.context(&cx).is_some());

        // A new turn polls without a wake.
        side.open();
        assert!(side.context(&cx).is_some());
        assert_eq!(count.0.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_new_task_waker_is_registered() {
        let first = Arc::new(Count(AtomicUsize::new(0)));
        let second = Arc::new(Count(AtomicUsize::new(0)));
        let mut side = SideWaker::new();
        let side_waker = {
            let waker = Waker::from(Arc::clone(&first));
            side.context(&Context::from_waker(&waker))
                .unwrap()
                .waker()
                .clone()
        };
        let waker = Waker::from(Arc::clone(&second));
        assert!(side.context(&Context::from_waker(&waker)).is_none());
        side_waker.wake();
        assert_eq!(first.0.load(Ordering::Relaxed), 0);
        assert_eq!(second.0.load(Ordering::Relaxed), 1);
    }
}
