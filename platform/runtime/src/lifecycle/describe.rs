//! Per-table counts and the order-independent fingerprint of targets, set-based: one
//! statement per table whatever the number of targets.
//!
//! A row's digest is BLAKE3 over a canonical, typed encoding of its columns in declared
//! order, so it is the same on SQLite and PostgreSQL; a table's digest is the wrapping sum
//! of its live rows' digests (order-independent, sensitive to every row), and a target's
//! fingerprint hashes each table's name, live count and sum.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row, any::AnyRow};

use super::{
    Lifecycle, LifecycleError,
    digests::{self, Cached, Summary},
    model::{TableCount, Target, TargetOutcome, TenantState},
    registry::{RegistryRow, json_list},
    schema::{ColumnKind, TableSpec},
};
use crate::ids::SiteId;

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    live: i64,
    deleted: i64,
    sum: u128,
    last_deleted_at: Option<i64>,
}

impl Lifecycle {
    /// State, counts and fingerprint of each target; changes nothing.
    pub async fn describe(&self, targets: &[Target]) -> Result<Vec<TargetOutcome>, LifecycleError> {
        super::call::validate_targets(targets)?;
        let mut connection = self.store().pool().acquire().await?;
        let sites: Vec<SiteId> = targets.iter().map(Target::site_id).collect();
        let registry = super::registry::load(self.store(), &mut connection, &sites).await?;
        describe(self, &mut connection, targets, &registry).await
    }
}

