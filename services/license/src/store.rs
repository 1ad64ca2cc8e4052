//! The license service's SQL, all of it, and its declaration to the lifecycle machinery.
//!
//! Every statement runs on a [`LiveTenant`] (handed out for an active site alone) and
//! binds its site, so a deleted site's licenses are unreachable and another site's
//! license ID matches nothing. Writes go through the tenant's [`TenantTx`], which logs
//! each row's before-image for point-in-time restore.

use micros_platform::{
    admission::SiteAdmission,
    ids::{LicenseId, SiteId},
    lifecycle::{
        Lifecycle, LiveTenant, TenantTx, Value,
        schema::{TableSpec, TenantSchema, int, text},
    },
    store::{Backend, StoreError},
};
use sqlx::{Row, any::AnyRow};

use crate::{
    domain::{License, LicenseChange, LicenseState, NewLicense},
    error::LicenseError,
};

const LICENSES: &str = "licenses";

/// The tenant-owned tables of the license database. The column order is part of every
/// fingerprint: append, never reorder.
pub const SCHEMA: TenantSchema = TenantSchema {
    tables: &[TableSpec {
        name: LICENSES,
        key: "license_id",
        columns: &[
            text("license_id"),
            text("product"),
            int("seats"),
            text("state"),
            int("create_time"),
            int("update_time"),
        ],
        owner: None,
        unique_across_sites: &[],
    }],
};

const LICENSE_COLUMNS: &str =
    "license_id, site_id, product, seats, state, create_time, update_time";

#[derive(Debug, Clone)]
pub struct LicenseStore {
    lifecycle: Lifecycle,
    admission: SiteAdmission,
}

impl LicenseStore {
    pub fn new(lifecycle: Lifecycle, admission: SiteAdmission) -> Self {
        Self {
            lifecycle,
            admission,
        }
    }

    /// The site's handle, registering the site here if this service has never seen it
    /// and the catalog has it active; a deleted or purged site stays refused.
    pub async fn register(&self, site_id: SiteId) -> Result<LiveTenant, LicenseError> {
        Ok(self.admission.admit(&self.lifecycle, site_id).await?)
    }

    /// The handle of an active site for a list read: `None` when nothing of it is here
    /// yet and the catalog has it active (the list is empty).
    pub async fn reader(&self, site_id: SiteId) -> Result<Option<LiveTenant>, LicenseError> {
        Ok(self.admission.read(&self.lifecycle, site_id).await?)
    }

    /// The handle of an active site; SITE_DELETED or SITE_NOT_FOUND otherwise.
    pub async fn live(&self, site_id: SiteId) -> Result<LiveTenant, LicenseError> {
        Ok(self.lifecycle.live(site_id).await?)
    }

    /// Inserts an active license; the same license again (same ID, product and seats)
    /// returns it as it is.
    pub async fn create(
        &self,
        tenant: &LiveTenant,
        new: &NewLicense,
    ) -> Result<License, LicenseError> {
        let mut tx = tenant.begin().await?;
        let now = tx.now();
        let inserted = tx
            .insert(
                LICENSES,
                &[
                    ("license_id", Value::from(new.license_id.to_string())),
                    ("product", Value::from(new.product.as_str())),
                    ("seats", Value::from(i64::from(new.seats))),
                    ("state", Value::from(LicenseState::Active.as_str())),
                    ("create_time", Value::from(now)),
                    ("update_time", Value::from(now)),
                ],
            )
            .await;
        match inserted {
            Ok(()) => {
                tx.commit().await?;
                Ok(License {
                    license_id: new.license_id,
                    site_id: tenant.site_id(),
                    product: new.product.clone(),
                    seats: new.seats,
                    state: LicenseState::Active,
                    create_time: now,
                    update_time: now,
                })
            }
            Err(error) if error.conflict().is_some() => {
                drop(tx);
                self.explain_conflict(tenant, new).await
            }
            Err(error) => Err(error.into()),
        }
    }

    /// The existing license when the insert was a retry of one that succeeded; a clash
    /// otherwise, naming no other site's data (the ID may belong to another site).
    async fn explain_conflict(
        &self,
        tenant: &LiveTenant,
        new: &NewLicense,
    ) -> Result<License, LicenseError> {
        match self.find(tenant, new.license_id).await? {
            Some(existing) if new.matches(&existing) => Ok(existing),
            _ => Err(LicenseError::LicenseIdTaken {
                license_id: new.license_id,
            }),
        }
    }

