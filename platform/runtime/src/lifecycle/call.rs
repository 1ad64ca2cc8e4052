//! The frame every destructive lifecycle call runs in: validation, idempotency by
//! operation ID, the registry lock, the lease fence, one transaction, the operation record
//! and the audit record (refusals are audited too).

use std::collections::BTreeSet;

use sqlx::{AnyConnection, Row};

use super::{
    Lifecycle, LifecycleError,
    model::{Action, LifecycleRequest, RestoreSource, Target, TargetOutcome},
    registry::{self, Registry},
};
use crate::{error::InvalidArgument, ids::SiteId, store::json_list};

/// The most targets one call may name.
pub const MAX_TARGETS: usize = 10_000;

pub(crate) fn sites_of(targets: &[Target]) -> Vec<SiteId> {
    targets
        .iter()
        .filter_map(|target| match target {
            Target::Site(site_id) => Some(*site_id),
            Target::AppInstallation { .. } => None,
        })
        .collect()
}

pub(crate) fn apps_of(targets: &[Target]) -> Vec<Target> {
    targets
        .iter()
        .filter(|target| matches!(target, Target::AppInstallation { .. }))
        .copied()
        .collect()
}

/// The site of every target (an app installation's site included).
pub(crate) fn touched_sites(targets: &[Target]) -> Vec<SiteId> {
    targets.iter().map(Target::site_id).collect()
}

pub(crate) fn validate_targets(targets: &[Target]) -> Result<(), LifecycleError> {
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

pub(crate) fn require_reason(request: &LifecycleRequest) -> Result<(), LifecycleError> {
    if request.justification.reason.trim().is_empty() {
        return Err(InvalidArgument::missing("justification.reason").into());
    }
    Ok(())
}

/// What a call applies inside [`Lifecycle::run`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    SoftDelete,
    Restore(RestoreSource),
    SetHold(bool),
}

impl Step {
    pub(crate) fn action(self) -> Action {
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

pub(crate) fn request_digest(action: Action, detail: &str, targets: &[Target]) -> String {
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

    /// Shared frame: validation, idempotency, the registry rows locked before anything is
    /// read, the lease fence, one transaction, the operation record and the audit record
    /// (refusals are audited too).
    async fn run(
        &self,
        step: Step,
        request: &LifecycleRequest,
    ) -> Result<Vec<TargetOutcome>, LifecycleError> {
        validate_targets(&request.targets)?;
        let action = step.action();
        let detail = match request.call_key.as_str() {
            "" => step.detail(),
            key => format!("{} key {key}", step.detail()),
        };
        let digest = request_digest(action, &detail, &request.targets);
        let mut tx = self.store().begin_write().await?;
        if let Some(previous) = self.recorded(&mut tx, action, &digest, request).await? {
            return Ok(previous);
        }
        let applied = async {
            let registry = self.lock_for(&mut tx, request).await?;
            match step {
                Step::SoftDelete => self.apply_soft_delete(&mut tx, &registry, request).await,
                Step::Restore(source) => {
                    self.apply_restore(&mut tx, &registry, request, source)
                        .await
                }
                Step::SetHold(hold) => self.apply_hold(&mut tx, &registry, request, hold).await,
            }
        }
        .await;
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
        crate::failpoint!("lifecycle::before_commit");
        tx.commit().await?;
        crate::failpoint!("lifecycle::after_commit");
        Ok(outcomes)
    }

    /// Locks the registry rows of every target's site and fences the call by its lease
    /// token; everything the call reads afterwards (states, fingerprints) is stable until
    /// it commits.
    pub(crate) async fn lock_for(
        &self,
        connection: &mut AnyConnection,
        request: &LifecycleRequest,
    ) -> Result<Registry, LifecycleError> {
        let sites = touched_sites(&request.targets);
        let registry = registry::lock(self.store(), connection, &sites).await?;
        if let Some(token) = request.lease_token {
            registry::fence(self.store(), connection, &sites, token).await?;
        }
        Ok(registry)
    }

    /// The stored answer of an earlier, identical call of the same operation. An
    /// operation may make several calls with different targets (waves), but only of one
    /// action: reusing its ID for another action is refused.
    pub(crate) async fn recorded(
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

    pub(crate) async fn record(
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
             (audit_time, operation_id, action, principal, reason, ticket, targets, outcome, call_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(self.now())
        .bind(request.operation_id.to_string())
        .bind(action.as_str())
        .bind(request.justification.principal.clone())
        .bind(request.justification.reason.clone())
        .bind(request.justification.ticket.clone())
        .bind(json_list(request.targets.iter().map(Target::key)))
        .bind(outcome.to_owned())
        .bind(request.call_key.clone())
        .execute(&mut *connection)
        .await?;
        Ok(())
    }

    /// Records a refused destructive call; a failure to record is logged, and the caller
    /// still gets the refusal.
    pub(crate) async fn audit_refusal(
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
