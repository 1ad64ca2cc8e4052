//! Row-level marks recorded as what they are (`tenant_marks`): an app installation's rows
//! of one table marked deleted by an operation, or that operation's marks undone, one
//! record per table and target instead of a before-image per row. Marking and unmarking
//! then cost what their UPDATE costs, and a point-in-time restore stays exact by rewinding
//! the records newest first over the rows as the change log leaves them.
//!
//! A mark sets `deleted_by`/`deleted_at` on exactly the target's live rows, so rewinding
//! it clears them from the rows that carry both. An unmark is recorded only when no row
//! of the target was live before it and every row it revived carried one `deleted_at`:
//! then the target's live rows after it are exactly the revived ones, and rewinding it
//! marks them again. Any other unmark logs its rows' before-images like any write.

use std::collections::BTreeSet;

use sqlx::{AnyConnection, Row};

use super::{Lifecycle, LifecycleError, schema::TableSpec, tenant::Value};
use crate::store::{Backend, StoreError, json_list};

/// What a record did to its target's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Mark,
    Unmark,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Mark => "mark",
            Kind::Unmark => "unmark",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Kind::Mark, Kind::Unmark]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// The rows of one table that one app installation of a site owns: what a record covers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Owned {
    pub site_id: String,
    pub owner: String,
}

impl Owned {
    /// `site:owner`, as [`Lifecycle::filter_by_owner`] matches it.
    pub fn key(&self) -> String {
        format!("{}:{}", self.site_id, self.owner)
    }
}

/// The rows an operation marked in one table, grouped by site and owner, as an undo
/// finds them before reviving them.
#[derive(Debug, Clone)]
pub(crate) struct MarkedGroup {
    pub site_id: String,
    pub owner: Option<String>,
    /// The least and greatest `deleted_at` of the group's marked rows.
    pub deleted_at: (Option<i64>, Option<i64>),
}

impl MarkedGroup {
    /// `site:owner`, as [`Lifecycle::filter_by_owner`] matches it, for owned rows.
    pub fn owned_key(&self) -> Option<String> {
        self.owner
            .as_ref()
            .map(|owner| format!("{}:{owner}", self.site_id))
    }

    /// The group as the target of an unmark record, with the `deleted_at` it clears, if
    /// one record can say what the unmark did: the rows have an owner and one mark time.
    fn recordable(&self) -> Option<(Owned, i64)> {
        let owner = self.owner.clone()?;
        match self.deleted_at {
            (Some(first), Some(last)) if first == last => Some((
                Owned {
                    site_id: self.site_id.clone(),
                    owner,
                },
                first,
            )),
            _ => None,
        }
    }
}

/// Rows of a table within a scope: `filter` binds `$1` to `list`.
pub(crate) struct Scoped {
    pub filter: String,
    pub list: String,
}

/// A record as a point-in-time restore rewinds it.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub owned: Owned,
    pub operation: String,
    pub kind: Kind,
    pub deleted_at: i64,
    /// The last change-log entry before the record.
    pub after_seq: i64,
}

/// `(site_id, owner, deleted_at)` of each JSON triple bound at `param`.
fn targets_source(backend: Backend, param: &str) -> String {
    match backend {
        Backend::Sqlite => format!(
            "SELECT json_extract(value, '$[0]') AS site_id, json_extract(value, '$[1]') AS owner,
                    json_extract(value, '$[2]') AS deleted_at
             FROM json_each({param})"
        ),
        Backend::Postgres => format!(
            "SELECT entry->>0 AS site_id, entry->>1 AS owner, (entry->>2)::bigint AS deleted_at
             FROM jsonb_array_elements({param}::jsonb) AS entry"
        ),
    }
}

