//! Rate-limited warnings: bad input is logged, but a flood of it cannot flood the log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Allows one warning per second per call site and counts the ones it held back.
#[derive(Debug)]
pub(crate) struct WarnLimiter {
    last_second: AtomicU64,
    suppressed: AtomicU64,
}

impl WarnLimiter {
    pub(crate) const fn new() -> Self {
        Self {
            last_second: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` if a warning may be logged now, `n` being how many were held back since the
    /// last one; `None` if this one must be held back.
    pub(crate) fn check(&self) -> Option<u64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.last_second.load(Ordering::Relaxed);
        if now != last
            && self
                .last_second
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_back_repeats_within_a_second() {
        let limiter = WarnLimiter::new();
        assert_eq!(limiter.check(), Some(0));
        // The next calls land in the same second unless the clock ticks over in between;
        // either way at most one more is let through, and every call is accounted for.
        let passed: Vec<_> = (0..100).filter_map(|_| limiter.check()).collect();
        assert!(passed.len() <= 1);
        let held = limiter.suppressed.load(Ordering::Relaxed) + passed.iter().sum::<u64>();
        assert_eq!(held + passed.len() as u64, 100);
    }
}
