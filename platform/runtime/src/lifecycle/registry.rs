//! The tenant registry: one row per site in each service database, and the only code that
//! reads or writes the `tenants` table (and the per-site lease tokens beside it).
//!
//! Every state change goes through [`transition`], every permission through
//! [`TenantState::allows`]; services read a site's state through [`state`] or the
//! `tenant_view` SQL view, never the table. Lifecycle calls [`lock`] their rows first, so
//! what they check, describe and change cannot move under them.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};

use super::{
    LifecycleError,
    model::{Action, TenantState},
};
use crate::{
    error::parse_id,
    ids::{OperationId, SiteId},
    store::{Backend, Store, json_list},
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRow {
    pub site_id: SiteId,
    pub state: TenantState,
    pub deleted_by: Option<String>,
    pub delete_time: Option<i64>,
    pub expire_time: Option<i64>,
    pub hold: bool,
    /// A scratch copy's origin; `None` for a customer's site.
    pub origin: Option<SiteId>,
}

/// The registry rows of some sites; a site without a row is absent.
pub type Registry = HashMap<SiteId, RegistryRow>;

/// The state of `site_id` in `registry` (absent when it has no row).
pub fn state_in(registry: &Registry, site_id: SiteId) -> TenantState {
    registry
        .get(&site_id)
        .map_or(TenantState::Absent, |row| row.state)
}

/// Refuses `action` on a site whose state does not allow it, naming why.
pub fn check(site_id: SiteId, state: TenantState, action: Action) -> Result<(), LifecycleError> {
    if state.allows(action) {
        return Ok(());
    }
    Err(match state {
        TenantState::Purged => LifecycleError::Purged { site_id },
        TenantState::Purging => LifecycleError::BeingPurged { site_id },
        TenantState::Active | TenantState::Absent | TenantState::Deleted => {
            LifecycleError::NotDeleted { site_id }
        }
    })
}

const COLUMNS: &str = "site_id, state, deleted_by, delete_time, expire_time, hold, origin_site_id";

/// The registry rows of `sites`, unlocked, one statement whatever their number.
pub async fn load(
    store: &Store,
    connection: &mut AnyConnection,
    sites: &[SiteId],
) -> Result<Registry, LifecycleError> {
    read(store, connection, sites, "").await
}

/// The registry rows of `sites`, locked until the transaction ends: `FOR UPDATE` on
/// PostgreSQL, in site order so that two calls over overlapping sites cannot deadlock
/// (SQLite's `BEGIN IMMEDIATE` already holds the database's write lock). Writers hold
/// their site's row `FOR SHARE` (see [`state_for_write`]), so this also waits for every
/// write under way and keeps new ones out.
pub(crate) async fn lock(
    store: &Store,
    connection: &mut AnyConnection,
    sites: &[SiteId],
) -> Result<Registry, LifecycleError> {
    let suffix = match store.backend() {
        Backend::Sqlite => "",
        Backend::Postgres => " ORDER BY site_id FOR UPDATE",
    };
    read(store, connection, sites, suffix).await
}

/// The registry rows of `sites`, share-locked until the transaction ends on PostgreSQL
/// (in site order): calls that lock them for update wait, writers do not.
pub(crate) async fn lock_shared(
    store: &Store,
    connection: &mut AnyConnection,
    sites: &[SiteId],
) -> Result<Registry, LifecycleError> {
    let suffix = match store.backend() {
        Backend::Sqlite => "",
        Backend::Postgres => " ORDER BY site_id FOR SHARE",
    };
    read(store, connection, sites, suffix).await
}

async fn read(
    store: &Store,
    connection: &mut AnyConnection,
    sites: &[SiteId],
    suffix: &str,
) -> Result<Registry, LifecycleError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM tenants WHERE site_id IN ({}){suffix}",
        store.json_strings("$1")
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(json_list(sites.iter().map(ToString::to_string)))
        .fetch_all(&mut *connection)
        .await?;
    let mut registry = HashMap::with_capacity(rows.len());
    for row in rows {
        let site_id: String = row.try_get("site_id")?;
        let state: String = row.try_get("state")?;
        let site_id = parse_id("site_id", &site_id)?;
        registry.insert(
            site_id,
            RegistryRow {
                site_id,
                state: TenantState::parse(&state).ok_or_else(|| {
                    LifecycleError::Misuse(format!("unknown tenant state {state}"))
                })?,
                deleted_by: row.try_get("deleted_by")?,
                delete_time: row.try_get("delete_time")?,
                expire_time: row.try_get("expire_time")?,
                hold: row.try_get::<i64, _>("hold")? != 0,
                origin: row
                    .try_get::<Option<String>, _>("origin_site_id")?
                    .map(|origin| parse_id("origin_site_id", &origin))
                    .transpose()?,
            },
        );
    }
    Ok(registry)
}

