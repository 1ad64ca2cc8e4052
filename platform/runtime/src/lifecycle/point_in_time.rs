//! Point-in-time restore of tenant slices and pruning of the change log.
//!
//! The state of a row at T is the before-image of its first change after T, or the
//! current row if it has not changed since. Restoring sites to T therefore touches only
//! the keys changed after T, leaves every other tenant of the database alone, and logs
//! what it overwrites, so restoring to just before the restore undoes it.

use sqlx::AnyConnection;

use super::{Lifecycle, LifecycleError, registry::json_list, schema::TableSpec};
use crate::{error::InvalidArgument, ids::SiteId, store::rfc3339};

/// Returns `sites` to their state at `at` (unix µs), one set of statements per table.
pub(crate) async fn restore_to(
    lifecycle: &Lifecycle,
    connection: &mut AnyConnection,
    sites: &[SiteId],
    at: i64,
) -> Result<(), LifecycleError> {
    let now = lifecycle.now();
    if at > now {
        return Err(InvalidArgument::field(
            "point_in_time",
            "POINT_IN_TIME_IN_FUTURE",
            rfc3339(at),
            "is in the future",
        )
        .into());
    }
    let earliest = now.saturating_sub(lifecycle.retention_micros());
    if at < earliest {
        return Err(LifecycleError::PointInTimeTooOld {
            point_in_time: at,
            earliest,
        });
    }
    let horizon: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM tenant_changes")
        .fetch_one(&mut *connection)
        .await?;
    let site_list = json_list(sites.iter().map(ToString::to_string));
    let scope = Scope {
        lifecycle,
        site_list: &site_list,
        at,
        horizon,
        now,
    };
    for table in lifecycle.schema().tables.iter().rev() {
        scope.clear_changed_rows(connection, table).await?;
    }
    for table in lifecycle.schema().tables {
        scope.reinsert_images(connection, table).await?;
    }
    super::digests::bump(lifecycle.store(), connection, sites).await?;
    Ok(())
}

struct Scope<'a> {
    lifecycle: &'a Lifecycle,
    site_list: &'a str,
    at: i64,
    /// Changes logged after the restore began (its own) are beyond this sequence number.
    horizon: i64,
    now: i64,
}

impl Scope<'_> {
    /// Keys of `table` changed after `at`: `$1` sites, `$2` table, `$3` at, `$4` horizon.
    fn changed_keys(&self) -> String {
        format!(
            "SELECT row_key FROM tenant_changes
             WHERE site_id IN ({}) AND table_name = $2 AND change_time > $3 AND seq <= $4",
            self.lifecycle.store().json_strings("$1")
        )
    }

    /// The first change after `at` of each changed key, with its before-image.
    fn first_changes(&self) -> String {
        format!(
            "SELECT site_id, row_key, before_image FROM tenant_changes WHERE seq IN (
                 SELECT MIN(seq) FROM tenant_changes
                 WHERE site_id IN ({}) AND table_name = $2 AND change_time > $3 AND seq <= $4
                 GROUP BY site_id, row_key)",
            self.lifecycle.store().json_strings("$1")
        )
    }

    fn bound<'q>(
        &self,
        sql: String,
        table: &TableSpec,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.site_list.to_owned())
            .bind(table.name)
            .bind(self.at)
            .bind(self.horizon)
    }

    /// Logs what the restore overwrites (current images, or NULL where the key is absent
    /// now but comes back), then deletes the changed keys' current rows.
    async fn clear_changed_rows(
        &self,
        connection: &mut AnyConnection,
        table: &TableSpec,
    ) -> Result<(), LifecycleError> {
        let backend = self.lifecycle.store().backend();
        let sites = self.lifecycle.store().json_strings("$1");
        self.bound(
            format!(
                "INSERT INTO tenant_changes (site_id, table_name, row_key, change_time, before_image)
                 SELECT site_id, $2, {key}, $5, {image} FROM {name}
                 WHERE site_id IN ({sites}) AND {key} IN ({changed})",
                key = table.key,
                image = table.json_row(backend),
                name = table.name,
                changed = self.changed_keys(),
            ),
            table,
        )
        .bind(self.now)
        .execute(&mut *connection)
        .await?;
        self.bound(
            format!(
                "INSERT INTO tenant_changes (site_id, table_name, row_key, change_time, before_image)
                 SELECT first.site_id, $2, first.row_key, $5, NULL FROM ({firsts}) AS first
                 WHERE first.before_image IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM {name} WHERE {name}.{key} = first.row_key)",
                firsts = self.first_changes(),
                name = table.name,
                key = table.key,
            ),
            table,
        )
        .bind(self.now)
        .execute(&mut *connection)
        .await?;
        self.bound(
            format!(
                "DELETE FROM {name} WHERE site_id IN ({sites}) AND {key} IN ({changed})",
                name = table.name,
                key = table.key,
                changed = self.changed_keys(),
            ),
            table,
        )
        .execute(&mut *connection)
        .await?;
        Ok(())
    }

    /// Inserts each changed key's image as of `at` (keys that did not exist then stay out).
    async fn reinsert_images(
        &self,
        connection: &mut AnyConnection,
        table: &TableSpec,
    ) -> Result<(), LifecycleError> {
        let backend = self.lifecycle.store().backend();
        self.bound(
            format!(
                "INSERT INTO {name} ({columns})
                 SELECT {values} FROM ({firsts}) AS first WHERE first.before_image IS NOT NULL",
                name = table.name,
                columns = table.column_list(),
                values = table.columns_from_json(backend, "first.before_image"),
                firsts = self.first_changes(),
            ),
            table,
        )
        .execute(&mut *connection)
        .await?;
        Ok(())
    }
}

/// Deletes change-log entries older than the retention period, in bounded batches.
pub(crate) async fn prune(lifecycle: &Lifecycle) -> Result<u64, LifecycleError> {
    let cutoff = lifecycle.now().saturating_sub(lifecycle.retention_micros());
    let batch = i64::from(lifecycle.inner.config.purge_batch_size);
    let mut pruned = 0;
    loop {
        let deleted = sqlx::query(
            "DELETE FROM tenant_changes WHERE seq IN
             (SELECT seq FROM tenant_changes WHERE change_time < $1 LIMIT $2)",
        )
        .bind(cutoff)
        .bind(batch)
        .execute(lifecycle.store().pool())
        .await?
        .rows_affected();
        pruned += deleted;
        if deleted == 0 {
            return Ok(pruned);
        }
    }
}
