//! What a service declares to the platform, and the one way a service process runs.
//!
//! A service crate implements [`MicrosService`]: its descriptor, its settings type and a
//! `build` that opens its stores and returns a bound [`Server`]. `micros serve <name>`,
//! `micros up` and the test harness all go through [`run`] or `build`, so start-up,
//! readiness and shutdown behave the same everywhere.

use std::{future::Future, path::PathBuf, pin::Pin};

use serde::{Serialize, de::DeserializeOwned};

use crate::{
    clock::{self, SharedClock},
    config::{self, Config, Sources, Validate},
    server::{Server, shutdown_signal},
    telemetry,
};

/// The facts about a service that `micros up` and the deploy layer need.
#[derive(Debug, Clone, Copy)]
pub struct ServiceDescriptor {
    /// The role name: `micros serve <name>`, `clients.<name>` in config.
    pub name: &'static str,
    /// Its gRPC port, unless configured otherwise.
    pub port: u16,
    /// Its databases (`<prefix><database>`).
    pub databases: &'static [&'static str],
    /// Services it calls; `micros up` starts these first.
    pub depends_on: &'static [&'static str],
}

/// Implemented once per service crate.
pub trait MicrosService: 'static {
    type Settings: Serialize + DeserializeOwned + Default + Clone + Validate + Send + Sync + 'static;

    const DESCRIPTOR: ServiceDescriptor;

    /// Opens stores, runs migrations, adds gRPC services and binds.
    fn build(
        config: Config<Self::Settings>,
        context: ServiceContext,
    ) -> impl Future<Output = anyhow::Result<Server>> + Send;

    /// Platform defaults with the descriptor's port.
    fn default_config() -> Config<Self::Settings> {
        let mut config = Config::<Self::Settings>::default();
        config.server.port = Self::DESCRIPTOR.port;
        config
    }
}

/// What a service gets from the process that runs it, beside its config.
#[derive(Debug, Clone)]
pub struct ServiceContext {
    /// The wall clock in production; a [`crate::clock::TestClock`] in tests.
    pub clock: SharedClock,
}

impl Default for ServiceContext {
    fn default() -> Self {
        Self {
            clock: clock::system(),
        }
    }
}

/// How `micros serve` was asked to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub sources: Sources,
    /// Written with the bound address once the service is ready (used by `micros up`).
    pub ready_file: Option<PathBuf>,
}

/// Loads config, installs telemetry, builds and serves until SIGTERM/SIGINT.
pub async fn run<S: MicrosService>(options: RunOptions) -> anyhow::Result<()> {
    let config = config::load(S::default_config(), &options.sources)?;
    let _telemetry = telemetry::init(S::DESCRIPTOR.name, &config.telemetry)?;
    let server = S::build(config, ServiceContext::default()).await?;
    if let Some(ready_file) = &options.ready_file {
        let staging = ready_file.with_extension("tmp");
        std::fs::write(&staging, server.local_addr().to_string())?;
        std::fs::rename(&staging, ready_file)?;
    }
    server.serve(shutdown_signal()).await?;
    Ok(())
}

type RunFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// A service as the `micros` command lists it.
#[derive(Clone, Copy)]
pub struct ServiceEntry {
    pub descriptor: ServiceDescriptor,
    pub run: fn(RunOptions) -> RunFuture,
}

impl ServiceEntry {
    pub fn of<S: MicrosService>() -> Self {
        Self {
            descriptor: S::DESCRIPTOR,
            run: |options| Box::pin(run::<S>(options)),
        }
    }
}
