//! Soft delete, restore, purge, hold and describe: each validated as a whole, applied in
//! one transaction (purge: bounded batches, then one), idempotent by operation ID, audited.

use std::collections::{BTreeSet, HashMap};

use sqlx::{AnyConnection, Row};

use super::{
    Lifecycle, LifecycleError,
    describe::describe,
    digests,
    model::{LifecycleRequest, RestoreSource, Target, TargetOutcome, TenantState},
    point_in_time,
    registry::{self, RegistryRow, json_list},
    schema::TableSpec,
    tenant::{Value, bind},
};
use crate::{error::InvalidArgument, ids::SiteId};

/// The most targets one call may name.
pub const MAX_TARGETS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    SoftDelete,
    Restore,
    Purge,
    SetHold,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::SoftDelete => "soft_delete",
            Action::Restore => "restore",
            Action::Purge => "purge",
            Action::SetHold => "set_hold",
        }
    }
}

fn sites_of(targets: &[Target]) -> Vec<SiteId> {
    targets
        .iter()
        .filter_map(|target| match target {
            Target::Site(site_id) => Some(*site_id),
            Target::AppInstallation { .. } => None,
        })
        .collect()
}

fn apps_of(targets: &[Target]) -> Vec<Target> {
    targets
        .iter()
        .filter(|target| matches!(target, Target::AppInstallation { .. }))
        .copied()
        .collect()
}

fn validate_targets(targets: &[Target]) -> Result<(), LifecycleError> {
    if targets.is_empty() {
        return Err(InvalidArgument::missing("targets").into());
    }
    if targets.len() > MAX_TARGETS {
        return Err(InvalidArgument::field(
            "targets",
            "TOO_MANY_TARGETS",
            targets.len().to_string(),
            format!("at most {MAX_TARGETS} targets per call"),
        )
        .into());
    }
    let mut seen = BTreeSet::new();
    for target in targets {
        if !seen.insert(target) {
            return Err(InvalidArgument::field(
                "targets",
                "DUPLICATE_TARGET",
                target.key(),
                "names the same target twice",
            )
            .into());
        }
    }
    Ok(())
}

fn request_digest(action: Action, detail: &str, targets: &[Target]) -> String {
    let mut keys: Vec<String> = targets.iter().map(Target::key).collect();
    keys.sort();
    let mut hasher = blake3::Hasher::new();
    hasher.update(action.as_str().as_bytes());
    hasher.update(detail.as_bytes());
    for key in keys {
        hasher.update(b"\n").update(key.as_bytes());
    }
    hasher.finalize().to_hex().to_string()
}

impl Lifecycle {
    /// State, counts and fingerprint of each target; changes nothing.
    pub async fn describe(&self, targets: &[Target]) -> Result<Vec<TargetOutcome>, LifecycleError> {
        validate_targets(targets)?;
        let mut connection = self.store().pool().acquire().await?;
        let sites: Vec<SiteId> = targets.iter().map(Target::site_id).collect();
        let registry = registry::load(self.store(), &mut connection, &sites).await?;
        describe(self, &mut connection, targets, &registry).await
    }

    /// Soft-deletes sites (registry flip) and app installations (rows marked).
    pub async fn soft_delete(
        &self,
        request: &LifecycleRequest,
    ) -> Result<Vec<TargetOutcome>, LifecycleError> {
        require_reason(request)?;
        self.run(Step::SoftDelete, request).await
    }

    /// Undoes what an operation deleted, or returns sites to a point in time.
    pub async fn restore(
        &self,
        request: &LifecycleRequest,
        source: RestoreSource,
    ) -> Result<Vec<TargetOutcome>, LifecycleError> {
        self.run(Step::Restore(source), request).await
    }

    /// Sets or clears the hold that blocks purging.
    /// (A reason is required: clearing a hold is what lets a purge go ahead.)
    pub async fn set_hold(
        &self,
        request: &LifecycleRequest,
        hold: bool,
    ) -> Result<Vec<TargetOutcome>, LifecycleError> {
        require_reason(request)?;
        self.run(Step::SetHold(hold), request).await
    }

