//! Purge: hard-deletes expired, soft-deleted targets. Everything is checked and the
//! sites are claimed (`purging`) in one locked transaction; rows then go in bounded
//! batches (a retry with the same operation continues where it stopped); the registry
//! rows end as `purged` tombstones.

use super::{
    Lifecycle, LifecycleError,
    call::{request_digest, require_reason, touched_sites, validate_targets},
    describe::describe,
    digests,
    marks::{self, Forget},
    model::{Action, LifecycleRequest, Target, TargetOutcome, TenantState},
    registry::{self, Registry, Transition},
};
use crate::{ids::SiteId, store::json_list};

impl Lifecycle {
    pub async fn purge(
        &self,
        request: &LifecycleRequest,
    ) -> Result<Vec<TargetOutcome>, LifecycleError> {
        require_reason(request)?;
        validate_targets(&request.targets)?;
        let digest = request_digest(Action::Purge, "", &request.targets);
        let sites = touched_sites(&request.targets);
        {
            let mut connection = self.store().pool().acquire().await?;
            if let Some(previous) = self
                .recorded(&mut connection, Action::Purge, &digest, request)
                .await?
            {
                // The hook runs after the purge commits; a crash in between is healed by
                // the retry, so a replayed purge runs it again (hooks are idempotent).
                drop(connection);
                self.inner.hooks.after_purge(&sites).await?;
                return Ok(previous);
            }
        }
        let before = self.claim_for_purge(request).await?;
        if request.validate_only {
            return Ok(before);
        }
        crate::failpoint!("lifecycle::purge::after_claim");

        let purge_sites = purged_sites(&before);
        let purge_apps: Vec<Target> = before
            .iter()
            .filter(|outcome| matches!(outcome.target, Target::AppInstallation { .. }))
            .map(|outcome| outcome.target)
            .collect();
        self.delete_in_batches(&purge_sites, &purge_apps).await?;
        crate::failpoint!("lifecycle::purge::after_batches");

        let mut tx = self.store().begin_write().await?;
        digests::bump(self.store(), &mut tx, &sites).await?;
        registry::transition(
            self.store(),
            &mut tx,
            &purge_sites,
            Transition::Purged {
                operation: request.operation_id,
                now: self.now(),
            },
        )
        .await?;
        let registry_now = registry::load(self.store(), &mut tx, &sites).await?;
        let after = describe(self, &mut tx, &request.targets, &registry_now).await?;
        let outcomes: Vec<TargetOutcome> = before
            .iter()
            .zip(after)
            .map(|(before, after)| TargetOutcome {
                rows_affected: all_rows(before) - all_rows(&after),
                ..after
            })
            .collect();
        self.record(&mut tx, Action::Purge, &digest, request, &outcomes)
            .await?;
        crate::failpoint!("lifecycle::before_commit");
        tx.commit().await?;
        crate::failpoint!("lifecycle::after_commit");
        self.inner.hooks.after_purge(&sites).await?;
        Ok(outcomes)
    }

    /// Checks every target under the registry lock and, unless `validate_only`, marks the
    /// sites `purging` in the same transaction: from then on a restore or a hold is
    /// refused, so rows are never deleted under a site that was brought back meanwhile.
    /// Answers the targets as described before anything changed. A refusal is audited.
    async fn claim_for_purge(
        &self,
        request: &LifecycleRequest,
    ) -> Result<Vec<TargetOutcome>, LifecycleError> {
        let mut tx = self.store().begin_write().await?;
        let checked = async {
            let registry = self.lock_for(&mut tx, request).await?;
            let before = describe(self, &mut tx, &request.targets, &registry).await?;
            self.check_purge(&registry, &before)?;
            Ok::<_, LifecycleError>(before)
        }
        .await;
        let before = match checked {
            Ok(before) => before,
            Err(error) => {
                drop(tx);
                if !request.validate_only {
                    self.audit_refusal(Action::Purge, request, &error).await;
                }
                return Err(error);
            }
        };
        if request.validate_only {
            return Ok(before);
        }
        let claiming = purged_sites(&before);
        let claimed = registry::transition(
            self.store(),
            &mut tx,
            &claiming,
            Transition::ClaimPurge { now: self.now() },
        )
        .await?;
        if claimed != claiming.len() as u64 {
            return Err(LifecycleError::ConcurrentChange);
        }
        tx.commit().await?;
        Ok(before)
    }

