//! Identity: each site's users, groups, memberships, permission grants, site admins and
//! product access, on the platform's lifecycle machinery; and the contact escrow, which
//! is deliberately outside it, so that support can find a customer's sites by contact
//! email while they are deleted or purged.

mod domain;
mod error;
mod escrow;
mod grpc;
mod schema;
mod settings;
mod store;

use std::sync::Arc;

use micros_platform::{
    admission::SiteAdmission,
    config::Config,
    lifecycle::{Lifecycle, grpc::LifecycleService},
    server::{Server, ServerBuilder},
    service::{MicrosService, ServiceContext, ServiceDescriptor, service_clients},
    store::Store,
};
use micros_proto::identity::v1::identity_service_server::IdentityServiceServer;

pub use error::IdentityError;
pub use schema::SCHEMA;
pub use settings::IdentitySettings;

/// The identity service, as the platform runs it.
pub struct Identity;

impl MicrosService for Identity {
    type Settings = IdentitySettings;

    const DESCRIPTOR: ServiceDescriptor = ServiceDescriptor {
        name: "identity",
        port: 50052,
        metrics_port: 51052,
        databases: &["identity"],
        depends_on: &["catalog"],
        ..ServiceDescriptor::BASE
    };

    async fn build(
        config: Config<IdentitySettings>,
        context: ServiceContext,
    ) -> anyhow::Result<Server> {
        let store = Store::open(&config.store, "identity", &micros_platform::migrations!()).await?;
        let escrow = escrow::ContactEscrow::new(
            store.clone(),
            context.clock.clone(),
            config.service.escrow_retention,
        );
        let lifecycle = Lifecycle::open(
            store,
            SCHEMA,
            context.clock.clone(),
            config.lifecycle.clone(),
            Arc::new(escrow::EscrowHooks::new(escrow.clone())),
        )
        .await?;
        lifecycle.spawn_pruner(config.lifecycle.prune_interval);
        escrow.spawn_pruner(config.service.escrow_prune_interval);
        let admission = SiteAdmission::connect(&service_clients(&Self::DESCRIPTOR, &config)?)?;
        let api = grpc::IdentityApi::new(
            store::DirectoryStore::new(lifecycle.clone(), admission),
            escrow,
            config.service.clone(),
        );
        Ok(ServerBuilder::new(&config.server, &config.auth)
            .add_service(IdentityServiceServer::new(api))
            .add_service(LifecycleService::server(lifecycle))
            .bind()
            .await?)
    }
}