    /// Shared frame: validation, idempotency, one transaction, the operation record and
    /// the audit record (refusals are audited too).
    async fn run(
        &self,
        step: Step,
        request: &LifecycleRequest,
    ) -> Result<Vec<TargetOutcome>, LifecycleError> {
        validate_targets(&request.targets)?;
        let action = step.action();
        let digest = request_digest(action, &step.detail(), &request.targets);
        let mut tx = self.store().begin_write().await?;
        if let Some(previous) = self.recorded(&mut tx, action, &digest, request).await? {
            return Ok(previous);
        }
        let sites: Vec<SiteId> = request.targets.iter().map(Target::site_id).collect();
        let registry = registry::load(self.store(), &mut tx, &sites).await?;
        let applied = match step {
            Step::SoftDelete => self.apply_soft_delete(&mut tx, &registry, request).await,
            Step::Restore(source) => {
                self.apply_restore(&mut tx, &registry, request, source)
                    .await
            }
            Step::SetHold(hold) => self.apply_hold(&mut tx, &registry, request, hold).await,
        };
        let outcomes = match applied {
            Ok(outcomes) => outcomes,
            Err(error) => {
                drop(tx);
                if !request.validate_only {
                    self.audit_refusal(action, request, &error).await;
                }
                return Err(error);
            }
        };
        if request.validate_only {
            drop(tx);
            return Ok(outcomes);
        }
        self.record(&mut tx, action, &digest, request, &outcomes)
            .await?;
        tx.commit().await?;
        Ok(outcomes)
    }
}

/// The step a call applies inside [`Lifecycle::run`].
#[derive(Debug, Clone, Copy)]
enum Step {
    SoftDelete,
    Restore(RestoreSource),
    SetHold(bool),
}

impl Step {
    fn action(self) -> Action {
        match self {
            Step::SoftDelete => Action::SoftDelete,
            Step::Restore(_) => Action::Restore,
            Step::SetHold(_) => Action::SetHold,
        }
    }

    /// What, beyond the targets, makes two calls the same call.
    fn detail(self) -> String {
        match self {
            Step::SoftDelete => String::new(),
            Step::Restore(RestoreSource::Operation(operation)) => format!("undo {operation}"),
            Step::Restore(RestoreSource::PointInTime(at)) => format!("at {at}"),
            Step::SetHold(hold) => format!("hold {hold}"),
        }
    }
}

fn require_reason(request: &LifecycleRequest) -> Result<(), LifecycleError> {
    if request.justification.reason.trim().is_empty() {
        return Err(InvalidArgument::missing("justification.reason").into());
    }
    Ok(())
}

impl Lifecycle {
    fn filter_by_owner(&self, table: &TableSpec, param: &str) -> Option<String> {
        table.owner.map(|owner| {
            format!(
                "(site_id || ':' || {owner}) IN ({})",
                self.store().json_strings(param)
            )
        })
    }

