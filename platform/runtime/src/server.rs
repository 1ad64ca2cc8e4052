//! The one gRPC server builder every service uses: its domain services, plus
//! `grpc.health.v1`, reflection v1 and v1alpha, the layer stack of [`crate::layers`],
//! and a graceful drain.
//!
//! Lifecycle: a service prepares what it needs (store, migrations), adds its services
//! and [`ServerBuilder::bind`]s; health answers NOT_SERVING for the empty name and every
//! service until the serve loop runs, then SERVING. On shutdown health flips back to
//! NOT_SERVING, the server waits `shutdown_delay` so load balancers notice, stops
//! accepting, and lets in-flight calls finish for up to `drain_timeout`.

use std::{convert::Infallible, future::Future, net::SocketAddr, sync::Arc};

use http::{Request, Response};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{
    body::Body, server::NamedService, service::RoutesBuilder, transport::server::TcpIncoming,
};
use tonic_health::{ServingStatus, server::HealthReporter};
use tower::{Service, ServiceBuilder};

use crate::{
    auth::Authenticator,
    config::{AuthConfig, ServerConfig},
    layers::{AuthLayer, DeadlineLayer, OverloadLayer, is_traced},
    metrics::RpcMetricsLayer,
};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error(transparent)]
    Auth(#[from] crate::config::ConfigError),
}

const REFLECTION_SERVICES: [&str; 2] = [
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// Collects a service's gRPC services before binding.
pub struct ServerBuilder {
    config: ServerConfig,
    auth: AuthConfig,
    routes: RoutesBuilder,
    names: Vec<&'static str>,
}

impl ServerBuilder {
    pub fn new(config: &ServerConfig, auth: &AuthConfig) -> Self {
        Self {
            config: config.clone(),
            auth: auth.clone(),
            routes: RoutesBuilder::default(),
            names: Vec::new(),
        }
    }

    /// Adds a generated `…Server`; health reports it by its full name.
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes.add_service(service);
        self
    }

    /// Binds the listener (port 0 picks a free one) and assembles health and reflection.
    pub async fn bind(self) -> Result<Server, ServerError> {
        let authenticator = Arc::new(Authenticator::new(&self.auth)?);
        let addr = self.config.listen_addr();
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;

        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        for name in &self.names {
            health
                .set_service_status(*name, ServingStatus::NotServing)
                .await;
        }

        let mut routes = self.routes;
        routes.add_service(health_service);
        routes.add_service(reflection(&self.names)?.build_v1()?);
        routes.add_service(reflection(&self.names)?.build_v1alpha()?);

        Ok(Server {
            config: self.config,
            authenticator,
            routes,
            names: self.names,
            health,
            listener,
            local_addr,
        })
    }
}

/// Built twice (v1 and v1alpha): the builder is consumed and is not `Clone`.
///
/// Each build adds only its own version's descriptors; both are registered in both, so
/// a v1alpha-only client (grpcurl 1.8.6) can `describe` the v1 service it lists too.
fn reflection(
    names: &[&'static str],
) -> Result<tonic_reflection::server::Builder<'static>, ServerError> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(micros_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("grpc.health.v1.Health");
    for name in names.iter().chain(REFLECTION_SERVICES.iter()) {
        builder = builder.with_service_name(*name);
    }
    Ok(builder)
}

/// A bound server, not yet serving.
pub struct Server {
    config: ServerConfig,
    authenticator: Arc<Authenticator>,
    routes: RoutesBuilder,
    names: Vec<&'static str>,
    health: HealthReporter,
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl Server {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then drains (see the module docs).
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServerError> {
        let Server {
            config,
            authenticator,
            routes,
            names,
            health,
            listener,
            local_addr,
        } = self;
        let layers = ServiceBuilder::new()
            .layer(
                tonic_tracing_opentelemetry::middleware::server::OtelGrpcLayer::default()
                    .filter(is_traced),
            )
            .layer(RpcMetricsLayer::server())
            .layer(OverloadLayer::new(config.concurrency_limit))
            .layer(DeadlineLayer::new(config.request_timeout))
            .layer(AuthLayer::new(authenticator))
            .into_inner();

        let (draining_tx, draining_rx) = oneshot::channel::<()>();
        let drain_health = health.clone();
        let drain_names = names.clone();
        let stop_accepting = async move {
            shutdown.await;
            tracing::info!(%local_addr, "shutting down: health NOT_SERVING, draining calls");
            set_status(&drain_health, &drain_names, ServingStatus::NotServing).await;
            tokio::time::sleep(config.shutdown_delay).await;
            let _ = draining_tx.send(());
        };

        let serving = tonic::transport::Server::builder()
            .layer(layers)
            .add_routes(routes.routes())
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), stop_accepting);
        set_status(&health, &names, ServingStatus::Serving).await;
        tracing::info!(%local_addr, services = ?names, "serving");

        let drain_deadline = async move {
            if draining_rx.await.is_ok() {
                tokio::time::sleep(config.drain_timeout).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            result = serving => result?,
            () = drain_deadline => {
                tracing::warn!(timeout = ?config.drain_timeout, "drain timeout: abandoning calls still in flight");
            }
        }
        tracing::info!(%local_addr, "stopped");
        Ok(())
    }

    /// Serves in a task; for tests and for `micros up`'s in-process use.
    pub fn spawn(self) -> RunningServer {
        let addr = self.local_addr;
        let health = self.health.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.serve(async move {
            let _ = stopped.await;
        }));
        RunningServer {
            addr,
            health,
            stop: Some(stop),
            task,
        }
    }
}

async fn set_status(health: &HealthReporter, names: &[&'static str], status: ServingStatus) {
    health.set_service_status("", status).await;
    for name in names {
        health.set_service_status(*name, status).await;
    }
}

/// A server serving in a task.
pub struct RunningServer {
    addr: SocketAddr,
    health: HealthReporter,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl RunningServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:port`, for clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn health(&self) -> &HealthReporter {
        &self.health
    }

    /// Starts the drain without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Drains and waits for the serve loop to end.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        self.begin_shutdown();
        match (&mut self.task).await {
            Ok(result) => result,
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }
}

/// Completes on SIGTERM or SIGINT (Ctrl-C). The handlers are installed by this call, not
/// when the future is first polled, so a signal that arrives while a service is still
/// starting is not lost.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).expect("install the SIGTERM handler");
    let mut interrupt = signal(SignalKind::interrupt()).expect("install the SIGINT handler");
    async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
        }
    }
}
