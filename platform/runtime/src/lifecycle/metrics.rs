//! What lifecycle calls did to sites, counted for metrics at the gRPC entry point
//! ([`super::grpc`]) from each call's result, without touching the machinery:
//!
//! * `micros_lifecycle_sites_soft_deleted_total`, `…_restored_total` (`source`:
//!   `operation` or `point_in_time`) and `…_purged_total`: sites whose state this
//!   service changed. A site counts when its registry row went from the state before the
//!   call (read just before it) to the state the answer reports, so a replayed call, or
//!   a later wave naming a site an earlier one deleted, counts nothing again;
//! * `micros_lifecycle_refusals_total` by `action` and `reason` (`DELETION_RATE_EXCEEDED`,
//!   `PURGE_BEFORE_EXPIRY`, …): destructive calls refused for the caller's request, as
//!   audited (`validate_only` dry runs are not);
//! * `micros_lifecycle_sites_deleted_last_hour`: the rolling deletion rate, sites this
//!   process soft-deleted in the last hour.
//!
//! Scratch copies (restore drills on copies) count nowhere. The count is exact for one
//! call at a time; two identical calls racing may both see
//! the site active and both count it.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use opentelemetry::{KeyValue, metrics::Counter};
use tonic::Code;

use super::{
    Lifecycle, LifecycleError, RestoreSource, Target, TargetOutcome, TenantState, grpc::Call,
    registry,
};
use crate::{error::Problem, ids::SiteId};

fn action(call: Call) -> &'static str {
    match call {
        Call::SoftDelete => "soft_delete",
        Call::Restore(_) => "restore",
        Call::Purge => "purge",
        Call::SetHold(_) => "set_hold",
    }
}

/// Site registry states before a call; a site absent from the map is absent from this
/// database.
pub(super) type StatesBefore = HashMap<SiteId, TenantState>;

/// The states of the call's site targets in `lifecycle`'s database; `None` when they
/// cannot be read (the call itself will then say why), so metrics never fail a call.
pub(super) async fn states_before(
    lifecycle: &Lifecycle,
    targets: &[Target],
) -> Option<StatesBefore> {
    let sites: Vec<SiteId> = targets
        .iter()
        .filter_map(|target| match target {
            Target::Site(site_id) => Some(*site_id),
            Target::AppInstallation { .. } => None,
        })
        .collect();
    if sites.is_empty() {
        return Some(StatesBefore::new());
    }
    let mut connection = lifecycle.store().pool().acquire().await.ok()?;
    let rows = registry::load(lifecycle.store(), &mut connection, &sites)
        .await
        .ok()?;
    Some(
        rows.into_iter()
            .map(|(site_id, row)| (site_id, row.state))
            .collect(),
    )
}

/// Sites a call changed, by what it did to them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct SiteChanges {
    pub soft_deleted: u64,
    pub restored: u64,
    pub purged: u64,
}

/// What `call` did to its site targets, from their states before and its answer.
pub(super) fn site_changes(
    call: Call,
    before: &StatesBefore,
    outcomes: &[TargetOutcome],
) -> SiteChanges {
    let mut changes = SiteChanges::default();
    for outcome in outcomes {
        let Target::Site(site_id) = outcome.target else {
            continue;
        };
        if outcome.origin.is_some() {
            // A drill's scratch copy is no customer's site: it must not look like a
            // deletion spike.
            continue;
        }
        let was = before.get(&site_id).copied().unwrap_or(TenantState::Absent);
        let now = outcome.state;
        match call {
            Call::SoftDelete
                if matches!(was, TenantState::Active | TenantState::Absent)
                    && now == TenantState::Deleted =>
            {
                changes.soft_deleted += 1;
            }
            Call::Restore(RestoreSource::Operation(_))
                if was == TenantState::Deleted && now == TenantState::Active =>
            {
                changes.restored += 1;
            }
            Call::Restore(RestoreSource::PointInTime(_)) if now == TenantState::Active => {
                changes.restored += 1;
            }
            Call::Purge
                if matches!(was, TenantState::Deleted | TenantState::Purging)
                    && now == TenantState::Purged =>
            {
                changes.purged += 1;
            }
            _ => {}
        }
    }
    changes
}

/// Records an applied call's changes.
pub(super) fn record_applied(call: Call, changes: &SiteChanges) {
    let instruments = instruments();
    if changes.soft_deleted > 0 {
        instruments.soft_deleted.add(changes.soft_deleted, &[]);
        RECENT_DELETIONS.record(changes.soft_deleted);
    }
    if changes.restored > 0 {
        let source = match call {
            Call::Restore(RestoreSource::PointInTime(_)) => "point_in_time",
            _ => "operation",
        };
        instruments
            .restored
            .add(changes.restored, &[KeyValue::new("source", source)]);
    }
    if changes.purged > 0 {
        instruments.purged.add(changes.purged, &[]);
    }
}

