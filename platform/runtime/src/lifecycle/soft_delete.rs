//! Soft delete: a site's registry row flips to `deleted` (its rows stay as they are); an
//! app installation's rows are marked with the deleting operation.

use sqlx::AnyConnection;

use super::{
    Lifecycle, LifecycleError,
    call::{apps_of, sites_of},
    describe::describe,
    digests,
    marks::Owned,
    model::{Action, LifecycleRequest, Target, TargetOutcome, TenantState},
    registry::{self, Registry, Transition},
    schema::TableSpec,
    tenant::{Value, bind},
};
use crate::{ids::SiteId, store::json_list};

impl Lifecycle {
    pub(crate) async fn apply_soft_delete(
        &self,
        connection: &mut AnyConnection,
        registry: &Registry,
        request: &LifecycleRequest,
    ) -> Result<Vec<TargetOutcome>, LifecycleError> {
        let sites = sites_of(&request.targets);
        let apps = apps_of(&request.targets);
        let mut deleting: Vec<SiteId> = Vec::with_capacity(sites.len());
        for site_id in &sites {
            let state = registry::state_in(registry, *site_id);
            registry::check(*site_id, state, Action::SoftDelete)?;
            if state == TenantState::Deleted {
                let deleted_by = registry
                    .get(site_id)
                    .and_then(|row| row.deleted_by.clone())
                    .unwrap_or_default();
                // The same operation deleting again (a retried wave) is a no-op.
                if deleted_by != request.operation_id.to_string() {
                    return Err(LifecycleError::AlreadyDeleted {
                        site_id: *site_id,
                        deleted_by,
                    });
                }
            } else {
                deleting.push(*site_id);
            }
        }
        // An app of a site this service holds nothing of has nothing here to mark: the
        // call passes for it (absent), as a site-wide uninstall must.
        let mut marking = Vec::with_capacity(apps.len());
        for app in &apps {
            let site_id = app.site_id();
            match registry::state_in(registry, site_id) {
                TenantState::Active => marking.push(*app),
                TenantState::Absent => {}
                _ => return Err(LifecycleError::NotActive { site_id }),
            }
        }
        let taken_down = super::guard::customer_targets(registry, &request.targets);
        let now = self.now();
        self.guard_deletions(connection, &taken_down, request, now)
            .await?;

        let before = describe(self, connection, &request.targets, registry).await?;
        let expire = now.saturating_add(self.retention_micros());
        registry::transition(
            self.store(),
            connection,
            &deleting,
            Transition::Delete {
                operation: request.operation_id,
                delete_time: now,
                expire_time: expire,
            },
        )
        .await?;
        if !marking.is_empty() {
            self.mark_app_rows(connection, &marking, request, now)
                .await?;
        }

        self.outcomes_after(
            connection,
            request,
            before,
            true,
            |before, after| match before.target {
                Target::Site(_) => 0,
                Target::AppInstallation { .. } => live_rows(before) - live_rows(after),
            },
        )
        .await
    }

