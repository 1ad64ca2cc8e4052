//! What a service declares to the platform, and the one way a service process runs.
//!
//! A service crate implements [`MicrosService`]: its descriptor, its settings type and a
//! `build` that opens its stores and returns a bound [`Server`]. `micros serve <name>`,
//! `micros up` and the test harness all go through [`run`] or `build`, so start-up,
//! readiness and shutdown behave the same everywhere.

use std::{future::Future, path::PathBuf, pin::Pin};

use serde::{Serialize, de::DeserializeOwned};

use crate::{
    auth::{Role, ServiceSigner},
    client::{Clients, Identity},
    clock::{self, SharedClock},
    config::{self, Config, Sources, Validate},
    metrics::MetricsEndpoint,
    server::{Server, shutdown_signal},
    telemetry,
};

/// The facts about a service that `micros up` and the deploy layer (`micros render`)
/// need: the one place a service's port, databases, dependencies and cluster footprint
/// are written, so the local suite and the Kubernetes manifests cannot disagree.
///
/// Start from [`ServiceDescriptor::BASE`] so that fields added later get their defaults:
///
/// ```
/// # use micros_platform::service::ServiceDescriptor;
/// const DESCRIPTOR: ServiceDescriptor = ServiceDescriptor {
///     name: "catalog",
///     port: 50051,
///     metrics_port: 51051,
///     databases: &["catalog"],
///     depends_on: &[],
///     ..ServiceDescriptor::BASE
/// };
/// assert_eq!(DESCRIPTOR.database_names(), ["catalog"]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceDescriptor {
    /// The role name: `micros serve <name>`, `clients.<name>` in config, and the
    /// Kubernetes Deployment and Service (so other services reach it at `<name>:<port>`).
    pub name: &'static str,
    /// Its gRPC port, unless configured otherwise; also its port inside a cluster.
    pub port: u16,
    /// Where Prometheus scrapes its `/metrics`, unless configured otherwise
    /// (`telemetry.metrics_port`); also the port the cluster's scrape annotations name.
    pub metrics_port: u16,
    /// Its databases (`<prefix><database>`).
    pub databases: &'static [&'static str],
    /// Services it calls; `micros up` starts these first, and in a cluster it is told
    /// their Service address.
    pub depends_on: &'static [&'static str],
    /// How many shard databases each of `databases` is split into, many tenants per
    /// shard; 1 for an unsharded service. See [`ServiceDescriptor::database_names`].
    pub shards: u16,
    /// How many pods run it in a cluster. Two for a stateless service (its state is in
    /// its store), so that a node drain or a rollout never leaves it without one; a
    /// PodDisruptionBudget keeps one of them up.
    pub replicas: u16,
    /// How a new version replaces the running pods.
    pub rollout: Rollout,
    /// Connections per database pool in a cluster (`store.max_connections`). The kind
    /// PostgreSQL's `max_connections` is sized from every service's pools, so the two
    /// are set together.
    pub pool_size: u32,
    /// What each of its containers asks for and may not exceed in a cluster.
    pub resources: Resources,
    /// `MICROS__…` variables for this service in a cluster, applied over the platform's
    /// cluster defaults (`("MICROS__SERVER__CONCURRENCY_LIMIT", "512")`).
    pub config_overrides: &'static [(&'static str, &'static str)],
    /// Reachable from the host of a kind cluster: its Service becomes a NodePort on this
    /// port (30000–32767) and the kind config maps host port [`Self::port`] to it, so
    /// the host reaches it at `127.0.0.1:<port>` as under `micros up`. `None` keeps the
    /// service inside the cluster.
    pub node_port: Option<u16>,
    /// The roles of the tokens this service presents when it calls the others (signed
    /// with its `auth.signing_key` as principal `service:<name>`). The others believe
    /// `lifecycle` only from the orchestrator's key.
    pub service_roles: &'static [Role],
    /// The S3 bucket it keeps bytes in, if any. In a cluster it stores there
    /// (`micros render` sets `service.object_store = "s3"` and `service.s3.bucket`, the
    /// settings of a service that keeps objects), so its pods share one store and lose
    /// nothing on a restart; the kind overlay runs an S3-compatible server with the
    /// bucket and points `service.s3.endpoint` at it.
    pub bucket: Option<&'static str>,
    /// A setting that receives the container's memory limit in bytes (the downward
    /// API in Kubernetes), for a service that sizes its buffers against it.
    pub memory_limit_setting: Option<&'static str>,
    /// Settings that must agree with the deployment, by `MICROS__…` key, each taken from
    /// a descriptor fact ([`DeployFact`]): `micros render` writes them into the service's
    /// cluster config and `micros serve` (so `micros up`) applies them under its file
    /// and environment. The service itself has no default for them.
    pub deployed_settings: &'static [(&'static str, DeployFact)],
}

/// How a Deployment moves to a new version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollout {
    /// One extra pod at a time, an old one removed only once the new one is ready: no
    /// moment without capacity.
    Rolling,
    /// Every old pod stops before a new one starts: for a service of which at most one
    /// instance may run at a time (so `replicas` must be 1).
    Recreate,
}

/// A fact of the deployment, written once in a descriptor, that services configure
/// themselves from (see [`ServiceDescriptor::deployed_settings`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployFact {
    /// How many shard databases the named service has ([`ServiceDescriptor::shards`]).
    ShardsOf(&'static str),
}

impl ServiceDescriptor {
    /// Defaults for every field; a service sets `name`, `port`, `databases` and
    /// `depends_on` and takes the rest with `..ServiceDescriptor::BASE`.
    pub const BASE: ServiceDescriptor = ServiceDescriptor {
        name: "",
        port: 0,
        metrics_port: 0,
        databases: &[],
        depends_on: &[],
        shards: 1,
        replicas: 2,
        rollout: Rollout::Rolling,
        pool_size: 4,
        resources: Resources::BASE,
        config_overrides: &[],
        node_port: None,
        service_roles: &[Role::Viewer],
        bucket: None,
        memory_limit_setting: None,
        deployed_settings: &[],
    };

