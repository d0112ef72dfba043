use std::sync::Mutex;

/// Opens after `threshold` invalid payloads in a row from one builder; while open the builder
/// runs dry (fetched and checked, never chosen) for `cooldown` blocks. See the [module docs](super).
///
/// The cool-down is counted in blocks, not seconds: it is deterministic, it follows the chain
/// (a halted chain has nothing to recover from), and at a 2 s block time 30 blocks is a minute.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: u32,
    state: Mutex<BreakerState>,
}

#[derive(Debug, Default)]
struct BreakerState {
    invalid_in_a_row: u32,
    open_for: u32,
}

impl CircuitBreaker {
    /// A breaker that never opens.
    pub fn disabled() -> Self {
        Self::new(0, 0)
    }

    /// Opens after `threshold` invalid payloads in a row (0: never) for `cooldown` blocks.
    pub fn new(threshold: u32, cooldown: u32) -> Self {
        Self {
            threshold,
            cooldown,
            state: Mutex::new(BreakerState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the builder runs dry now.
    pub fn is_open(&self) -> bool {
        self.lock().open_for > 0
    }

    /// Records an invalid payload; returns whether this opened the breaker.
    pub fn record_invalid(&self) -> bool {
        if self.threshold == 0 {
            return false;
        }
        let mut state = self.lock();
        if state.open_for > 0 {
            return false;
        }
        state.invalid_in_a_row += 1;
        if state.invalid_in_a_row >= self.threshold {
            state.invalid_in_a_row = 0;
            state.open_for = self.cooldown.max(1);
            return true;
        }
        false
    }

    /// Records a valid payload.
    pub fn record_valid(&self) {
        self.lock().invalid_in_a_row = 0;
    }

    /// One block went by; returns whether this closed the breaker.
    pub fn tick(&self) -> bool {
        let mut state = self.lock();
        if state.open_for == 0 {
            return false;
        }
        state.open_for -= 1;
        state.open_for == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_in_a_row_and_closes_after_cooldown_blocks() {
        let breaker = CircuitBreaker::new(2, 3);
        assert!(!breaker.record_invalid());
        breaker.record_valid();
        assert!(!breaker.record_invalid());
        assert!(breaker.record_invalid(), "second in a row opens it");
        assert!(breaker.is_open());
        assert!(!breaker.tick());
        assert!(!breaker.tick());
        assert!(breaker.tick(), "third block closes it");
        assert!(!breaker.is_open());
    }

    #[test]
    fn disabled_never_opens() {
        let breaker = CircuitBreaker::disabled();
        for _ in 0..10 {
            assert!(!breaker.record_invalid());
        }
        assert!(!breaker.is_open());
    }
}
