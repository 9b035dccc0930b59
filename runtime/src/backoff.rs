//! Exponential backoff between connection attempts, per gRPC's connection-backoff spec
//! (doc/connection-backoff.md): 1 s, then ×1.6 per failure up to 120 s, each ±20% jitter.

use std::time::Duration;

/// Backoff parameters (gRPC-Go's `backoff.Config`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use grpc_runtime::backoff::BackoffConfig;
///
/// let fast = BackoffConfig::default()
///     .base_delay(Duration::from_millis(100))
///     .max_delay(Duration::from_secs(5));
/// # let _ = fast;
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[must_use]
#[non_exhaustive]
pub struct BackoffConfig {
    /// The wait after the first failure. Default: 1 s.
    pub base_delay: Duration,
    /// The factor each further failure multiplies the wait by. Default: 1.6.
    pub multiplier: f64,
    /// Randomization of each wait, as a fraction of it (0.2: ±20%). Default: 0.2.
    pub jitter: f64,
    /// The longest wait. Default: 120 s.
    pub max_delay: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base_delay: Duration::from_secs(1),
            multiplier: 1.6,
            jitter: 0.2,
            max_delay: Duration::from_secs(120),
        }
    }
}

impl BackoffConfig {
    /// Sets [`base_delay`](Self::base_delay).
    pub fn base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// Sets [`multiplier`](Self::multiplier).
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// Sets [`jitter`](Self::jitter).
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets [`max_delay`](Self::max_delay).
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// The wait before retry number `retries` (0 after the first failure), with jitter drawn
    /// from `random` (a value in [0, 1)).
    pub(crate) fn delay(&self, retries: u32, random: f64) -> Duration {
        let mut delay = self.base_delay.as_secs_f64();
        let max = self.max_delay.as_secs_f64();
        for _ in 0..retries {
            delay *= self.multiplier;
            if delay >= max {
                delay = max;
                break;
            }
        }
        let delay = delay.min(max) * (1.0 + self.jitter * (random * 2.0 - 1.0));
        Duration::from_secs_f64(delay.max(0.0))
    }
}

/// A number in [0, 1) from a small per-thread generator (xorshift, seeded from the clock and
/// the thread): jitter only needs to spread clients apart, not to be unpredictable.
pub(crate) fn random() -> f64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let time = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let here = &time as *const u64 as u64;
            (time ^ here.rotate_left(32)) | 1
        });
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_the_multiplier_within_jitter_and_caps() {
        let config = BackoffConfig::default();
        // Without jitter (random = 0.5): 1, 1.6, 2.56, ... capped at 120.
        assert_eq!(config.delay(0, 0.5), Duration::from_secs(1));
        assert_eq!(config.delay(1, 0.5), Duration::from_secs_f64(1.6));
        assert!((config.delay(2, 0.5).as_secs_f64() - 2.56).abs() < 1e-9);
        assert_eq!(config.delay(40, 0.5), Duration::from_secs(120));
        // Jitter bounds: ±20%.
        assert_eq!(config.delay(0, 0.0), Duration::from_secs_f64(0.8));
        assert!((config.delay(0, 0.999_999).as_secs_f64() - 1.2).abs() < 1e-5);
        assert!((config.delay(40, 0.0).as_secs_f64() - 96.0).abs() < 1e-9);
        for _ in 0..1000 {
            let r = random();
            assert!((0.0..1.0).contains(&r));
        }
    }
}
