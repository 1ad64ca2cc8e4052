//! The orchestrator's SQL, all of it: plans, operations, targets and the step log.

use std::collections::{BTreeMap, BTreeSet};

use micros_platform::{
    error::parse_id,
    ids::{AppInstallationId, OperationId, PlanId, SiteId},
    store::{Store, StoreError, json_list, rfc3339},
};
use serde::{Deserialize, Serialize};
use sqlx::{Row, any::AnyRow};

use crate::{
    error::OrchestratorError,
    model::{OperationState, PlanKind, PlanState, RehearsalState, RestoreSource, TargetStatus},
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedTarget {
    pub input: String,
    pub site_id: SiteId,
    pub site_name: String,
    pub site_url: String,
    pub app_installation_id: Option<AppInstallationId>,
    pub app_key: String,
    pub products: Vec<String>,
    /// Apps installed on the site (what a site target takes down with it).
    #[serde(default)]
    pub app_installations: i64,
}

impl PlannedTarget {
    /// What the target is, as one key: its app installation, or else its site.
    pub fn key(&self) -> String {
        self.app_installation_id
            .map_or_else(|| self.site_id.to_string(), |app| app.to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedError {
    pub input: String,
    pub reason: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blast {
    pub sites: i64,
    pub app_installations: i64,
    pub users: i64,
    pub documents: i64,
    pub attachments: i64,
    pub rows: i64,
}

/// What a plan will do, stored as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanBody {
    pub targets: Vec<PlannedTarget>,
    pub errors: Vec<PlannedError>,
    pub blast: Blast,
    /// How many of the first targets form the canary the plan named; 0: the
    /// orchestrator's `canary` setting decides.
    #[serde(default)]
    pub canary: usize,
    /// Restore drills: the customers' sites themselves, not scratch copies of them.
    #[serde(default)]
    pub drill_real_sites: bool,
    /// A restore of an operation: its sites that are active already (another plan
    /// restored them), left out rather than refused, so the rest can come back.
    #[serde(default)]
    pub already_active: Vec<SiteId>,
}

#[derive(Debug, Clone)]
pub struct PlanRecord {
    pub plan_id: PlanId,
    pub kind: PlanKind,
    pub state: PlanState,
    pub fingerprint: String,
    pub requested_by: String,
    pub approved_by: Option<String>,
    pub requires_approval: bool,
    pub reason: String,
    pub ticket: String,
    pub restore_source: Option<RestoreSource>,
    pub body: PlanBody,
    pub create_time: i64,
    pub expire_time: i64,
    pub operation_id: Option<OperationId>,
}

#[derive(Debug, Clone)]
pub struct OperationRecord {
    pub operation_id: OperationId,
    pub plan_id: PlanId,
    pub kind: PlanKind,
    pub state: OperationState,
    pub restore_source: Option<RestoreSource>,
    pub requested_by: String,
    pub approved_by: Option<String>,
    pub reason: String,
    pub ticket: String,
    pub waves: i64,
    pub halt_reason: Option<String>,
    pub revert_operation_id: Option<OperationId>,
    /// An abort was asked for: a halted operation resumes aborting.
    pub abort_requested: bool,
    /// A restore drill on scratch copies of the sites.
    pub on_copies: bool,
    /// The canary's rollback rehearsal (deletions and uninstalls): the operation its
    /// restore runs under, how far it came, when it began and ended.
    pub rehearsal: Rehearsal,
    pub create_time: i64,
    pub update_time: i64,
    pub finish_time: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct Rehearsal {
    pub operation_id: Option<OperationId>,
    pub state: Option<RehearsalState>,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
}

/// A runner's hold on an operation: only the runner with the newest token may record
/// the operation's progress, and services refuse lifecycle calls with an older one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub operation_id: OperationId,
    pub token: i64,
}

#[derive(Debug, Clone)]
pub struct TargetRecord {
    pub position: i64,
    pub site_id: SiteId,
    pub app_installation_id: Option<AppInstallationId>,
    pub site_name: String,
    pub site_url: String,
    pub wave: i64,
    pub status: TargetStatus,
    /// Per service, the fingerprint described before the operation changed anything.
    pub fingerprints: BTreeMap<String, String>,
    pub error: Option<String>,
    /// When the operation first changed the target (deleted it, or restored its
    /// catalog record), and when the target was verified done (or reverted).
    pub changed_time: Option<i64>,
    pub done_time: Option<i64>,
    /// A drill on copies: the scratch site the target was copied into.
    pub scratch_site_id: Option<SiteId>,
}

#[derive(Debug, Clone)]
pub struct StepRecord {
    pub wave: i64,
    pub service: String,
    pub action: String,
    pub targets: i64,
    pub rows_affected: i64,
    /// When the call began and when its answer was recorded.
    pub start_time: Option<i64>,
    pub step_time: i64,
}

/// A hold set through the orchestrator.
#[derive(Debug, Clone)]
pub struct HoldRecord {
    pub site_id: SiteId,
    pub held: bool,
    pub reason: String,
    pub ticket: String,
    pub principal: String,
    pub update_time: i64,
}

#[derive(Clone)]
pub struct OrchestratorStore {
    store: Store,
}

/// A stored value this build cannot read or write back.
fn corrupt(table: &'static str, message: String) -> OrchestratorError {
    StoreError::Corrupt { table, message }.into()
}

impl OrchestratorStore {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    pub async fn insert_plan(&self, plan: &PlanRecord) -> Result<(), OrchestratorError> {
        let body = serde_json::to_string(&plan.body)
            .map_err(|error| corrupt("plans", error.to_string()))?;
        sqlx::query(
            "INSERT INTO plans (plan_id, kind, state, fingerprint, requested_by, requires_approval, reason, ticket,
                                undo_operation_id, point_in_time, body, create_time, expire_time)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(plan.plan_id.to_string())
        .bind(plan.kind.as_str())
        .bind(plan.state.as_str())
        .bind(plan.fingerprint.clone())
        .bind(plan.requested_by.clone())
        .bind(i64::from(plan.requires_approval))
        .bind(plan.reason.clone())
        .bind(plan.ticket.clone())
        .bind(undo_column(plan.restore_source))
        .bind(plan.restore_source.and_then(RestoreSource::point_in_time))
        .bind(body)
        .bind(plan.create_time)
        .bind(plan.expire_time)
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    pub async fn plan(&self, plan_id: PlanId) -> Result<PlanRecord, OrchestratorError> {
        let row = sqlx::query("SELECT * FROM plans WHERE plan_id = $1")
            .bind(plan_id.to_string())
            .fetch_optional(self.store.pool())
            .await?
            .ok_or(OrchestratorError::PlanNotFound { plan_id })?;
        plan_from_row(&row)
    }

    pub async fn approve_plan(
        &self,
        plan_id: PlanId,
        approver: &str,
    ) -> Result<(), OrchestratorError> {
        sqlx::query("UPDATE plans SET state = 'approved', approved_by = $2 WHERE plan_id = $1 AND state = 'pending'")
            .bind(plan_id.to_string())
            .bind(approver.to_owned())
            .execute(self.store.pool())
            .await?;
        Ok(())
    }

    /// Marks the plan applied, leases every site it targets and creates its operation
    /// and targets, in one transaction. A plan applied concurrently by someone else, or a
    /// site another operation holds, makes it fail and changes nothing.
    pub async fn start_operation(
        &self,
        plan: &PlanRecord,
        operation: &OperationRecord,
        targets: &[TargetRecord],
    ) -> Result<(), OrchestratorError> {
        let mut tx = self.store.begin_write().await?;
        let claimed = sqlx::query(
            "UPDATE plans SET state = 'applied', operation_id = $2 WHERE plan_id = $1 AND state <> 'applied'",
        )
        .bind(plan.plan_id.to_string())
        .bind(operation.operation_id.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            drop(tx);
            let current = self.plan(plan.plan_id).await?;
            return Err(match current.operation_id {
                Some(operation_id) => OrchestratorError::AlreadyApplied {
                    plan_id: plan.plan_id,
                    operation_id,
                },
                None => corrupt(
                    "plans",
                    format!("plan {} is applied but names no operation", plan.plan_id),
                ),
            });
        }
        // A drill on copies only reads the customers' sites: it holds none of them.
        let sites: BTreeSet<SiteId> = if operation.on_copies {
            BTreeSet::new()
        } else {
            targets.iter().map(|target| target.site_id).collect()
        };
        if let Err(error) = self
            .lease(
                &mut tx,
                operation.operation_id,
                &sites,
                operation.create_time,
            )
            .await
        {
            drop(tx);
            return Err(match error {
                LeaseError::Busy(busy) => busy,
                LeaseError::Conflict => self.busy_error(&sites).await?,
                LeaseError::Other(other) => other,
            });
        }
        sqlx::query(
            "INSERT INTO operations (operation_id, plan_id, kind, state, undo_operation_id, point_in_time,
                                     requested_by, approved_by, reason, ticket, waves, create_time, update_time,
                                     revert_operation_id, rehearsal_operation_id, on_copies)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14, $15)",
        )
        .bind(operation.operation_id.to_string())
        .bind(operation.plan_id.to_string())
        .bind(operation.kind.as_str())
        .bind(operation.state.as_str())
        .bind(undo_column(operation.restore_source))
        .bind(operation.restore_source.and_then(RestoreSource::point_in_time))
        .bind(operation.requested_by.clone())
        .bind(operation.approved_by.clone())
        .bind(operation.reason.clone())
        .bind(operation.ticket.clone())
        .bind(operation.waves)
        .bind(operation.create_time)
        .bind(operation.revert_operation_id.map(|id| id.to_string()))
        .bind(operation.rehearsal.operation_id.map(|id| id.to_string()))
        .bind(i64::from(operation.on_copies))
        .execute(&mut *tx)
        .await?;
        for target in targets {
            sqlx::query(
                "INSERT INTO operation_targets (operation_id, position, site_id, app_installation_id, site_name,
                                                site_url, wave, status, update_time)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(operation.operation_id.to_string())
            .bind(target.position)
            .bind(target.site_id.to_string())
            .bind(target.app_installation_id.map(|id| id.to_string()))
            .bind(target.site_name.clone())
            .bind(target.site_url.clone())
            .bind(target.wave)
            .bind(target.status.as_str())
            .bind(operation.create_time)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Leases `sites` to `operation`, inside the caller's transaction: refused when
    /// another operation holds any of them.
    async fn lease(
        &self,
        tx: &mut sqlx::AnyConnection,
        operation: OperationId,
        sites: &BTreeSet<SiteId>,
        now: i64,
    ) -> Result<(), LeaseError> {
        let list = json_list(sites.iter().map(ToString::to_string));
        let held = self
            .holders_in(&mut *tx, &list)
            .await
            .map_err(LeaseError::Other)?;
        if let Some(busy) = busy_error(held) {
            return Err(LeaseError::Busy(busy));
        }
        let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO site_leases (site_id, operation_id, lease_time)
             SELECT value, $2, $3 FROM ({}) AS ids WHERE true",
            self.store.json_strings("$1")
        )))
        .bind(list)
        .bind(operation.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|error| StoreError::from_write(error, "site_leases", || operation.to_string()));
        match inserted {
            Ok(_) => Ok(()),
            // Another apply leased one of the sites between the read and the insert
            // (PostgreSQL; SQLite's write lock serializes them).
            Err(StoreError::Conflict { .. }) => Err(LeaseError::Conflict),
            Err(other) => Err(LeaseError::Other(other.into())),
        }
    }

    async fn holders_in(
        &self,
        connection: &mut sqlx::AnyConnection,
        list: &str,
    ) -> Result<Vec<(String, String)>, OrchestratorError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT site_id, operation_id FROM site_leases WHERE site_id IN ({}) ORDER BY site_id",
            self.store.json_strings("$1")
        )))
        .bind(list.to_owned())
        .fetch_all(&mut *connection)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("site_id")?, row.try_get("operation_id")?)))
            .collect()
    }

    /// The operation holding each of `sites` that is held: (site, operation).
    pub async fn leases(
        &self,
        sites: &[SiteId],
    ) -> Result<BTreeMap<SiteId, OperationId>, OrchestratorError> {
        let mut connection = self.store.pool().acquire().await?;
        let held = self
            .holders_in(
                &mut connection,
                &json_list(sites.iter().map(ToString::to_string)),
            )
            .await?;
        held.iter()
            .map(|(site, operation)| {
                Ok((
                    parse_id("site_id", site)?,
                    parse_id("operation_id", operation)?,
                ))
            })
            .collect()
    }

    async fn busy_error(
        &self,
        sites: &BTreeSet<SiteId>,
    ) -> Result<OrchestratorError, OrchestratorError> {
        let held = self
            .leases(&sites.iter().copied().collect::<Vec<_>>())
            .await?;
        let held = held
            .into_iter()
            .map(|(site, operation)| (site.to_string(), operation.to_string()))
            .collect();
        Ok(
            busy_error(held).unwrap_or_else(|| OrchestratorError::SitesBusy {
                holder: "a concurrent apply".to_owned(),
                sites: sites.iter().map(ToString::to_string).collect(),
            }),
        )
    }

    pub async fn operation(
        &self,
        operation_id: OperationId,
    ) -> Result<OperationRecord, OrchestratorError> {
        let row = sqlx::query("SELECT * FROM operations WHERE operation_id = $1")
            .bind(operation_id.to_string())
            .fetch_optional(self.store.pool())
            .await?
            .ok_or(OrchestratorError::OperationNotFound { operation_id })?;
        operation_from_row(&row)
    }

    /// Operations newest first (IDs are time-ordered), from the one before `before`.
    pub async fn operations(
        &self,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OperationRecord>, OrchestratorError> {
        let rows = sqlx::query(
            "SELECT * FROM operations WHERE $1 = '' OR operation_id < $1
             ORDER BY operation_id DESC LIMIT $2",
        )
        .bind(before.unwrap_or("").to_owned())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.store.pool())
        .await?;
        rows.iter().map(operation_from_row).collect()
    }

    /// Whether a purge is under way (the reaper starts one at a time).
    pub async fn purge_running(&self) -> Result<bool, OrchestratorError> {
        let running: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM operations WHERE kind = 'purge_sites' AND state IN ('running', 'aborting')",
        )
        .fetch_one(self.store.pool())
        .await?;
        Ok(running > 0)
    }

    /// Whether an operation `principal` requested is still running (a scheduled drill
    /// waits for the previous one).
    pub async fn running_from(&self, principal: &str) -> Result<bool, OrchestratorError> {
        let running: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM operations WHERE requested_by = $1 AND state IN ('running', 'aborting', 'paused', 'halted')",
        )
        .bind(principal.to_owned())
        .fetch_one(self.store.pool())
        .await?;
        Ok(running > 0)
    }

    /// The restore drill that ended last (succeeded, aborted, or halted), if any.
    pub async fn last_drill(&self) -> Result<Option<OperationRecord>, OrchestratorError> {
        let row = sqlx::query(
            "SELECT * FROM operations WHERE kind = 'restore_drill'
               AND state IN ('succeeded', 'aborted', 'halted')
             ORDER BY update_time DESC LIMIT 1",
        )
        .fetch_optional(self.store.pool())
        .await?;
        row.as_ref().map(operation_from_row).transpose()
    }

    /// Operations left running or aborting that no runner holds (never claimed, given
    /// back, or whose runner stopped renewing before `now`, wall-clock µs), or that
    /// `runner` itself held before it restarted.
    pub async fn claimable(
        &self,
        runner: &str,
        now: i64,
    ) -> Result<Vec<OperationId>, OrchestratorError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT operation_id FROM operations WHERE state IN ('running', 'aborting')
               AND (runner IS NULL OR runner = $1 OR runner_expire < $2)",
        )
        .bind(runner.to_owned())
        .bind(now)
        .fetch_all(self.store.pool())
        .await?;
        rows.iter()
            .map(|id| parse_id("operation_id", id).map_err(Into::into))
            .collect()
    }

    /// Claims the operation for `runner` until `expire` (wall-clock µs) with a new
    /// fencing token, if it is running or aborting and no other runner holds it; a
    /// runner claiming again (after a restart) gets a new token too, which fences its
    /// own earlier incarnation.
    pub async fn claim(
        &self,
        operation_id: OperationId,
        runner: &str,
        now: i64,
        expire: i64,
    ) -> Result<Option<Claim>, OrchestratorError> {
        let mut tx = self.store.begin_write().await?;
        let token: i64 = sqlx::query_scalar(
            "UPDATE lease_tokens SET last = last + 1 WHERE name = 'executor' RETURNING last",
        )
        .fetch_one(&mut *tx)
        .await?;
        let claimed = sqlx::query(
            "UPDATE operations SET runner = $2, runner_token = $3, runner_expire = $4
             WHERE operation_id = $1 AND state IN ('running', 'aborting')
               AND (runner IS NULL OR runner = $2 OR runner_expire < $5)",
        )
        .bind(operation_id.to_string())
        .bind(runner.to_owned())
        .bind(token)
        .bind(expire)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(Claim {
            operation_id,
            token,
        }))
    }

    /// Extends the claim to `expire`; false when another runner has claimed it since.
    pub async fn renew(&self, claim: Claim, expire: i64) -> Result<bool, OrchestratorError> {
        let renewed = sqlx::query(
            "UPDATE operations SET runner_expire = $3 WHERE operation_id = $1 AND runner_token = $2",
        )
        .bind(claim.operation_id.to_string())
        .bind(claim.token)
        .bind(expire)
        .execute(self.store.pool())
        .await?
        .rows_affected();
        Ok(renewed == 1)
    }

    /// Gives the operation back, so any runner may claim it at once.
    pub async fn release(&self, claim: Claim) -> Result<(), OrchestratorError> {
        sqlx::query(
            "UPDATE operations SET runner = NULL, runner_expire = NULL
             WHERE operation_id = $1 AND runner_token = $2",
        )
        .bind(claim.operation_id.to_string())
        .bind(claim.token)
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    /// Checks, inside `tx`, that `claim` still holds the operation, and locks the
    /// operation's row until the transaction ends; [`OrchestratorError::Fenced`] when
    /// another runner has claimed it since.
    async fn fence(
        &self,
        tx: &mut sqlx::AnyConnection,
        claim: Claim,
        now: i64,
    ) -> Result<(), OrchestratorError> {
        let held = sqlx::query(
            "UPDATE operations SET update_time = $3 WHERE operation_id = $1 AND runner_token = $2",
        )
        .bind(claim.operation_id.to_string())
        .bind(claim.token)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if held == 1 {
            Ok(())
        } else {
            Err(OrchestratorError::Fenced {
                operation_id: claim.operation_id,
            })
        }
    }

    /// Moves the operation from `from` to `to` if it is still in `from` and the move is
    /// one [`OperationState::can_become`] allows; `by`, when the executor moves it, must
    /// still hold the operation. An operation that ends (succeeded or aborted) gives its
    /// site leases back in the same transaction.
    pub async fn transition(
        &self,
        operation_id: OperationId,
        from: OperationState,
        to: OperationState,
        halt_reason: Option<&str>,
        by: Option<Claim>,
        now: i64,
    ) -> Result<bool, OrchestratorError> {
        if !from.can_become(to) {
            return Err(OrchestratorError::InvalidTransition {
                operation_id,
                from: from.as_str(),
                to: to.as_str(),
            });
        }
        let mut tx = self.store.begin_write().await?;
        if let Some(claim) = by {
            self.fence(&mut tx, claim, now).await?;
        }
        let finish = to.is_final().then_some(now);
        let changed = sqlx::query(
            "UPDATE operations SET state = $3, halt_reason = COALESCE($4, halt_reason), update_time = $5,
                                   finish_time = COALESCE($6, finish_time),
                                   abort_requested = CASE WHEN $3 = 'aborting' THEN 1 ELSE abort_requested END
             WHERE operation_id = $1 AND state = $2",
        )
        .bind(operation_id.to_string())
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(halt_reason.map(str::to_owned))
        .bind(now)
        .bind(finish)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 1 && to.is_final() {
            sqlx::query("DELETE FROM site_leases WHERE operation_id = $1")
                .bind(operation_id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(changed == 1)
    }

    /// Starts aborting: records the operation that will undo this one, once, and that
    /// an abort was asked for (so a halted abort resumes as an abort).
    pub async fn begin_abort(
        &self,
        operation_id: OperationId,
        from: OperationState,
        revert: OperationId,
        halt_reason: Option<&str>,
        by: Option<Claim>,
        now: i64,
    ) -> Result<bool, OrchestratorError> {
        if !from.can_become(OperationState::Aborting) {
            return Err(OrchestratorError::InvalidTransition {
                operation_id,
                from: from.as_str(),
                to: OperationState::Aborting.as_str(),
            });
        }
        let mut tx = self.store.begin_write().await?;
        if let Some(claim) = by {
            self.fence(&mut tx, claim, now).await?;
        }
        let changed = sqlx::query(
            "UPDATE operations SET state = 'aborting', update_time = $3, abort_requested = 1,
                                   halt_reason = COALESCE($5, halt_reason),
                                   revert_operation_id = COALESCE(revert_operation_id, $4)
             WHERE operation_id = $1 AND state = $2",
        )
        .bind(operation_id.to_string())
        .bind(from.as_str())
        .bind(now)
        .bind(revert.to_string())
        .bind(halt_reason.map(str::to_owned))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(changed == 1)
    }

    /// Sites of `sites` that an operation deleted and then was asked to abort (aborting,
    /// aborted, or halted in its abort): never purged on retention alone.
    pub async fn deleted_by_aborted_operations(
        &self,
        sites: &[SiteId],
    ) -> Result<BTreeSet<SiteId>, OrchestratorError> {
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT t.site_id FROM operation_targets t
             JOIN operations o ON o.operation_id = t.operation_id
             WHERE o.abort_requested = 1 AND o.kind IN ('delete_sites', 'restore_drill')
               AND t.status <> 'pending' AND t.site_id IN ({})",
            self.store.json_strings("$1")
        )))
        .bind(json_list(sites.iter().map(ToString::to_string)))
        .fetch_all(self.store.pool())
        .await?;
        rows.iter()
            .map(|site| parse_id("site_id", site).map_err(Into::into))
            .collect()
    }

    pub async fn targets(
        &self,
        operation_id: OperationId,
    ) -> Result<Vec<TargetRecord>, OrchestratorError> {
        let rows = sqlx::query(
            "SELECT * FROM operation_targets WHERE operation_id = $1 ORDER BY position",
        )
        .bind(operation_id.to_string())
        .fetch_all(self.store.pool())
        .await?;
        rows.iter().map(target_from_row).collect()
    }

    /// Sets the status of the targets at `positions`, with per-target fingerprints when
    /// given (recorded before any change).
    pub async fn set_status(
        &self,
        claim: Claim,
        positions: &[i64],
        status: TargetStatus,
        fingerprints: Option<&BTreeMap<i64, BTreeMap<String, String>>>,
        now: i64,
    ) -> Result<(), OrchestratorError> {
        let operation_id = claim.operation_id;
        let mut tx = self.store.begin_write().await?;
        self.fence(&mut tx, claim, now).await?;
        if let Some(fingerprints) = fingerprints {
            for (position, prints) in fingerprints {
                let json = serde_json::to_string(prints)
                    .map_err(|error| corrupt("targets", error.to_string()))?;
                sqlx::query("UPDATE operation_targets SET fingerprints = $3 WHERE operation_id = $1 AND position = $2")
                    .bind(operation_id.to_string())
                    .bind(*position)
                    .bind(json)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let changed = matches!(
            status,
            TargetStatus::Deleted | TargetStatus::CatalogRestored
        );
        let done = matches!(status, TargetStatus::Verified | TargetStatus::Reverted);
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE operation_targets SET status = $2, error = NULL, update_time = $3,
                    changed_time = CASE WHEN $5 = 1 THEN COALESCE(changed_time, $3) ELSE changed_time END,
                    done_time = CASE WHEN $6 = 1 THEN $3 ELSE done_time END
             WHERE operation_id = $1 AND CAST(position AS TEXT) IN ({})",
            self.store.json_strings("$4")
        )))
        .bind(operation_id.to_string())
        .bind(status.as_str())
        .bind(now)
        .bind(json_list(positions.iter().map(ToString::to_string)))
        .bind(i64::from(changed))
        .bind(i64::from(done))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_error(
        &self,
        claim: Claim,
        position: i64,
        error: &str,
        now: i64,
    ) -> Result<(), OrchestratorError> {
        let mut tx = self.store.begin_write().await?;
        self.fence(&mut tx, claim, now).await?;
        sqlx::query(
            "UPDATE operation_targets SET error = $3 WHERE operation_id = $1 AND position = $2",
        )
        .bind(claim.operation_id.to_string())
        .bind(position)
        .bind(error.to_owned())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a lifecycle call of a wave; a second record of the same step is ignored.
    pub async fn log_step(
        &self,
        claim: Claim,
        step: &StepRecord,
        now: i64,
    ) -> Result<(), OrchestratorError> {
        let operation_id = claim.operation_id;
        let mut tx = self.store.begin_write().await?;
        self.fence(&mut tx, claim, now).await?;
        sqlx::query(
            "INSERT INTO operation_steps (operation_id, wave, service, action, targets, rows_affected, step_time, start_time)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (operation_id, wave, service, action) DO NOTHING",
        )
        .bind(operation_id.to_string())
        .bind(step.wave)
        .bind(step.service.clone())
        .bind(step.action.clone())
        .bind(step.targets)
        .bind(step.rows_affected)
        .bind(now)
        .bind(step.start_time)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn steps(
        &self,
        operation_id: OperationId,
    ) -> Result<Vec<StepRecord>, OrchestratorError> {
        let rows = sqlx::query(
            "SELECT wave, service, action, targets, rows_affected, start_time, step_time FROM operation_steps
             WHERE operation_id = $1 ORDER BY step_time, wave, service",
        )
        .bind(operation_id.to_string())
        .fetch_all(self.store.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StepRecord {
                    wave: row.try_get("wave")?,
                    service: row.try_get("service")?,
                    action: row.try_get("action")?,
                    targets: row.try_get("targets")?,
                    rows_affected: row.try_get("rows_affected")?,
                    start_time: row.try_get("start_time")?,
                    step_time: row.try_get("step_time")?,
                })
            })
            .collect()
    }

    /// Names each target's scratch site and marks it copying, in one transaction: a
    /// resumed drill copies into the same scratch sites.
    pub async fn set_scratch(
        &self,
        claim: Claim,
        scratch: &[(i64, SiteId)],
        now: i64,
    ) -> Result<(), OrchestratorError> {
        let mut tx = self.store.begin_write().await?;
        self.fence(&mut tx, claim, now).await?;
        for (position, site) in scratch {
            sqlx::query(
                "UPDATE operation_targets SET scratch_site_id = $3, status = 'copying', update_time = $4
                 WHERE operation_id = $1 AND position = $2 AND status = 'pending'",
            )
            .bind(claim.operation_id.to_string())
            .bind(*position)
            .bind(site.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records how far the canary's rehearsal has come: its start with `Restoring`, its
    /// end with `Done`.
    pub async fn set_rehearsal(
        &self,
        claim: Claim,
        state: RehearsalState,
        now: i64,
    ) -> Result<(), OrchestratorError> {
        let mut tx = self.store.begin_write().await?;
        self.fence(&mut tx, claim, now).await?;
        sqlx::query(
            "UPDATE operations SET rehearsal_state = $2,
                    rehearsal_start = COALESCE(rehearsal_start, $3),
                    rehearsal_end = CASE WHEN $2 = 'done' THEN $3 ELSE rehearsal_end END
             WHERE operation_id = $1",
        )
        .bind(claim.operation_id.to_string())
        .bind(state.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes `site_id`'s hold-change slot for `change` until `expire_time`; refused while
    /// another change holds it and has not lapsed at `now`.
    pub async fn begin_hold_change(
        &self,
        site_id: SiteId,
        change: OperationId,
        now: i64,
        expire_time: i64,
    ) -> Result<(), OrchestratorError> {
        let taken = sqlx::query(
            "INSERT INTO hold_changes (site_id, change_id, expire_time) VALUES ($1, $2, $3)
             ON CONFLICT (site_id) DO UPDATE
                 SET change_id = excluded.change_id, expire_time = excluded.expire_time
                 WHERE hold_changes.expire_time <= $4",
        )
        .bind(site_id.to_string())
        .bind(change.to_string())
        .bind(expire_time)
        .bind(now)
        .execute(self.store.pool())
        .await?
        .rows_affected()
            == 1;
        if taken {
            return Ok(());
        }
        let until: Option<i64> =
            sqlx::query_scalar("SELECT expire_time FROM hold_changes WHERE site_id = $1")
                .bind(site_id.to_string())
                .fetch_optional(self.store.pool())
                .await?;
        Err(OrchestratorError::HoldChangeInFlight {
            site_id,
            until: rfc3339(until.unwrap_or(now)),
        })
    }

    /// Gives back the slot [`Self::begin_hold_change`] took.
    pub async fn end_hold_change(
        &self,
        site_id: SiteId,
        change: OperationId,
    ) -> Result<(), OrchestratorError> {
        sqlx::query("DELETE FROM hold_changes WHERE site_id = $1 AND change_id = $2")
            .bind(site_id.to_string())
            .bind(change.to_string())
            .execute(self.store.pool())
            .await?;
        Ok(())
    }

    /// Records a hold set (or cleared) through the orchestrator.
    pub async fn record_hold(&self, hold: &HoldRecord) -> Result<(), OrchestratorError> {
        sqlx::query(
            "INSERT INTO site_holds (site_id, held, reason, ticket, principal, update_time)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (site_id) DO UPDATE SET held = excluded.held, reason = excluded.reason,
                 ticket = excluded.ticket, principal = excluded.principal, update_time = excluded.update_time",
        )
        .bind(hold.site_id.to_string())
        .bind(i64::from(hold.held))
        .bind(hold.reason.clone())
        .bind(hold.ticket.clone())
        .bind(hold.principal.clone())
        .bind(hold.update_time)
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    /// Sites held through the orchestrator, newest change first, from the one before
    /// `before` (`update_time:site_id`).
    pub async fn holds(
        &self,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<HoldRecord>, OrchestratorError> {
        let (time, site) = match before.and_then(|key| key.split_once(':')) {
            Some((time, site)) => (time.parse::<i64>().unwrap_or(i64::MAX), site.to_owned()),
            None => (i64::MAX, String::new()),
        };
        let rows = sqlx::query(
            "SELECT * FROM site_holds WHERE held = 1
               AND (update_time < $1 OR (update_time = $1 AND site_id < $2) OR $2 = '')
             ORDER BY update_time DESC, site_id DESC LIMIT $3",
        )
        .bind(time)
        .bind(site)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.store.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let site_id: String = row.try_get("site_id")?;
                Ok(HoldRecord {
                    site_id: parse_id("site_id", &site_id)?,
                    held: row.try_get::<i64, _>("held")? != 0,
                    reason: row.try_get("reason")?,
                    ticket: row.try_get("ticket")?,
                    principal: row.try_get("principal")?,
                    update_time: row.try_get("update_time")?,
                })
            })
            .collect()
    }

    /// The fingerprints recorded per site by a deleting operation, for restore checks.
    pub async fn recorded_fingerprints(
        &self,
        operation_id: OperationId,
        sites: &[SiteId],
    ) -> Result<BTreeMap<SiteId, BTreeMap<String, String>>, OrchestratorError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT * FROM operation_targets
             WHERE operation_id = $1 AND app_installation_id IS NULL AND site_id IN ({})",
            self.store.json_strings("$2")
        )))
        .bind(operation_id.to_string())
        .bind(json_list(sites.iter().map(ToString::to_string)))
        .fetch_all(self.store.pool())
        .await?;
        rows.iter()
            .map(|row| target_from_row(row).map(|target| (target.site_id, target.fingerprints)))
            .collect()
    }

    /// Whether `operation_id` had any site among its targets (so recorded fingerprints
    /// at deletion for them).
    pub async fn has_site_targets(
        &self,
        operation_id: OperationId,
    ) -> Result<bool, OrchestratorError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM operation_targets
             WHERE operation_id = $1 AND app_installation_id IS NULL LIMIT 1",
        )
        .bind(operation_id.to_string())
        .fetch_optional(self.store.pool())
        .await?;
        Ok(found.is_some())
    }

    /// The targets of one wave of an operation, in order.
    pub async fn wave_targets(
        &self,
        operation_id: OperationId,
        wave: i64,
    ) -> Result<Vec<TargetRecord>, OrchestratorError> {
        let rows = sqlx::query(
            "SELECT * FROM operation_targets WHERE operation_id = $1 AND wave = $2 ORDER BY position",
        )
        .bind(operation_id.to_string())
        .bind(wave)
        .fetch_all(self.store.pool())
        .await?;
        rows.iter().map(target_from_row).collect()
    }

    /// Every operation not finished yet (running, paused, halted or aborting), for the
    /// gauges.
    pub async fn open_operations(&self) -> Result<Vec<OperationRecord>, OrchestratorError> {
        let rows = sqlx::query(
            "SELECT * FROM operations WHERE state IN ('running', 'paused', 'halted', 'aborting')
             ORDER BY operation_id",
        )
        .fetch_all(self.store.pool())
        .await?;
        rows.iter().map(operation_from_row).collect()
    }
}