    fn check_purge(
        &self,
        registry: &Registry,
        before: &[TargetOutcome],
    ) -> Result<(), LifecycleError> {
        let now = self.now();
        for outcome in before {
            let site_id = outcome.target.site_id();
            let scratch = registry
                .get(&site_id)
                .is_some_and(|row| row.origin.is_some());
            if scratch && matches!(outcome.target, Target::Site(_)) {
                // A scratch copy is no customer's data: it goes whenever its drill is done.
                continue;
            }
            if registry.get(&site_id).is_some_and(|row| row.hold) {
                return Err(LifecycleError::OnHold { site_id });
            }
            match outcome.target {
                Target::Site(_) => {
                    registry::check(site_id, outcome.state, Action::Purge)?;
                    if matches!(outcome.state, TenantState::Deleted | TenantState::Purging) {
                        let expire_time = outcome.expire_time.unwrap_or(i64::MAX);
                        if now < expire_time {
                            return Err(LifecycleError::PurgeBeforeExpiry {
                                target: outcome.target,
                                expire_time,
                            });
                        }
                    }
                }
                Target::AppInstallation { .. } => {
                    if outcome.counts.iter().any(|count| count.live > 0) {
                        return Err(LifecycleError::NotDeleted { site_id });
                    }
                    // Whatever the site's state, an app's rows expire by their own
                    // deletion; rows with no deletion time recorded never expire.
                    let deleted = outcome.counts.iter().any(|count| count.deleted > 0);
                    let expire_time = outcome.expire_time.unwrap_or(i64::MAX);
                    if deleted && now < expire_time {
                        return Err(LifecycleError::PurgeBeforeExpiry {
                            target: outcome.target,
                            expire_time,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Deletes the rows (children first) and their change-log history and mark records,
    /// a batch per statement, each batch committed on its own.
    async fn delete_in_batches(
        &self,
        sites: &[SiteId],
        apps: &[Target],
    ) -> Result<(), LifecycleError> {
        let store = self.store();
        let batch = i64::from(self.inner.config.purge_batch_size);
        let site_list = json_list(sites.iter().map(ToString::to_string));
        let app_list = json_list(apps.iter().map(Target::key));
        for table in self.schema().tables.iter().rev() {
            let sites_scope = format!("site_id IN ({})", store.json_strings("$1"));
            let owned = match self.filter_by_owner(table, "$2") {
                Some(owned) if !apps.is_empty() => {
                    let apps_only = self.filter_by_owner(table, "$1").unwrap_or_default();
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DELETE FROM tenant_changes WHERE table_name = $2 AND row_key IN
                         (SELECT {key} FROM {name} WHERE deleted_by IS NOT NULL AND {apps_only})",
                        key = table.key,
                        name = table.name,
                    )))
                    .bind(app_list.clone())
                    .bind(table.name)
                    .execute(store.pool())
                    .await?;
                    marks::forget(
                        self,
                        Forget::Owned {
                            table,
                            list: &app_list,
                        },
                    )
                    .await?;
                    Some(owned)
                }
                _ => None,
            };
            let (scope, limit) = match &owned {
                Some(owned) => (
                    format!("{sites_scope} OR (deleted_by IS NOT NULL AND {owned})"),
                    "$3",
                ),
                None => (sites_scope, "$2"),
            };
            loop {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {name} WHERE {key} IN (SELECT {key} FROM {name} WHERE {scope} LIMIT {limit})",
                    name = table.name,
                    key = table.key,
                )))
                .bind(site_list.clone());
                if owned.is_some() {
                    query = query.bind(app_list.clone());
                }
                let deleted = query
                    .bind(batch)
                    .execute(store.pool())
                    .await?
                    .rows_affected();
                if deleted == 0 {
                    break;
                }
            }
        }
        if !sites.is_empty() {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM scratch_keys WHERE site_id IN ({})",
                store.json_strings("$1")
            )))
            .bind(site_list.clone())
            .execute(store.pool())
            .await?;
            marks::forget(self, Forget::Sites(&site_list)).await?;
            loop {
                let deleted = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM tenant_changes WHERE seq IN
                     (SELECT seq FROM tenant_changes WHERE site_id IN ({}) LIMIT $2)",
                    store.json_strings("$1")
                )))
                .bind(site_list.clone())
                .bind(batch)
                .execute(store.pool())
                .await?
                .rows_affected();
                if deleted == 0 {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// The sites a purge takes: soft-deleted ones (expired, checked before), and scratch
/// copies in any state but purged.
fn purged_sites(before: &[TargetOutcome]) -> Vec<SiteId> {
    before
        .iter()
        .filter(|outcome| {
            let scratch = outcome.origin.is_some() && outcome.state != TenantState::Purged;
            matches!(outcome.target, Target::Site(_))
                && (scratch || matches!(outcome.state, TenantState::Deleted | TenantState::Purging))
        })
        .map(|outcome| outcome.target.site_id())
        .collect()
}

fn all_rows(outcome: &TargetOutcome) -> i64 {
    outcome
        .counts
        .iter()
        .map(|count| count.live + count.deleted)
        .sum()
}
