//! The tenant registry: one row per site in each service database.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};

use super::{LifecycleError, model::TenantState};
use crate::{error::parse_id, ids::SiteId, store::Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRow {
    pub site_id: SiteId,
    pub state: TenantState,
    pub deleted_by: Option<String>,
    pub delete_time: Option<i64>,
    pub expire_time: Option<i64>,
    pub hold: bool,
}

/// The registry rows of `sites`, one statement whatever their number.
pub async fn load(
    store: &Store,
    connection: &mut AnyConnection,
    sites: &[SiteId],
) -> Result<HashMap<SiteId, RegistryRow>, LifecycleError> {
    let sql = format!(
        "SELECT site_id, state, deleted_by, delete_time, expire_time, hold FROM tenants
         WHERE site_id IN ({})",
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
            },
        );
    }
    Ok(registry)
}

/// A JSON array of strings, bound as one parameter (see [`Store::json_strings`]).
pub fn json_list(items: impl IntoIterator<Item = String>) -> String {
    serde_json::Value::Array(items.into_iter().map(serde_json::Value::String).collect()).to_string()
}
