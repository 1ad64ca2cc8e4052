//! Restore: undo exactly what one operation deleted (registry rows flipped back, marked
//! rows revived), or return sites to a point in time.

use std::collections::BTreeSet;

use sqlx::AnyConnection;

use super::{
    Lifecycle, LifecycleError,
    call::{apps_of, sites_of},
    describe::describe,
    digests,
    marks::{MarkedGroup, Scoped},
    model::{Action, LifecycleRequest, RestoreSource, Target, TargetOutcome, TenantState},
    point_in_time,
    registry::{self, Registry, Transition},
};
use crate::{
    error::InvalidArgument,
    ids::{OperationId, SiteId},
    store::json_list,
};

impl Lifecycle {
    pub(crate) async fn apply_restore(
        &self,
        connection: &mut AnyConnection,
        registry: &Registry,
        request: &LifecycleRequest,
        source: RestoreSource,
    ) -> Result<Vec<TargetOutcome>, LifecycleError> {
        let before = describe(self, connection, &request.targets, registry).await?;
        let rows_rewritten_in_sites = match source {
            RestoreSource::Operation(undo) => {
                self.undo_operation(connection, registry, request, undo)
                    .await?
                    > 0
            }
            RestoreSource::PointInTime(at) => {
                if !apps_of(&request.targets).is_empty() {
                    return Err(InvalidArgument::field(
                        "targets",
                        "POINT_IN_TIME_NEEDS_SITES",
                        "app_installation",
                        "a point-in-time restore takes site targets only",
                    )
                    .into());
                }
                let sites = sites_of(&request.targets);
                for site_id in &sites {
                    match registry::state_in(registry, *site_id) {
                        TenantState::Active => {}
                        TenantState::Purged => {
                            return Err(LifecycleError::Purged { site_id: *site_id });
                        }
                        _ => return Err(LifecycleError::NotActive { site_id: *site_id }),
                    }
                }
                point_in_time::restore_to(self, connection, &sites, at).await?;
                true
            }
        };
        if !rows_rewritten_in_sites {
            return self
                .outcomes_after(connection, request, before, false, changed_rows)
                .await;
        }
        let sites_now: Vec<SiteId> = request.targets.iter().map(Target::site_id).collect();
        let registry_now = registry::load(self.store(), connection, &sites_now).await?;
        let after = describe(self, connection, &request.targets, &registry_now).await?;
        Ok(before
            .into_iter()
            .zip(after)
            .map(|(before, after)| TargetOutcome {
                rows_affected: changed_rows(&before, &after),
                ..after
            })
            .collect())
    }

    /// Flips back the sites `undo` deleted and revives the rows it marked; the number of
    /// rows revived inside site targets.
    async fn undo_operation(
        &self,
        connection: &mut AnyConnection,
        registry: &Registry,
        request: &LifecycleRequest,
        undo: OperationId,
    ) -> Result<u64, LifecycleError> {
        let undo_text = undo.to_string();
        let sites = sites_of(&request.targets);
        let apps = apps_of(&request.targets);
        for site_id in &sites {
            let state = registry::state_in(registry, *site_id);
            registry::check(*site_id, state, Action::Restore)?;
            let deleted_by = registry.get(site_id).and_then(|row| row.deleted_by.clone());
            if state == TenantState::Deleted && deleted_by.as_deref() != Some(undo_text.as_str()) {
                return Err(LifecycleError::DeletedByAnotherOperation {
                    site_id: *site_id,
                    deleted_by: deleted_by.unwrap_or_default(),
                    requested: undo,
                });
            }
        }
        for app in &apps {
            let site_id = app.site_id();
            // Absent: nothing of the site here, so nothing of the app to revive.
            if !matches!(
                registry::state_in(registry, site_id),
                TenantState::Active | TenantState::Absent
            ) {
                return Err(LifecycleError::NotActive { site_id });
            }
        }
        registry::transition(
            self.store(),
            connection,
            &sites,
            Transition::Undelete { operation: undo },
        )
        .await?;
        let now = self.now();
        let site_keys: BTreeSet<String> = sites.iter().map(ToString::to_string).collect();
        let app_keys: BTreeSet<String> = apps.iter().map(Target::key).collect();
        let mut revived_in_sites = 0;
        let mut changed: BTreeSet<SiteId> = BTreeSet::new();
        for table in self.schema().tables {
            let Some(owner) = table.owner else {
                continue;
            };
            // The rows `undo` marked, found through the index of marked rows alone: a
            // site deletion marks none, so restoring it reads no data row, logs nothing
            // and bumps no digest (the sites' cached summaries stay valid for the
            // verification that follows).
            let marked: Vec<MarkedGroup> =
                sqlx::query_as::<_, MarkedRow>(sqlx::AssertSqlSafe(format!(
                    "SELECT site_id, {owner}, MIN(deleted_at), MAX(deleted_at) FROM {}
                 WHERE deleted_by = $1 GROUP BY site_id, {owner}",
                    table.name
                )))
                .bind(undo_text.clone())
                .fetch_all(&mut *connection)
                .await?
                .into_iter()
                .map(|(site_id, owner, first, last)| MarkedGroup {
                    site_id,
                    owner,
                    deleted_at: (first, last),
                })
                .collect();
            if marked.is_empty() {
                continue;
            }
            let in_sites: Vec<&MarkedGroup> = marked
                .iter()
                .filter(|group| site_keys.contains(&group.site_id))
                .collect();
            if !in_sites.is_empty() {
                let sites: BTreeSet<String> =
                    in_sites.iter().map(|group| group.site_id.clone()).collect();
                let scope = Scoped {
                    filter: format!("site_id IN ({})", self.store().json_strings("$1")),
                    list: json_list(sites.iter().cloned()),
                };
                revived_in_sites += self
                    .unmark(connection, table, scope, &in_sites, &undo_text, now)
                    .await?;
                changed.extend(sites.iter().filter_map(|site| SiteId::parse(site).ok()));
            }
            let of_apps: Vec<&MarkedGroup> = marked
                .iter()
                .filter(|group| group.owned_key().is_some_and(|key| app_keys.contains(&key)))
                .collect();
            if let Some(owned) = self.filter_by_owner(table, "$1")
                && !of_apps.is_empty()
            {
                let keys: BTreeSet<String> = of_apps
                    .iter()
                    .filter_map(|group| group.owned_key())
                    .collect();
                let scope = Scoped {
                    filter: owned,
                    list: json_list(keys.iter().cloned()),
                };
                self.unmark(connection, table, scope, &of_apps, &undo_text, now)
                    .await?;
                changed.extend(
                    apps.iter()
                        .filter(|app| keys.contains(&app.key()))
                        .map(Target::site_id),
                );
            }
        }
        let changed: Vec<SiteId> = changed.into_iter().collect();
        digests::bump(self.store(), connection, &changed).await?;
        Ok(revived_in_sites)
    }
}

/// `(site_id, owner, least deleted_at, greatest deleted_at)` of the rows an operation
/// marked, per site and owner.
type MarkedRow = (String, Option<String>, Option<i64>, Option<i64>);

/// Rows whose liveness or content a restore changed, as seen in counts: an upper bound
/// of the count differences (content-only changes show in the fingerprint instead).
fn changed_rows(before: &TargetOutcome, after: &TargetOutcome) -> i64 {
    before
        .counts
        .iter()
        .zip(&after.counts)
        .map(|(before, after)| (after.live - before.live).abs())
        .sum()
}
