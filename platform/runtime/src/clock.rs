//! Time as the lifecycle sees it. Retention, expiry and plan deadlines read this clock,
//! never the system time directly, so tests can move time forward instead of sleeping.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> SystemTime;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The shared clock handle services hold.
pub type SharedClock = Arc<dyn Clock>;

pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that runs with the wall clock plus an offset that tests advance, so that
/// "30 days later" takes no time and ordering between real events is kept.
#[derive(Debug, Clone, Default)]
pub struct TestClock {
    offset: Arc<Mutex<Duration>>,
}

impl TestClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves this clock (and every service holding it) forward.
    pub fn advance(&self, by: Duration) {
        let mut offset = self
            .offset
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *offset += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        let offset = *self
            .offset
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        SystemTime::now() + offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_clock_advances() {
        let clock = TestClock::new();
        let before = clock.now();
        clock.advance(Duration::from_secs(31 * 24 * 3600));
        let after = clock.now();
        assert!(after.duration_since(before).unwrap() >= Duration::from_secs(31 * 24 * 3600));
    }
}