    /// Marks the live rows each app installation owns as deleted by the operation: one
    /// UPDATE and one mark record per table, no row image (see the `marks` module).
    async fn mark_app_rows(
        &self,
        connection: &mut AnyConnection,
        apps: &[Target],
        request: &LifecycleRequest,
        now: i64,
    ) -> Result<(), LifecycleError> {
        let operation = request.operation_id.to_string();
        let app_list = json_list(apps.iter().map(Target::key));
        let owned: Vec<Owned> = apps
            .iter()
            .filter_map(|app| match app {
                Target::AppInstallation {
                    site_id,
                    app_installation_id,
                } => Some(Owned {
                    site_id: site_id.to_string(),
                    owner: app_installation_id.to_string(),
                }),
                Target::Site(_) => None,
            })
            .collect();
        for table in self.schema().tables {
            let Some(owned_filter) = self.filter_by_owner(table, "$1") else {
                continue;
            };
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {} SET deleted_by = $2, deleted_at = $3 WHERE deleted_by IS NULL AND {owned_filter}",
                table.name
            )))
            .bind(app_list.clone())
            .bind(operation.clone())
            .bind(now)
            .execute(&mut *connection)
            .await?;
            self.record_marks(connection, table, &owned, &operation, now)
                .await?;
        }
        let app_sites: Vec<SiteId> = apps.iter().map(Target::site_id).collect();
        digests::bump(self.store(), connection, &app_sites).await?;
        Ok(())
    }

    /// `site_id:owner IN (…targets bound at param…)` for a table whose rows apps own.
    pub(crate) fn filter_by_owner(&self, table: &TableSpec, param: &str) -> Option<String> {
        table.owner.map(|owner| {
            format!(
                "(site_id || ':' || {owner}) IN ({})",
                self.store().json_strings(param)
            )
        })
    }

    /// Logs the before-image of every row of `table` that `filter` matches; `filter`
    /// uses `$1`…`$n` for `binds`.
    pub(crate) async fn log_rows(
        &self,
        connection: &mut AnyConnection,
        table: &TableSpec,
        filter: &str,
        binds: &[Value],
        now: i64,
    ) -> Result<(), LifecycleError> {
        let sql = format!(
            "INSERT INTO tenant_changes (site_id, table_name, row_key, change_time, before_image)
             SELECT site_id, ${table_param}, {key}, ${time_param}, {image} FROM {name} WHERE {filter}",
            table_param = binds.len() + 2,
            time_param = binds.len() + 1,
            key = table.key,
            image = table.json_row(self.store().backend()),
            name = table.name,
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for value in binds {
            query = bind(query, value);
        }
        query
            .bind(now)
            .bind(table.name)
            .execute(&mut *connection)
            .await?;
        Ok(())
    }

    /// Outcomes after a change that rewrote no data row of a site target: site targets
    /// keep the counts and fingerprint read before (only the registry is read again), app
    /// targets are described again, all at once. With `fingerprint_before`, every
    /// outcome carries the fingerprint from before the change (what was deleted).
    pub(crate) async fn outcomes_after(
        &self,
        connection: &mut AnyConnection,
        request: &LifecycleRequest,
        before: Vec<TargetOutcome>,
        fingerprint_before: bool,
        rows_affected: impl Fn(&TargetOutcome, &TargetOutcome) -> i64,
    ) -> Result<Vec<TargetOutcome>, LifecycleError> {
        let sites_now: Vec<SiteId> = request.targets.iter().map(Target::site_id).collect();
        let registry_now = registry::load(self.store(), connection, &sites_now).await?;
        let apps = apps_of(&request.targets);
        let mut apps_after = if apps.is_empty() {
            Vec::new()
        } else {
            describe(self, connection, &apps, &registry_now).await?
        }
        .into_iter();
        Ok(before
            .into_iter()
            .map(|before| {
                let after = match before.target {
                    Target::Site(site_id) => {
                        let row = registry_now.get(&site_id);
                        TargetOutcome {
                            state: row.map_or(TenantState::Absent, |row| row.state),
                            delete_time: row.and_then(|row| row.delete_time),
                            expire_time: row.and_then(|row| row.expire_time),
                            hold: row.is_some_and(|row| row.hold),
                            deleted_by: row.and_then(|row| row.deleted_by.clone()),
                            ..before.clone()
                        }
                    }
                    Target::AppInstallation { .. } => {
                        apps_after.next().unwrap_or_else(|| before.clone())
                    }
                };
                TargetOutcome {
                    rows_affected: rows_affected(&before, &after),
                    fingerprint: if fingerprint_before {
                        before.fingerprint.clone()
                    } else {
                        after.fingerprint.clone()
                    },
                    ..after
                }
            })
            .collect())
    }
}

pub(crate) fn live_rows(outcome: &TargetOutcome) -> i64 {
    outcome.counts.iter().map(|count| count.live).sum()
}
