//! The catalog's SQL, all of it. Domain reads and writes of a site go through its
//! [`LiveTenant`]; the operator views (`show_deleted`, Resolve) read the tenant registry
//! joined with the site record, so they also see deleted and purged sites.

use std::collections::HashMap;

use micros_platform::{
    error::parse_id,
    ids::{AppInstallationId, OperationId, SiteId},
    lifecycle::{Lifecycle, LifecycleError, LiveTenant, TenantState, Value},
    store::json_list,
};
use sqlx::{Row, any::AnyRow};

use crate::{
    domain::{AppInstallation, NewSite, ProductAction, ProductState, Site, SiteProduct, SiteUrl},
    error::CatalogError,
    schema::{APP_INSTALLATIONS, SITE_PRODUCTS, SITES},
};

/// The registry joined with the site record; purged sites have no record left.
const SITE_VIEW: &str = "SELECT t.site_id, t.state, t.delete_time, t.expire_time,
        s.name, s.url, s.region, s.shard, s.create_time
    FROM tenant_view t LEFT JOIN sites s ON s.site_id = t.site_id";

/// Customers' sites only: scratch copies (restore drills) stay out of listings and
/// lookups by ID or URL; only their placement is answered, for the drill itself.
const CUSTOMERS: &str = "t.origin_site_id IS NULL";

/// A site as GetPlacement sees it.
#[derive(Debug, Clone)]
pub struct PlacedSite {
    pub site: Site,
    /// A scratch copy of another site, made for a restore drill.
    pub scratch: bool,
}

impl PlacedSite {
    /// The placement GetPlacement answers for this site: a deleted site's only with
    /// `show_deleted` (product-data restoring or purging its rows), a scratch copy's
    /// always (the drill needs it), a purged site's never.
    pub fn placement(&self, show_deleted: bool) -> Placement {
        match self.site.state {
            TenantState::Purged => Placement::Purged,
            TenantState::Active => Placement::Placed(self.site.shard),
            _ if self.scratch || show_deleted => Placement::Placed(self.site.shard),
            _ => Placement::Deleted,
        }
    }
}

/// Where a site's content is, or why the catalog does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    Placed(i64),
    Deleted,
    Purged,
}

#[derive(Debug, Clone)]
pub struct CatalogStore {
    lifecycle: Lifecycle,
}

impl CatalogStore {
    pub fn new(lifecycle: Lifecycle) -> Self {
        Self { lifecycle }
    }

    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    fn json_strings(&self, param: &str) -> String {
        self.lifecycle.store().json_strings(param)
    }

    /// Creates the site; the same site again (same ID and attributes) returns it as it is.
    pub async fn create_site(&self, new: &NewSite) -> Result<Site, CatalogError> {
        if let Some(existing) = self.site_any_state(new.site_id).await? {
            let same = existing.name == new.name
                && existing.url == new.url
                && existing.region == new.region
                && existing.state == TenantState::Active;
            return if same {
                Ok(existing)
            } else {
                Err(CatalogError::SiteIdTaken {
                    site_id: new.site_id,
                })
            };
        }
        if let Some(owner) = self.site_by_url(new.url.as_str()).await? {
            return Err(CatalogError::UrlTaken {
                url: new.url.as_str().to_owned(),
                site_id: owner.site_id,
            });
        }
        let tenant = self.lifecycle.register(new.site_id).await?;
        let mut tx = tenant.begin().await?;
        let inserted = tx
            .insert(
                SITES,
                &[
                    ("name", Value::from(new.name.as_str())),
                    ("url", Value::from(new.url.as_str())),
                    ("region", Value::from(new.region.as_str())),
                    ("shard", Value::from(new.shard)),
                    ("create_time", Value::from(tx.now())),
                ],
            )
            .await;
        match inserted {
            Ok(()) => tx.commit().await?,
            Err(error) if error.conflict().is_some() => {
                drop(tx);
                return match self.site_by_url(new.url.as_str()).await? {
                    Some(owner) if owner.site_id != new.site_id => Err(CatalogError::UrlTaken {
                        url: new.url.as_str().to_owned(),
                        site_id: owner.site_id,
                    }),
                    _ => Err(CatalogError::SiteIdTaken {
                        site_id: new.site_id,
                    }),
                };
            }
            Err(other) => return Err(other.into()),
        }
        self.site_any_state(new.site_id)
            .await?
            .ok_or(CatalogError::SiteNotFound {
                site_id: new.site_id,
            })
    }