    /// [`Self::deployed_settings`] with their values, taken from `services` (every
    /// deployed service); an error names a fact that no descriptor provides.
    pub fn deployed_config(
        &self,
        services: &[ServiceDescriptor],
    ) -> Result<Vec<(&'static str, String)>, String> {
        self.deployed_settings
            .iter()
            .map(|(key, fact)| match fact {
                DeployFact::ShardsOf(name) => services
                    .iter()
                    .find(|service| service.name == *name)
                    .map(|service| (*key, service.shards.to_string()))
                    .ok_or_else(|| {
                        format!("{key} is the shard count of `{name}`, which is not a registered service")
                    }),
            })
            .collect()
    }

    /// The databases the service opens, shards spelled out: `documents` with 4 shards
    /// is `documents_0` … `documents_3`; an unsharded database keeps its name.
    pub fn database_names(&self) -> Vec<String> {
        self.databases
            .iter()
            .flat_map(|database| {
                let shards = self.shards;
                (0..shards).map(move |shard| {
                    if shards == 1 {
                        (*database).to_owned()
                    } else {
                        format!("{database}_{shard}")
                    }
                })
            })
            .collect()
    }
}

/// CPU and memory for one container: what the scheduler reserves (`requests`) and the
/// ceiling it is throttled or killed at (`limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resources {
    pub requests: Compute,
    pub limits: Compute,
}

impl Resources {
    /// Enough for a service at rest and a burst of calls; a busy service sets its own.
    pub const BASE: Resources = Resources {
        requests: Compute {
            cpu_millis: 100,
            memory_mib: 64,
        },
        limits: Compute {
            cpu_millis: 1000,
            memory_mib: 256,
        },
    };
}

/// An amount of CPU (thousandths of a core) and memory (MiB), typed so that a
/// descriptor cannot hold a malformed Kubernetes quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compute {
    pub cpu_millis: u32,
    pub memory_mib: u32,
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

    /// Platform defaults with the descriptor's ports.
    fn default_config() -> Config<Self::Settings> {
        let mut config = Config::<Self::Settings>::default();
        config.server.port = Self::DESCRIPTOR.port;
        config.telemetry.metrics_port = Self::DESCRIPTOR.metrics_port;
        config.auth.service = Self::DESCRIPTOR.name.to_owned();
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

/// Clients for the services named in `config.clients`, presenting this service's own
/// identity: short-lived tokens for `service:<name>` with
/// [`ServiceDescriptor::service_roles`], signed with `auth.signing_key` and addressed to
/// the service called.
pub fn service_clients<S>(
    descriptor: &ServiceDescriptor,
    config: &Config<S>,
) -> anyhow::Result<Clients> {
    let signing = config.auth.keys()?.signing.ok_or_else(|| {
        anyhow::anyhow!(
            "invalid configuration: auth.signing_key: {} calls other services and must sign \
             its tokens (MICROS__AUTH__SIGNING_KEY; `micros up` generates one)",
            descriptor.name
        )
    })?;
    let signer = ServiceSigner::new(
        descriptor.name,
        descriptor.service_roles,
        &signing,
        config.auth.service_token_ttl,
    );
    Ok(Clients::new(
        config.clients.clone(),
        Identity::Service(std::sync::Arc::new(signer)),
    ))
}

/// How `micros serve` was asked to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub sources: Sources,
    /// Written once the service is ready (used by `micros up` and the tests): the bound
    /// gRPC address on the first line, the metrics address on the second.
    pub ready_file: Option<PathBuf>,
}

/// Loads config, installs telemetry, builds and serves until SIGTERM/SIGINT, with
/// `/metrics` on `telemetry.metrics_port`.
///
/// SIGTERM is handled from the first moment: in a container this process is PID 1, for
/// which the kernel ignores an unhandled SIGTERM, so a pod deleted while its stores open
/// (a database that is slow or down) would otherwise wait for the kubelet's SIGKILL.
/// Stopped during start-up, it exits 0 without serving.
pub async fn run<S: MicrosService>(options: RunOptions) -> anyhow::Result<()> {
    let mut shutdown = std::pin::pin!(shutdown_signal());
    let config = config::load(S::default_config(), &options.sources)?;
    let telemetry = telemetry::init(S::DESCRIPTOR.name, &config.telemetry)?;
    crate::failpoints::setup_from_env()?;
    let metrics_addr = std::net::SocketAddr::new(config.server.host, config.telemetry.metrics_port);
    let metrics = MetricsEndpoint::bind(metrics_addr, telemetry.prometheus_registry().clone())
        .await
        .map_err(|error| anyhow::anyhow!("cannot listen for metrics on {metrics_addr}: {error}"))?;
    let metrics_addr = metrics.local_addr();
    metrics.spawn();
    let server = tokio::select! {
        built = S::build(config, ServiceContext::default()) => built?,
        () = &mut shutdown => {
            tracing::info!(service = S::DESCRIPTOR.name, "stopped during start-up");
            return Ok(());
        }
    };
    if let Some(ready_file) = &options.ready_file {
        let staging = ready_file.with_extension("tmp");
        std::fs::write(
            &staging,
            format!("{}\n{metrics_addr}\n", server.local_addr()),
        )?;
        std::fs::rename(&staging, ready_file)?;
    }
    tracing::info!(%metrics_addr, "metrics at http://{metrics_addr}/metrics");
    server.serve(shutdown).await?;
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
