//! The live-tenant handle and the write path of tenant-owned tables.
//!
//! Domain code can only reach a site's rows through a [`LiveTenant`], which the lifecycle
//! hands out for an active site alone, so a soft-deleted site's data is unreachable by
//! construction. Every write goes through a [`TenantTx`], which records the row's
//! before-image in the change log in the same transaction: that is what point-in-time
//! restore replays.

use sqlx::{Any, AnyConnection, Transaction, any::AnyArguments, query::Query};

use super::{
    Lifecycle, LifecycleError,
    schema::{ColumnKind, TableSpec},
};
use crate::{ids::SiteId, store::StoreError};

/// A value bound into a generated statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    Int(i64),
    Null,
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::Text(text)
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Text(text.to_owned())
    }
}

impl From<i64> for Value {
    fn from(number: i64) -> Self {
        Value::Int(number)
    }
}

impl From<bool> for Value {
    fn from(flag: bool) -> Self {
        Value::Int(i64::from(flag))
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

pub(crate) fn bind<'q>(
    query: Query<'q, Any, AnyArguments>,
    value: &Value,
) -> Query<'q, Any, AnyArguments> {
    bind_as(query, value, ColumnKind::Text)
}

/// Binds `value`; a NULL carries the column's type, which PostgreSQL insists on.
pub(crate) fn bind_as<'q>(
    query: Query<'q, Any, AnyArguments>,
    value: &Value,
    kind: ColumnKind,
) -> Query<'q, Any, AnyArguments> {
    match (value, kind) {
        (Value::Text(text), _) => query.bind(text.clone()),
        (Value::Int(number), _) => query.bind(*number),
        (Value::Null, ColumnKind::Text) => query.bind(None::<String>),
        (Value::Null, ColumnKind::Int) => query.bind(None::<i64>),
    }
}

fn kind_of(spec: &TableSpec, column: &str) -> ColumnKind {
    spec.columns
        .iter()
        .find(|declared| declared.name == column)
        .map_or(ColumnKind::Text, |declared| declared.kind)
}

/// Proof that a site was active in this service when it was handed out.
#[derive(Debug, Clone)]
pub struct LiveTenant {
    pub(crate) site_id: SiteId,
    pub(crate) lifecycle: Lifecycle,
}

impl LiveTenant {
    pub fn site_id(&self) -> SiteId {
        self.site_id
    }

    /// `site_id` as bound into tenant-scoped queries.
    pub fn site_key(&self) -> String {
        self.site_id.to_string()
    }

    /// For reads; every query must bind [`Self::site_key`].
    pub fn pool(&self) -> &sqlx::AnyPool {
        self.lifecycle.store().pool()
    }

    /// A write transaction. The site's state is checked again inside it, so a soft
    /// delete that commits first makes this fail with `SITE_DELETED`.
    pub async fn begin(&self) -> Result<TenantTx, LifecycleError> {
        let mut tx = self.lifecycle.store().begin_write().await?;
        let state = super::registry::state_for_write(
            self.lifecycle.store().backend(),
            &mut tx,
            self.site_id,
        )
        .await?;
        if state != super::TenantState::Active {
            return Err(LifecycleError::SiteDeleted {
                site_id: self.site_id,
            });
        }
        Ok(TenantTx {
            now: self.lifecycle.now(),
            tx,
            site_id: self.site_id,
            lifecycle: self.lifecycle.clone(),
            wrote: false,
        })
    }
}

/// A write transaction on one live tenant; commit or drop (rolls back).
pub struct TenantTx {
    tx: Transaction<'static, Any>,
    site_id: SiteId,
    lifecycle: Lifecycle,
    now: i64,
    /// Whether a row changed, so the site's cached fingerprint must be dropped at commit.
    wrote: bool,
}

impl TenantTx {
    /// The transaction's time (unix µs, from the service clock): use it for the rows'
    /// own timestamps so they agree with the change log.
    pub fn now(&self) -> i64 {
        self.now
    }

    pub fn site_id(&self) -> SiteId {
        self.site_id
    }

    /// The connection, for reads inside the transaction.
    pub fn connection(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    fn table(&self, table: &str) -> Result<&'static TableSpec, LifecycleError> {
        self.lifecycle.table(table)
    }

    fn check_columns(
        spec: &TableSpec,
        values: &[(&str, Value)],
        updating: bool,
    ) -> Result<(), LifecycleError> {
        for (name, _) in values {
            let declared = spec.columns.iter().any(|column| column.name == *name);
            if !declared || (updating && *name == spec.key) {
                return Err(LifecycleError::Misuse(format!(
                    "{}.{name} is not a writable declared column",
                    spec.name
                )));
            }
        }
        Ok(())
    }

