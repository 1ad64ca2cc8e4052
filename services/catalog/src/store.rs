//! The catalog's SQL, all of it.

use micros_platform::{
    error::parse_id,
    store::{Store, StoreError},
};
use sqlx::{Row, any::AnyRow};

use crate::{
    domain::{NewSite, Site, SiteState, SiteUrl},
    error::CatalogError,
};

const SITE_COLUMNS: &str =
    "site_id, name, url, region, state, create_time, delete_time, expire_time";

#[derive(Debug, Clone)]
pub struct SiteStore {
    store: Store,
}

impl SiteStore {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Inserts the site; the same site again (same ID and attributes) returns it as it is.
    pub async fn create(&self, new: &NewSite, now: i64) -> Result<Site, CatalogError> {
        let inserted = sqlx::query(
            "INSERT INTO sites (site_id, name, url, region, state, create_time)
             VALUES ($1, $2, $3, $4, 'active', $5)",
        )
        .bind(new.site_id.to_string())
        .bind(&new.name)
        .bind(new.url.as_str())
        .bind(&new.region)
        .bind(now)
        .execute(self.store.pool())
        .await;
        match inserted {
            Ok(_) => self
                .get(&new.site_id.to_string())
                .await?
                .ok_or(CatalogError::SiteNotFound {
                    site_id: new.site_id,
                }),
            Err(error) => {
                match StoreError::conflict_or(error, || format!("site {}", new.site_id)) {
                    StoreError::Conflict { .. } => self.explain_conflict(new).await,
                    other => Err(other.into()),
                }
            }
        }
    }

    /// Which uniqueness rule a conflicting insert broke, or the existing site when the
    /// insert was a retry of one that succeeded.
    async fn explain_conflict(&self, new: &NewSite) -> Result<Site, CatalogError> {
        if let Some(existing) = self.get(&new.site_id.to_string()).await? {
            let same = existing.name == new.name
                && existing.url == new.url
                && existing.region == new.region;
            return if same {
                Ok(existing)
            } else {
                Err(CatalogError::SiteIdTaken {
                    site_id: new.site_id,
                })
            };
        }
        match self.by_url(new.url.as_str()).await? {
            Some(owner) => Err(CatalogError::UrlTaken {
                url: new.url.as_str().to_owned(),
                site_id: owner.site_id,
            }),
            None => Err(CatalogError::Store(StoreError::Conflict {
                what: format!("site {}", new.site_id),
            })),
        }
    }

    pub async fn get(&self, site_id: &str) -> Result<Option<Site>, CatalogError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SITE_COLUMNS} FROM sites WHERE site_id = $1"
        )))
        .bind(site_id)
        .fetch_optional(self.store.pool())
        .await
        .map_err(StoreError::from)?;
        row.map(|row| site_from_row(&row)).transpose()
    }

    pub async fn by_url(&self, url: &str) -> Result<Option<Site>, CatalogError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SITE_COLUMNS} FROM sites WHERE url = $1"
        )))
        .bind(url)
        .fetch_optional(self.store.pool())
        .await
        .map_err(StoreError::from)?;
        row.map(|row| site_from_row(&row)).transpose()
    }

    /// Sites after `after` in ID (creation) order.
    pub async fn list(
        &self,
        after: Option<&str>,
        limit: usize,
        show_deleted: bool,
    ) -> Result<Vec<Site>, CatalogError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SITE_COLUMNS} FROM sites
             WHERE site_id > $1 AND ($2 OR state = 'active')
             ORDER BY site_id LIMIT $3"
        )))
        .bind(after.unwrap_or(""))
        .bind(show_deleted)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.store.pool())
        .await
        .map_err(StoreError::from)?;
        rows.iter().map(site_from_row).collect()
    }
}

fn site_from_row(row: &AnyRow) -> Result<Site, CatalogError> {
    let site_id: String = row.try_get("site_id").map_err(StoreError::from)?;
    let state: String = row.try_get("state").map_err(StoreError::from)?;
    Ok(Site {
        site_id: parse_id("site_id", &site_id)?,
        name: row.try_get("name").map_err(StoreError::from)?,
        url: SiteUrl::from_stored(row.try_get("url").map_err(StoreError::from)?),
        region: row.try_get("region").map_err(StoreError::from)?,
        state: SiteState::parse(&state).ok_or_else(|| {
            StoreError::Database(sqlx::Error::Decode(
                format!("unknown site state {state}").into(),
            ))
        })?,
        create_time: row.try_get("create_time").map_err(StoreError::from)?,
        delete_time: row.try_get("delete_time").map_err(StoreError::from)?,
        expire_time: row.try_get("expire_time").map_err(StoreError::from)?,
    })
}
