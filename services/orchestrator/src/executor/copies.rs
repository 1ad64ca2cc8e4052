//! Restore drills on scratch copies: each wave's sites are copied into new scratch sites
//! in every service (the catalog first, so the copies' placement exists), the copies are
//! soft-deleted, restored and verified exactly like sites (their fingerprints recorded
//! at deletion), then purged. The customers' sites are only read; nothing they see
//! changes. The copies' own operations (copy, discard) are derived from the drill's, so
//! a resumed drill repeats them and the services answer from their records.

use micros_platform::ids::{OperationId, SiteId};
use micros_proto::lifecycle::v1::TenantState;

use super::{Run, Stop, lifecycle_targets, waves::with_status};
use crate::{model::TargetStatus, store::TargetRecord};

impl Run<'_> {
    /// The operation copies are made under, and the one they are purged under.
    fn copy_operations(&self) -> (OperationId, OperationId) {
        let drill = self.operation_id().uuid();
        (
            OperationId::derived(drill, "drill copies"),
            OperationId::derived(drill, "drill discard"),
        )
    }

    /// Names a scratch site for each pending target (durably, before any call), then
    /// copies them in every service.
    pub(super) async fn copy_wave(&self, wave: i64) -> Result<(), Stop> {
        let targets = self.wave_targets(wave).await?;
        let naming: Vec<(i64, SiteId)> = with_status(&targets, TargetStatus::Pending)
            .iter()
            .map(|target| (target.position, SiteId::new()))
            .collect();
        if !naming.is_empty() {
            self.store()
                .set_scratch(self.claim, &naming, self.now())
                .await?;
        }
        let targets = self.wave_targets(wave).await?;
        let copying = with_status(&targets, TargetStatus::Copying);
        if copying.is_empty() {
            return Ok(());
        }
        let pairs: Vec<(SiteId, SiteId)> = copying
            .iter()
            .filter_map(|target| Some((target.site_id, target.scratch_site_id?)))
            .collect();
        let fleet = self.fleet();
        let why = self.why();
        let token = self.token();
        let (copy, _) = self.copy_operations();
        self.logged(wave, "catalog", "copy", pairs.len(), || {
            fleet.copy("catalog", &pairs, copy, &why, token)
        })
        .await?;
        self.on_other_services(wave, "copy", pairs.len(), |service| {
            let (pairs, why) = (pairs.clone(), why.clone());
            async move { fleet.copy(&service, &pairs, copy, &why, token).await }
        })
        .await?;
        micros_platform::failpoint!("executor::drill::copied");
        self.set_status(&copying, TargetStatus::Copied, None).await
    }

    /// Purges the wave's drilled copies everywhere (the catalog last) and checks them
    /// gone.
    pub(super) async fn discard_wave(&self, wave: i64) -> Result<(), Stop> {
        let targets = self.wave_targets(wave).await?;
        let drilled = with_status(&targets, TargetStatus::Reverted);
        self.discard(wave, &drilled).await
    }

    /// Purges the scratch copies of `records` in every service and marks them discarded;
    /// an abort discards whatever copies a drill has made so far.
    pub(super) async fn discard(&self, wave: i64, records: &[&TargetRecord]) -> Result<(), Stop> {
        let with_copies: Vec<&TargetRecord> = records
            .iter()
            .copied()
            .filter(|target| target.scratch_site_id.is_some())
            .collect();
        if with_copies.is_empty() {
            return Ok(());
        }
        let lifecycle = lifecycle_targets(&with_copies);
        let fleet = self.fleet();
        let why = self.why();
        let token = self.token();
        let (_, discard) = self.copy_operations();
        self.on_other_services(wave, "discard", lifecycle.len(), |service| {
            let (lifecycle, why) = (lifecycle.clone(), why.clone());
            async move {
                fleet
                    .purge(&service, &lifecycle, discard, &why, false, token)
                    .await
            }
        })
        .await?;
        self.logged(wave, "catalog", "discard", lifecycle.len(), || {
            fleet.purge("catalog", &lifecycle, discard, &why, false, token)
        })
        .await?;
        self.verify_and_mark(
            &with_copies,
            TargetStatus::Discarded,
            |service, target, outcome| {
                let gone = outcome.state == TenantState::Purged as i32
                    || outcome.state == TenantState::Absent as i32;
                (!gone).then(|| {
                    format!(
                        "the scratch copy of {} in {service} is {} after the drill",
                        target.site_id,
                        outcome.state().as_str_name()
                    )
                })
            },
        )
        .await
    }
}