/// Records a refused call, unless the failure was the service's own (a database
/// down is not a refusal of the caller's request).
pub(super) fn record_refusal(call: Call, error: &LifecycleError) {
    if matches!(
        error.code(),
        Code::Internal
            | Code::Unknown
            | Code::Unavailable
            | Code::DataLoss
            | Code::DeadlineExceeded
    ) {
        return;
    }
    instruments().refusals.add(
        1,
        &[
            KeyValue::new("action", action(call)),
            KeyValue::new("reason", error.reason()),
        ],
    );
}

struct Instruments {
    soft_deleted: Counter<u64>,
    restored: Counter<u64>,
    purged: Counter<u64>,
    refusals: Counter<u64>,
}

fn instruments() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| {
        let meter = crate::metrics::meter();
        meter
            .u64_observable_gauge("micros.lifecycle.sites.deleted_last_hour")
            .with_unit("{site}")
            .with_description(
                "Sites this process soft-deleted in the last hour (the rolling deletion rate)",
            )
            .with_callback(|gauge| gauge.observe(RECENT_DELETIONS.last_hour(), &[]))
            .build();
        Instruments {
            soft_deleted: meter
                .u64_counter("micros.lifecycle.sites.soft_deleted")
                .with_unit("{site}")
                .with_description("Sites this service soft-deleted")
                .build(),
            restored: meter
                .u64_counter("micros.lifecycle.sites.restored")
                .with_unit("{site}")
                .with_description("Sites this service restored, by source")
                .build(),
            purged: meter
                .u64_counter("micros.lifecycle.sites.purged")
                .with_unit("{site}")
                .with_description("Sites this service purged")
                .build(),
            refusals: meter
                .u64_counter("micros.lifecycle.refusals")
                .with_unit("{call}")
                .with_description("Destructive lifecycle calls refused, by action and reason")
                .build(),
        }
    })
}

/// Deletions in a sliding hour: (when, how many), oldest first.
struct RecentDeletions {
    window: Mutex<VecDeque<(Instant, u64)>>,
}

static RECENT_DELETIONS: RecentDeletions = RecentDeletions {
    window: Mutex::new(VecDeque::new()),
};

const RATE_WINDOW: Duration = Duration::from_secs(3600);

impl RecentDeletions {
    fn record(&self, sites: u64) {
        let mut window = self
            .window
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        window.push_back((Instant::now(), sites));
        Self::expire(&mut window);
    }

    fn last_hour(&self) -> u64 {
        let mut window = self
            .window
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        Self::expire(&mut window);
        window.iter().map(|(_, sites)| sites).sum()
    }

    fn expire(window: &mut VecDeque<(Instant, u64)>) {
        while window
            .front()
            .is_some_and(|(at, _)| at.elapsed() > RATE_WINDOW)
        {
            window.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::OperationId;

    fn outcome(site_id: SiteId, state: TenantState) -> TargetOutcome {
        TargetOutcome {
            target: Target::Site(site_id),
            state,
            counts: Vec::new(),
            fingerprint: String::new(),
            delete_time: None,
            expire_time: None,
            hold: false,
            rows_affected: 0,
            origin: None,
            deleted_by: None,
        }
    }

    #[test]
    fn only_sites_whose_state_the_call_changed_count() {
        let (fresh, unknown, earlier_wave) = (SiteId::new(), SiteId::new(), SiteId::new());
        let before = StatesBefore::from([
            (fresh, TenantState::Active),
            (earlier_wave, TenantState::Deleted),
        ]);
        let outcomes = [
            outcome(fresh, TenantState::Deleted),
            outcome(unknown, TenantState::Deleted),
            outcome(earlier_wave, TenantState::Deleted),
        ];
        assert_eq!(
            site_changes(Call::SoftDelete, &before, &outcomes).soft_deleted,
            2,
            "a site deleted by an earlier wave of the operation is not deleted again"
        );
        let replay = StatesBefore::from([
            (fresh, TenantState::Deleted),
            (unknown, TenantState::Deleted),
            (earlier_wave, TenantState::Deleted),
        ]);
        assert_eq!(
            site_changes(Call::SoftDelete, &replay, &outcomes),
            SiteChanges::default(),
            "a replayed call changes nothing"
        );
    }

    #[test]
    fn restores_and_purges_count_their_transitions() {
        let (deleted, active) = (SiteId::new(), SiteId::new());
        let before = StatesBefore::from([
            (deleted, TenantState::Deleted),
            (active, TenantState::Active),
        ]);
        let restored = [
            outcome(deleted, TenantState::Active),
            outcome(active, TenantState::Active),
        ];
        let undo = Call::Restore(RestoreSource::Operation(OperationId::new()));
        assert_eq!(site_changes(undo, &before, &restored).restored, 1);
        let to_time = Call::Restore(RestoreSource::PointInTime(0));
        assert_eq!(site_changes(to_time, &before, &restored).restored, 2);
        let purged = [
            outcome(deleted, TenantState::Purged),
            outcome(active, TenantState::Active),
        ];
        assert_eq!(site_changes(Call::Purge, &before, &purged).purged, 1);
    }

    #[test]
    fn the_rolling_rate_sums_the_last_hour() {
        let recent = RecentDeletions {
            window: Mutex::new(VecDeque::new()),
        };
        recent.record(3);
        recent.record(2);
        assert_eq!(recent.last_hour(), 5);
    }
}
