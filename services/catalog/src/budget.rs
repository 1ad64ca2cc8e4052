//! Deletion budgets at the source: whoever calls, the catalog refuses site deletions
//! beyond a small hourly rate unless they belong to an operation registered with an
//! approved budget, which is never exceeded. Checked inside the soft-delete transaction,
//! so a refused or validate-only call consumes nothing.

use std::time::Duration;

use micros_platform::{
    clock::SharedClock,
    ids::SiteId,
    lifecycle::{LifecycleHooks, LifecycleRequest, Refusal},
    store::unix_micros,
};
use sqlx::{AnyConnection, Row};
use tonic::Code;

/// The window of the unbudgeted rate.
const WINDOW: Duration = Duration::from_secs(3600);

pub struct DeletionBudgets {
    pub rate_per_hour: u32,
    pub clock: SharedClock,
}

fn store_failure(error: sqlx::Error) -> Refusal {
    tracing::error!(%error, "deletion budget check failed");
    Refusal {
        code: Code::Internal,
        reason: "STORE_FAILURE",
        domain: "micros.catalog",
        message: "the deletion budget could not be checked".to_owned(),
        metadata: Vec::new(),
    }
}

#[tonic::async_trait]
impl LifecycleHooks for DeletionBudgets {
    async fn before_site_soft_delete(
        &self,
        connection: &mut AnyConnection,
        sites: &[SiteId],
        request: &LifecycleRequest,
    ) -> Result<(), Refusal> {
        // The lifecycle passes only the sites this call takes down: one a wave of the
        // same operation already deleted is accepted again and must not count twice.
        let requested = i64::try_from(sites.len()).unwrap_or(i64::MAX);
        let operation_id = request.operation_id.to_string();
        let budget =
            sqlx::query("SELECT sites, sites_used FROM deletion_budgets WHERE operation_id = $1")
                .bind(operation_id.clone())
                .fetch_optional(&mut *connection)
                .await
                .map_err(store_failure)?;
        if let Some(budget) = budget {
            let sites: i64 = budget.try_get("sites").map_err(store_failure)?;
            let used: i64 = budget.try_get("sites_used").map_err(store_failure)?;
            if used + requested > sites {
                return Err(Refusal {
                    code: Code::FailedPrecondition,
                    reason: "DELETION_BUDGET_EXCEEDED",
                    domain: "micros.catalog",
                    message: format!(
                        "operation {operation_id} may delete {sites} sites; {used} are deleted and \
                         {requested} more were asked for"
                    ),
                    metadata: vec![
                        ("operation_id", operation_id),
                        ("budget_sites", sites.to_string()),
                        ("used_sites", used.to_string()),
                        ("requested_sites", requested.to_string()),
                    ],
                });
            }
            sqlx::query(
                "UPDATE deletion_budgets SET sites_used = sites_used + $2 WHERE operation_id = $1",
            )
            .bind(operation_id)
            .bind(requested)
            .execute(&mut *connection)
            .await
            .map_err(store_failure)?;
            return Ok(());
        }

        let now = unix_micros(self.clock.now());
        let since = now - i64::try_from(WINDOW.as_micros()).unwrap_or(i64::MAX);
        let recent: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(sites), 0) AS BIGINT) FROM unbudgeted_deletions WHERE delete_time > $1",
        )
        .bind(since)
        .fetch_one(&mut *connection)
        .await
        .map_err(store_failure)?;
        let limit = i64::from(self.rate_per_hour);
        if recent + requested > limit {
            return Err(Refusal {
                code: Code::FailedPrecondition,
                reason: "DELETION_RATE_EXCEEDED",
                domain: "micros.catalog",
                message: format!(
                    "at most {limit} sites may be deleted per hour without an approved operation; \
                     {recent} were deleted in the last hour and {requested} more were asked for. \
                     Plan the deletion with the orchestrator to get a budget"
                ),
                metadata: vec![
                    ("limit_per_hour", limit.to_string()),
                    ("deleted_last_hour", recent.to_string()),
                    ("requested_sites", requested.to_string()),
                    ("operation_id", operation_id),
                ],
            });
        }
        sqlx::query("INSERT INTO unbudgeted_deletions (operation_id, delete_time, sites) VALUES ($1, $2, $3)")
            .bind(operation_id)
            .bind(now)
            .bind(requested)
            .execute(&mut *connection)
            .await
            .map_err(store_failure)?;
        Ok(())
    }
}
