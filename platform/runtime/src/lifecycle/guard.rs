//! The deletion guard, in every service's lifecycle: a soft delete takes down at most
//! `lifecycle.free_deletions_per_hour` customer targets per rolling hour in a database,
//! unless its operation carries a grant (see [`crate::auth::grant`]); then at most the
//! granted number, counted over the whole operation.
//!
//! A target counts once per operation (`lifecycle_deletions` keys on both): a rollback
//! rehearsal that deletes its canary again, or a retried wave, spends nothing more.
//! Scratch copies are not customers and never count. The check and the record happen in
//! the soft delete's own transaction, after the ledger is locked (an advisory lock on
//! PostgreSQL; SQLite's write transactions are serial already), so parallel calls cannot
//! each read a count that the other is about to raise.
//!
//! The shards of a sharded service share one ledger, the first shard's: a call spanning
//! shards is admitted as a whole there before any shard changes (so a refusal changes
//! nothing anywhere), and each shard's own check then finds its targets counted. A shard
//! whose delete fails after the admission leaves them counted: the guard errs on the
//! side of fewer deletions.

use sqlx::AnyConnection;

use super::{
    Lifecycle, LifecycleError,
    model::{LifecycleRequest, Target, TenantState},
    registry::{self, Registry},
};
use crate::{ids::SiteId, store::Backend, store::json_list};

/// Serializes guarded soft deletes within one PostgreSQL database.
const LEDGER_LOCK: i64 = 0x6d69_6372_6f73_6764;

/// The rolling window of the free rate.
const WINDOW_MICROS: i64 = 3600 * 1_000_000;

/// What of `targets` a soft delete would take from customers, as `Target::key`s: active
/// sites and app installations on them, not what the database never held, what is
/// already deleted, nor scratch copies.
pub(crate) fn customer_targets(registry: &Registry, targets: &[Target]) -> Vec<String> {
    let customer = |site_id: &SiteId| {
        registry
            .get(site_id)
            .is_some_and(|row| row.state == TenantState::Active && row.origin.is_none())
    };
    targets
        .iter()
        .filter(|target| customer(&target.site_id()))
        .map(Target::key)
        .collect()
}

impl Lifecycle {
    /// Admits a soft delete spanning shards as a whole, in the ledger (this database),
    /// before any shard changes; a refusal is audited here.
    pub(crate) async fn admit_deletions(
        &self,
        targets: &[String],
        request: &LifecycleRequest,
    ) -> Result<(), LifecycleError> {
        let mut tx = self.store().begin_write().await?;
        let now = self.now();
        if let Err(error) = self.guard_deletions(&mut tx, targets, request, now).await {
            drop(tx);
            self.audit_refusal(super::Action::SoftDelete, request, &error)
                .await;
            return Err(error);
        }
        tx.commit().await?;
        Ok(())
    }

    /// The customer targets of `targets` in this database, as they are now.
    pub(crate) async fn customer_targets_now(
        &self,
        targets: &[Target],
    ) -> Result<Vec<String>, LifecycleError> {
        let sites: Vec<SiteId> = targets.iter().map(Target::site_id).collect();
        let mut connection = self.store().pool().acquire().await?;
        let registry = registry::load(self.store(), &mut connection, &sites).await?;
        Ok(customer_targets(&registry, targets))
    }

    /// Checks and records the customer targets (`Target::key`s) this call takes down, in
    /// the ledger: this database's, on `connection`, or the shared one in a transaction
    /// of its own.
    pub(crate) async fn guard_deletions(
        &self,
        connection: &mut AnyConnection,
        targets: &[String],
        request: &LifecycleRequest,
        now: i64,
    ) -> Result<(), LifecycleError> {
        if targets.is_empty() {
            return Ok(());
        }
        let Some(ledger) = &self.inner.ledger else {
            return self
                .check_and_record(connection, targets, request, now)
                .await;
        };
        let mut tx = ledger.begin_write().await?;
        self.check_and_record(&mut tx, targets, request, now)
            .await?;
        if !request.validate_only {
            tx.commit().await?;
        }
        Ok(())
    }

    async fn check_and_record(
        &self,
        connection: &mut AnyConnection,
        targets: &[String],
        request: &LifecycleRequest,
        now: i64,
    ) -> Result<(), LifecycleError> {
        if self.store().backend() == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(LEDGER_LOCK)
                .execute(&mut *connection)
                .await?;
        }
        let operation_id = request.operation_id.to_string();
        let list = json_list(targets.iter().cloned());
        let counted: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM lifecycle_deletions WHERE operation_id = $1 AND target IN ({})",
            self.store().json_strings("$2")
        )))
        .bind(operation_id.clone())
        .bind(list.clone())
        .fetch_one(&mut *connection)
        .await?;
        let requested = i64::try_from(targets.len()).unwrap_or(i64::MAX) - counted;
        if requested == 0 {
            // Taken down before by this operation (a rehearsal, a retried wave): it costs
            // nothing more, but what a grant allowed needs that grant again, so an
            // ended operation's ID cannot be replayed past the free rate.
            let granted_before: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM lifecycle_deletions
                 WHERE operation_id = $1 AND granted = 1 AND target IN ({})",
                self.store().json_strings("$2")
            )))
            .bind(operation_id.clone())
            .bind(list.clone())
            .fetch_one(&mut *connection)
            .await?;
            return match &request.grant {
                Some(grant) if grant.operation_id != operation_id => {
                    Err(LifecycleError::GrantForAnotherOperation {
                        operation_id: request.operation_id,
                        granted: grant.operation_id.clone(),
                    })
                }
                None if granted_before > 0 => Err(LifecycleError::DeletionGrantRequired {
                    operation_id: request.operation_id,
                    targets: granted_before,
                }),
                _ => Ok(()),
            };
        }

        let granted = match &request.grant {
            Some(grant) => {
                if grant.operation_id != operation_id {
                    return Err(LifecycleError::GrantForAnotherOperation {
                        operation_id: request.operation_id,
                        granted: grant.operation_id.clone(),
                    });
                }
                let used: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM lifecycle_deletions WHERE operation_id = $1",
                )
                .bind(operation_id.clone())
                .fetch_one(&mut *connection)
                .await?;
                if used + requested > i64::try_from(grant.targets).unwrap_or(i64::MAX) {
                    return Err(LifecycleError::DeletionGrantExceeded {
                        operation_id: request.operation_id,
                        granted: grant.targets,
                        used,
                        requested,
                        approved_by: grant.approved_by.clone(),
                    });
                }
                true
            }
            None => {
                let recent: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM lifecycle_deletions WHERE granted = 0 AND delete_time > $1",
                )
                .bind(now - WINDOW_MICROS)
                .fetch_one(&mut *connection)
                .await?;
                let limit = self.inner.config.free_deletions_per_hour;
                if recent + requested > i64::from(limit) {
                    return Err(LifecycleError::DeletionRateExceeded {
                        limit,
                        recent,
                        requested,
                    });
                }
                false
            }
        };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO lifecycle_deletions (operation_id, target, delete_time, granted)
             SELECT $1, value, $3, $4 FROM ({}) AS ids WHERE true
             ON CONFLICT (operation_id, target) DO NOTHING",
            self.store().json_strings("$2")
        )))
        .bind(operation_id)
        .bind(list)
        .bind(now)
        .bind(i32::from(granted))
        .execute(&mut *connection)
        .await?;
        Ok(())
    }
}
