//! Product-data: product content — Jira-like issues and Confluence-like pages as typed,
//! versioned documents — in N shard databases with many sites per shard. The catalog's
//! placement says which shard holds a site. Each shard has its own lifecycle machinery,
//! and `micros.lifecycle.v1.TenantLifecycle` routes every target to its site's shard, so
//! soft delete, restore, point in time and purge of one site never touch the other sites
//! of its shard.

mod catalog;
mod domain;
mod error;
mod grpc;
mod placement;
mod schema;
mod settings;
mod store;

use std::sync::Arc;

use futures::future::try_join_all;
use micros_platform::{
    admission::SiteAdmission,
    config::Config,
    lifecycle::{Lifecycle, NoHooks, grpc::LifecycleService},
    server::{Server, ServerBuilder},
    service::{DeployFact, MicrosService, ServiceContext, ServiceDescriptor, service_clients},
    store::Store,
};
use micros_proto::productdata::v1::product_data_service_server::ProductDataServiceServer;

pub use error::ProductDataError;
pub use schema::SCHEMA;
pub use settings::ProductDataSettings;

/// The product-data service, as the platform runs it.
pub struct ProductData;

/// The name of shard database `shard` (before the store's prefix).
pub fn shard_database(shard: u16) -> String {
    format!("product_data_{shard}")
}

impl MicrosService for ProductData {
    type Settings = ProductDataSettings;

    const DESCRIPTOR: ServiceDescriptor = ServiceDescriptor {
        name: "product-data",
        port: 50055,
        metrics_port: 51055,
        databases: &["product_data"],
        depends_on: &["catalog"],
        shards: 4,
        deployed_settings: &[(
            "MICROS__SERVICE__SHARDS",
            DeployFact::ShardsOf("product-data"),
        )],
        ..ServiceDescriptor::BASE
    };

    async fn build(
        config: Config<ProductDataSettings>,
        context: ServiceContext,
    ) -> anyhow::Result<Server> {
        let migrations = micros_platform::migrations!();
        let shards = try_join_all((0..config.service.shards).map(|shard| {
            let (config, context, migrations) = (&config, &context, &migrations);
            async move {
                let store = Store::open(&config.store, &shard_database(shard), migrations).await?;
                let lifecycle = Lifecycle::open(
                    store,
                    SCHEMA,
                    context.clock.clone(),
                    config.lifecycle.clone(),
                    Arc::new(NoHooks),
                )
                .await?;
                anyhow::Ok(lifecycle)
            }
        }))
        .await?;
        for lifecycle in &shards {
            lifecycle.spawn_pruner(config.lifecycle.prune_interval);
        }
        let clients = service_clients(&Self::DESCRIPTOR, &config)?;
        let catalog = catalog::Catalog::connect(&clients)?;
        let admission = SiteAdmission::connect(&clients)?;
        let placements = Arc::new(placement::Placements::new(catalog.clone(), shards.clone()));
        let api = grpc::ProductDataApi::new(
            store::DocumentStore::new(shards.clone(), placements.clone(), admission),
            catalog,
        );
        Ok(ServerBuilder::new(&config.server, &config.auth)
            .add_service(ProductDataServiceServer::new(api))
            .add_service(LifecycleService::sharded(shards, placements))
            .bind()
            .await?)
    }
}