    /// One license of the tenant; LICENSE_NOT_FOUND when it has none by that ID.
    pub async fn get(
        &self,
        tenant: &LiveTenant,
        license_id: LicenseId,
    ) -> Result<License, LicenseError> {
        self.find(tenant, license_id)
            .await?
            .ok_or(LicenseError::LicenseNotFound {
                site_id: tenant.site_id(),
                license_id,
            })
    }

    async fn find(
        &self,
        tenant: &LiveTenant,
        license_id: LicenseId,
    ) -> Result<Option<License>, LicenseError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LICENSE_COLUMNS} FROM licenses
             WHERE site_id = $1 AND license_id = $2 AND deleted_by IS NULL"
        )))
        .bind(tenant.site_key())
        .bind(license_id.to_string())
        .fetch_optional(tenant.pool())
        .await
        .map_err(StoreError::from)?;
        row.map(|row| license_from_row(&row)).transpose()
    }

    /// The tenant's licenses after `after` in ID (creation) order.
    pub async fn list(
        &self,
        tenant: &LiveTenant,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<License>, LicenseError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LICENSE_COLUMNS} FROM licenses
             WHERE site_id = $1 AND license_id > $2 AND deleted_by IS NULL
             ORDER BY license_id LIMIT $3"
        )))
        .bind(tenant.site_key())
        .bind(after.unwrap_or(""))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(tenant.pool())
        .await
        .map_err(StoreError::from)?;
        rows.iter().map(license_from_row).collect()
    }

    /// Applies `change` to the license in one transaction: the current row is read and
    /// locked, checked against the state rules, and written with its before-image logged.
    /// A change that changes nothing writes nothing.
    pub async fn update(
        &self,
        tenant: &LiveTenant,
        license_id: LicenseId,
        change: LicenseChange,
    ) -> Result<License, LicenseError> {
        let mut tx = tenant.begin().await?;
        let current =
            self.locked(&mut tx, license_id)
                .await?
                .ok_or(LicenseError::LicenseNotFound {
                    site_id: tenant.site_id(),
                    license_id,
                })?;
        let Some(mut updated) = current.apply(change)? else {
            return Ok(current);
        };
        updated.update_time = tx.now();
        tx.update(
            LICENSES,
            &license_id.to_string(),
            &[
                ("seats", Value::from(i64::from(updated.seats))),
                ("state", Value::from(updated.state.as_str())),
                ("update_time", Value::from(updated.update_time)),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// Reads a license inside `tx`, locking its row on PostgreSQL so that two updates
    /// cannot both pass the state check (SQLite's write transactions are serial anyway).
    async fn locked(
        &self,
        tx: &mut TenantTx,
        license_id: LicenseId,
    ) -> Result<Option<License>, LicenseError> {
        let lock = match self.lifecycle.store().backend() {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        let site_key = tx.site_id().to_string();
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LICENSE_COLUMNS} FROM licenses
             WHERE site_id = $1 AND license_id = $2 AND deleted_by IS NULL{lock}"
        )))
        .bind(site_key)
        .bind(license_id.to_string())
        .fetch_optional(tx.connection())
        .await
        .map_err(StoreError::from)?;
        row.map(|row| license_from_row(&row)).transpose()
    }
}

fn license_from_row(row: &AnyRow) -> Result<License, LicenseError> {
    let corrupt = |what: String| StoreError::Database(sqlx::Error::Decode(what.into()));
    let license_id: String = row.try_get("license_id").map_err(StoreError::from)?;
    let site_id: String = row.try_get("site_id").map_err(StoreError::from)?;
    let seats: i64 = row.try_get("seats").map_err(StoreError::from)?;
    let state: String = row.try_get("state").map_err(StoreError::from)?;
    Ok(License {
        license_id: LicenseId::parse(&license_id)
            .map_err(|error| corrupt(format!("license_id {license_id}: {error}")))?,
        site_id: SiteId::parse(&site_id)
            .map_err(|error| corrupt(format!("site_id {site_id}: {error}")))?,
        product: row.try_get("product").map_err(StoreError::from)?,
        seats: u32::try_from(seats)
            .map_err(|_| corrupt(format!("license {license_id} has {seats} seats")))?,
        state: LicenseState::parse(&state)
            .ok_or_else(|| corrupt(format!("unknown license state {state}")))?,
        create_time: row.try_get("create_time").map_err(StoreError::from)?,
        update_time: row.try_get("update_time").map_err(StoreError::from)?,
    })
}
