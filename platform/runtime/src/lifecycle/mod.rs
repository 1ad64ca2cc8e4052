//! The tenant lifecycle machinery, written once for every data-owning service.
//!
//! A service declares its tenant-owned tables ([`schema::TenantSchema`]) and, where it
//! needs them, [`LifecycleHooks`]; the machinery gives it:
//!
//! * **site level**: a tenant registry per database; soft delete and restore flip the
//!   site's registry row (state, deleting operation, delete and expire time, hold) and
//!   never rewrite its data rows; domain code reaches rows only through a [`LiveTenant`],
//!   handed out for active sites alone;
//! * **row level**: rows owned by an app installation are marked with the deleting
//!   operation, set-based, and revived by exactly that operation; a mark is recorded as
//!   one record per table and target, not as row images (the `marks` module);
//! * **point in time**: every write through a [`TenantTx`] logs the row's before-image in
//!   the same transaction; a tenant's slice returns to any instant within retention,
//!   with the marks made since rewound;
//! * **describe**: per-table counts and an order-independent fingerprint;
//! * **purge** after expiry in bounded batches, keeping the registry row as a tombstone;
//! * the **deletion guard**: a free rate of soft deletions per hour, and larger ones only
//!   within an approved operation's grant;
//! * idempotency by operation ID, `validate_only`, and an audit record per destructive call;
//! * metrics of what calls did to sites and of refusals (see the `metrics` module).
//!
//! Every call with many targets runs a bounded number of statements per table.

mod call;
mod copy;
mod describe;
mod digests;
mod error;
pub mod grpc;
mod guard;
mod hold;
mod marks;
mod metrics;
mod model;
mod point_in_time;
mod purge;
pub mod registry;
mod restore;
pub mod schema;
pub mod scratch;
mod soft_delete;
mod tenant;

use std::{sync::Arc, time::Duration};

pub use copy::SiteCopy;
pub use error::{LifecycleError, Refusal};
pub use model::{
    Action, Justification, LifecycleRequest, RestoreSource, TableCount, Target, TargetOutcome,
    TenantState,
};
pub use tenant::{LiveTenant, TenantTx, Value};

use crate::{
    clock::SharedClock,
    config::LifecycleConfig,
    ids::SiteId,
    store::{Store, unix_micros},
};
use schema::{TableSpec, TenantSchema};

/// Where a service adds its own rules to lifecycle calls.
#[tonic::async_trait]
pub trait LifecycleHooks: Send + Sync + 'static {
    /// Runs inside a copy's transaction, after the rows were copied: what the rows refer
    /// to outside the database comes along (media copies the blobs). A refusal aborts
    /// the copy.
    async fn after_copy(
        &self,
        _connection: &mut sqlx::AnyConnection,
        _copies: &[SiteCopy],
    ) -> Result<(), Refusal> {
        Ok(())
    }

    /// Runs after rows were purged (media deletes the blobs no row refers to any more).
    async fn after_purge(&self, _sites: &[SiteId]) -> Result<(), LifecycleError> {
        Ok(())
    }
}

/// No service-specific rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl LifecycleHooks for NoHooks {}

/// One service database's lifecycle.
#[derive(Clone)]
pub struct Lifecycle {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    schema: TenantSchema,
    clock: SharedClock,
    config: LifecycleConfig,
    hooks: Arc<dyn LifecycleHooks>,
    /// Where the deletion guard keeps its ledger when it is not this database: one
    /// shard's, for every shard of a sharded service (see [`guard`]).
    ledger: Option<Store>,
}

impl std::fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lifecycle")
            .field("database", &self.inner.store.database())
            .finish_non_exhaustive()
    }
}

