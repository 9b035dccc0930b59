//! A server-wide budget for the bytes of large messages in flight (gRPC C-core's resource
//! quota, for the memory a peer controls). A large request message reserves its length from
//! the budget when its prefix arrives, before any of it is buffered, and gives it back when
//! it is complete or its call ends; a large response message reserves its encoded size until
//! the next one is queued or the call ends. When the budget is spent, further large messages
//! fail with `RESOURCE_EXHAUSTED` while those holding reservations finish. Small messages (64
//! KiB or less) reserve nothing: HTTP/2 flow control and the per-connection stream limit bound
//! them, and the common case pays nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::status::Status;

/// Messages up to this size assemble without a reservation.
pub(crate) const RESERVE_ABOVE: usize = 64 * 1024;

/// The server's budget.
#[derive(Debug)]
pub(crate) struct MemoryQuota {
    limit: usize,
    used: AtomicUsize,
}

impl MemoryQuota {
    pub(crate) fn new(limit: usize) -> Arc<MemoryQuota> {
        Arc::new(MemoryQuota {
            limit,
            used: AtomicUsize::new(0),
        })
    }
}

/// One message's reservation, given back when dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    quota: Arc<MemoryQuota>,
    bytes: usize,
}

impl Reservation {
    /// Reserves `bytes` from `quota`.
    ///
    /// # Errors
    ///
    /// `RESOURCE_EXHAUSTED` if the budget has not that much left.
    pub(crate) fn take(quota: &Arc<MemoryQuota>, bytes: usize) -> Result<Reservation, Status> {
        let limit = quota.limit;
        quota
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used + bytes <= limit).then_some(used + bytes)
            })
            .map_err(|used| {
                tracing::info!(
                    bytes,
                    used,
                    limit,
                    "message refused: the server's memory budget for large messages is spent"
                );
                Status::resource_exhausted(format!(
                    "the server's memory budget for large messages is spent \
                     ({used} of {limit} bytes in use; this message needs {bytes})"
                ))
            })?;
        Ok(Reservation {
            quota: Arc::clone(quota),
            bytes,
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.quota.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_bounded_and_given_back() {
        let quota = MemoryQuota::new(100);
        let a = Reservation::take(&quota, 60).unwrap();
        let err = Reservation::take(&quota, 50).unwrap_err();
        assert_eq!(err.code(), crate::Code::ResourceExhausted);
        assert!(err.message().contains("60 of 100"), "{err}");
        drop(a);
        let _b = Reservation::take(&quota, 100).unwrap();
    }
}
