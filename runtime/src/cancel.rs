//! [`Cancellation`]: a call's "it is over" signal, as work outside the call can watch it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Tells when a call is over: on a server, when the call ends however it ends (the client
/// cancels or disconnects, the deadline passes, the handler returns); on a client, when the
/// caller cancels it. Cheap to clone; `Send + Sync`, so spawned work can hold one.
///
/// A server makes one per call: a small shared flag, signalled at the end of the call only
/// if someone still holds a clone, so it costs next to nothing when unused. A
/// [`CancellationToken`] converts into one (`Cancellation::from(token)`).
///
/// # Examples
///
/// ```
/// # async fn f(request: grpc_runtime::Request<()>) {
/// let cancelled = request.cancellation().cloned().unwrap_or_default();
/// tokio::spawn(async move {
///     tokio::select! {
///         () = cancelled.cancelled() => { /* the call is over: stop */ }
///         () = std::future::pending::<()>() => {}
///     }
/// });
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Cancellation {
    inner: Inner,
}

#[derive(Clone, Default)]
enum Inner {
    /// Never cancelled.
    #[default]
    Never,
    /// A server call's signal.
    Call(Arc<Signal>),
    /// The caller's token.
    Token(CancellationToken),
}

#[derive(Default)]
pub(crate) struct Signal {
    cancelled: AtomicBool,
    notify: Notify,
}

impl fmt::Debug for Cancellation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cancellation")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl Cancellation {
    /// Whether the call is over.
    pub fn is_cancelled(&self) -> bool {
        match &self.inner {
            Inner::Never => false,
            Inner::Call(signal) => signal.cancelled.load(Ordering::Acquire),
            Inner::Token(token) => token.is_cancelled(),
        }
    }

    /// Completes when the call is over.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn cancelled(&self) {
        self.clone().cancelled_owned().await;
    }

    /// [`cancelled`](Cancellation::cancelled), owning its handle (for `'static` futures).
    pub async fn cancelled_owned(self) {
        match self.inner {
            Inner::Never => std::future::pending().await,
            Inner::Token(token) => token.cancelled_owned().await,
            Inner::Call(signal) => loop {
                // Register before checking the flag: a signal between the two still wakes.
                let notified = signal.notify.notified();
                let mut notified = std::pin::pin!(notified);
                notified.as_mut().enable();
                if signal.cancelled.load(Ordering::Acquire) {
                    return;
                }
                notified.await;
            },
        }
    }
}

impl From<CancellationToken> for Cancellation {
    fn from(token: CancellationToken) -> Cancellation {
        Cancellation {
            inner: Inner::Token(token),
        }
    }
}

/// The runtime's end of a server call's [`Cancellation`]: signals it when dropped (when the
/// call's task ends, however it ends).
pub(crate) struct CallScope(Arc<Signal>);

impl CallScope {
    pub(crate) fn new() -> CallScope {
        CallScope(Arc::default())
    }

    /// A handle for the call's request.
    pub(crate) fn cancellation(&self) -> Cancellation {
        Cancellation {
            inner: Inner::Call(Arc::clone(&self.0)),
        }
    }
}

impl Drop for CallScope {
    fn drop(&mut self) {
        // Nobody else holds the signal (the usual case): nothing to tell, and no lock taken.
        if Arc::strong_count(&self.0) > 1 {
            self.0.cancelled.store(true, Ordering::Release);
            self.0.notify.notify_waiters();
        }
    }
}

impl fmt::Debug for CallScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallScope")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn signalled_when_the_scope_ends() {
        let scope = CallScope::new();
        let cancellation = scope.cancellation();
        assert!(!cancellation.is_cancelled());
        let waiter = tokio::spawn(cancellation.clone().cancelled_owned());
        tokio::task::yield_now().await;
        drop(scope);
        waiter.await.unwrap();
        assert!(cancellation.is_cancelled());
        // Waiting after the fact returns at once.
        cancellation.cancelled().await;
    }

    #[tokio::test]
    async fn from_a_token() {
        let token = CancellationToken::new();
        let cancellation = Cancellation::from(token.clone());
        assert!(!cancellation.is_cancelled());
        token.cancel();
        cancellation.cancelled().await;
        assert!(!Cancellation::default().is_cancelled());
    }
}
