//! The catalog: the source of truth for sites (tenants). This first cut serves sites
//! (create, get, resolve by URL, list); products, app installations, placement and the
//! tenant lifecycle come with the lifecycle machinery.

mod domain;
mod error;
mod grpc;
mod settings;
mod store;

use micros_platform::{
    config::Config,
    server::{Server, ServerBuilder},
    service::{MicrosService, ServiceContext, ServiceDescriptor},
    store::Store,
};
use micros_proto::catalog::v1::catalog_service_server::CatalogServiceServer;

pub use error::CatalogError;
pub use settings::CatalogSettings;

/// The catalog service, as the platform runs it.
pub struct Catalog;

impl MicrosService for Catalog {
    type Settings = CatalogSettings;

    const DESCRIPTOR: ServiceDescriptor = ServiceDescriptor {
        name: "catalog",
        port: 50051,
        databases: &["catalog"],
        depends_on: &[],
    };

    async fn build(
        config: Config<CatalogSettings>,
        _context: ServiceContext,
    ) -> anyhow::Result<Server> {
        let store = Store::open(&config.store, "catalog", &micros_platform::migrations!()).await?;
        let api = grpc::CatalogApi::new(store::SiteStore::new(store), config.service.clone());
        Ok(ServerBuilder::new(&config.server, &config.auth)
            .add_service(CatalogServiceServer::new(api))
            .bind()
            .await?)
    }
}