    /// A customer's site in any state (registry joined with its record).
    pub async fn site_any_state(&self, site_id: SiteId) -> Result<Option<Site>, CatalogError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SITE_VIEW} WHERE t.site_id = $1 AND {CUSTOMERS}"
        )))
        .bind(site_id.to_string())
        .fetch_optional(self.lifecycle.store().pool())
        .await?;
        row.as_ref().map(site_from_row).transpose()
    }

    /// Sites in any state with whether each is a scratch copy (a restore drill's), one
    /// statement, for GetPlacement(s): the one lookup that answers for scratch copies.
    /// Sites the catalog never had are absent from the map.
    pub async fn placed_sites(
        &self,
        site_ids: &[SiteId],
    ) -> Result<HashMap<SiteId, PlacedSite>, CatalogError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{} WHERE t.site_id IN ({})",
            SITE_VIEW.replacen("SELECT ", "SELECT t.origin_site_id, ", 1),
            self.json_strings("$1")
        )))
        .bind(json_list(site_ids.iter().map(ToString::to_string)))
        .fetch_all(self.lifecycle.store().pool())
        .await?;
        rows.iter()
            .map(|row| {
                let site = site_from_row(row)?;
                let scratch = row
                    .try_get::<Option<String>, _>("origin_site_id")?
                    .is_some();
                Ok((site.site_id, PlacedSite { site, scratch }))
            })
            .collect()
    }

    /// The site answering on `url`, in any state but purged.
    pub async fn site_by_url(&self, url: &str) -> Result<Option<Site>, CatalogError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SITE_VIEW} WHERE s.url = $1")))
            .bind(url)
            .fetch_optional(self.lifecycle.store().pool())
            .await?;
        row.as_ref().map(site_from_row).transpose()
    }

    /// Sites after `after` in ID (creation) order.
    pub async fn list_sites(
        &self,
        after: Option<&str>,
        limit: usize,
        show_deleted: bool,
    ) -> Result<Vec<Site>, CatalogError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SITE_VIEW} WHERE t.site_id > $1 AND ($2 OR t.state = 'active') AND {CUSTOMERS}
             ORDER BY t.site_id LIMIT $3"
        )))
        .bind(after.unwrap_or(""))
        .bind(show_deleted)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.lifecycle.store().pool())
        .await?;
        rows.iter().map(site_from_row).collect()
    }

    /// Sites by ID, any state, one statement.
    pub async fn sites_by_ids(&self, ids: &[String]) -> Result<Vec<Site>, CatalogError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SITE_VIEW} WHERE t.site_id IN ({}) AND {CUSTOMERS}",
            self.json_strings("$1")
        )))
        .bind(json_list(ids.iter().cloned()))
        .fetch_all(self.lifecycle.store().pool())
        .await?;
        rows.iter().map(site_from_row).collect()
    }

    /// Sites by canonical URL, any state but purged, one statement.
    pub async fn sites_by_urls(&self, urls: &[String]) -> Result<Vec<Site>, CatalogError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SITE_VIEW} WHERE s.url IN ({}) AND {CUSTOMERS}",
            self.json_strings("$1")
        )))
        .bind(json_list(urls.iter().cloned()))
        .fetch_all(self.lifecycle.store().pool())
        .await?;
        rows.iter().map(site_from_row).collect()
    }

    /// App installations by ID, installed or not: (installation, installed).
    pub async fn apps_by_ids(
        &self,
        ids: &[String],
    ) -> Result<Vec<(AppInstallation, bool)>, CatalogError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT a.site_id, a.app_installation_id, a.app_key, a.install_time, a.deleted_by, t.state
             FROM app_installations a JOIN tenant_view t ON t.site_id = a.site_id
             WHERE a.app_installation_id IN ({})",
            self.json_strings("$1")
        )))
        .bind(json_list(ids.iter().cloned()))
        .fetch_all(self.lifecycle.store().pool())
        .await?;
        rows.iter()
            .map(|row| {
                let deleted_by: Option<String> = row.try_get("deleted_by")?;
                let state: String = row.try_get("state")?;
                Ok((
                    app_from_row(row)?,
                    deleted_by.is_none() && state == "active",
                ))
            })
            .collect()
    }

    /// Per site: active products and the number of installed apps, one statement each.
    pub async fn site_contents(
        &self,
        site_ids: &[String],
    ) -> Result<HashMap<String, (Vec<String>, i64)>, CatalogError> {
        let list = json_list(site_ids.iter().cloned());
        let mut contents: HashMap<String, (Vec<String>, i64)> = HashMap::new();
        let products = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT site_id, product FROM site_products
             WHERE deleted_by IS NULL AND state = 'active' AND site_id IN ({}) ORDER BY product",
            self.json_strings("$1")
        )))
        .bind(list.clone())
        .fetch_all(self.lifecycle.store().pool())
        .await?;
        for row in products {
            let site_id: String = row.try_get("site_id")?;
            contents
                .entry(site_id)
                .or_default()
                .0
                .push(row.try_get("product")?);
        }
        let apps = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT site_id, COUNT(*) AS apps FROM app_installations
             WHERE deleted_by IS NULL AND site_id IN ({}) GROUP BY site_id",
            self.json_strings("$1")
        )))
        .bind(list)
        .fetch_all(self.lifecycle.store().pool())
        .await?;
        for row in apps {
            let site_id: String = row.try_get("site_id")?;
            contents.entry(site_id).or_default().1 = row.try_get("apps")?;
        }
        Ok(contents)
    }

    pub async fn products(&self, tenant: &LiveTenant) -> Result<Vec<SiteProduct>, CatalogError> {
        let rows = sqlx::query(
            "SELECT product, state, update_time FROM site_products
             WHERE site_id = $1 AND deleted_by IS NULL ORDER BY product",
        )
        .bind(tenant.site_key())
        .fetch_all(tenant.pool())
        .await?;
        rows.iter()
            .map(|row| product_from_row(tenant.site_id(), row))
            .collect()
    }

    /// Applies `action` to `product` on the site, in one transaction.
    pub async fn change_product(
        &self,
        tenant: &LiveTenant,
        product: &str,
        action: ProductAction,
    ) -> Result<SiteProduct, CatalogError> {
        let key = format!("{}/{product}", tenant.site_id());
        let mut tx = tenant.begin().await?;
        let current: Option<String> = sqlx::query_scalar(
            "SELECT state FROM site_products WHERE site_id = $1 AND site_product_id = $2 AND deleted_by IS NULL",
        )
        .bind(tenant.site_key())
        .bind(key.clone())
        .fetch_optional(tx.connection())
        .await?;
        let from = current.as_deref().and_then(ProductState::parse);
        let to = action
            .next(from)
            .ok_or_else(|| CatalogError::ProductTransition {
                site_id: tenant.site_id(),
                product: product.to_owned(),
                action: action.as_str(),
                from: from.map_or("not on the site", ProductState::as_str),
            })?;
        let now = tx.now();
        if from.is_none() {
            tx.insert(
                SITE_PRODUCTS,
                &[
                    ("site_product_id", Value::from(key)),
                    ("product", Value::from(product)),
                    ("state", Value::from(to.as_str())),
                    ("update_time", Value::from(now)),
                ],
            )
            .await?;
        } else if from != Some(to) {
            tx.update(
                SITE_PRODUCTS,
                &key,
                &[
                    ("state", Value::from(to.as_str())),
                    ("update_time", Value::from(now)),
                ],
            )
            .await?;
        }
        tx.commit().await?;
        let products = self.products(tenant).await?;
        let changed = products
            .into_iter()
            .find(|candidate| candidate.product == product);
        changed.ok_or_else(|| {
            CatalogError::Lifecycle(LifecycleError::Misuse(format!(
                "{product} vanished after its change"
            )))
        })
    }

    /// Installs an app; the same installation again returns it as it is.
    pub async fn install_app(
        &self,
        tenant: &LiveTenant,
        app_installation_id: AppInstallationId,
        app_key: &str,
    ) -> Result<AppInstallation, CatalogError> {
        if let Some((existing, installed)) = self
            .apps_by_ids(&[app_installation_id.to_string()])
            .await?
            .into_iter()
            .next()
        {
            return if installed
                && existing.site_id == tenant.site_id()
                && existing.app_key == app_key
            {
                Ok(existing)
            } else {
                Err(CatalogError::AppInstallationIdTaken {
                    app_installation_id,
                })
            };
        }
        let mut tx = tenant.begin().await?;
        let now = tx.now();
        tx.insert(
            APP_INSTALLATIONS,
            &[
                (
                    "app_installation_id",
                    Value::from(app_installation_id.to_string()),
                ),
                ("app_key", Value::from(app_key)),
                ("install_time", Value::from(now)),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(AppInstallation {
            app_installation_id,
            site_id: tenant.site_id(),
            app_key: app_key.to_owned(),
            install_time: now,
        })
    }

    /// Marks the installation deleted by a new operation, which a restore can undo.
    pub async fn uninstall_app(
        &self,
        tenant: &LiveTenant,
        app_installation_id: AppInstallationId,
    ) -> Result<OperationId, CatalogError> {
        let operation_id = OperationId::new();
        let mut tx = tenant.begin().await?;
        let marked = tx
            .trash(
                APP_INSTALLATIONS,
                &app_installation_id.to_string(),
                &operation_id.to_string(),
            )
            .await?;
        if marked == 0 {
            return Err(CatalogError::AppInstallationNotFound {
                site_id: tenant.site_id(),
                app_installation_id,
            });
        }
        tx.commit().await?;
        Ok(operation_id)
    }

    pub async fn app_installations(
        &self,
        tenant: &LiveTenant,
        app_key: Option<&str>,
    ) -> Result<Vec<AppInstallation>, CatalogError> {
        let rows = sqlx::query(
            "SELECT site_id, app_installation_id, app_key, install_time FROM app_installations
             WHERE site_id = $1 AND deleted_by IS NULL AND ($2 = '' OR app_key = $2)
             ORDER BY app_installation_id",
        )
        .bind(tenant.site_key())
        .bind(app_key.unwrap_or("").to_owned())
        .fetch_all(tenant.pool())
        .await?;
        rows.iter().map(app_from_row).collect()
    }
}

fn site_from_row(row: &AnyRow) -> Result<Site, CatalogError> {
    let site_id: String = row.try_get("site_id")?;
    let state: String = row.try_get("state")?;
    Ok(Site {
        site_id: parse_id("site_id", &site_id)?,
        name: row
            .try_get::<Option<String>, _>("name")?
            .unwrap_or_default(),
        url: SiteUrl::from_stored(row.try_get::<Option<String>, _>("url")?.unwrap_or_default()),
        region: row
            .try_get::<Option<String>, _>("region")?
            .unwrap_or_default(),
        shard: row.try_get::<Option<i64>, _>("shard")?.unwrap_or_default(),
        state: TenantState::parse(&state)
            .ok_or_else(|| LifecycleError::Misuse(format!("unknown tenant state {state}")))?,
        create_time: row
            .try_get::<Option<i64>, _>("create_time")?
            .unwrap_or_default(),
        delete_time: row.try_get("delete_time")?,
        expire_time: row.try_get("expire_time")?,
    })
}

fn product_from_row(site_id: SiteId, row: &AnyRow) -> Result<SiteProduct, CatalogError> {
    let state: String = row.try_get("state")?;
    Ok(SiteProduct {
        site_id,
        product: row.try_get("product")?,
        state: ProductState::parse(&state)
            .ok_or_else(|| LifecycleError::Misuse(format!("unknown product state {state}")))?,
        update_time: row.try_get("update_time")?,
    })
}

fn app_from_row(row: &AnyRow) -> Result<AppInstallation, CatalogError> {
    let site_id: String = row.try_get("site_id")?;
    let app_installation_id: String = row.try_get("app_installation_id")?;
    Ok(AppInstallation {
        app_installation_id: parse_id("app_installation_id", &app_installation_id)?,
        site_id: parse_id("site_id", &site_id)?,
        app_key: row.try_get("app_key")?,
        install_time: row.try_get("install_time")?,
    })
}