fn undo_column(source: Option<RestoreSource>) -> Option<String> {
    source
        .and_then(RestoreSource::undo)
        .map(|operation_id| operation_id.to_string())
}

fn restore_source_from_row(
    row: &AnyRow,
    table: &'static str,
) -> Result<Option<RestoreSource>, OrchestratorError> {
    let undo = row
        .try_get::<Option<String>, _>("undo_operation_id")?
        .map(|id| parse_id("undo_operation_id", &id))
        .transpose()?;
    RestoreSource::from_columns(undo, row.try_get("point_in_time")?)
        .map_err(|problem| corrupt(table, problem.to_owned()))
}

fn plan_from_row(row: &AnyRow) -> Result<PlanRecord, OrchestratorError> {
    let kind: String = row.try_get("kind")?;
    let state: String = row.try_get("state")?;
    let body: String = row.try_get("body")?;
    let plan_id: String = row.try_get("plan_id")?;
    Ok(PlanRecord {
        plan_id: parse_id("plan_id", &plan_id)?,
        kind: PlanKind::parse(&kind)
            .ok_or_else(|| corrupt("plans", format!("unknown plan kind {kind}")))?,
        state: PlanState::parse(&state)
            .ok_or_else(|| corrupt("plans", format!("unknown plan state {state}")))?,
        fingerprint: row.try_get("fingerprint")?,
        requested_by: row.try_get("requested_by")?,
        approved_by: row.try_get("approved_by")?,
        requires_approval: row.try_get::<i64, _>("requires_approval")? != 0,
        reason: row.try_get("reason")?,
        ticket: row.try_get("ticket")?,
        restore_source: restore_source_from_row(row, "plans")?,
        body: serde_json::from_str(&body).map_err(|error| corrupt("plans", error.to_string()))?,
        create_time: row.try_get("create_time")?,
        expire_time: row.try_get("expire_time")?,
        operation_id: row
            .try_get::<Option<String>, _>("operation_id")?
            .map(|id| parse_id("operation_id", &id))
            .transpose()?,
    })
}

