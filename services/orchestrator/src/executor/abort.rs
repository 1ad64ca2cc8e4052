//! Abort. A drill on scratch copies purges the copies it made. A deletion (sites, an app
//! uninstall, a drill of real sites) is undone: every target a step
//! may have touched (in flight, deleted, verified, half restored by a drill) is restored
//! in every service, catalog first, under the operation's revert operation, then checked
//! active everywhere with the fingerprints recorded at deletion. A restore or a purge
//! finishes the wave under way and stops: undoing a restore would take customer sites
//! down again, and a purge cannot be undone. Only then does the operation end, aborted,
//! and give its site leases back. A failure halts it with the abort still asked for, so
//! resuming it resumes the abort.

use std::collections::BTreeSet;

use micros_proto::lifecycle::v1::{TenantState, restore_request::Source};

use super::{RestoreCall, Run, Stop, lifecycle_targets};
use crate::{
    model::{OperationState, PlanKind, TargetStatus},
    store::TargetRecord,
};

impl Run<'_> {
    pub(super) async fn abort(&self) -> Result<bool, Stop> {
        let operation_id = self.operation_id();
        let targets = self.store().targets(operation_id).await?;
        let touched: Vec<&TargetRecord> = targets
            .iter()
            .filter(|target| {
                !matches!(
                    target.status,
                    TargetStatus::Pending | TargetStatus::Reverted
                )
            })
            .collect();
        if self.operation.on_copies {
            // The customers' sites were only read: what is left to undo is the copies.
            let copies: Vec<&TargetRecord> = targets
                .iter()
                .filter(|target| {
                    !matches!(
                        target.status,
                        TargetStatus::Pending | TargetStatus::Discarded
                    )
                })
                .collect();
            self.discard(-1, &copies).await?;
        } else if self.operation.kind.abort_undoes() {
            self.revert(&touched).await?;
        } else {
            let under_way: BTreeSet<i64> = touched
                .iter()
                .filter(|target| target.status != TargetStatus::Verified)
                .map(|target| target.wave)
                .collect();
            for wave in under_way {
                match self.operation.kind {
                    PlanKind::RestoreSites => self.restore_wave(wave, false).await?,
                    PlanKind::PurgeSites => self.purge_wave(wave, false).await?,
                    PlanKind::DeleteSites | PlanKind::UninstallApp | PlanKind::RestoreDrill => {}
                }
            }
        }
        self.store()
            .transition(
                operation_id,
                OperationState::Aborting,
                OperationState::Aborted,
                None,
                Some(self.claim),
                self.now(),
            )
            .await?;
        tracing::info!(%operation_id, touched = touched.len(), "operation aborted");
        Ok(false)
    }

    /// Restores `touched` everywhere under the revert operation and checks each one back.
    async fn revert(&self, touched: &[&TargetRecord]) -> Result<(), Stop> {
        if touched.is_empty() {
            return Ok(());
        }
        let why = crate::fleet::Why {
            reason: format!(
                "abort of {}: {}",
                self.operation_id(),
                self.operation.reason
            ),
            ticket: self.operation.ticket.clone(),
        };
        let call = RestoreCall {
            operation: self.revert_operation()?,
            source: Source::UndoOperationId(self.operation_id().to_string()),
            why: &why,
        };
        let lifecycle = lifecycle_targets(touched);
        self.restore_in_catalog(-1, "revert", &lifecycle, &call)
            .await?;
        micros_platform::failpoint!("executor::abort::catalog_done");
        self.restore_in_others(-1, "revert", &lifecycle, &call)
            .await?;
        micros_platform::failpoint!("executor::abort::services_done");
        // Back means active (or never held there), with the fingerprint recorded at
        // deletion wherever one was recorded; a target caught in flight may have no
        // record, but a site-level delete rewrites no row, so its state is the proof.
        self.verify_and_mark(touched, TargetStatus::Reverted, |service, target, outcome| {
            let state = outcome.state();
            let active = matches!(state, TenantState::Active | TenantState::Absent);
            let print_ok = target
                .fingerprints
                .get(service)
                .is_none_or(|print| *print == outcome.fingerprint);
            (!(active && print_ok)).then(|| {
                format!(
                    "{} in {service} did not come back from the abort: state {}, fingerprint {} (recorded {})",
                    target.site_id,
                    state.as_str_name(),
                    outcome.fingerprint,
                    target.fingerprints.get(service).cloned().unwrap_or_else(|| "none".to_owned())
                )
            })
        })
        .await
    }
}
