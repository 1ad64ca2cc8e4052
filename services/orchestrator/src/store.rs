//! The orchestrator's SQL, all of it: plans, operations, targets and the step log.

use std::collections::BTreeMap;

use micros_platform::{
    error::parse_id,
    ids::{AppInstallationId, OperationId, PlanId, SiteId},
    lifecycle::{LifecycleError, registry::json_list},
    store::Store,
};
use serde::{Deserialize, Serialize};
use sqlx::{Row, any::AnyRow};

use crate::{
    error::OrchestratorError,
    model::{OperationState, PlanKind, PlanState, TargetStatus},
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
    pub undo_operation_id: Option<OperationId>,
    pub point_in_time: Option<i64>,
    pub body: PlanBody,
    pub create_time: i64,
    pub expire_time: i64,
    pub operation_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct OperationRecord {
    pub operation_id: OperationId,
    pub plan_id: String,
    pub kind: PlanKind,
    pub state: OperationState,
    pub undo_operation_id: Option<OperationId>,
    pub point_in_time: Option<i64>,
    pub requested_by: String,
    pub approved_by: Option<String>,
    pub reason: String,
    pub ticket: String,
    pub waves: i64,
    pub halt_reason: Option<String>,
    pub revert_operation_id: Option<OperationId>,
    pub create_time: i64,
    pub update_time: i64,
    pub finish_time: Option<i64>,
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
}

#[derive(Debug, Clone)]
pub struct StepRecord {
    pub wave: i64,
    pub service: String,
    pub action: String,
    pub targets: i64,
    pub rows_affected: i64,
}

#[derive(Clone)]
pub struct OrchestratorStore {
    store: Store,
}

fn misuse(message: String) -> OrchestratorError {
    OrchestratorError::Platform(LifecycleError::Misuse(message))
}

impl OrchestratorStore {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    pub async fn insert_plan(&self, plan: &PlanRecord) -> Result<(), OrchestratorError> {
        let body = serde_json::to_string(&plan.body).map_err(|error| misuse(error.to_string()))?;
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
        .bind(plan.undo_operation_id.map(|id| id.to_string()))
        .bind(plan.point_in_time)
        .bind(body)
        .bind(plan.create_time)
        .bind(plan.expire_time)
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    pub async fn plan(&self, plan_id: &str) -> Result<PlanRecord, OrchestratorError> {
        let row = sqlx::query("SELECT * FROM plans WHERE plan_id = $1")
            .bind(plan_id.to_owned())
            .fetch_optional(self.store.pool())
            .await?
            .ok_or_else(|| OrchestratorError::PlanNotFound {
                plan_id: plan_id.to_owned(),
            })?;
        plan_from_row(&row)
    }

    pub async fn approve_plan(
        &self,
        plan_id: &str,
        approver: &str,
    ) -> Result<(), OrchestratorError> {
        sqlx::query("UPDATE plans SET state = 'approved', approved_by = $2 WHERE plan_id = $1 AND state = 'pending'")
            .bind(plan_id.to_owned())
            .bind(approver.to_owned())
            .execute(self.store.pool())
            .await?;
        Ok(())
    }

    /// Marks the plan applied and creates its operation and targets, in one transaction;
    /// a plan applied concurrently by someone else makes this fail.
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
            let current = self.plan(&plan.plan_id.to_string()).await?;
            return Err(OrchestratorError::AlreadyApplied {
                plan_id: plan.plan_id.to_string(),
                operation_id: current.operation_id.unwrap_or_default(),
            });
        }
        sqlx::query(
            "INSERT INTO operations (operation_id, plan_id, kind, state, undo_operation_id, point_in_time,
                                     requested_by, approved_by, reason, ticket, waves, create_time, update_time,
                                     revert_operation_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13)",
        )
        .bind(operation.operation_id.to_string())
        .bind(operation.plan_id.clone())
        .bind(operation.kind.as_str())
        .bind(operation.state.as_str())
        .bind(operation.undo_operation_id.map(|id| id.to_string()))
        .bind(operation.point_in_time)
        .bind(operation.requested_by.clone())
        .bind(operation.approved_by.clone())
        .bind(operation.reason.clone())
        .bind(operation.ticket.clone())
        .bind(operation.waves)
        .bind(operation.create_time)
        .bind(operation.revert_operation_id.map(|id| id.to_string()))
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

    pub async fn operation(
        &self,
        operation_id: &str,
    ) -> Result<OperationRecord, OrchestratorError> {
        let row = sqlx::query("SELECT * FROM operations WHERE operation_id = $1")
            .bind(operation_id.to_owned())
            .fetch_optional(self.store.pool())
            .await?
            .ok_or_else(|| OrchestratorError::OperationNotFound {
                operation_id: operation_id.to_owned(),
            })?;
        operation_from_row(&row)
    }

    pub async fn operations(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<OperationRecord>, OrchestratorError> {
        let rows = sqlx::query(
            "SELECT * FROM operations WHERE operation_id > $1 ORDER BY operation_id LIMIT $2",
        )
        .bind(after.unwrap_or("").to_owned())
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

    /// Operations the executor should be driving (after a restart, too).
    pub async fn unfinished(&self) -> Result<Vec<OperationId>, OrchestratorError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT operation_id FROM operations WHERE state IN ('running', 'aborting')",
        )
        .fetch_all(self.store.pool())
        .await?;
        rows.iter()
            .map(|id| parse_id("operation_id", id).map_err(Into::into))
            .collect()
    }

    /// Moves the operation from `from` to `to` if it is still in `from`.
    pub async fn transition(
        &self,
        operation_id: OperationId,
        from: OperationState,
        to: OperationState,
        halt_reason: Option<&str>,
        now: i64,
    ) -> Result<bool, OrchestratorError> {
        let finish = to.is_final().then_some(now);
        let changed = sqlx::query(
            "UPDATE operations SET state = $3, halt_reason = COALESCE($4, halt_reason), update_time = $5,
                                   finish_time = COALESCE($6, finish_time)
             WHERE operation_id = $1 AND state = $2",
        )
        .bind(operation_id.to_string())
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(halt_reason.map(str::to_owned))
        .bind(now)
        .bind(finish)
        .execute(self.store.pool())
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// Starts aborting: records the operation that will undo this one, once.
    pub async fn begin_abort(
        &self,
        operation_id: OperationId,
        from: OperationState,
        revert: OperationId,
        now: i64,
    ) -> Result<bool, OrchestratorError> {
        let changed = sqlx::query(
            "UPDATE operations SET state = 'aborting', update_time = $3,
                                   revert_operation_id = COALESCE(revert_operation_id, $4)
             WHERE operation_id = $1 AND state = $2",
        )
        .bind(operation_id.to_string())
        .bind(from.as_str())
        .bind(now)
        .bind(revert.to_string())
        .execute(self.store.pool())
        .await?
        .rows_affected();
        Ok(changed == 1)
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
        operation_id: OperationId,
        positions: &[i64],
        status: TargetStatus,
        fingerprints: Option<&BTreeMap<i64, BTreeMap<String, String>>>,
        now: i64,
    ) -> Result<(), OrchestratorError> {
        let mut tx = self.store.begin_write().await?;
        if let Some(fingerprints) = fingerprints {
            for (position, prints) in fingerprints {
                let json =
                    serde_json::to_string(prints).map_err(|error| misuse(error.to_string()))?;
                sqlx::query("UPDATE operation_targets SET fingerprints = $3 WHERE operation_id = $1 AND position = $2")
                    .bind(operation_id.to_string())
                    .bind(*position)
                    .bind(json)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE operation_targets SET status = $2, error = NULL, update_time = $3
             WHERE operation_id = $1 AND CAST(position AS TEXT) IN ({})",
            self.store.json_strings("$4")
        )))
        .bind(operation_id.to_string())
        .bind(status.as_str())
        .bind(now)
        .bind(json_list(positions.iter().map(ToString::to_string)))
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE operations SET update_time = $2 WHERE operation_id = $1")
            .bind(operation_id.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_error(
        &self,
        operation_id: OperationId,
        position: i64,
        error: &str,
    ) -> Result<(), OrchestratorError> {
        sqlx::query(
            "UPDATE operation_targets SET error = $3 WHERE operation_id = $1 AND position = $2",
        )
        .bind(operation_id.to_string())
        .bind(position)
        .bind(error.to_owned())
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    /// Records a lifecycle call of a wave; a second record of the same step is ignored.
    pub async fn log_step(
        &self,
        operation_id: OperationId,
        step: &StepRecord,
        now: i64,
    ) -> Result<(), OrchestratorError> {
        sqlx::query(
            "INSERT INTO operation_steps (operation_id, wave, service, action, targets, rows_affected, step_time)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (operation_id, wave, service, action) DO NOTHING",
        )
        .bind(operation_id.to_string())
        .bind(step.wave)
        .bind(step.service.clone())
        .bind(step.action.clone())
        .bind(step.targets)
        .bind(step.rows_affected)
        .bind(now)
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    pub async fn steps(
        &self,
        operation_id: OperationId,
    ) -> Result<Vec<StepRecord>, OrchestratorError> {
        let rows = sqlx::query(
            "SELECT wave, service, action, targets, rows_affected FROM operation_steps
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
                })
            })
            .collect()
    }

    /// The fingerprints recorded per site by a deleting operation, for restore checks.
    pub async fn recorded_fingerprints(
        &self,
        operation_id: OperationId,
    ) -> Result<BTreeMap<SiteId, BTreeMap<String, String>>, OrchestratorError> {
        Ok(self
            .targets(operation_id)
            .await?
            .into_iter()
            .filter(|target| target.app_installation_id.is_none())
            .map(|target| (target.site_id, target.fingerprints))
            .collect())
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

fn plan_from_row(row: &AnyRow) -> Result<PlanRecord, OrchestratorError> {
    let kind: String = row.try_get("kind")?;
    let state: String = row.try_get("state")?;
    let body: String = row.try_get("body")?;
    let undo: Option<String> = row.try_get("undo_operation_id")?;
    let plan_id: String = row.try_get("plan_id")?;
    Ok(PlanRecord {
        plan_id: parse_id("plan_id", &plan_id)?,
        kind: PlanKind::parse(&kind).ok_or_else(|| misuse(format!("unknown plan kind {kind}")))?,
        state: PlanState::parse(&state)
            .ok_or_else(|| misuse(format!("unknown plan state {state}")))?,
        fingerprint: row.try_get("fingerprint")?,
        requested_by: row.try_get("requested_by")?,
        approved_by: row.try_get("approved_by")?,
        requires_approval: row.try_get::<i64, _>("requires_approval")? != 0,
        reason: row.try_get("reason")?,
        ticket: row.try_get("ticket")?,
        undo_operation_id: undo
            .map(|id| parse_id("undo_operation_id", &id))
            .transpose()?,
        point_in_time: row.try_get("point_in_time")?,
        body: serde_json::from_str(&body).map_err(|error| misuse(error.to_string()))?,
        create_time: row.try_get("create_time")?,
        expire_time: row.try_get("expire_time")?,
        operation_id: row.try_get("operation_id")?,
    })
}

fn operation_from_row(row: &AnyRow) -> Result<OperationRecord, OrchestratorError> {
    let kind: String = row.try_get("kind")?;
    let state: String = row.try_get("state")?;
    let operation_id: String = row.try_get("operation_id")?;
    let undo: Option<String> = row.try_get("undo_operation_id")?;
    let revert: Option<String> = row.try_get("revert_operation_id")?;
    Ok(OperationRecord {
        operation_id: parse_id("operation_id", &operation_id)?,
        plan_id: row.try_get("plan_id")?,
        kind: PlanKind::parse(&kind).ok_or_else(|| misuse(format!("unknown plan kind {kind}")))?,
        state: OperationState::parse(&state)
            .ok_or_else(|| misuse(format!("unknown operation state {state}")))?,
        undo_operation_id: undo
            .map(|id| parse_id("undo_operation_id", &id))
            .transpose()?,
        point_in_time: row.try_get("point_in_time")?,
        requested_by: row.try_get("requested_by")?,
        approved_by: row.try_get("approved_by")?,
        reason: row.try_get("reason")?,
        ticket: row.try_get("ticket")?,
        waves: row.try_get("waves")?,
        halt_reason: row.try_get("halt_reason")?,
        revert_operation_id: revert
            .map(|id| parse_id("revert_operation_id", &id))
            .transpose()?,
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
            .ok_or_else(|| misuse(format!("unknown target status {status}")))?,
        fingerprints: fingerprints
            .map(|json| serde_json::from_str(&json))
            .transpose()
            .map_err(|error| misuse(error.to_string()))?
            .unwrap_or_default(),
        error: row.try_get("error")?,
    })
}
