//! Per-table counts and the order-independent fingerprint of targets, set-based: one
//! statement per table whatever the number of targets.
//!
//! A row's digest is BLAKE3 over a canonical, typed encoding of its columns in declared
//! order, so it is the same on SQLite and PostgreSQL; a table's digest is the wrapping sum
//! of its live rows' digests (order-independent, sensitive to every row), and a target's
//! fingerprint hashes each table's name, live count and sum.

use std::collections::{HashMap, HashSet};

use futures::TryStreamExt;
use sqlx::{AnyConnection, Row, any::AnyRow};

use super::{
    Lifecycle, LifecycleError,
    digests::{self, Cached, Summary},
    model::{TableCount, Target, TargetOutcome, TenantState},
    registry::RegistryRow,
    schema::{Column, ColumnKind, DELETED_AT_COLUMN, DELETED_BY_COLUMN, SITE_COLUMN, TableSpec},
};
use crate::{ids::SiteId, store::json_list};

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

    let app_targets: HashSet<&str> = apps.iter().map(String::as_str).collect();
    let mut tallies = Tallies::default();
    let mut app_key = String::new();
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
        let layout = RowLayout::of(table);
        let mut encoding = Vec::new();
        // Streamed and folded row by row: memory holds one row and the per-target
        // tallies, never the rows of up to 10,000 sites at once.
        let mut rows = query.fetch(&mut *connection);
        while let Some(row) = rows.try_next().await? {
            let digested = layout.digest(&row, &mut encoding)?;
            if !sites.is_empty() {
                tallies.add(digested.site_id, table.name, &digested);
            }
            if let Some(owner) = digested.owner.filter(|_| !apps.is_empty()) {
                app_key.clear();
                app_key.push_str(digested.site_id);
                app_key.push(':');
                app_key.push_str(owner);
                if app_targets.contains(app_key.as_str()) {
                    tallies.add(&app_key, table.name, &digested);
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
                let tally = tallies.get(&key, table.name);
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
                    deleted_by: registered.and_then(|row| row.deleted_by.clone()),
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
                        deleted_by: None,
                    }
                }
            }
        })
        .collect();
    digests::store(store, connection, &computed).await?;
    Ok(outcomes)
}

/// Each target key's tally per table, keyed so that a row adds to its key without
/// allocating: memory grows with the sites and app installations described, never
/// with their rows.
#[derive(Default)]
struct Tallies {
    by_key: HashMap<String, Vec<(&'static str, Tally)>>,
}

impl Tallies {
    fn add(&mut self, key: &str, table: &'static str, row: &Digested<'_>) {
        let tables = match self.by_key.get_mut(key) {
            Some(tables) => tables,
            None => self.by_key.entry(key.to_owned()).or_default(),
        };
        let position = tables
            .iter()
            .position(|(name, _)| *name == table)
            .unwrap_or_else(|| {
                tables.push((table, Tally::default()));
                tables.len() - 1
            });
        let tally = &mut tables[position].1;
        match row.deleted_at {
            None => {
                tally.live += 1;
                tally.sum = tally.sum.wrapping_add(row.digest);
            }
            Some(at) => {
                tally.deleted += 1;
                tally.last_deleted_at = tally.last_deleted_at.max(Some(at));
            }
        }
    }

    fn get(&self, key: &str, table: &str) -> Tally {
        self.by_key
            .get(key)
            .and_then(|tables| tables.iter().find(|(name, _)| *name == table))
            .map(|(_, tally)| *tally)
            .unwrap_or_default()
    }
}

/// What one row adds to its targets' tallies, borrowed from the row.
struct Digested<'r> {
    site_id: &'r str,
    owner: Option<&'r str>,
    /// When the row was deleted at row level (0 if unknown); `None` for a live row.
    deleted_at: Option<i64>,
    /// 0 for a deleted row: only live rows are in a fingerprint.
    digest: u128,
}

/// A table's columns in fingerprint order and where the ones a tally needs are, worked
/// out once per table rather than once per row.
struct RowLayout {
    columns: Vec<Column>,
    site: usize,
    owner: Option<usize>,
    deleted_by: usize,
    deleted_at: usize,
}

impl RowLayout {
    fn of(table: &TableSpec) -> Self {
        let columns = table.all_columns();
        let position = |name: &str| columns.iter().position(|column| column.name == name);
        Self {
            site: position(SITE_COLUMN).unwrap_or_default(),
            owner: table.owner.and_then(position),
            deleted_by: position(DELETED_BY_COLUMN).unwrap_or_default(),
            deleted_at: position(DELETED_AT_COLUMN).unwrap_or_default(),
            columns,
        }
    }

    /// The row's digest: BLAKE3 over each column's name and typed value (a tag byte,
    /// then a text's length and bytes or an integer's eight bytes), written into
    /// `encoding` (reused across rows) and hashed at once. A row deleted at row level is
    /// in no fingerprint, so it is only counted, never encoded or hashed: describing an
    /// app's marked rows costs their read alone.
    fn digest<'r>(
        &self,
        row: &'r AnyRow,
        encoding: &mut Vec<u8>,
    ) -> Result<Digested<'r>, LifecycleError> {
        let deleted_by: Option<&str> = row.try_get(self.deleted_by)?;
        let deleted_at: Option<i64> = row.try_get(self.deleted_at)?;
        let site_id = row
            .try_get::<Option<&str>, _>(self.site)?
            .unwrap_or_default();
        let owner = self
            .owner
            .map(|index| row.try_get::<Option<&str>, _>(index))
            .transpose()?
            .flatten();
        let deleted_at = deleted_by.map(|_| deleted_at.unwrap_or(0));
        if deleted_at.is_some() {
            return Ok(Digested {
                site_id,
                owner,
                deleted_at,
                digest: 0,
            });
        }
        encoding.clear();
        for (index, column) in self.columns.iter().enumerate() {
            encoding.extend_from_slice(column.name.as_bytes());
            match column.kind {
                ColumnKind::Text => match row.try_get::<Option<&str>, _>(index)? {
                    None => encoding.push(0),
                    Some(text) => {
                        encoding.push(1);
                        encoding.extend_from_slice(&(text.len() as u64).to_le_bytes());
                        encoding.extend_from_slice(text.as_bytes());
                    }
                },
                ColumnKind::Int => match row.try_get::<Option<i64>, _>(index)? {
                    None => encoding.push(0),
                    Some(number) => {
                        encoding.push(2);
                        encoding.extend_from_slice(&number.to_le_bytes());
                    }
                },
            }
        }
        let hash = blake3::hash(encoding);
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&hash.as_bytes()[..16]);
        Ok(Digested {
            site_id,
            owner,
            deleted_at,
            digest: u128::from_le_bytes(digest),
        })
    }
}