impl Lifecycle {
    /// Records that `operation` marked, at `now`, the live rows of `table` that each of
    /// `owned` holds: one statement for all targets.
    pub(crate) async fn record_marks(
        &self,
        connection: &mut AnyConnection,
        table: &TableSpec,
        owned: &[Owned],
        operation: &str,
        now: i64,
    ) -> Result<(), LifecycleError> {
        let targets: Vec<(Owned, i64)> = owned.iter().map(|owned| (owned.clone(), now)).collect();
        self.insert_records(connection, table, &targets, operation, Kind::Mark, now)
            .await
    }

    /// Revives the rows of `table` within `scope` that `undo` marked, `groups` being those
    /// rows by site and owner: a record for each group one can describe, the rows'
    /// before-images for the others; how many rows were revived.
    pub(crate) async fn unmark(
        &self,
        connection: &mut AnyConnection,
        table: &TableSpec,
        scope: Scoped,
        groups: &[&MarkedGroup],
        undo: &str,
        now: i64,
    ) -> Result<u64, LifecycleError> {
        let candidates: Vec<(Owned, i64)> = groups
            .iter()
            .filter_map(|group| group.recordable())
            .collect();
        let live = self
            .owners_with_live_rows(connection, table, &candidates)
            .await?;
        let recorded: Vec<(Owned, i64)> = candidates
            .into_iter()
            .filter(|(owned, _)| !live.contains(&owned.key()))
            .collect();
        if recorded.len() < groups.len() {
            let mut filter = format!("deleted_by = $2 AND {}", scope.filter);
            let mut binds = vec![
                Value::Text(scope.list.clone()),
                Value::Text(undo.to_owned()),
            ];
            if let (Some(owner), Some(owned), false) = (
                table.owner,
                self.filter_by_owner(table, "$3"),
                recorded.is_empty(),
            ) {
                filter = format!("{filter} AND ({owner} IS NULL OR NOT {owned})");
                binds.push(Value::Text(json_list(
                    recorded.iter().map(|(owned, _)| owned.key()),
                )));
            }
            self.log_rows(connection, table, &filter, &binds, now)
                .await?;
        }
        self.insert_records(connection, table, &recorded, undo, Kind::Unmark, now)
            .await?;
        Ok(sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {} SET deleted_by = NULL, deleted_at = NULL WHERE deleted_by = $2 AND {}",
            table.name, scope.filter
        )))
        .bind(scope.list)
        .bind(undo.to_owned())
        .execute(&mut *connection)
        .await?
        .rows_affected())
    }

    /// The `site:owner` keys among `targets` that have a live row in `table`.
    async fn owners_with_live_rows(
        &self,
        connection: &mut AnyConnection,
        table: &TableSpec,
        targets: &[(Owned, i64)],
    ) -> Result<BTreeSet<String>, LifecycleError> {
        let (Some(owner), Some(owned), false) = (
            table.owner,
            self.filter_by_owner(table, "$2"),
            targets.is_empty(),
        ) else {
            return Ok(BTreeSet::new());
        };
        let sites: BTreeSet<String> = targets
            .iter()
            .map(|(owned, _)| owned.site_id.clone())
            .collect();
        let live: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT site_id || ':' || {owner} FROM {name}
             WHERE site_id IN ({sites}) AND deleted_by IS NULL AND {owned}",
            name = table.name,
            sites = self.store().json_strings("$1"),
        )))
        .bind(json_list(sites))
        .bind(json_list(targets.iter().map(|(owned, _)| owned.key())))
        .fetch_all(&mut *connection)
        .await?;
        Ok(live.into_iter().collect())
    }

    /// One record per target, ordered after every change logged so far.
    async fn insert_records(
        &self,
        connection: &mut AnyConnection,
        table: &TableSpec,
        targets: &[(Owned, i64)],
        operation: &str,
        kind: Kind,
        now: i64,
    ) -> Result<(), LifecycleError> {
        if targets.is_empty() {
            return Ok(());
        }
        let json = serde_json::Value::Array(
            targets
                .iter()
                .map(|(owned, deleted_at)| {
                    serde_json::json!([owned.site_id, owned.owner, deleted_at])
                })
                .collect(),
        );
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO tenant_marks
                 (site_id, table_name, owner, operation_id, kind, deleted_at, change_time, after_seq)
             SELECT target.site_id, $2, target.owner, $3, $4, target.deleted_at, $5,
                    (SELECT COALESCE(MAX(seq), 0) FROM tenant_changes)
             FROM ({}) AS target",
            targets_source(self.store().backend(), "$1")
        )))
        .bind(json.to_string())
        .bind(table.name)
        .bind(operation.to_owned())
        .bind(kind.as_str())
        .bind(now)
        .execute(&mut *connection)
        .await?;
        Ok(())
    }
}

