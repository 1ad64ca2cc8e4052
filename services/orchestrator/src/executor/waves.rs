//! One wave of each kind of operation, as a sequence of recorded steps. Each step's
//! targets are marked before its calls (`in_flight`) or after them (`deleted`,
//! `catalog_restored`, …), so a step interrupted anywhere is repeated with the same
//! targets, and the services answer a repeated call from their own record.

use std::collections::BTreeMap;

use micros_platform::{auth::Grant, ids::SiteId};
use micros_proto::lifecycle::v1::{TenantState, restore_request::Source};

use super::{RestoreCall, Run, Stop, lifecycle_target, lifecycle_targets, paired};
use crate::{
    error::OrchestratorError,
    fleet::Deletion,
    model::{OperationState, PlanKind, RestoreSource, TargetStatus},
    store::TargetRecord,
};

pub(super) fn with_status(records: &[TargetRecord], status: TargetStatus) -> Vec<&TargetRecord> {
    records
        .iter()
        .filter(|target| target.status == status)
        .collect()
}

impl Run<'_> {
    /// One wave forward; `Ok(false)` when the operation has finished.
    pub(super) async fn step(&self) -> Result<bool, Stop> {
        let kind = self.operation.kind;
        let targets = self.store().targets(self.operation_id()).await?;
        if self.rehearsal_due(&targets) {
            self.rehearse(&targets).await?;
            return Ok(true);
        }
        let Some(wave) = targets
            .iter()
            .filter(|target| target.status != kind.done(self.operation.on_copies))
            .map(|target| target.wave)
            .min()
        else {
            self.store()
                .transition(
                    self.operation_id(),
                    OperationState::Running,
                    OperationState::Succeeded,
                    None,
                    Some(self.claim),
                    self.now(),
                )
                .await?;
            tracing::info!(operation_id = %self.operation_id(), "operation succeeded");
            return Ok(false);
        };
        if targets
            .iter()
            .all(|target| target.status == TargetStatus::Pending)
            && let Some(stale) = self.preflight(&targets).await?
        {
            tracing::warn!(operation_id = %self.operation_id(), %stale, "plan is stale; aborting before any change");
            self.store()
                .begin_abort(
                    self.operation_id(),
                    OperationState::Running,
                    self.operation.revert_operation_id.unwrap_or_default(),
                    Some(&format!("nothing was changed: {stale}")),
                    Some(self.claim),
                    self.now(),
                )
                .await?;
            return Ok(true);
        }
        match kind {
            PlanKind::DeleteSites | PlanKind::UninstallApp => {
                self.delete_wave(wave, TargetStatus::Pending).await?
            }
            PlanKind::RestoreSites => self.restore_wave(wave, true).await?,
            PlanKind::PurgeSites => self.purge_wave(wave, true).await?,
            PlanKind::RestoreDrill => {
                // On copies: copied first, drilled like sites, purged after.
                let ready = if self.operation.on_copies {
                    self.copy_wave(wave).await?;
                    TargetStatus::Copied
                } else {
                    TargetStatus::Pending
                };
                let statuses: Vec<TargetStatus> = self
                    .wave_targets(wave)
                    .await?
                    .iter()
                    .map(|target| target.status)
                    .collect();
                if statuses.iter().any(|status| {
                    *status == ready
                        || matches!(status, TargetStatus::InFlight | TargetStatus::Deleted)
                }) {
                    self.delete_wave(wave, ready).await?;
                }
                let restoring = self.wave_targets(wave).await?.iter().any(|target| {
                    matches!(
                        target.status,
                        TargetStatus::Verified | TargetStatus::CatalogRestored
                    )
                });
                if restoring {
                    self.drill_restore_wave(wave).await?;
                }
                if self.operation.on_copies {
                    self.discard_wave(wave).await?;
                }
            }
        }
        Ok(true)
    }

    /// Before the first change: is every target still what the plan found? A plan made
    /// earlier may have gone stale (another operation restored, deleted or purged a
    /// site since); the answer says how, and the operation then ends with nothing done.
    async fn preflight(&self, targets: &[TargetRecord]) -> Result<Option<String>, Stop> {
        let records: Vec<&TargetRecord> = targets.iter().collect();
        let lifecycle = lifecycle_targets(&records);
        let fleet = self.fleet();
        let outcomes = self
            .persist("catalog", || fleet.describe("catalog", &lifecycle))
            .await?;
        paired("catalog", &lifecycle, &outcomes)?;
        let kind = self.operation.kind;
        let restoring_to_a_time = matches!(
            self.operation.restore_source,
            Some(RestoreSource::PointInTime(_))
        );
        for (target, outcome) in lifecycle.iter().zip(&outcomes) {
            let state = outcome.state();
            let expected: &[TenantState] = match kind {
                PlanKind::DeleteSites | PlanKind::RestoreDrill | PlanKind::UninstallApp => {
                    &[TenantState::Active]
                }
                PlanKind::RestoreSites if restoring_to_a_time => &[TenantState::Active],
                PlanKind::RestoreSites => &[TenantState::Deleted, TenantState::Active],
                PlanKind::PurgeSites => &[TenantState::Deleted],
            };
            if !expected.contains(&state) {
                return Ok(Some(format!(
                    "{target} is {} in the catalog; the plan needs it {}",
                    state.as_str_name(),
                    expected
                        .iter()
                        .map(|state| state.as_str_name())
                        .collect::<Vec<_>>()
                        .join(" or ")
                )));
            }
            // Deleted again by another operation since the plan: only that operation's
            // restore brings it back.
            if let Some(RestoreSource::Undo(undo)) = self.operation.restore_source
                && state == TenantState::Deleted
                && !outcome.deleted_by.is_empty()
                && outcome.deleted_by != undo.to_string()
            {
                return Ok(Some(format!(
                    "{target} was deleted by operation {} since the plan, not by {undo}",
                    outcome.deleted_by
                )));
            }
        }
        Ok(None)
    }

    /// The operation's soft delete as the services are asked it, `call_key` telling this
    /// call apart, with the grant signed for it.
    pub(super) async fn deletion(&self, call_key: &'static str) -> Result<Deletion, Stop> {
        Ok(Deletion {
            operation_id: self.operation_id(),
            why: self.why(),
            lease_token: self.token(),
            call_key,
            grant: self.grant().await?,
        })
    }

    /// The operation's grant, signed for this call, if a second principal approved it:
    /// what lets it delete more than every service's free rate, up to its planned targets.
    async fn grant(&self) -> Result<Option<String>, Stop> {
        let operation = &self.operation;
        let Some(approved_by) = operation.approved_by.clone() else {
            return Ok(None);
        };
        let plan = self.store().plan(operation.plan_id).await?;
        let targets = self.store().targets(operation.operation_id).await?.len();
        let grant = Grant {
            operation_id: operation.operation_id.to_string(),
            plan_fingerprint: plan.fingerprint,
            targets: u64::try_from(targets).unwrap_or(u64::MAX),
            approved_by,
        };
        Ok(Some(self.fleet().sign_grant(&grant).map_err(|status| {
            Stop::Failed(OrchestratorError::Unexpected(format!(
                "cannot sign the operation's grant: {}",
                status.message()
            )))
        })?))
    }

    /// Soft-deletes a wave: its targets in flight, the catalog, then the other services
    /// in parallel; each service's answer carries the fingerprint from inside its delete
    /// transaction, which is recorded (not a Describe made earlier, which a write in
    /// between would spoil); then every service must describe the targets deleted with
    /// exactly those fingerprints.
    pub(super) async fn delete_wave(&self, wave: i64, ready: TargetStatus) -> Result<(), Stop> {
        let deletion = self.deletion("").await?;
        let fleet = self.fleet();
        let operation_id = self.operation_id();

        let targets = self.wave_targets(wave).await?;
        self.set_status(&with_status(&targets, ready), TargetStatus::InFlight, None)
            .await?;
        micros_platform::failpoint!("executor::delete::in_flight");

        let targets = self.wave_targets(wave).await?;
        let in_flight = with_status(&targets, TargetStatus::InFlight);
        if !in_flight.is_empty() {
            let lifecycle = lifecycle_targets(&in_flight);
            let catalog = self
                .logged(wave, "catalog", "soft_delete", lifecycle.len(), || {
                    fleet.soft_delete("catalog", &lifecycle, &deletion)
                })
                .await?;
            micros_platform::failpoint!("executor::delete::catalog_done");
            let mut answers = self
                .on_other_services(wave, "soft_delete", lifecycle.len(), |service| {
                    let (lifecycle, deletion) = (lifecycle.clone(), deletion.clone());
                    async move { fleet.soft_delete(&service, &lifecycle, &deletion).await }
                })
                .await?;
            micros_platform::failpoint!("executor::delete::services_done");
            answers.push(("catalog".to_owned(), catalog));
            let mut prints: BTreeMap<i64, BTreeMap<String, String>> = BTreeMap::new();
            for (service, outcomes) in &answers {
                paired(service, &lifecycle, outcomes)?;
                for (target, outcome) in in_flight.iter().zip(outcomes) {
                    prints
                        .entry(target.position)
                        .or_default()
                        .insert(service.clone(), outcome.fingerprint.clone());
                }
            }
            self.set_status(&in_flight, TargetStatus::Deleted, Some(&prints))
                .await?;
            micros_platform::failpoint!("executor::delete::recorded");
        }

        let targets = self.wave_targets(wave).await?;
        let deleted = with_status(&targets, TargetStatus::Deleted);
        self.verify_and_mark(&deleted, TargetStatus::Verified, |service, target, outcome| {
            let as_planned = match target.app_installation_id {
                None => {
                    outcome.state == TenantState::Deleted as i32
                        && target.fingerprints.get(service) == Some(&outcome.fingerprint)
                }
                Some(_) => outcome.counts.iter().all(|count| count.live == 0),
            };
            (!as_planned).then(|| {
                format!(
                    "{} in {service} is not as planned after the delete: state {}, fingerprint {} (recorded {})",
                    lifecycle_target(target),
                    outcome.state().as_str_name(),
                    outcome.fingerprint,
                    target.fingerprints.get(service).cloned().unwrap_or_default()
                )
            })
        })
        .await?;
        micros_platform::failpoint!("executor::delete::verified");
        tracing::info!(%operation_id, wave, targets = deleted.len(), "wave deleted and verified");
        Ok(())
    }

    fn restore_source(&self) -> Result<Source, Stop> {
        self.operation
            .restore_source
            .map(RestoreSource::to_proto)
            .ok_or_else(|| {
                Stop::Failed(OrchestratorError::Unexpected(
                    "a restore without a source".to_owned(),
                ))
            })
    }

    /// Restores a wave: catalog first (the site record and placement come back with
    /// their IDs), then the other services in parallel, then every site is checked
    /// against the fingerprints recorded when it was deleted. With `start` false (an
    /// abort), targets not yet begun stay as they are and only the ones under way finish.
    pub(super) async fn restore_wave(&self, wave: i64, start: bool) -> Result<(), Stop> {
        let why = self.why();
        let operation_id = self.operation_id();
        let call = RestoreCall {
            operation: operation_id,
            source: self.restore_source()?,
            why: &why,
        };

        if start {
            let targets = self.wave_targets(wave).await?;
            self.set_status(
                &with_status(&targets, TargetStatus::Pending),
                TargetStatus::InFlight,
                None,
            )
            .await?;
            micros_platform::failpoint!("executor::restore::in_flight");
        }
        let targets = self.wave_targets(wave).await?;
        let in_flight = with_status(&targets, TargetStatus::InFlight);
        if !in_flight.is_empty() {
            self.restore_in_catalog(wave, "restore", &lifecycle_targets(&in_flight), &call)
                .await?;
            self.set_status(&in_flight, TargetStatus::CatalogRestored, None)
                .await?;
            micros_platform::failpoint!("executor::restore::catalog_done");
        }
        let targets = self.wave_targets(wave).await?;
        let catalog_done = with_status(&targets, TargetStatus::CatalogRestored);
        if !catalog_done.is_empty() {
            self.restore_in_others(wave, "restore", &lifecycle_targets(&catalog_done), &call)
                .await?;
            self.set_status(&catalog_done, TargetStatus::Restored, None)
                .await?;
            micros_platform::failpoint!("executor::restore::services_done");
        }

        let targets = self.wave_targets(wave).await?;
        let restored = with_status(&targets, TargetStatus::Restored);
        let sites: Vec<SiteId> = restored.iter().map(|target| target.site_id).collect();
        // Only this wave's records are read; whether the deletion recorded any site at
        // all decides if a missing record fails.
        let (recorded, deletion_recorded): (BTreeMap<SiteId, BTreeMap<String, String>>, bool) =
            match self.operation.restore_source {
                Some(RestoreSource::Undo(undo)) => (
                    self.store().recorded_fingerprints(undo, &sites).await?,
                    self.store().has_site_targets(undo).await?,
                ),
                Some(RestoreSource::PointInTime(_)) | None => (BTreeMap::new(), false),
            };
        self.verify_and_mark(&restored, TargetStatus::Verified, |service, target, outcome| {
            let expected = recorded
                .get(&target.site_id)
                .and_then(|prints| prints.get(service));
            let active = outcome.state == TenantState::Active as i32;
            // When the orchestrator made the deletion, every site must match what it
            // recorded; a missing record is a failure, not a pass.
            let matches = match expected {
                Some(print) => *print == outcome.fingerprint,
                None => !deletion_recorded,
            };
            (!(active && matches)).then(|| {
                format!(
                    "{} in {service} did not come back as recorded: state {}, fingerprint {} (recorded at deletion {})",
                    target.site_id,
                    outcome.state().as_str_name(),
                    outcome.fingerprint,
                    expected.cloned().unwrap_or_else(|| "none".to_owned())
                )
            })
        })
        .await?;
        tracing::info!(%operation_id, wave, targets = restored.len(), "wave restored and verified");
        Ok(())
    }

    /// A drill's second half for one wave: restore what the wave deleted (catalog first),
    /// then check every service's fingerprint against the one recorded at deletion.
    pub(super) async fn drill_restore_wave(&self, wave: i64) -> Result<(), Stop> {
        let why = self.why();
        let call = RestoreCall {
            operation: self.revert_operation()?,
            source: Source::UndoOperationId(self.operation_id().to_string()),
            why: &why,
        };
        let targets = self.wave_targets(wave).await?;
        let records: Vec<&TargetRecord> = targets.iter().collect();
        let lifecycle = lifecycle_targets(&records);
        let waiting = with_status(&targets, TargetStatus::Verified);
        if !waiting.is_empty() {
            self.restore_in_catalog(wave, "restore", &lifecycle, &call)
                .await?;
            self.set_status(&waiting, TargetStatus::CatalogRestored, None)
                .await?;
            micros_platform::failpoint!("executor::drill::catalog_done");
        }
        self.restore_in_others(wave, "restore", &lifecycle, &call)
            .await?;
        micros_platform::failpoint!("executor::drill::services_done");
        self.verify_and_mark(&records, TargetStatus::Reverted, |service, target, outcome| {
            let back = outcome.state == TenantState::Active as i32
                && target.fingerprints.get(service) == Some(&outcome.fingerprint);
            (!back).then(|| {
                format!(
                    "{} in {service} did not come back from the drill: state {}, fingerprint {} (recorded {})",
                    target.site_id,
                    outcome.state().as_str_name(),
                    outcome.fingerprint,
                    target.fingerprints.get(service).cloned().unwrap_or_default()
                )
            })
        })
        .await?;
        tracing::info!(operation_id = %self.operation_id(), wave, targets = records.len(), "drill wave deleted, restored and verified");
        Ok(())
    }

    /// The operation that undoes this one (a drill's restore, an abort's revert).
    pub(super) fn revert_operation(&self) -> Result<micros_platform::ids::OperationId, Stop> {
        self.operation.revert_operation_id.ok_or_else(|| {
            Stop::Failed(OrchestratorError::Unexpected(format!(
                "operation {} has no revert operation recorded",
                self.operation_id()
            )))
        })
    }

    /// Purges a wave: every service validates first (a hold or an unexpired site
    /// anywhere stops the wave before anything is deleted), then the targets are in
    /// flight, the other services purge and the catalog last; then every service must
    /// report the sites purged. With `start` false (an abort), only a wave under way
    /// finishes.
    pub(super) async fn purge_wave(&self, wave: i64, start: bool) -> Result<(), Stop> {
        let fleet = self.fleet();
        let why = self.why();
        let (operation_id, token) = (self.operation_id(), self.token());
        if start {
            let targets = self.wave_targets(wave).await?;
            let pending = with_status(&targets, TargetStatus::Pending);
            if !pending.is_empty() {
                let lifecycle = lifecycle_targets(&pending);
                for service in fleet.services() {
                    self.persist(service, || {
                        fleet.purge(service, &lifecycle, operation_id, &why, true, token)
                    })
                    .await?;
                }
                self.set_status(&pending, TargetStatus::InFlight, None)
                    .await?;
                micros_platform::failpoint!("executor::purge::in_flight");
            }
        }
        let targets = self.wave_targets(wave).await?;
        let in_flight = with_status(&targets, TargetStatus::InFlight);
        if in_flight.is_empty() {
            return Ok(());
        }
        let lifecycle = lifecycle_targets(&in_flight);
        self.on_other_services(wave, "purge", lifecycle.len(), |service| {
            let (lifecycle, why) = (lifecycle.clone(), why.clone());
            async move {
                fleet
                    .purge(&service, &lifecycle, operation_id, &why, false, token)
                    .await
            }
        })
        .await?;
        micros_platform::failpoint!("executor::purge::services_done");
        self.logged(wave, "catalog", "purge", lifecycle.len(), || {
            fleet.purge("catalog", &lifecycle, operation_id, &why, false, token)
        })
        .await?;
        micros_platform::failpoint!("executor::purge::catalog_done");
        self.verify_and_mark(
            &in_flight,
            TargetStatus::Verified,
            |service, target, outcome| {
                let gone = outcome.state == TenantState::Purged as i32
                    || outcome.state == TenantState::Absent as i32;
                (!gone).then(|| {
                    format!(
                        "{} in {service} is {} after the purge",
                        target.site_id,
                        outcome.state().as_str_name()
                    )
                })
            },
        )
        .await?;
        Ok(())
    }
}
