//! The per-site cache of counts and fingerprints (`tenant_digests`). Every change to a
//! site's rows bumps the site's version; a summary computed from the rows is stored with
//! the version read before computing it, so a summary is only ever used for exactly the
//! rows it was computed from.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

use super::{LifecycleError, model::TableCount};
use crate::store::json_list;
use crate::{
    ids::SiteId,
    store::{Backend, Store},
};

/// What is cached for a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub counts: Vec<TableCount>,
    pub fingerprint: String,
}

/// A site's cache row as read: its version, and the summary if it is current.
#[derive(Debug, Clone)]
pub struct Cached {
    pub version: i64,
    pub summary: Option<Summary>,
}

/// The cache rows of `sites` (absent: version 0, nothing cached).
pub async fn load(
    store: &Store,
    connection: &mut AnyConnection,
    sites: &[String],
) -> Result<HashMap<String, Cached>, LifecycleError> {
    if sites.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT site_id, version, digest_version, summary FROM tenant_digests WHERE site_id IN ({})",
        store.json_strings("$1")
    )))
    .bind(json_list(sites.iter().cloned()))
    .fetch_all(&mut *connection)
    .await?;
    let mut cached = HashMap::with_capacity(rows.len());
    for row in rows {
        let site_id: String = row.try_get("site_id")?;
        let version: i64 = row.try_get("version")?;
        let digest_version: Option<i64> = row.try_get("digest_version")?;
        let summary: Option<String> = row.try_get("summary")?;
        let summary = match (digest_version, summary) {
            (Some(at), Some(json)) if at == version => serde_json::from_str(&json).ok(),
            _ => None,
        };
        cached.insert(site_id, Cached { version, summary });
    }
    Ok(cached)
}

/// Stores summaries computed at the versions given, unless a change came in since.
pub async fn store(
    store: &Store,
    connection: &mut AnyConnection,
    computed: &[(String, i64, Summary)],
) -> Result<(), LifecycleError> {
    if computed.is_empty() {
        return Ok(());
    }
    let entries: Vec<serde_json::Value> = computed
        .iter()
        .map(|(site, version, summary)| {
            serde_json::json!({
                "site": site,
                "version": version,
                "summary": serde_json::to_string(summary).unwrap_or_default(),
            })
        })
        .collect();
    let source = match store.backend() {
        Backend::Sqlite => {
            "SELECT json_extract(value, '$.site'), json_extract(value, '$.version'),
                    json_extract(value, '$.version'), json_extract(value, '$.summary')
             FROM json_each($1) WHERE true"
        }
        Backend::Postgres => {
            "SELECT entry->>'site', (entry->>'version')::bigint, (entry->>'version')::bigint, entry->>'summary'
             FROM jsonb_array_elements($1::jsonb) AS entry"
        }
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO tenant_digests (site_id, version, digest_version, summary) {source}
         ON CONFLICT (site_id) DO UPDATE SET digest_version = excluded.digest_version, summary = excluded.summary
         WHERE tenant_digests.version = excluded.version"
    )))
    .bind(serde_json::Value::Array(entries).to_string())
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Marks the sites' rows changed: their cached summaries no longer apply.
pub async fn bump(
    store: &Store,
    connection: &mut AnyConnection,
    sites: &[SiteId],
) -> Result<(), LifecycleError> {
    if sites.is_empty() {
        return Ok(());
    }
    // An upsert, not an UPDATE: a describe that found no row (version 0) and read the rows
    // before this change must not be able to store its summary at version 0 afterwards.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO tenant_digests (site_id, version) SELECT value, 1 FROM ({}) AS sites WHERE true
         ON CONFLICT (site_id) DO UPDATE SET version = tenant_digests.version + 1",
        store.json_strings("$1")
    )))
    // Each site once: PostgreSQL refuses an upsert that touches a row twice.
    .bind(json_list(
        sites
            .iter()
            .map(ToString::to_string)
            .collect::<std::collections::BTreeSet<_>>(),
    ))
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Marks one site's rows changed, creating its cache row (for a write through a
/// `TenantTx`, at commit).
pub async fn bump_one(
    connection: &mut AnyConnection,
    site_id: SiteId,
) -> Result<(), LifecycleError> {
    sqlx::query(
        "INSERT INTO tenant_digests (site_id, version) VALUES ($1, 1)
         ON CONFLICT (site_id) DO UPDATE SET version = tenant_digests.version + 1",
    )
    .bind(site_id.to_string())
    .execute(&mut *connection)
    .await?;
    Ok(())
}