/// The records of `table` in the sites bound at `$1` (`site_list`) made after `at`,
/// newest first: what a point-in-time restore to `at` rewinds.
pub(crate) async fn after(
    lifecycle: &Lifecycle,
    connection: &mut AnyConnection,
    table: &TableSpec,
    site_list: &str,
    at: i64,
) -> Result<Vec<Record>, LifecycleError> {
    if table.owner.is_none() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT site_id, owner, operation_id, kind, deleted_at, after_seq FROM tenant_marks
         WHERE site_id IN ({}) AND table_name = $2 AND change_time > $3
         ORDER BY seq DESC",
        lifecycle.store().json_strings("$1")
    )))
    .bind(site_list.to_owned())
    .bind(table.name)
    .bind(at)
    .fetch_all(&mut *connection)
    .await?;
    rows.iter()
        .map(|row| {
            let kind: String = row.try_get("kind")?;
            Ok(Record {
                owned: Owned {
                    site_id: row.try_get("site_id")?,
                    owner: row.try_get("owner")?,
                },
                operation: row.try_get("operation_id")?,
                kind: Kind::parse(&kind).ok_or_else(|| StoreError::Corrupt {
                    table: "tenant_marks",
                    message: format!("unknown kind {kind}"),
                })?,
                deleted_at: row.try_get("deleted_at")?,
                after_seq: row.try_get("after_seq")?,
            })
        })
        .collect()
}

/// The distinct targets of `records`, as `site:owner` keys.
pub(crate) fn owned_keys(records: &[Record]) -> String {
    json_list(
        records
            .iter()
            .map(|record| record.owned.key())
            .collect::<BTreeSet<_>>(),
    )
}

/// Deletes the records whose rows a purge removed, in a statement of its own.
pub(crate) async fn forget(lifecycle: &Lifecycle, scope: Forget<'_>) -> Result<(), LifecycleError> {
    let json = lifecycle.store().json_strings("$1");
    let (sql, list, table) = match scope {
        Forget::Sites(list) => (
            format!("DELETE FROM tenant_marks WHERE site_id IN ({json})"),
            list,
            None,
        ),
        Forget::Owned { table, list } => (
            format!(
                "DELETE FROM tenant_marks WHERE table_name = $2 AND (site_id || ':' || owner) IN ({json})"
            ),
            list,
            Some(table),
        ),
    };
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(list.to_owned());
    if let Some(table) = table {
        query = query.bind(table.name);
    }
    query.execute(lifecycle.store().pool()).await?;
    Ok(())
}

/// Which records a purge takes with the rows.
pub(crate) enum Forget<'a> {
    /// Every record of the sites in the JSON list.
    Sites(&'a str),
    /// The records of `table` whose targets (`site:owner`) are in the JSON list.
    Owned { table: &'a TableSpec, list: &'a str },
}

/// Drops one batch of records older than `cutoff`; how many.
pub(crate) async fn prune_batch(
    lifecycle: &Lifecycle,
    cutoff: i64,
    batch: i64,
) -> Result<u64, LifecycleError> {
    Ok(sqlx::query(
        "DELETE FROM tenant_marks WHERE seq IN
         (SELECT seq FROM tenant_marks WHERE change_time < $1 LIMIT $2)",
    )
    .bind(cutoff)
    .bind(batch)
    .execute(lifecycle.store().pool())
    .await?
    .rows_affected())
}
