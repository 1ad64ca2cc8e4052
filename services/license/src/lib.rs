//! The license service: licenses per site and product (seats, state), the commerce side
//! of provisioning. Its one table is tenant-owned and declared to the lifecycle
//! machinery, so `micros.lifecycle.v1.TenantLifecycle` (soft delete, restore, point in
//! time, purge, describe) is served next to `micros.license.v1.LicenseService`.

mod domain;
mod error;
mod grpc;
mod settings;
mod store;

use std::sync::Arc;

use micros_platform::{
    admission::SiteAdmission,
    config::Config,
    lifecycle::{Lifecycle, NoHooks, grpc::LifecycleService},
    server::{Server, ServerBuilder},
    service::{MicrosService, ServiceContext, ServiceDescriptor, service_clients},
    store::Store,
};
use micros_proto::license::v1::license_service_server::LicenseServiceServer;

pub use error::LicenseError;
pub use settings::LicenseSettings;
pub use store::SCHEMA;

/// The license service, as the platform runs it.
pub struct License;

impl MicrosService for License {
    type Settings = LicenseSettings;

    const DESCRIPTOR: ServiceDescriptor = ServiceDescriptor {
        name: "license",
        port: 50053,
        metrics_port: 51053,
        databases: &["license"],
        depends_on: &["catalog"],
        ..ServiceDescriptor::BASE
    };

    async fn build(
        config: Config<LicenseSettings>,
        context: ServiceContext,
    ) -> anyhow::Result<Server> {
        let store = Store::open(&config.store, "license", &micros_platform::migrations!()).await?;
        let lifecycle = Lifecycle::open(
            store,
            store::SCHEMA,
            context.clock.clone(),
            config.lifecycle.clone(),
            Arc::new(NoHooks),
        )
        .await?;
        lifecycle.spawn_pruner(config.lifecycle.prune_interval);
        let admission = SiteAdmission::connect(&service_clients(&Self::DESCRIPTOR, &config)?)?;
        let api = grpc::LicenseApi::new(
            store::LicenseStore::new(lifecycle.clone(), admission),
            config.service.clone(),
        );
        Ok(ServerBuilder::new(&config.server, &config.auth)
            .add_service(LicenseServiceServer::new(api))
            .add_service(LifecycleService::server(lifecycle))
            .bind()
            .await?)
    }
}
