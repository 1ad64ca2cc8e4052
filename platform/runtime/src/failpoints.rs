//! Failpoints (the `fail` crate) at the step boundaries of lifecycle calls and of the
//! orchestrator's executor, so tests can stop an operation between any two steps: fail a
//! step, or kill the process there. They exist only when the `failpoints` feature is on,
//! which only tests enable; otherwise [`failpoint!`](crate::failpoint) expands to nothing.
//!
//! A process reads `MICROS_FAILPOINTS` at start: `name=action;name=action`, with the
//! `fail` crate's actions (`return`, `1*return`, `sleep(100)`, `pause`, …) plus `kill`,
//! which ends the process on the spot, as a crash would (no drain, no destructors).

use std::{
    collections::HashMap,
    sync::{LazyLock, Mutex},
};

pub use fail::fail_point;

/// The environment variable a process reads its failpoints from.
pub const ENV: &str = "MICROS_FAILPOINTS";

/// The error a failpoint's `return` action makes the step fail with: the store looks
/// unavailable, as when a connection drops between two statements.
#[derive(Debug, Clone, Copy)]
pub struct Injected(pub &'static str);

impl From<Injected> for crate::store::StoreError {
    fn from(injected: Injected) -> Self {
        tracing::warn!(failpoint = injected.0, "failpoint fired");
        crate::store::StoreError::Database(sqlx::Error::PoolTimedOut)
    }
}

impl From<Injected> for crate::error::PlatformError {
    fn from(injected: Injected) -> Self {
        crate::error::PlatformError::Store(injected.into())
    }
}

impl From<Injected> for crate::lifecycle::LifecycleError {
    fn from(injected: Injected) -> Self {
        crate::lifecycle::LifecycleError::Platform(injected.into())
    }
}

/// A failpoint named `$name`; its `return` action fails the enclosing function with
/// [`Injected`] (converted by `From` into the function's error), and counts (see
/// [`fired`]).
#[macro_export]
macro_rules! failpoint {
    ($name:literal) => {
        $crate::failpoints::fail_point!($name, |_| {
            $crate::failpoints::record($name);
            Err($crate::failpoints::Injected($name).into())
        })
    };
}

static FIRED: LazyLock<Mutex<HashMap<&'static str, usize>>> = LazyLock::new(Mutex::default);

/// Counts a failpoint that made its step fail (called by [`failpoint!`](crate::failpoint)).
pub fn record(name: &'static str) {
    *FIRED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .entry(name)
        .or_default() += 1;
}

/// How many times the failpoint `name` has made its step fail in this process: a test
/// proves the path it meant to break was taken.
pub fn fired(name: &str) -> usize {
    FIRED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(name)
        .copied()
        .unwrap_or(0)
}

/// Configures the failpoints named in [`ENV`]; refuses a malformed setting, and one set
/// in a build without failpoints (it would silently test nothing).
pub fn setup_from_env() -> anyhow::Result<()> {
    let Ok(setting) = std::env::var(ENV) else {
        return Ok(());
    };
    if !fail::has_failpoints() {
        anyhow::bail!("{ENV} is set, but this build has no failpoints (feature `failpoints`)");
    }
    for entry in setting.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, action) = entry
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("{ENV}: `{entry}` is not name=action"))?;
        if action == "kill" {
            let name = name.to_owned();
            fail::cfg_callback(name.clone(), move || {
                eprintln!("failpoint {name}: killing the process");
                std::process::abort();
            })
            .map_err(anyhow::Error::msg)?;
        } else {
            fail::cfg(name, action).map_err(|error| anyhow::anyhow!("{ENV}: {name}: {error}"))?;
        }
    }
    Ok(())
}
