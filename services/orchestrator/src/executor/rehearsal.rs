//! The rollback rehearsal (the incident review's "tested rollback plan"): once a
//! deletion's canary is deleted and verified, it is restored through the operation's own
//! undo path, checked against the fingerprints recorded at its deletion in every
//! service, and deleted again; only then does the next wave start. A rehearsal that fails
//! halts the operation with the canary restored, before any other customer is touched.
//!
//! Its steps are recorded like any other: `restoring` (restore under the rehearsal's
//! operation, catalog first), `restored` (verified; deleting again under the operation
//! itself, with a call key of its own so the services apply it instead of answering
//! the canary's first delete from their record), `done`.

use micros_proto::lifecycle::v1::{TenantState, restore_request::Source};

use super::{RestoreCall, Run, Stop, lifecycle_target, lifecycle_targets};
use crate::{
    error::OrchestratorError,
    model::{RehearsalState, TargetStatus},
    store::TargetRecord,
};

/// The call key of the canary's second delete.
const REDELETE: &str = "rehearsal";

impl Run<'_> {
    /// Whether the rehearsal is due now: the operation rehearses, its canary (wave 0) is
    /// deleted and verified, and the rehearsal has not finished.
    pub(super) fn rehearsal_due(&self, targets: &[TargetRecord]) -> bool {
        let canary: Vec<&TargetRecord> = targets.iter().filter(|target| target.wave == 0).collect();
        self.operation.kind.rehearses()
            && self.operation.rehearsal.state != Some(RehearsalState::Done)
            && !canary.is_empty()
            && canary
                .iter()
                .all(|target| target.status == TargetStatus::Verified)
    }

    pub(super) async fn rehearse(&self, targets: &[TargetRecord]) -> Result<(), Stop> {
        let canary: Vec<&TargetRecord> = targets.iter().filter(|target| target.wave == 0).collect();
        let lifecycle = lifecycle_targets(&canary);
        let fleet = self.fleet();
        let why = self.why();
        let operation_id = self.operation_id();
        let rehearsal = self.operation.rehearsal.operation_id.ok_or_else(|| {
            Stop::Failed(OrchestratorError::Unexpected(format!(
                "operation {operation_id} has no rehearsal operation recorded"
            )))
        })?;

        if self.operation.rehearsal.state != Some(RehearsalState::Restored) {
            self.store()
                .set_rehearsal(self.claim, RehearsalState::Restoring, self.now())
                .await?;
            let call = RestoreCall {
                operation: rehearsal,
                source: Source::UndoOperationId(operation_id.to_string()),
                why: &why,
            };
            self.restore_in_catalog(0, "rehearsal_restore", &lifecycle, &call)
                .await?;
            self.restore_in_others(0, "rehearsal_restore", &lifecycle, &call)
                .await?;
            micros_platform::failpoint!("executor::rehearsal::restored");
            self.check_canary(&canary, |service, target, outcome| {
                // An app's rows come back live (a service holding none of them answers
                // absent, as it did at deletion).
                let back = match target.app_installation_id {
                    None => outcome.state == TenantState::Active as i32,
                    Some(_) => outcome.state != TenantState::Deleted as i32,
                };
                let as_recorded = target.fingerprints.get(service) == Some(&outcome.fingerprint);
                (!(back && as_recorded)).then(|| {
                    format!(
                        "rollback rehearsal failed: {} in {service} did not come back as recorded at deletion: state {}, fingerprint {} (recorded {}); the canary is left restored",
                        lifecycle_target(target),
                        outcome.state().as_str_name(),
                        outcome.fingerprint,
                        target.fingerprints.get(service).cloned().unwrap_or_else(|| "none".to_owned())
                    )
                })
            })
            .await?;
            self.store()
                .set_rehearsal(self.claim, RehearsalState::Restored, self.now())
                .await?;
        }

        let deletion = self.deletion(REDELETE).await?;
        self.logged(0, "catalog", "rehearsal_delete", lifecycle.len(), || {
            fleet.soft_delete("catalog", &lifecycle, &deletion)
        })
        .await?;
        self.on_other_services(0, "rehearsal_delete", lifecycle.len(), |service| {
            let (lifecycle, deletion) = (lifecycle.clone(), deletion.clone());
            async move { fleet.soft_delete(&service, &lifecycle, &deletion).await }
        })
        .await?;
        self.check_canary(&canary, |service, target, outcome| {
            let deleted = match target.app_installation_id {
                None => {
                    outcome.state == TenantState::Deleted as i32
                        && target.fingerprints.get(service) == Some(&outcome.fingerprint)
                }
                Some(_) => outcome.counts.iter().all(|count| count.live == 0),
            };
            (!deleted).then(|| {
                format!(
                    "{} in {service} is not deleted again after the rollback rehearsal: state {}",
                    lifecycle_target(target),
                    outcome.state().as_str_name()
                )
            })
        })
        .await?;
        self.store()
            .set_rehearsal(self.claim, RehearsalState::Done, self.now())
            .await?;
        tracing::info!(%operation_id, canary = canary.len(), "rollback rehearsed on the canary");
        Ok(())
    }

    /// Describes the canary everywhere and checks every answer (the targets keep their
    /// status: the rehearsal's progress is the operation's).
    async fn check_canary(
        &self,
        canary: &[&TargetRecord],
        check: impl Fn(
            &str,
            &TargetRecord,
            &micros_proto::lifecycle::v1::TargetOutcome,
        ) -> Option<String>,
    ) -> Result<(), Stop> {
        let described = self.describe_all(&lifecycle_targets(canary)).await?;
        self.check_all(canary, &described, check).await
    }
}