/// Describes `targets` as they are in `connection`'s view of the database.
pub(crate) async fn describe(
    lifecycle: &Lifecycle,
    connection: &mut AnyConnection,
    targets: &[Target],
    registry: &HashMap<SiteId, RegistryRow>,
) -> Result<Vec<TargetOutcome>, LifecycleError> {
    let store = lifecycle.store();
    let all_sites: Vec<String> = targets
        .iter()
        .filter(|target| matches!(target, Target::Site(_)))
        .map(Target::key)
        .collect();
    let cache = digests::load(store, connection, &all_sites).await?;
    // Only sites whose rows changed since they were last described are read again.
    let sites: Vec<String> = all_sites
        .iter()
        .filter(|site| {
            cache
                .get(*site)
                .and_then(|cached| cached.summary.as_ref())
                .is_none()
        })
        .cloned()
        .collect();
    let apps: Vec<String> = targets
        .iter()
        .filter(|target| matches!(target, Target::AppInstallation { .. }))
        .map(Target::key)
        .collect();

    let mut tallies: HashMap<(String, &'static str), Tally> = HashMap::new();
    for table in lifecycle.schema().tables {
        let app_filter = match table.owner {
            Some(owner) if !apps.is_empty() => {
                format!(
                    " OR (site_id || ':' || {owner}) IN ({})",
                    store.json_strings("$2")
                )
            }
            _ => String::new(),
        };
        if sites.is_empty() && app_filter.is_empty() {
            continue;
        }
        let sql = format!(
            "SELECT {} FROM {} WHERE site_id IN ({}){app_filter}",
            table.column_list(),
            table.name,
            store.json_strings("$1"),
        );
        let mut query =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(json_list(sites.iter().cloned()));
        if !app_filter.is_empty() {
            query = query.bind(json_list(apps.iter().cloned()));
        }
        let rows = query.fetch_all(&mut *connection).await?;
        for row in &rows {
            let (site_id, owner, deleted_at, digest) = digest_row(table, row)?;
            let mut keys = Vec::with_capacity(2);
            if !sites.is_empty() {
                keys.push(site_id.clone());
            }
            if let Some(owner) = owner {
                keys.push(format!("{site_id}:{owner}"));
            }
            for key in keys {
                let tally = tallies.entry((key, table.name)).or_default();
                match deleted_at {
                    None => {
                        tally.live += 1;
                        tally.sum = tally.sum.wrapping_add(digest);
                    }
                    Some(at) => {
                        tally.deleted += 1;
                        tally.last_deleted_at = tally.last_deleted_at.max(Some(at));
                    }
                }
            }
        }
    }

    let retention = lifecycle.retention_micros();
    let mut computed: Vec<(String, i64, Summary)> = Vec::new();
    let outcomes = targets
        .iter()
        .map(|target| {
            let key = target.key();
            let tables: Vec<&TableSpec> = lifecycle
                .schema()
                .tables
                .iter()
                .filter(|table| matches!(target, Target::Site(_)) || table.owner.is_some())
                .collect();
            let mut hasher = blake3::Hasher::new();
            let mut counts = Vec::with_capacity(tables.len());
            let mut last_deleted_at = None;
            for table in tables {
                let tally = tallies
                    .get(&(key.clone(), table.name))
                    .copied()
                    .unwrap_or_default();
                hasher.update(table.name.as_bytes());
                hasher.update(&tally.live.to_le_bytes());
                hasher.update(&tally.sum.to_le_bytes());
                last_deleted_at = last_deleted_at.max(tally.last_deleted_at);
                counts.push(TableCount {
                    table: table.name.to_owned(),
                    live: tally.live,
                    deleted: tally.deleted,
                });
            }
            let mut fingerprint = hasher.finalize().to_hex()[..32].to_owned();
            if let Target::Site(_) = target {
                match cache.get(&key) {
                    Some(Cached {
                        summary: Some(summary),
                        ..
                    }) => {
                        counts = summary.counts.clone();
                        fingerprint = summary.fingerprint.clone();
                    }
                    cached => computed.push((
                        key.clone(),
                        cached.map_or(0, |cached| cached.version),
                        Summary {
                            counts: counts.clone(),
                            fingerprint: fingerprint.clone(),
                        },
                    )),
                }
            }
            let registered = registry.get(&target.site_id());
            let site_state = registered.map_or(TenantState::Absent, |row| row.state);
            match target {
                Target::Site(_) => TargetOutcome {
                    target: *target,
                    state: site_state,
                    counts,
                    fingerprint,
                    delete_time: registered.and_then(|row| row.delete_time),
                    expire_time: registered.and_then(|row| row.expire_time),
                    hold: registered.is_some_and(|row| row.hold),
                    rows_affected: 0,
                    origin: registered.and_then(|row| row.origin),
                },
                Target::AppInstallation { .. } => {
                    let live: i64 = counts.iter().map(|count| count.live).sum();
                    let deleted: i64 = counts.iter().map(|count| count.deleted).sum();
                    let state = match site_state {
                        TenantState::Active if live > 0 => TenantState::Active,
                        TenantState::Active if deleted > 0 => TenantState::Deleted,
                        TenantState::Active => TenantState::Absent,
                        other => other,
                    };
                    // An app's rows deleted at row level expire by their own deletion,
                    // whatever the site's state since; live rows of a deleted site go
                    // with the site.
                    let rows_deleted = live == 0 && deleted > 0;
                    let (delete_time, expire_time) = if rows_deleted {
                        (
                            last_deleted_at,
                            last_deleted_at.map(|at| at.saturating_add(retention)),
                        )
                    } else {
                        (
                            registered.and_then(|row| row.delete_time),
                            registered.and_then(|row| row.expire_time),
                        )
                    };
                    TargetOutcome {
                        target: *target,
                        state,
                        counts,
                        fingerprint,
                        delete_time,
                        expire_time,
                        hold: registered.is_some_and(|row| row.hold),
                        rows_affected: 0,
                        origin: registered.and_then(|row| row.origin),
                    }
                }
            }
        })
        .collect();
    digests::store(store, connection, &computed).await?;
    Ok(outcomes)
}

/// (site_id, owner, deleted_at if row-deleted, digest) of one row.
fn digest_row(
    table: &TableSpec,
    row: &AnyRow,
) -> Result<(String, Option<String>, Option<i64>, u128), LifecycleError> {
    let mut hasher = blake3::Hasher::new();
    let mut site_id = String::new();
    let mut owner = None;
    let mut deleted_by: Option<String> = None;
    let mut deleted_at: Option<i64> = None;
    for (index, column) in table.all_columns().iter().enumerate() {
        hasher.update(column.name.as_bytes());
        match column.kind {
            ColumnKind::Text => {
                let value: Option<String> = row.try_get(index)?;
                match &value {
                    None => hasher.update(&[0]),
                    Some(text) => hasher
                        .update(&[1])
                        .update(&(text.len() as u64).to_le_bytes())
                        .update(text.as_bytes()),
                };
                if column.name == super::schema::SITE_COLUMN {
                    site_id = value.clone().unwrap_or_default();
                } else if Some(column.name) == table.owner {
                    owner = value.clone();
                } else if column.name == super::schema::DELETED_BY_COLUMN {
                    deleted_by = value;
                }
            }
            ColumnKind::Int => {
                let value: Option<i64> = row.try_get(index)?;
                match value {
                    None => hasher.update(&[0]),
                    Some(number) => hasher.update(&[2]).update(&number.to_le_bytes()),
                };
                if column.name == super::schema::DELETED_AT_COLUMN {
                    deleted_at = value;
                }
            }
        }
    }
    let digest = u128::from_le_bytes(
        hasher.finalize().as_bytes()[..16]
            .try_into()
            .unwrap_or_default(),
    );
    let deleted = deleted_by.map(|_| deleted_at.unwrap_or(0));
    Ok((site_id, owner, deleted, digest))
}
