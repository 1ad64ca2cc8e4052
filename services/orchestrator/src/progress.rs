//! An operation's progress as callers see it: targets per step, %, ETA, failures.

use micros_platform::store::timestamp;
use micros_proto::orchestrator::v1 as pb;

use crate::{
    model::{OperationState, PlanKind, RehearsalState, TargetStatus},
    store::{OperationRecord, TargetRecord},
};

/// How far a target has come, for counting "done" per step.
fn rank(kind: PlanKind, status: TargetStatus) -> u8 {
    match (kind, status) {
        (_, TargetStatus::Pending | TargetStatus::InFlight | TargetStatus::Copying) => 0,
        (_, TargetStatus::Copied) => 1,
        (_, TargetStatus::Discarded) => 3,
        (PlanKind::RestoreDrill, TargetStatus::Deleted) => 1,
        (
            PlanKind::RestoreDrill,
            TargetStatus::Verified | TargetStatus::CatalogRestored | TargetStatus::Restored,
        ) => 2,
        (_, TargetStatus::CatalogRestored) => 1,
        (_, TargetStatus::Deleted | TargetStatus::Restored) => 2,
        (_, TargetStatus::Verified | TargetStatus::Reverted) => 3,
    }
}

fn step_names(kind: PlanKind) -> [&'static str; 3] {
    match kind {
        PlanKind::DeleteSites | PlanKind::UninstallApp => {
            ["soft delete", "fingerprints recorded", "verify"]
        }
        PlanKind::RestoreSites => ["restore catalog", "restore services", "verify fingerprints"],
        PlanKind::PurgeSites => ["purge", "purge", "verify"],
        PlanKind::RestoreDrill => ["soft delete and verify", "restore", "verify fingerprints"],
    }
}

pub fn operation_to_proto(
    operation: &OperationRecord,
    targets: &[TargetRecord],
    now: i64,
) -> pb::Operation {
    let total = targets.len();
    let done = targets
        .iter()
        .filter(|target| rank(operation.kind, target.status) == 3)
        .count();
    let failed: Vec<&TargetRecord> = targets
        .iter()
        .filter(|target| target.error.is_some())
        .collect();
    let steps = step_names(operation.kind)
        .iter()
        .enumerate()
        .map(|(index, step)| pb::StepProgress {
            step: (*step).to_owned(),
            done: count(
                targets
                    .iter()
                    .filter(|target| usize::from(rank(operation.kind, target.status)) > index)
                    .count(),
            ),
            total: count(total),
        })
        .collect();
    let percent_done = if total == 0 {
        100.0
    } else {
        done as f64 * 100.0 / total as f64
    };
    let elapsed = (now - operation.create_time).max(0) as f64 / 1e6;
    // Only a moving operation has an ETA: a halted or paused one waits for an operator.
    let moving = matches!(
        operation.state,
        OperationState::Running | OperationState::Aborting
    );
    let eta_seconds = if !moving || done == 0 || done == total {
        0.0
    } else {
        elapsed / done as f64 * (total - done) as f64
    };
    let current_wave = targets
        .iter()
        .filter(|target| rank(operation.kind, target.status) < 3)
        .map(|target| target.wave)
        .min()
        .unwrap_or(operation.waves - 1);
    pb::Operation {
        operation_id: operation.operation_id.to_string(),
        plan_id: operation.plan_id.to_string(),
        kind: operation.kind.to_proto() as i32,
        state: operation.state.to_proto() as i32,
        targets_total: count(total),
        targets_done: count(done),
        targets_failed: count(failed.len()),
        steps,
        wave: i32::try_from(current_wave + 1).unwrap_or(i32::MAX),
        waves: i32::try_from(operation.waves).unwrap_or(i32::MAX),
        percent_done,
        eta_seconds,
        create_time: Some(timestamp(operation.create_time)),
        update_time: Some(timestamp(operation.update_time)),
        halt_reason: operation.halt_reason.clone().unwrap_or_default(),
        failures: failed
            .iter()
            .filter_map(|target| target.error.clone())
            .collect(),
        rehearsal: operation
            .kind
            .rehearses()
            .then(|| rehearsal_to_proto(operation, targets, now)),
    }
}

fn rehearsal_to_proto(
    operation: &OperationRecord,
    targets: &[TargetRecord],
    now: i64,
) -> pb::Rehearsal {
    let rehearsal = &operation.rehearsal;
    let state = match rehearsal.state {
        None => pb::RehearsalState::Pending,
        Some(RehearsalState::Restoring) => pb::RehearsalState::Restoring,
        Some(RehearsalState::Restored) => pb::RehearsalState::Restored,
        Some(RehearsalState::Done) => pb::RehearsalState::Done,
    };
    let seconds = rehearsal.start_time.map_or(0.0, |start| {
        (rehearsal.end_time.unwrap_or(now) - start).max(0) as f64 / 1e6
    });
    pb::Rehearsal {
        state: state as i32,
        canary_targets: count(targets.iter().filter(|target| target.wave == 0).count()),
        start_time: rehearsal.start_time.map(timestamp),
        end_time: rehearsal.end_time.map(timestamp),
        seconds,
    }
}

fn count(value: usize) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}
