//! Restore: undo exactly what one operation deleted (registry rows flipped back, marked
//! rows revived), or return sites to a point in time.

use sqlx::AnyConnection;

use super::{
    Lifecycle, LifecycleError,
    call::{apps_of, sites_of},
    describe::describe,
    digests,
    model::{Action, LifecycleRequest, RestoreSource, Target, TargetOutcome, TenantState},
    point_in_time,
    registry::{self, Registry, Transition, json_list},
    tenant::Value,
};
use crate::{
    error::InvalidArgument,
    ids::{OperationId, SiteId},
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
            if registry::state_in(registry, site_id) != TenantState::Active {
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
        let store = self.store();
        let now = self.now();
        let mut revived_in_sites = 0;
        let site_list = json_list(sites.iter().map(ToString::to_string));
        let app_list = json_list(apps.iter().map(Target::key));
        for table in self.schema().tables {
            let Some(owned) = self.filter_by_owner(table, "$2") else {
                continue;
            };
            let scope = format!("(site_id IN ({}) OR {owned})", store.json_strings("$1"));
            let filter = format!("deleted_by = $3 AND {scope}");
            let binds = [
                Value::Text(site_list.clone()),
                Value::Text(app_list.clone()),
                Value::Text(undo_text.clone()),
            ];
            self.log_rows(connection, table, &filter, &binds, now)
                .await?;
            let revived = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {} SET deleted_by = NULL, deleted_at = NULL WHERE deleted_by = $3 AND {scope}",
                table.name
            )))
            .bind(site_list.clone())
            .bind(app_list.clone())
            .bind(undo_text.clone())
            .execute(&mut *connection)
            .await?
            .rows_affected();
            if !sites.is_empty() {
                revived_in_sites += revived;
            }
        }
        let touched: Vec<SiteId> = request.targets.iter().map(Target::site_id).collect();
        digests::bump(store, connection, &touched).await?;
        Ok(revived_in_sites)
    }
}

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