/// One site's state, unlocked (for handing out a live-tenant handle).
pub async fn state(pool: &sqlx::AnyPool, site_id: SiteId) -> Result<TenantState, LifecycleError> {
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM tenants WHERE site_id = $1")
        .bind(site_id.to_string())
        .fetch_optional(pool)
        .await?;
    parse_state(state)
}

/// One site's state for domain code: a scratch copy counts as absent.
pub(crate) async fn live_state(
    pool: &sqlx::AnyPool,
    site_id: SiteId,
) -> Result<TenantState, LifecycleError> {
    let state: Option<String> = sqlx::query_scalar(
        "SELECT state FROM tenants WHERE site_id = $1 AND origin_site_id IS NULL",
    )
    .bind(site_id.to_string())
    .fetch_optional(pool)
    .await?;
    parse_state(state)
}

/// One site's state inside a write transaction, share-locked on PostgreSQL until it
/// ends, so a lifecycle call waits for the write instead of slipping in between its
/// check and its statements (SQLite's `BEGIN IMMEDIATE` already serializes writers).
pub(crate) async fn state_for_write(
    backend: Backend,
    connection: &mut AnyConnection,
    site_id: SiteId,
) -> Result<TenantState, LifecycleError> {
    let sql = match backend {
        Backend::Sqlite => "SELECT state FROM tenants WHERE site_id = $1",
        Backend::Postgres => "SELECT state FROM tenants WHERE site_id = $1 FOR SHARE",
    };
    let state: Option<String> = sqlx::query_scalar(sql)
        .bind(site_id.to_string())
        .fetch_optional(&mut *connection)
        .await?;
    parse_state(state)
}

fn parse_state(state: Option<String>) -> Result<TenantState, LifecycleError> {
    match state {
        None => Ok(TenantState::Absent),
        Some(text) => TenantState::parse(&text)
            .ok_or_else(|| LifecycleError::Misuse(format!("unknown tenant state {text}"))),
    }
}

/// Registers `site_id` as active if this database has never seen it.
pub(crate) async fn register_active(
    pool: &sqlx::AnyPool,
    site_id: SiteId,
    now: i64,
) -> Result<(), LifecycleError> {
    sqlx::query(
        "INSERT INTO tenants (site_id, state, create_time) VALUES ($1, 'active', $2)
         ON CONFLICT (site_id) DO NOTHING",
    )
    .bind(site_id.to_string())
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

/// A state change of the registry, with what the new state records.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Transition {
    /// `active` → `deleted` by an operation, restorable until `expire_time`. Sites this
    /// database never held are registered as deleted too, so that data arriving for them
    /// later is refused like any other write to a deleted site.
    Delete {
        operation: OperationId,
        delete_time: i64,
        expire_time: i64,
    },
    /// `deleted` by exactly this operation → `active`.
    Undelete { operation: OperationId },
    /// `deleted` → `purging`, only if expired and not held: from then on restore and
    /// hold are refused, so rows are never purged under a site brought back meanwhile.
    /// A scratch copy is claimed in any state but purged.
    ClaimPurge { now: i64 },
    /// `purging` → `purged`: the row stays as a tombstone.
    Purged { operation: OperationId, now: i64 },
}

/// Applies `change` to those of `sites` in the state it starts from; the number of
/// registry rows changed.
pub(crate) async fn transition(
    store: &Store,
    connection: &mut AnyConnection,
    sites: &[SiteId],
    change: Transition,
) -> Result<u64, LifecycleError> {
    if sites.is_empty() {
        return Ok(0);
    }
    let list = json_list(sites.iter().map(ToString::to_string));
    let scope = format!("site_id IN ({})", store.json_strings("$1"));
    let changed = match change {
        Transition::Delete {
            operation,
            delete_time,
            expire_time,
        } => {
            let flipped = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE tenants SET state = 'deleted', deleted_by = $2, delete_time = $3, expire_time = $4
                 WHERE {scope} AND state = 'active'"
            )))
            .bind(list.clone())
            .bind(operation.to_string())
            .bind(delete_time)
            .bind(expire_time)
            .execute(&mut *connection)
            .await?
            .rows_affected();
            let registered = sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO tenants (site_id, state, create_time, deleted_by, delete_time, expire_time)
                 SELECT value, 'deleted', $3, $2, $3, $4 FROM ({}) AS ids WHERE true
                 ON CONFLICT (site_id) DO NOTHING",
                store.json_strings("$1")
            )))
            .bind(list)
            .bind(operation.to_string())
            .bind(delete_time)
            .bind(expire_time)
            .execute(&mut *connection)
            .await?
            .rows_affected();
            flipped + registered
        }
        Transition::Undelete { operation } => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE tenants SET state = 'active', deleted_by = NULL, delete_time = NULL, expire_time = NULL
                 WHERE {scope} AND state = 'deleted' AND deleted_by = $2"
            )))
            .bind(list)
            .bind(operation.to_string())
            .execute(&mut *connection)
            .await?
            .rows_affected()
        }
        Transition::ClaimPurge { now } => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE tenants SET state = 'purging'
                 WHERE {scope} AND ((state IN ('deleted', 'purging') AND hold = 0 AND expire_time <= $2)
                                    OR (origin_site_id IS NOT NULL AND state <> 'purged'))"
            )))
            .bind(list)
            .bind(now)
            .execute(&mut *connection)
            .await?
            .rows_affected()
        }
        Transition::Purged { operation, now } => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE tenants SET state = 'purged', purged_by = $2, purge_time = $3
                 WHERE {scope} AND state = 'purging'"
            )))
            .bind(list)
            .bind(operation.to_string())
            .bind(now)
            .execute(&mut *connection)
            .await?
            .rows_affected()
        }
    };
    Ok(changed)
}