fn operation_from_row(row: &AnyRow) -> Result<OperationRecord, OrchestratorError> {
    let kind: String = row.try_get("kind")?;
    let state: String = row.try_get("state")?;
    let operation_id: String = row.try_get("operation_id")?;
    let revert: Option<String> = row.try_get("revert_operation_id")?;
    let rehearsal: Option<String> = row.try_get("rehearsal_operation_id")?;
    let rehearsal_state: Option<String> = row.try_get("rehearsal_state")?;
    Ok(OperationRecord {
        operation_id: parse_id("operation_id", &operation_id)?,
        plan_id: parse_id("plan_id", &row.try_get::<String, _>("plan_id")?)?,
        kind: PlanKind::parse(&kind)
            .ok_or_else(|| corrupt("operations", format!("unknown plan kind {kind}")))?,
        state: OperationState::parse(&state)
            .ok_or_else(|| corrupt("operations", format!("unknown operation state {state}")))?,
        restore_source: restore_source_from_row(row, "operations")?,
        requested_by: row.try_get("requested_by")?,
        approved_by: row.try_get("approved_by")?,
        reason: row.try_get("reason")?,
        ticket: row.try_get("ticket")?,
        waves: row.try_get("waves")?,
        halt_reason: row.try_get("halt_reason")?,
        revert_operation_id: revert
            .map(|id| parse_id("revert_operation_id", &id))
            .transpose()?,
        abort_requested: row.try_get::<i64, _>("abort_requested")? != 0,
        on_copies: row.try_get::<i64, _>("on_copies")? != 0,
        rehearsal: Rehearsal {
            operation_id: rehearsal
                .map(|id| parse_id("rehearsal_operation_id", &id))
                .transpose()?,
            state: rehearsal_state
                .map(|state| {
                    RehearsalState::parse(&state).ok_or_else(|| {
                        corrupt("operations", format!("unknown rehearsal state {state}"))
                    })
                })
                .transpose()?,
            start_time: row.try_get("rehearsal_start")?,
            end_time: row.try_get("rehearsal_end")?,
        },
        create_time: row.try_get("create_time")?,
        update_time: row.try_get("update_time")?,
        finish_time: row.try_get("finish_time")?,
    })
}

