//! Jobs the orchestrator runs on a timer of its own (the purge reaper, scheduled
//! drills): never when the interval is zero, a late tick delayed rather than bunched.

use std::{future::Future, sync::Arc, time::Duration};

/// When the first run happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum First {
    /// As soon as the process is up (what has waited meanwhile is due now).
    AtOnce,
    /// One whole interval after start-up.
    AfterInterval,
}

/// Runs `job` on `owner` every `interval` until the process ends.
pub fn every<T, F, Fut>(owner: T, interval: Duration, first: First, job: F)
where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    if interval.is_zero() {
        return;
    }
    let owner = Arc::new(owner);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if first == First::AfterInterval {
            ticks.tick().await;
        }
        loop {
            ticks.tick().await;
            job(owner.clone()).await;
        }
    });
}