/// Registers each copy's scratch site, active, with its origin.
pub(crate) async fn register_scratch(
    store: &Store,
    connection: &mut AnyConnection,
    copies: &[super::SiteCopy],
    now: i64,
) -> Result<(), LifecycleError> {
    let pairs: Vec<serde_json::Value> = copies
        .iter()
        .map(|copy| {
            serde_json::json!({"scratch": copy.scratch.to_string(), "origin": copy.origin.to_string()})
        })
        .collect();
    let source = match store.backend() {
        Backend::Sqlite => {
            "SELECT json_extract(value, '$.scratch'), 'active', $2, json_extract(value, '$.origin')
             FROM json_each($1) WHERE true"
        }
        Backend::Postgres => {
            "SELECT pair->>'scratch', 'active', $2, pair->>'origin'
             FROM jsonb_array_elements($1::jsonb) AS pair"
        }
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO tenants (site_id, state, create_time, origin_site_id) {source}"
    )))
    .bind(serde_json::Value::Array(pairs).to_string())
    .bind(now)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Sets or clears the hold of `sites`, registering the ones this database never held (a
/// hold may be set before any data arrives).
pub(crate) async fn set_hold(
    store: &Store,
    connection: &mut AnyConnection,
    sites: &[SiteId],
    hold: bool,
    now: i64,
) -> Result<(), LifecycleError> {
    let list = json_list(sites.iter().map(ToString::to_string));
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO tenants (site_id, state, create_time) SELECT value, 'active', $2 FROM ({}) AS ids WHERE true
         ON CONFLICT (site_id) DO NOTHING",
        store.json_strings("$1")
    )))
    .bind(list.clone())
    .bind(now)
    .execute(&mut *connection)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE tenants SET hold = $2 WHERE site_id IN ({})",
        store.json_strings("$1")
    )))
    .bind(list)
    .bind(i64::from(hold))
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Fences a call by its lease token: refused when any of `sites` has already seen a newer
/// token (the call comes from an executor that lost its lease), else every site records
/// this token. Runs under the call's registry lock, so two calls cannot both pass.
pub(crate) async fn fence(
    store: &Store,
    connection: &mut AnyConnection,
    sites: &[SiteId],
    token: i64,
) -> Result<(), LifecycleError> {
    let list = json_list(sites.iter().map(ToString::to_string));
    let newer = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT site_id, token FROM tenant_leases WHERE site_id IN ({}) AND token > $2 LIMIT 1",
        store.json_strings("$1")
    )))
    .bind(list.clone())
    .bind(token)
    .fetch_optional(&mut *connection)
    .await?;
    if let Some(row) = newer {
        let site_id: String = row.try_get("site_id")?;
        return Err(LifecycleError::StaleLease {
            site_id: parse_id("site_id", &site_id)?,
            token,
            newer: row.try_get("token")?,
        });
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO tenant_leases (site_id, token) SELECT value, $2 FROM ({}) AS ids WHERE true
         ON CONFLICT (site_id) DO UPDATE SET token = excluded.token",
        store.json_strings("$1")
    )))
    .bind(list)
    .bind(token)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_deleted_sites_may_be_purged_and_purges_block_everything_else() {
        use Action::*;
        use TenantState::*;
        for action in [SoftDelete, Restore, SetHold] {
            assert!(Active.allows(action));
            assert!(Deleted.allows(action));
            assert!(!Purging.allows(action), "{action:?}");
            assert!(!Purged.allows(action), "{action:?}");
        }
        assert!(!Active.allows(Purge));
        assert!(Deleted.allows(Purge));
        assert!(
            Purging.allows(Purge),
            "a purge cut short is finished by a retry"
        );
        let site = SiteId::new();
        assert!(matches!(
            check(site, Purging, Restore),
            Err(LifecycleError::BeingPurged { .. })
        ));
        assert!(matches!(
            check(site, Active, Purge),
            Err(LifecycleError::NotDeleted { .. })
        ));
    }
}