    /// Logs the before-image of every row of `table` that `filter` matches; `filter`
    /// uses `$1`…`$n` for `binds`.
    async fn log_rows(
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

    async fn apply_soft_delete(
        &self,
        connection: &mut AnyConnection,
        registry: &HashMap<SiteId, RegistryRow>,
        request: &LifecycleRequest,
    ) -> Result<Vec<TargetOutcome>, LifecycleError> {
        let sites = sites_of(&request.targets);
        let apps = apps_of(&request.targets);
        for site_id in &sites {
            match registry.get(site_id) {
                None => {}
                Some(row) => match row.state {
                    TenantState::Active | TenantState::Absent => {}
                    TenantState::Deleted
                        if row.deleted_by.as_deref() == Some(operation_of(request).as_str()) => {}
                    TenantState::Deleted => {
                        return Err(LifecycleError::AlreadyDeleted {
                            site_id: *site_id,
                            deleted_by: row.deleted_by.clone().unwrap_or_default(),
                        });
                    }
                    TenantState::Purged => {
                        return Err(LifecycleError::Purged { site_id: *site_id });
                    }
                    TenantState::Purging => {
                        return Err(LifecycleError::BeingPurged { site_id: *site_id });
                    }
                },
            }
        }
        for app in &apps {
            let site_id = app.site_id();
            if let Some(row) = registry.get(&site_id)
                && row.state != TenantState::Active
            {
                return Err(LifecycleError::NotActive { site_id });
            }
        }
        if !sites.is_empty() {
            self.inner
                .hooks
                .before_site_soft_delete(connection, &sites, request)
                .await
                .map_err(LifecycleError::Refused)?;
        }

        let before = describe(self, connection, &request.targets, registry).await?;
        let now = self.now();
        let expire = now.saturating_add(self.retention_micros());
        let operation = request.operation_id.to_string();
        let site_list = json_list(sites.iter().map(ToString::to_string));
        if !sites.is_empty() {
            let store = self.store();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE tenants SET state = 'deleted', deleted_by = $2, delete_time = $3, expire_time = $4
                 WHERE site_id IN ({}) AND state = 'active'",
                store.json_strings("$1")
            )))
            .bind(site_list.clone())
            .bind(operation.clone())
            .bind(now)
            .bind(expire)
            .execute(&mut *connection)
            .await?;
            // Sites this database never held are registered as deleted, so that a write
            // arriving for them later is refused like any other write to a deleted site.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO tenants (site_id, state, create_time, deleted_by, delete_time, expire_time)
                 SELECT value, 'deleted', $3, $2, $3, $4 FROM ({}) AS ids WHERE true
                 ON CONFLICT (site_id) DO NOTHING",
                store.json_strings("$1")
            )))
            .bind(site_list)
            .bind(operation.clone())
            .bind(now)
            .bind(expire)
            .execute(&mut *connection)
            .await?;
        }
        if !apps.is_empty() {
            let app_list = json_list(apps.iter().map(Target::key));
            for table in self.schema().tables {
                let Some(owned) = self.filter_by_owner(table, "$1") else {
                    continue;
                };
                let filter = format!("deleted_by IS NULL AND {owned}");
                self.log_rows(
                    connection,
                    table,
                    &filter,
                    &[Value::Text(app_list.clone())],
                    now,
                )
                .await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE {} SET deleted_by = $2, deleted_at = $3 WHERE deleted_by IS NULL AND {owned}",
                    table.name
                )))
                .bind(app_list.clone())
                .bind(operation.clone())
                .bind(now)
                .execute(&mut *connection)
                .await?;
            }
            let app_sites: Vec<SiteId> = apps.iter().map(Target::site_id).collect();
            digests::bump(self.store(), connection, &app_sites).await?;
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

    /// Outcomes after a change that rewrote no data row of a site target: site targets
    /// keep the counts and fingerprint read before (only the registry is read again), app
    /// targets are described again, all at once. With `fingerprint_before`, every
    /// outcome carries the fingerprint from before the change (what was deleted).
    async fn outcomes_after(
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

    async fn apply_restore(
        &self,
        connection: &mut AnyConnection,
        registry: &HashMap<SiteId, RegistryRow>,
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
                    match registry.get(site_id).map(|row| row.state) {
                        Some(TenantState::Active) => {}
                        Some(TenantState::Purged) => {
                            return Err(LifecycleError::Purged { site_id: *site_id });
                        }
                        _ => return Err(LifecycleError::NotActive { site_id: *site_id }),
                    }
                }
                if self.store().backend() == crate::store::Backend::Postgres {
                    // Writers hold the registry rows FOR SHARE: this waits for them and
                    // keeps new ones out until the restore commits, so nothing lands
                    // between the horizon read and the rewrite.
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT site_id FROM tenants WHERE site_id IN ({}) FOR UPDATE",
                        self.store().json_strings("$1")
                    )))
                    .bind(json_list(sites.iter().map(ToString::to_string)))
                    .fetch_all(&mut *connection)
                    .await?;
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

    async fn undo_operation(
        &self,
        connection: &mut AnyConnection,
        registry: &HashMap<SiteId, RegistryRow>,
        request: &LifecycleRequest,
        undo: crate::ids::OperationId,
    ) -> Result<u64, LifecycleError> {
        let undo = undo.to_string();
        let sites = sites_of(&request.targets);
        let apps = apps_of(&request.targets);
        for site_id in &sites {
            if let Some(row) = registry.get(site_id) {
                match row.state {
                    TenantState::Deleted if row.deleted_by.as_deref() != Some(undo.as_str()) => {
                        return Err(LifecycleError::DeletedByAnotherOperation {
                            site_id: *site_id,
                            deleted_by: row.deleted_by.clone().unwrap_or_default(),
                            requested: request_operation(&undo)?,
                        });
                    }
                    TenantState::Purged => {
                        return Err(LifecycleError::Purged { site_id: *site_id });
                    }
                    TenantState::Purging => {
                        return Err(LifecycleError::BeingPurged { site_id: *site_id });
                    }
                    _ => {}
                }
            }
        }
        for app in &apps {
            let site_id = app.site_id();
            if let Some(row) = registry.get(&site_id)
                && row.state != TenantState::Active
            {
                return Err(LifecycleError::NotActive { site_id });
            }
        }
        let store = self.store();
        let now = self.now();
        let mut revived_in_sites = 0;
        let site_list = json_list(sites.iter().map(ToString::to_string));
        let app_list = json_list(apps.iter().map(Target::key));
        if !sites.is_empty() {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE tenants SET state = 'active', deleted_by = NULL, delete_time = NULL, expire_time = NULL
                 WHERE site_id IN ({}) AND state = 'deleted' AND deleted_by = $2",
                store.json_strings("$1")
            )))
            .bind(site_list.clone())
            .bind(undo.clone())
            .execute(&mut *connection)
            .await?;
        }
        for table in self.schema().tables {
            let Some(owned) = self.filter_by_owner(table, "$2") else {
                continue;
            };
            let scope = format!("(site_id IN ({}) OR {owned})", store.json_strings("$1"));
            let filter = format!("deleted_by = $3 AND {scope}");
            let binds = [
                Value::Text(site_list.clone()),
                Value::Text(app_list.clone()),
                Value::Text(undo.clone()),
            ];
            self.log_rows(connection, table, &filter, &binds, now)
                .await?;
            let revived = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {} SET deleted_by = NULL, deleted_at = NULL WHERE deleted_by = $3 AND {scope}",
                table.name
            )))
            .bind(site_list.clone())
            .bind(app_list.clone())
            .bind(undo.clone())
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

    async fn apply_hold(
        &self,
        connection: &mut AnyConnection,
        registry: &HashMap<SiteId, RegistryRow>,
        request: &LifecycleRequest,
        hold: bool,
    ) -> Result<Vec<TargetOutcome>, LifecycleError> {
        if !apps_of(&request.targets).is_empty() {
            return Err(InvalidArgument::field(
                "targets",
                "HOLD_NEEDS_SITES",
                "app_installation",
                "a hold applies to whole sites",
            )
            .into());
        }
        let sites = sites_of(&request.targets);
        for site_id in &sites {
            match registry.get(site_id).map(|row| row.state) {
                Some(TenantState::Purged) => {
                    return Err(LifecycleError::Purged { site_id: *site_id });
                }
                Some(TenantState::Purging) => {
                    return Err(LifecycleError::BeingPurged { site_id: *site_id });
                }
                _ => {}
            }
        }
        let store = self.store();
        let site_list = json_list(sites.iter().map(ToString::to_string));
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO tenants (site_id, state, create_time) SELECT value, 'active', $2 FROM ({}) AS ids WHERE true
             ON CONFLICT (site_id) DO NOTHING",
            store.json_strings("$1")
        )))
        .bind(site_list.clone())
        .bind(self.now())
        .execute(&mut *connection)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE tenants SET hold = $2 WHERE site_id IN ({})",
            store.json_strings("$1")
        )))
        .bind(site_list)
        .bind(i64::from(hold))
        .execute(&mut *connection)
        .await?;
        let registry_now = registry::load(store, connection, &sites).await?;
        describe(self, connection, &request.targets, &registry_now).await
    }

    /// Hard-deletes expired, soft-deleted targets: checks everything first, deletes rows
    /// in bounded batches (a retry with the same operation continues where it stopped),
    /// then flips the registry rows to `purged` (tombstones) in one transaction.
    pub async fn purge(
        &self,
        request: &LifecycleRequest,
    ) -> Result<Vec<TargetOutcome>, LifecycleError> {
        require_reason(request)?;
        validate_targets(&request.targets)?;
        let digest = request_digest(Action::Purge, "", &request.targets);
        let mut connection = self.store().pool().acquire().await?;
        if let Some(previous) = self
            .recorded(&mut connection, Action::Purge, &digest, request)
            .await?
        {
            // The hook runs after the purge commits; a crash in between is healed by the
            // retry, so a replayed purge runs it again (hooks are idempotent).
            drop(connection);
            let touched: Vec<SiteId> = request.targets.iter().map(Target::site_id).collect();
            self.inner.hooks.after_purge(&touched).await?;
            return Ok(previous);
        }
        let sites: Vec<SiteId> = request.targets.iter().map(Target::site_id).collect();
        let registry = registry::load(self.store(), &mut connection, &sites).await?;
        let before = describe(self, &mut connection, &request.targets, &registry).await?;
        if let Err(error) = self.check_purge(&registry, &before) {
            drop(connection);
            if !request.validate_only {
                self.audit_refusal(Action::Purge, request, &error).await;
            }
            return Err(error);
        }
        if request.validate_only {
            return Ok(before);
        }
        drop(connection);

        let purge_sites: Vec<SiteId> = before
            .iter()
            .filter(|outcome| {
                matches!(outcome.target, Target::Site(_))
                    && matches!(outcome.state, TenantState::Deleted | TenantState::Purging)
            })
            .map(|outcome| outcome.target.site_id())
            .collect();
        self.claim_for_purge(&purge_sites).await?;
        let purge_apps: Vec<Target> = before
            .iter()
            .filter(|outcome| matches!(outcome.target, Target::AppInstallation { .. }))
            .map(|outcome| outcome.target)
            .collect();
        self.delete_in_batches(&purge_sites, &purge_apps).await?;
        {
            let mut connection = self.store().pool().acquire().await?;
            digests::bump(self.store(), &mut connection, &sites).await?;
        }

        let mut tx = self.store().begin_write().await?;
        let now = self.now();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE tenants SET state = 'purged', purged_by = $2, purge_time = $3
             WHERE site_id IN ({}) AND state = 'purging'",
            self.store().json_strings("$1")
        )))
        .bind(json_list(purge_sites.iter().map(ToString::to_string)))
        .bind(request.operation_id.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let registry_now = registry::load(self.store(), &mut tx, &sites).await?;
        let after = describe(self, &mut tx, &request.targets, &registry_now).await?;
        let outcomes: Vec<TargetOutcome> = before
            .iter()
            .zip(after)
            .map(|(before, after)| TargetOutcome {
                rows_affected: before
                    .counts
                    .iter()
                    .map(|count| count.live + count.deleted)
                    .sum::<i64>()
                    - after
                        .counts
                        .iter()
                        .map(|count| count.live + count.deleted)
                        .sum::<i64>(),
                ..after
            })
            .collect();
        self.record(&mut tx, Action::Purge, &digest, request, &outcomes)
            .await?;
        tx.commit().await?;
        let touched: Vec<SiteId> = request.targets.iter().map(Target::site_id).collect();
        self.inner.hooks.after_purge(&touched).await?;
        Ok(outcomes)
    }

    /// Marks the sites `purging` in one transaction, if every one is still deleted,
    /// expired and not held: from then on a restore or a hold is refused, so rows are
    /// never deleted under a site that was brought back meanwhile.
    async fn claim_for_purge(&self, sites: &[SiteId]) -> Result<(), LifecycleError> {
        if sites.is_empty() {
            return Ok(());
        }
        let list = json_list(sites.iter().map(ToString::to_string));
        let mut tx = self.store().begin_write().await?;
        let claimed = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE tenants SET state = 'purging'
             WHERE site_id IN ({}) AND state IN ('deleted', 'purging') AND hold = 0 AND expire_time <= $2",
            self.store().json_strings("$1")
        )))
        .bind(list)
        .bind(self.now())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed != sites.len() as u64 {
            return Err(LifecycleError::ConcurrentChange);
        }
        tx.commit().await?;
        Ok(())
    }

    fn check_purge(
        &self,
        registry: &HashMap<SiteId, RegistryRow>,
        before: &[TargetOutcome],
    ) -> Result<(), LifecycleError> {
        let now = self.now();
        for outcome in before {
            let site_id = outcome.target.site_id();
            let row = registry.get(&site_id);
            if row.is_some_and(|row| row.hold) {
                return Err(LifecycleError::OnHold { site_id });
            }
            match outcome.target {
                Target::Site(_) => match outcome.state {
                    TenantState::Active => return Err(LifecycleError::NotDeleted { site_id }),
                    TenantState::Deleted | TenantState::Purging => {
                        let expire_time = outcome.expire_time.unwrap_or(i64::MAX);
                        if now < expire_time {
                            return Err(LifecycleError::PurgeBeforeExpiry {
                                target: outcome.target,
                                expire_time,
                            });
                        }
                    }
                    TenantState::Purged | TenantState::Absent => {}
                },
                Target::AppInstallation { .. } => {
                    if let Some(expire_time) = outcome.expire_time
                        && now < expire_time
                    {
                        return Err(LifecycleError::PurgeBeforeExpiry {
                            target: outcome.target,
                            expire_time,
                        });
                    }
                    if outcome.counts.iter().any(|count| count.live > 0) {
                        return Err(LifecycleError::NotDeleted { site_id });
                    }
                }
            }
        }
        Ok(())
    }

    /// Deletes the rows (children first) and their change-log history, a batch per
    /// statement, each batch committed on its own.
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

    /// The stored answer of an earlier, identical call of the same operation. An
    /// operation may make several calls with different targets (waves), but only of one
    /// action: reusing its ID for another action is refused.
    async fn recorded(
        &self,
        connection: &mut AnyConnection,
        action: Action,
        digest: &str,
        request: &LifecycleRequest,
    ) -> Result<Option<Vec<TargetOutcome>>, LifecycleError> {
        let rows = sqlx::query(
            "SELECT action, request_digest, response FROM lifecycle_operations WHERE operation_id = $1",
        )
        .bind(request.operation_id.to_string())
        .fetch_all(&mut *connection)
        .await?;
        for row in &rows {
            let recorded_action: String = row.try_get("action")?;
            if recorded_action != action.as_str() {
                return Err(LifecycleError::OperationReused {
                    operation_id: request.operation_id,
                    action: recorded_action,
                });
            }
        }
        for row in &rows {
            let recorded_digest: String = row.try_get("request_digest")?;
            if recorded_digest == digest {
                let response: Vec<u8> = row.try_get("response")?;
                let mut outcomes: Vec<TargetOutcome> =
                    serde_json::from_slice(&response).map_err(|error| {
                        LifecycleError::Misuse(format!("stored response unreadable: {error}"))
                    })?;
                for outcome in &mut outcomes {
                    outcome.rows_affected = 0;
                }
                return Ok(Some(outcomes));
            }
        }
        Ok(None)
    }

    async fn record(
        &self,
        connection: &mut AnyConnection,
        action: Action,
        digest: &str,
        request: &LifecycleRequest,
        outcomes: &[TargetOutcome],
    ) -> Result<(), LifecycleError> {
        let response = serde_json::to_vec(outcomes).map_err(|error| {
            LifecycleError::Misuse(format!("cannot encode the response: {error}"))
        })?;
        let now = self.now();
        sqlx::query(
            "INSERT INTO lifecycle_operations (operation_id, action, request_digest, response, create_time)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(request.operation_id.to_string())
        .bind(action.as_str())
        .bind(digest.to_owned())
        .bind(response)
        .bind(now)
        .execute(&mut *connection)
        .await?;
        self.audit(connection, action, request, "applied").await
    }

    async fn audit(
        &self,
        connection: &mut AnyConnection,
        action: Action,
        request: &LifecycleRequest,
        outcome: &str,
    ) -> Result<(), LifecycleError> {
        sqlx::query(
            "INSERT INTO lifecycle_audit
             (audit_time, operation_id, action, principal, reason, ticket, targets, outcome)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(self.now())
        .bind(request.operation_id.to_string())
        .bind(action.as_str())
        .bind(request.justification.principal.clone())
        .bind(request.justification.reason.clone())
        .bind(request.justification.ticket.clone())
        .bind(json_list(request.targets.iter().map(Target::key)))
        .bind(outcome.to_owned())
        .execute(&mut *connection)
        .await?;
        Ok(())
    }

    /// Records a refused destructive call; a failure to record is logged, and the caller
    /// still gets the refusal.
    async fn audit_refusal(
        &self,
        action: Action,
        request: &LifecycleRequest,
        error: &LifecycleError,
    ) {
        use crate::error::Problem;
        let outcome = format!("refused: {}", error.reason());
        let recorded = async {
            let mut connection = self.store().pool().acquire().await?;
            self.audit(&mut connection, action, request, &outcome).await
        };
        if let Err(audit_error) = recorded.await {
            tracing::error!(%audit_error, operation_id = %request.operation_id, "could not audit a refused call");
        }
    }

    /// The audit trail of an operation, oldest first: (action, principal, outcome).
    pub async fn audit_trail(
        &self,
        operation_id: crate::ids::OperationId,
    ) -> Result<Vec<(String, String, String)>, LifecycleError> {
        let rows = sqlx::query(
            "SELECT action, principal, outcome FROM lifecycle_audit WHERE operation_id = $1 ORDER BY seq",
        )
        .bind(operation_id.to_string())
        .fetch_all(self.store().pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("action")?,
                    row.try_get("principal")?,
                    row.try_get("outcome")?,
                ))
            })
            .collect()
    }
}

fn operation_of(request: &LifecycleRequest) -> String {
    request.operation_id.to_string()
}

fn live_rows(outcome: &TargetOutcome) -> i64 {
    outcome.counts.iter().map(|count| count.live).sum()
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

fn request_operation(text: &str) -> Result<crate::ids::OperationId, LifecycleError> {
    crate::error::parse_id("undo_operation_id", text).map_err(Into::into)
}
