//! Deletion budgets at the source: whoever calls, the catalog refuses site deletions
//! beyond a small hourly rate unless they belong to an operation registered with an
//! approved budget, which is never exceeded. Checked inside the soft-delete transaction,
//! so a refused or validate-only call consumes nothing.

use std::time::Duration;

use micros_platform::{
    clock::SharedClock,
    ids::SiteId,
    lifecycle::{LifecycleHooks, LifecycleRequest, Refusal, registry::json_list},
    store::{Backend, unix_micros},
};
use sqlx::{AnyConnection, Row};
use tonic::Code;

/// The window of the unbudgeted rate.
const WINDOW: Duration = Duration::from_secs(3600);

pub struct DeletionBudgets {
    pub rate_per_hour: u32,
    pub clock: SharedClock,
    pub backend: Backend,
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
        // The lifecycle passes only the sites this call takes down; of those, a site the
        // same operation took down before (and restored since: a rollback rehearsal)
        // counts once.
        let operation_id = request.operation_id.to_string();
        let list = json_list(sites.iter().map(ToString::to_string));
        let counted: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM deleted_sites WHERE operation_id = $1 AND site_id IN ({})",
            self.json_strings("$2")
        )))
        .bind(operation_id.clone())
        .bind(list.clone())
        .fetch_one(&mut *connection)
        .await
        .map_err(store_failure)?;
        let requested = i64::try_from(sites.len()).unwrap_or(i64::MAX) - counted;
        let now = unix_micros(self.clock.now());
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
            .bind(operation_id.clone())
            .bind(requested)
            .execute(&mut *connection)
            .await
            .map_err(store_failure)?;
            return self
                .count(connection, &operation_id, &list, now, true)
                .await;
        }

        let since = now - i64::try_from(WINDOW.as_micros()).unwrap_or(i64::MAX);
        let recent: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM deleted_sites WHERE budgeted = 0 AND delete_time > $1",
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
        self.count(connection, &operation_id, &list, now, false)
            .await
    }
}

impl DeletionBudgets {
    fn json_strings(&self, param: &str) -> String {
        self.backend.json_strings(param)
    }

    /// Records the sites as taken down by the operation (once each).
    async fn count(
        &self,
        connection: &mut AnyConnection,
        operation_id: &str,
        list: &str,
        now: i64,
        budgeted: bool,
    ) -> Result<(), Refusal> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO deleted_sites (operation_id, site_id, delete_time, budgeted)
             SELECT $1, value, $3, $4 FROM ({}) AS ids WHERE true
             ON CONFLICT (operation_id, site_id) DO NOTHING",
            self.json_strings("$2")
        )))
        .bind(operation_id.to_owned())
        .bind(list.to_owned())
        .bind(now)
        .bind(i64::from(budgeted))
        .execute(&mut *connection)
        .await
        .map_err(store_failure)?;
        Ok(())
    }
}
