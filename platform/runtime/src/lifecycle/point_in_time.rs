//! Point-in-time restore of tenant slices and pruning of the change log.
//!
//! The state of a row at T is the before-image of its first change after T, or the
//! current row if it has not changed since, with the row-level marks made after T and
//! before that change rewound (see the `marks` module). Restoring sites to T therefore
//! touches only the keys changed or marked after T, leaves every other tenant of the
//! database alone, and logs what it overwrites, so restoring to just before the restore
//! undoes it.

use sqlx::AnyConnection;

use super::{
    Lifecycle, LifecycleError,
    marks::{self, Kind, Record},
    schema::TableSpec,
};
use crate::{error::InvalidArgument, ids::SiteId, store::json_list, store::rfc3339};

/// Returns `sites` to their state at `at` (unix µs): one set of statements per table, and
/// one statement per mark record made since `at` (a few per app uninstalled or restored).
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
    let mut marks = Vec::with_capacity(lifecycle.schema().tables.len());
    for table in lifecycle.schema().tables {
        let records = marks::after(lifecycle, connection, table, &site_list, at).await?;
        scope.log_marked_rows(connection, table, &records).await?;
        marks.push(records);
    }
    for table in lifecycle.schema().tables.iter().rev() {
        scope.clear_changed_rows(connection, table).await?;
    }
    for table in lifecycle.schema().tables {
        scope.reinsert_images(connection, table).await?;
    }
    for (table, records) in lifecycle.schema().tables.iter().zip(&marks) {
        for record in records {
            scope.rewind(connection, table, record).await?;
        }
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

    /// Logs the current images of the rows that `records` cover and no change after `at`
    /// does (those are logged with the changed keys), before rewinding overwrites them.
    async fn log_marked_rows(
        &self,
        connection: &mut AnyConnection,
        table: &TableSpec,
        records: &[Record],
    ) -> Result<(), LifecycleError> {
        let Some(owned) = self.lifecycle.filter_by_owner(table, "$6") else {
            return Ok(());
        };
        if records.is_empty() {
            return Ok(());
        }
        self.bound(
            format!(
                "INSERT INTO tenant_changes (site_id, table_name, row_key, change_time, before_image)
                 SELECT site_id, $2, {key}, $5, {image} FROM {name}
                 WHERE site_id IN ({sites}) AND {owned} AND {key} NOT IN ({changed})",
                key = table.key,
                image = table.json_row(self.lifecycle.store().backend()),
                name = table.name,
                sites = self.lifecycle.store().json_strings("$1"),
                changed = self.changed_keys(),
            ),
            table,
        )
        .bind(self.now)
        .bind(marks::owned_keys(records))
        .execute(&mut *connection)
        .await?;
        Ok(())
    }

    /// Undoes one mark record on the rows of its target whose first change after `at`
    /// (if any) came after it: a mark's rows become live again, an unmark's revived rows
    /// (the target's live ones) marked again. Records are rewound newest first.
    async fn rewind(
        &self,
        connection: &mut AnyConnection,
        table: &TableSpec,
        record: &Record,
    ) -> Result<(), LifecycleError> {
        let Some(owner) = table.owner else {
            return Ok(());
        };
        let (set, state) = match record.kind {
            Kind::Mark => (
                "deleted_by = NULL, deleted_at = NULL",
                "deleted_by = $6 AND deleted_at = $7",
            ),
            Kind::Unmark => ("deleted_by = $6, deleted_at = $7", "deleted_by IS NULL"),
        };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {name} SET {set}
             WHERE site_id = $1 AND {owner} = $2 AND {state} AND NOT EXISTS (
                 SELECT 1 FROM tenant_changes AS later
                 WHERE later.site_id = $1 AND later.table_name = $3 AND later.row_key = {name}.{key}
                   AND later.change_time > $4 AND later.seq <= $5)",
            name = table.name,
            key = table.key,
        )))
        .bind(record.owned.site_id.clone())
        .bind(record.owned.owner.clone())
        .bind(table.name)
        .bind(self.at)
        .bind(record.after_seq)
        .bind(record.operation.clone())
        .bind(record.deleted_at)
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

/// Deletes change-log entries and mark records older than the retention period, in
/// bounded batches.
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
        let marks = marks::prune_batch(lifecycle, cutoff, batch).await?;
        pruned += deleted + marks;
        if deleted == 0 && marks == 0 {
            return Ok(pruned);
        }
    }
}