    /// Inserts a row owned by this tenant.
    pub async fn insert(
        &mut self,
        table: &str,
        values: &[(&str, Value)],
    ) -> Result<(), LifecycleError> {
        let spec = self.table(table)?;
        Self::check_columns(spec, values, false)?;
        let key = values
            .iter()
            .find(|(name, _)| *name == spec.key)
            .map(|(_, value)| value.clone())
            .or_else(|| {
                (spec.key == super::schema::SITE_COLUMN)
                    .then(|| Value::Text(self.site_id.to_string()))
            })
            .ok_or_else(|| {
                LifecycleError::Misuse(format!(
                    "insert into {} without its key {}",
                    spec.name, spec.key
                ))
            })?;
        let Value::Text(key) = key else {
            return Err(LifecycleError::Misuse(format!(
                "{}.{} must be text",
                spec.name, spec.key
            )));
        };
        sqlx::query(
            "INSERT INTO tenant_changes (site_id, table_name, row_key, change_time, before_image)
             VALUES ($1, $2, $3, $4, NULL)",
        )
        .bind(self.site_id.to_string())
        .bind(spec.name)
        .bind(key.clone())
        .bind(self.now)
        .execute(&mut *self.tx)
        .await?;
        self.wrote = true;

        let columns: Vec<&str> = values.iter().map(|(name, _)| *name).collect();
        let placeholders: Vec<String> = (2..=values.len() + 1).map(|n| format!("${n}")).collect();
        let sql = format!(
            "INSERT INTO {} (site_id, {}) VALUES ($1, {})",
            spec.name,
            columns.join(", "),
            placeholders.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(self.site_id.to_string());
        for (name, value) in values {
            query = bind_as(query, value, kind_of(spec, name));
        }
        query
            .execute(&mut *self.tx)
            .await
            .map_err(|error| StoreError::from_write(error, spec.name, || key))?;
        Ok(())
    }

    /// Updates the live (not row-deleted) row `key`; returns 0 when there is none.
    pub async fn update(
        &mut self,
        table: &str,
        key: &str,
        set: &[(&str, Value)],
    ) -> Result<u64, LifecycleError> {
        let spec = self.table(table)?;
        Self::check_columns(spec, set, true)?;
        if set.is_empty() {
            return Ok(0);
        }
        self.log_before_image(spec, key, "AND deleted_by IS NULL")
            .await?;
        let assignments: Vec<String> = set
            .iter()
            .enumerate()
            .map(|(index, (name, _))| format!("{name} = ${}", index + 3))
            .collect();
        let sql = format!(
            "UPDATE {} SET {} WHERE site_id = $1 AND {} = $2 AND deleted_by IS NULL",
            spec.name,
            assignments.join(", "),
            spec.key
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.site_id.to_string())
            .bind(key.to_owned());
        for (name, value) in set {
            query = bind_as(query, value, kind_of(spec, name));
        }
        Ok(query.execute(&mut *self.tx).await?.rows_affected())
    }

    /// A user's delete: marks the live row deleted by `marker` (e.g. the user's ID), so it
    /// stays deleted when an operation's deletions are undone.
    pub async fn trash(
        &mut self,
        table: &str,
        key: &str,
        marker: &str,
    ) -> Result<u64, LifecycleError> {
        let spec = self.table(table)?;
        self.log_before_image(spec, key, "AND deleted_by IS NULL")
            .await?;
        let sql = format!(
            "UPDATE {} SET deleted_by = $3, deleted_at = $4
             WHERE site_id = $1 AND {} = $2 AND deleted_by IS NULL",
            spec.name, spec.key
        );
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.site_id.to_string())
            .bind(key.to_owned())
            .bind(marker.to_owned())
            .bind(self.now)
            .execute(&mut *self.tx)
            .await?
            .rows_affected())
    }

    /// Removes a row for good (still logged, so a point-in-time restore brings it back).
    pub async fn delete(&mut self, table: &str, key: &str) -> Result<u64, LifecycleError> {
        let spec = self.table(table)?;
        self.log_before_image(spec, key, "").await?;
        let sql = format!(
            "DELETE FROM {} WHERE site_id = $1 AND {} = $2",
            spec.name, spec.key
        );
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.site_id.to_string())
            .bind(key.to_owned())
            .execute(&mut *self.tx)
            .await?
            .rows_affected())
    }

    async fn log_before_image(
        &mut self,
        spec: &TableSpec,
        key: &str,
        filter: &str,
    ) -> Result<(), LifecycleError> {
        let sql = format!(
            "INSERT INTO tenant_changes (site_id, table_name, row_key, change_time, before_image)
             SELECT site_id, $3, {key}, $4, {image} FROM {table}
             WHERE site_id = $1 AND {key} = $2 {filter}",
            key = spec.key,
            image = spec.json_row(self.lifecycle.store().backend()),
            table = spec.name,
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.site_id.to_string())
            .bind(key.to_owned())
            .bind(spec.name)
            .bind(self.now)
            .execute(&mut *self.tx)
            .await?;
        self.wrote = true;
        Ok(())
    }

    pub async fn commit(mut self) -> Result<(), LifecycleError> {
        if self.wrote {
            super::digests::bump_one(&mut self.tx, self.site_id).await?;
        }
        self.tx.commit().await?;
        Ok(())
    }
}