fn target_from_row(row: &AnyRow) -> Result<TargetRecord, OrchestratorError> {
    let site_id: String = row.try_get("site_id")?;
    let app: Option<String> = row.try_get("app_installation_id")?;
    let status: String = row.try_get("status")?;
    let fingerprints: Option<String> = row.try_get("fingerprints")?;
    Ok(TargetRecord {
        position: row.try_get("position")?,
        site_id: parse_id("site_id", &site_id)?,
        app_installation_id: app
            .map(|id| parse_id("app_installation_id", &id))
            .transpose()?,
        site_name: row.try_get("site_name")?,
        site_url: row.try_get("site_url")?,
        wave: row.try_get("wave")?,
        status: TargetStatus::parse(&status)
            .ok_or_else(|| corrupt("targets", format!("unknown target status {status}")))?,
        fingerprints: fingerprints
            .map(|json| serde_json::from_str(&json))
            .transpose()
            .map_err(|error| corrupt("targets", error.to_string()))?
            .unwrap_or_default(),
        error: row.try_get("error")?,
        changed_time: row.try_get("changed_time")?,
        done_time: row.try_get("done_time")?,
        scratch_site_id: row
            .try_get::<Option<String>, _>("scratch_site_id")?
            .map(|id| parse_id("scratch_site_id", &id))
            .transpose()?,
    })
}

/// Why leasing failed.
enum LeaseError {
    Busy(OrchestratorError),
    /// A concurrent lease won the race; who holds what is read again afterwards.
    Conflict,
    Other(OrchestratorError),
}

/// `SITES_BUSY` naming the first holder and the sites it holds, if any are held.
fn busy_error(held: Vec<(String, String)>) -> Option<OrchestratorError> {
    let holder = held.first()?.1.clone();
    let sites = held
        .into_iter()
        .filter(|(_, operation)| *operation == holder)
        .map(|(site, _)| site)
        .collect();
    Some(OrchestratorError::SitesBusy { holder, sites })
}
