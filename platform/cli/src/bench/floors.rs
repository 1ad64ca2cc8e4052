//! The floors a site-level delete and restore are measured against, taken with raw SQL
//! on the very databases the services use, in the same run:
//!
//! * **registry flip**: every site's tenant registry row to `deleted` and back, in every
//!   service database, one statement per direction per database;
//! * **fingerprint scan**: every tenant row of every site read and hashed per site (what
//!   verifying without any cache costs);
//! * **naive rewrite**: every tenant row's deletion columns set and cleared again (the
//!   design that marks rows instead of flipping a registry row).
//!
//! Flip + scan is the *tombstone floor*: what a delete or restore that flips registry
//! rows and proves the data unchanged cannot beat. Databases are worked on concurrently,
//! as the orchestrator calls the services concurrently.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use anyhow::Context;
use futures::future::try_join_all;
use micros_platform::{
    config::StoreConfig,
    lifecycle::schema::{ColumnKind, TenantSchema},
    service::MicrosService,
    store::{Backend, database_url},
};
use sqlx::{Executor, Row, any::AnyPoolOptions};

/// The marker the floors write into `deleted_by`; no operation ID looks like it.
const FLOOR_MARKER: &str = "bench-floor";

/// One service database and the benchmark's sites it holds.
pub struct Database {
    pub service: &'static str,
    pub name: String,
    backend: Backend,
    pool: sqlx::AnyPool,
    schema: TenantSchema,
    /// JSON array of the sites this database holds.
    sites: String,
    pub site_count: usize,
}

/// Every data-owning service with its declared tenant tables.
fn services() -> Vec<(&'static str, Vec<String>, TenantSchema)> {
    vec![
        (
            micros_catalog::Catalog::DESCRIPTOR.name,
            micros_catalog::Catalog::DESCRIPTOR.database_names(),
            micros_catalog::SCHEMA,
        ),
        (
            micros_identity::Identity::DESCRIPTOR.name,
            micros_identity::Identity::DESCRIPTOR.database_names(),
            micros_identity::SCHEMA,
        ),
        (
            micros_license::License::DESCRIPTOR.name,
            micros_license::License::DESCRIPTOR.database_names(),
            micros_license::SCHEMA,
        ),
        (
            micros_media::Media::DESCRIPTOR.name,
            micros_media::Media::DESCRIPTOR.database_names(),
            micros_media::SCHEMA,
        ),
        (
            micros_product_data::ProductData::DESCRIPTOR.name,
            micros_product_data::ProductData::DESCRIPTOR.database_names(),
            micros_product_data::SCHEMA,
        ),
    ]
}

/// Opens every service database of `store` and finds which of `sites` each holds.
pub async fn open(store: &StoreConfig, sites: &[String]) -> anyhow::Result<Vec<Database>> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of_url(&store.url).context("the store URL names no backend")?;
    let all = serde_json::to_string(sites)?;
    let mut databases = Vec::new();
    for (service, names, schema) in services() {
        for name in names {
            let url = database_url(store, &name)?;
            let pool = AnyPoolOptions::new()
                .max_connections(1)
                .after_connect(move |connection, _| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            connection.execute("PRAGMA busy_timeout = 30000").await?;
                        }
                        Ok(())
                    })
                })
                .connect(&url)
                .await
                .with_context(|| format!("cannot open {service}'s database {name}"))?;
            let held: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT site_id FROM tenants WHERE site_id IN ({})",
                backend.json_strings("$1")
            )))
            .bind(all.clone())
            .fetch_all(&pool)
            .await?;
            databases.push(Database {
                service,
                name,
                backend,
                pool,
                schema,
                site_count: held.len(),
                sites: serde_json::to_string(&held)?,
            });
        }
    }
    Ok(databases)
}

pub async fn close(databases: Vec<Database>) {
    for database in databases {
        database.pool.close().await;
    }
}

/// What the floors took, and how many rows they covered.
#[derive(Debug, Clone, Copy, Default)]
pub struct Floors {
    pub flip: Duration,
    pub scan: Duration,
    pub rewrite: Duration,
    pub rows: u64,
    /// Registry rows flipped (each down and back).
    pub registry_rows: u64,
}

impl Floors {
    /// Registry flip both ways plus the fingerprint scan.
    pub fn tombstone(&self) -> Duration {
        self.flip + self.scan
    }
}

