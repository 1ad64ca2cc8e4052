//! The catalog: the source of truth for sites (tenants) — their record, products, app
//! installations and placement. Its tenant data lives on the platform's lifecycle
//! machinery, whose deletion guard holds here as in every service.

mod domain;
mod error;
mod grpc;
mod resolve;
mod schema;
mod settings;
mod store;

use std::sync::Arc;

use micros_platform::{
    config::Config,
    lifecycle::{Lifecycle, NoHooks, grpc::LifecycleService},
    server::{Server, ServerBuilder},
    service::{DeployFact, MicrosService, ServiceContext, ServiceDescriptor},
    store::Store,
};
use micros_proto::catalog::v1::catalog_service_server::CatalogServiceServer;

pub use error::CatalogError;
pub use schema::SCHEMA;
pub use settings::CatalogSettings;

/// The catalog service, as the platform runs it.
pub struct Catalog;

impl MicrosService for Catalog {
    type Settings = CatalogSettings;

    const DESCRIPTOR: ServiceDescriptor = ServiceDescriptor {
        name: "catalog",
        port: 50051,
        metrics_port: 51051,
        databases: &["catalog"],
        depends_on: &[],
        deployed_settings: &[(
            "MICROS__SERVICE__PRODUCT_DATA_SHARDS",
            DeployFact::ShardsOf("product-data"),
        )],
        ..ServiceDescriptor::BASE
    };

    async fn build(
        config: Config<CatalogSettings>,
        context: ServiceContext,
    ) -> anyhow::Result<Server> {
        let store = Store::open(&config.store, "catalog", &micros_platform::migrations!()).await?;
        let lifecycle = Lifecycle::open(
            store,
            SCHEMA,
            context.clock.clone(),
            config.lifecycle.clone(),
            Arc::new(NoHooks),
        )
        .await?;
        lifecycle.spawn_pruner(config.lifecycle.prune_interval);
        let api = grpc::CatalogApi::new(
            store::CatalogStore::new(lifecycle.clone()),
            config.service.clone(),
        );
        Ok(ServerBuilder::new(&config.server, &config.auth)
            .add_service(CatalogServiceServer::new(api))
            .add_service(LifecycleService::server(lifecycle))
            .bind()
            .await?)
    }
}