impl Lifecycle {
    /// Checks the declaration against the database and returns the machinery.
    pub async fn open(
        store: Store,
        schema: TenantSchema,
        clock: SharedClock,
        config: LifecycleConfig,
        hooks: Arc<dyn LifecycleHooks>,
    ) -> Result<Self, LifecycleError> {
        schema.check().map_err(LifecycleError::Misuse)?;
        for table in schema.tables {
            let probe = format!(
                "SELECT {} FROM {} WHERE 1 = 0",
                table.column_list(),
                table.name
            );
            sqlx::query(sqlx::AssertSqlSafe(probe))
                .fetch_optional(store.pool())
                .await
                .map_err(|error| {
                    LifecycleError::Misuse(format!(
                        "table {} does not match its declaration in {}: {error}",
                        table.name,
                        store.database()
                    ))
                })?;
            // Rows marked by an operation are found through this index alone (restore
            // looks for what it must revive; a site deletion marked nothing), so undoing
            // a site-level operation costs nothing per data row. Only marked rows are in
            // it: writes of live rows never touch it.
            if table.owner.is_some() {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "CREATE INDEX IF NOT EXISTS {name}_marked ON {name} (deleted_by)
                     WHERE deleted_by IS NOT NULL",
                    name = table.name
                )))
                .execute(store.pool())
                .await?;
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                schema,
                clock,
                config,
                hooks,
                ledger: None,
            }),
        })
    }

    /// This database's lifecycle with its deletion guard kept in `ledger`'s database, so
    /// that the shards of one service share one free rate and one count per grant.
    pub fn guarded_by(&self, ledger: &Lifecycle) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                store: inner.store.clone(),
                schema: inner.schema,
                clock: inner.clock.clone(),
                config: inner.config.clone(),
                hooks: inner.hooks.clone(),
                ledger: Some(ledger.store().clone()),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn schema(&self) -> &TenantSchema {
        &self.inner.schema
    }

    /// Now, by the service clock, in unix microseconds.
    pub fn now(&self) -> i64 {
        unix_micros(self.inner.clock.now())
    }

    pub fn retention(&self) -> Duration {
        self.inner.config.retention
    }

    fn retention_micros(&self) -> i64 {
        i64::try_from(self.inner.config.retention.as_micros()).unwrap_or(i64::MAX)
    }

    pub(crate) fn table(&self, name: &str) -> Result<&'static TableSpec, LifecycleError> {
        self.inner
            .schema
            .tables
            .iter()
            .find(|table| table.name == name)
            .ok_or_else(|| LifecycleError::Misuse(format!("{name} is not a declared tenant table")))
    }

    /// The handle for an active site; `SITE_DELETED` or `SITE_NOT_FOUND` otherwise (a
    /// scratch copy is not found: no domain read or write reaches one).
    pub async fn live(&self, site_id: SiteId) -> Result<LiveTenant, LifecycleError> {
        match registry::live_state(self.store().pool(), site_id).await? {
            TenantState::Active => Ok(LiveTenant {
                site_id,
                lifecycle: self.clone(),
            }),
            TenantState::Absent => Err(LifecycleError::SiteNotFound { site_id }),
            TenantState::Deleted | TenantState::Purging | TenantState::Purged => {
                Err(LifecycleError::SiteDeleted { site_id })
            }
        }
    }

    /// A site's state in this database (`Absent` if it has never held anything for it).
    pub async fn state(&self, site_id: SiteId) -> Result<TenantState, LifecycleError> {
        registry::state(self.store().pool(), site_id).await
    }

    /// Registers the site as active if this database has never seen it, then hands out
    /// its handle; a deleted or purged site stays refused.
    pub async fn register(&self, site_id: SiteId) -> Result<LiveTenant, LifecycleError> {
        registry::register_active(self.store().pool(), site_id, self.now()).await?;
        self.live(site_id).await
    }

    /// Deletes change-log history older than the retention period, in bounded batches.
    pub async fn prune_history(&self) -> Result<u64, LifecycleError> {
        point_in_time::prune(self).await
    }

    /// Prunes history now and then every `interval` until the process ends.
    pub fn spawn_pruner(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let lifecycle = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            loop {
                ticks.tick().await;
                match lifecycle.prune_history().await {
                    Ok(0) => {}
                    Ok(pruned) => {
                        tracing::info!(pruned, "pruned change-log history past retention")
                    }
                    Err(error) => tracing::warn!(%error, "pruning change-log history failed"),
                }
            }
        })
    }
}