/// Measures the three floors, in this order, leaving every row as it found it.
pub async fn measure(databases: &[Database]) -> anyhow::Result<Floors> {
    let started = Instant::now();
    let flipped: Vec<u64> = try_join_all(databases.iter().map(flip)).await?;
    let flip_time = started.elapsed();

    let started = Instant::now();
    let scanned: Vec<(u64, usize)> = try_join_all(databases.iter().map(scan)).await?;
    let scan_time = started.elapsed();
    for ((rows, prints), database) in scanned.iter().zip(databases) {
        anyhow::ensure!(
            *prints == database.site_count || *rows == 0,
            "{}'s {}: fingerprinted {prints} sites of {}",
            database.service,
            database.name,
            database.site_count
        );
    }

    let started = Instant::now();
    let rewritten: Vec<u64> = try_join_all(databases.iter().map(rewrite)).await?;
    let rewrite_time = started.elapsed();
    let rows: u64 = scanned.iter().map(|(rows, _)| rows).sum();
    anyhow::ensure!(
        rewritten.iter().sum::<u64>() == 2 * rows,
        "the naive rewrite changed {} rows, not twice the {rows} scanned",
        rewritten.iter().sum::<u64>()
    );
    Ok(Floors {
        flip: flip_time,
        scan: scan_time,
        rewrite: rewrite_time,
        rows,
        registry_rows: flipped.iter().sum::<u64>() / 2,
    })
}

async fn flip(database: &Database) -> anyhow::Result<u64> {
    let scope = format!("site_id IN ({})", database.backend.json_strings("$1"));
    let down = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE tenants SET state = 'deleted', deleted_by = $2, delete_time = $3, expire_time = $4
         WHERE {scope} AND state = 'active'"
    )))
    .bind(database.sites.clone())
    .bind(FLOOR_MARKER)
    .bind(1_i64)
    // Never expired: the purge reaper must not take a flipped site.
    .bind(i64::MAX)
    .execute(&database.pool)
    .await?
    .rows_affected();
    let up = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE tenants SET state = 'active', deleted_by = NULL, delete_time = NULL, expire_time = NULL
         WHERE {scope} AND state = 'deleted' AND deleted_by = $2"
    )))
    .bind(database.sites.clone())
    .bind(FLOOR_MARKER)
    .execute(&database.pool)
    .await?
    .rows_affected();
    anyhow::ensure!(
        down == up,
        "{}: flipped {down} down, {up} back",
        database.name
    );
    Ok(down + up)
}

/// Reads every tenant row of the database's sites and hashes each into its site's
/// digest, as an uncached verification would; (rows, sites fingerprinted).
async fn scan(database: &Database) -> anyhow::Result<(u64, usize)> {
    let mut sums: HashMap<String, u128> = HashMap::new();
    let mut rows_read = 0;
    for table in database.schema.tables {
        let columns = table.all_columns();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM {} WHERE site_id IN ({})",
            table.column_list(),
            table.name,
            database.backend.json_strings("$1")
        )))
        .bind(database.sites.clone())
        .fetch_all(&database.pool)
        .await?;
        for row in &rows {
            let mut hasher = blake3::Hasher::new();
            for (index, column) in columns.iter().enumerate() {
                hasher.update(column.name.as_bytes());
                match column.kind {
                    ColumnKind::Text => match row.try_get::<Option<String>, _>(index)? {
                        None => hasher.update(&[0]),
                        Some(text) => hasher
                            .update(&[1])
                            .update(&(text.len() as u64).to_le_bytes())
                            .update(text.as_bytes()),
                    },
                    ColumnKind::Int => match row.try_get::<Option<i64>, _>(index)? {
                        None => hasher.update(&[0]),
                        Some(number) => hasher.update(&[2]).update(&number.to_le_bytes()),
                    },
                };
            }
            let site: String = row.try_get(0)?;
            let digest = u128::from_le_bytes(
                hasher.finalize().as_bytes()[..16]
                    .try_into()
                    .unwrap_or_default(),
            );
            let sum = sums.entry(site).or_default();
            *sum = sum.wrapping_add(digest);
        }
        rows_read += rows.len() as u64;
    }
    Ok((rows_read, sums.len()))
}

/// Sets every tenant row's deletion columns, then clears them; the rows changed.
async fn rewrite(database: &Database) -> anyhow::Result<u64> {
    let mut changed = 0;
    let scope = format!("site_id IN ({})", database.backend.json_strings("$1"));
    for table in database.schema.tables {
        changed += sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {} SET deleted_by = $2, deleted_at = $3 WHERE {scope} AND deleted_by IS NULL",
            table.name
        )))
        .bind(database.sites.clone())
        .bind(FLOOR_MARKER)
        .bind(1_i64)
        .execute(&database.pool)
        .await?
        .rows_affected();
    }
    for table in database.schema.tables {
        changed += sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {} SET deleted_by = NULL, deleted_at = NULL WHERE {scope} AND deleted_by = $2",
            table.name
        )))
        .bind(database.sites.clone())
        .bind(FLOOR_MARKER)
        .execute(&database.pool)
        .await?
        .rows_affected();
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_data_service_declares_tables() {
        for (service, names, schema) in super::services() {
            assert!(!names.is_empty(), "{service} has databases");
            assert!(
                !schema.tables.is_empty(),
                "{service} declares tenant tables"
            );
            assert!(schema.check().is_ok(), "{service}'s declaration is valid");
        }
    }
}
