//! The orchestrator's gauges, read from its store (never from the executor, so they say
//! what is durable, whichever replica runs the work):
//!
//! * `micros_orchestrator_operations` by `state` (`running`, `paused`, `halted`,
//!   `aborting`): unfinished operations; a halted one waits for an operator;
//! * per unfinished operation (`operation_id`, `kind`): `…_operation_targets` and
//!   `…_operation_targets_done` (as `micros watch` counts them), `…_operation_wave`
//!   (the current one, from 1) and `…_operation_waves`.
//!
//! * `micros_orchestrator_drill_last_duration_seconds` and `…_drill_last_ok` (1 succeeded, 0
//!   aborted or halted): the restore drill that ended last, so a slow or failing restore
//!   path alerts before an incident needs it.
//!
//! The metrics SDK reads gauges synchronously; a task refreshes a snapshot from the store
//! every [`REFRESH`], and the gauges report the latest.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use micros_platform::{clock::SharedClock, store::unix_micros};
use opentelemetry::{KeyValue, metrics::Meter};

use crate::{
    error::OrchestratorError, model::OperationState, progress::operation_to_proto,
    store::OrchestratorStore,
};

/// How often the snapshot is read; well under a scrape interval.
const REFRESH: Duration = Duration::from_secs(5);

/// The states of unfinished operations, each reported even at zero so that an alert
/// on `state="halted"` sees 0, not nothing.
const OPEN_STATES: [OperationState; 4] = [
    OperationState::Running,
    OperationState::Paused,
    OperationState::Halted,
    OperationState::Aborting,
];

#[derive(Debug, Default, Clone)]
struct Snapshot {
    /// Unfinished operations per state, in [`OPEN_STATES`] order.
    by_state: [u64; 4],
    operations: Vec<OperationGauges>,
    /// The last drill that ended: how long it took, and whether it succeeded.
    last_drill: Option<(f64, bool)>,
}

#[derive(Debug, Clone)]
struct OperationGauges {
    attributes: [KeyValue; 2],
    targets: u64,
    targets_done: u64,
    wave: u64,
    waves: u64,
}

/// Registers the gauges and starts the task that refreshes them.
pub fn spawn(store: OrchestratorStore, clock: SharedClock) {
    let snapshot = Arc::new(Mutex::new(Snapshot::default()));
    register(&micros_platform::metrics::meter(), &snapshot);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(REFRESH);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match read(&store, unix_micros(clock.now())).await {
                Ok(read) => *snapshot.lock().unwrap_or_else(|poison| poison.into_inner()) = read,
                Err(error) => tracing::warn!(%error, "reading the operation gauges failed"),
            }
        }
    });
}

async fn read(store: &OrchestratorStore, now: i64) -> Result<Snapshot, OrchestratorError> {
    let mut snapshot = Snapshot {
        last_drill: store.last_drill().await?.map(|drill| {
            let end = drill.finish_time.unwrap_or(drill.update_time);
            (
                (end - drill.create_time).max(0) as f64 / 1e6,
                drill.state == OperationState::Succeeded,
            )
        }),
        ..Snapshot::default()
    };
    for operation in store.open_operations().await? {
        if let Some(index) = OPEN_STATES
            .iter()
            .position(|state| *state == operation.state)
        {
            snapshot.by_state[index] += 1;
        }
        let targets = store.targets(operation.operation_id).await?;
        let progress = operation_to_proto(&operation, &targets, now);
        let count = |value: i32| u64::try_from(value).unwrap_or_default();
        snapshot.operations.push(OperationGauges {
            attributes: [
                KeyValue::new("operation_id", operation.operation_id.to_string()),
                KeyValue::new("kind", operation.kind.as_str()),
            ],
            targets: count(progress.targets_total),
            targets_done: count(progress.targets_done),
            wave: count(progress.wave),
            waves: count(progress.waves),
        });
    }
    Ok(snapshot)
}

/// One number of an operation's gauges.
type Reading = fn(&OperationGauges) -> u64;

fn register(meter: &Meter, snapshot: &Arc<Mutex<Snapshot>>) {
    let read = |snapshot: &Arc<Mutex<Snapshot>>| {
        snapshot
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    };
    let shared = snapshot.clone();
    meter
        .u64_observable_gauge("micros.orchestrator.operations")
        .with_unit("{operation}")
        .with_description("Unfinished operations, by state")
        .with_callback(move |gauge| {
            let snapshot = read(&shared);
            for (state, count) in OPEN_STATES.iter().zip(snapshot.by_state) {
                gauge.observe(count, &[KeyValue::new("state", state.as_str())]);
            }
        })
        .build();
    let shared = snapshot.clone();
    meter
        .f64_observable_gauge("micros.orchestrator.drill.last_duration")
        .with_unit("s")
        .with_description("How long the restore drill that ended last took")
        .with_callback(move |gauge| {
            if let Some((seconds, _)) = read(&shared).last_drill {
                gauge.observe(seconds, &[]);
            }
        })
        .build();
    let shared = snapshot.clone();
    meter
        .u64_observable_gauge("micros.orchestrator.drill.last_ok")
        .with_description("1 if the restore drill that ended last succeeded, 0 if it failed")
        .with_callback(move |gauge| {
            if let Some((_, ok)) = read(&shared).last_drill {
                gauge.observe(u64::from(ok), &[]);
            }
        })
        .build();
    let per_operation: [(&str, &str, Reading); 4] = [
        (
            "micros.orchestrator.operation.targets",
            "Targets of an unfinished operation",
            |operation| operation.targets,
        ),
        (
            "micros.orchestrator.operation.targets_done",
            "Targets an unfinished operation has finished",
            |operation| operation.targets_done,
        ),
        (
            "micros.orchestrator.operation.wave",
            "The wave an unfinished operation is in, from 1",
            |operation| operation.wave,
        ),
        (
            "micros.orchestrator.operation.waves",
            "The waves of an unfinished operation",
            |operation| operation.waves,
        ),
    ];
    for (name, description, value) in per_operation {
        let shared = snapshot.clone();
        meter
            .u64_observable_gauge(name)
            .with_description(description)
            .with_callback(move |gauge| {
                for operation in read(&shared).operations {
                    gauge.observe(value(&operation), &operation.attributes);
                }
            })
            .build();
    }
}
