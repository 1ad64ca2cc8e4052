//! The orchestrator: the tenant lifecycle workflows across every data-owning service.
//!
//! A bulk destructive operation is planned (every input resolved to what it is), approved
//! by a second principal above a threshold, applied exactly as planned in growing waves
//! with verification after each, and can be paused, resumed and aborted (abort undoes
//! what was done). Restores reuse every original ID and are verified against the
//! fingerprints recorded at deletion. Operation state lives in the orchestrator's
//! database, so a restarted orchestrator finishes what it started.

mod approval;
mod catalog;
mod drills;
mod error;
mod executor;
mod fleet;
mod gauges;
mod grpc;
mod holds;
mod identity;
mod model;
mod planner;
mod progress;
mod provision;
mod reaper;
mod report;
mod schedule;
mod settings;
mod sites;
mod store;

use micros_platform::{
    auth::Role,
    config::Config,
    server::{Server, ServerBuilder},
    service::{MicrosService, ServiceContext, ServiceDescriptor, service_clients},
    store::Store,
};
use micros_proto::orchestrator::v1::orchestrator_service_server::OrchestratorServiceServer;

pub use error::OrchestratorError;
pub use settings::OrchestratorSettings;

/// The orchestrator service, as the platform runs it.
pub struct Orchestrator;

impl MicrosService for Orchestrator {
    type Settings = OrchestratorSettings;

    const DESCRIPTOR: ServiceDescriptor = ServiceDescriptor {
        name: "orchestrator",
        port: 50056,
        metrics_port: 51056,
        databases: &["orchestrator"],
        depends_on: &["catalog", "identity", "license", "media", "product-data"],
        node_port: Some(30056),
        // In a cluster a small sample of sites is drilled on copies every day, so a
        // slow or broken restore path shows before an incident needs it.
        config_overrides: &[
            ("MICROS__SERVICE__DRILL_INTERVAL", "24h"),
            ("MICROS__SERVICE__DRILL_SAMPLE", "5"),
        ],
        service_roles: &[Role::Lifecycle, Role::Admin, Role::Operator, Role::Viewer],
        // Two replicas, rolled like every other service: each runs the operations it
        // has claimed (its pod name is its runner ID) under a fencing token, and takes
        // over those of a replica that stops renewing its claims.
        ..ServiceDescriptor::BASE
    };

    async fn build(
        config: Config<OrchestratorSettings>,
        context: ServiceContext,
    ) -> anyhow::Result<Server> {
        let store = store::OrchestratorStore::new(
            Store::open(
                &config.store,
                "orchestrator",
                &micros_platform::migrations!(),
            )
            .await?,
        );
        let clients = service_clients(&Self::DESCRIPTOR, &config)?;
        let fleet = fleet::Fleet::new(&clients, &config.service.services)?;
        let executor = executor::Executor::new(
            store.clone(),
            fleet.clone(),
            config.service.clone(),
            context.clock.clone(),
        );
        executor.sweep();
        gauges::spawn(store.clone(), context.clock.clone());
        reaper::Reaper {
            fleet: fleet.clone(),
            store: store.clone(),
            executor: executor.clone(),
            settings: config.service.clone(),
            clock: context.clock.clone(),
        }
        .spawn();
        drills::Drills {
            fleet: fleet.clone(),
            store: store.clone(),
            executor: executor.clone(),
            settings: config.service.clone(),
            clock: context.clock.clone(),
        }
        .spawn();
        let api = grpc::OrchestratorApi {
            store,
            fleet,
            settings: config.service.clone(),
            executor,
            clock: context.clock.clone(),
        };
        Ok(ServerBuilder::new(&config.server, &config.auth)
            .add_service(OrchestratorServiceServer::new(api))
            .bind()
            .await?)
    }
}
