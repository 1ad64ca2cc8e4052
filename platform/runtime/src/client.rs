//! Calling another Micros service: by name from `clients.<name>` in config, with the
//! caller's credentials, a default deadline sent as `grpc-timeout`, W3C trace context,
//! call metrics ([`RpcMetricsLayer::client`]), and [`retry_idempotent`] for calls that
//! are safe to repeat.

use std::{collections::BTreeMap, future::Future, str::FromStr, sync::Arc, time::Duration};

use backon::{ExponentialBuilder, Retryable};
use secrecy::{ExposeSecret, SecretString};
use tonic::{
    Code, Status,
    metadata::MetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};
use tonic_tracing_opentelemetry::middleware::client::{OtelGrpcLayer, OtelGrpcService};
use tower::{Layer, util::MapErr};

use crate::{
    auth::ServiceSigner,
    config::ClientConfig,
    metrics::{RpcMetrics, RpcMetricsLayer},
};

/// The channel type every generated client is built on.
pub type ServiceChannel = InterceptedService<
    MapErr<OtelGrpcService<RpcMetrics<Channel>>, fn(tonic::transport::Error) -> Status>,
    Credentials,
>;

/// tonic's channel enforces the call's deadline itself and reports it as CANCELLED
/// ("Timeout expired"); callers should see DEADLINE_EXCEEDED, as gRPC specifies.
fn deadline_as_deadline_exceeded(error: tonic::transport::Error) -> Status {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(cause) = source {
        if cause.is::<tonic::TimeoutExpired>() {
            return Status::deadline_exceeded(
                "the call's deadline passed before the service answered",
            );
        }
        source = cause.source();
    }
    Status::from_error(Box::new(error))
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no client is configured for service `{0}`: set clients.{key}.url (MICROS__CLIENTS__{upper}__URL)", key = .0.replace('-', "_"), upper = .0.to_uppercase().replace('-', "_"))]
    NotConfigured(String),
    #[error("invalid URL `{url}` for service `{service}`: {source}")]
    InvalidUrl {
        service: String,
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("the token for calls to other services is not a valid header value")]
    InvalidToken,
}

/// What a client presents as `authorization`.
#[derive(Clone, Debug)]
pub enum Identity {
    /// Nothing (health checks, tests of refusals).
    Anonymous,
    /// One fixed bearer token: an operator's, from `micros token`.
    Token(SecretString),
    /// This service's own: a short-lived token for the service called, renewed before
    /// it expires.
    Service(Arc<ServiceSigner>),
}

impl From<Option<SecretString>> for Identity {
    fn from(token: Option<SecretString>) -> Self {
        token.map_or(Identity::Anonymous, Identity::Token)
    }
}

/// Adds `authorization` and a default deadline to every outgoing call.
#[derive(Clone)]
pub struct Credentials {
    identity: Identity,
    /// The service called: the audience of a service token.
    audience: String,
    timeout: Duration,
}

impl Credentials {
    fn authorization(&self) -> Result<Option<MetadataValue<tonic::metadata::Ascii>>, Status> {
        let token = match &self.identity {
            Identity::Anonymous => return Ok(None),
            Identity::Token(token) => token.expose_secret().to_owned(),
            Identity::Service(signer) => signer
                .token_for(&[&self.audience])
                .map_err(|error| Status::internal(error.to_string()))?,
        };
        MetadataValue::try_from(format!("Bearer {token}"))
            .map(Some)
            .map_err(|_| Status::internal(ClientError::InvalidToken.to_string()))
    }
}

impl Interceptor for Credentials {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if !request.metadata().contains_key("authorization")
            && let Some(value) = self.authorization()?
        {
            request.metadata_mut().insert("authorization", value);
        }
        if !request.metadata().contains_key("grpc-timeout") {
            request.set_timeout(self.timeout);
        }
        Ok(request)
    }
}

/// Connects to services named in config, presenting one identity.
#[derive(Clone)]
pub struct Clients {
    clients: BTreeMap<String, ClientConfig>,
    identity: Identity,
}

impl Clients {
    pub fn new(clients: BTreeMap<String, ClientConfig>, identity: Identity) -> Self {
        Self { clients, identity }
    }

    /// Who these clients present themselves as.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// A lazily connecting channel to `service`; connection errors surface on the first
    /// call as UNAVAILABLE, which [`retry_idempotent`] retries.
    pub fn channel(&self, service: &str) -> Result<ServiceChannel, ClientError> {
        // Environment variables cannot spell `-`: `product-data` is `clients.product_data`.
        let config = self
            .clients
            .get(service)
            .or_else(|| self.clients.get(&service.replace('-', "_")))
            .ok_or_else(|| ClientError::NotConfigured(service.to_owned()))?;
        connect_as(service, config, self.identity.clone())
    }
}

/// A channel to one address presenting `token` (or nothing); [`Clients::channel`] is the
/// usual way in.
pub fn connect(
    service: &str,
    config: &ClientConfig,
    token: Option<&SecretString>,
) -> Result<ServiceChannel, ClientError> {
    connect_as(service, config, Identity::from(token.cloned()))
}

/// A channel to `service` at one address, presenting `identity`.
pub fn connect_as(
    service: &str,
    config: &ClientConfig,
    identity: Identity,
) -> Result<ServiceChannel, ClientError> {
    let endpoint = Endpoint::from_str(&config.url).map_err(|source| ClientError::InvalidUrl {
        service: service.to_owned(),
        url: config.url.clone(),
        source,
    })?;
    let channel = endpoint
        .connect_timeout(config.connect_timeout)
        .tcp_nodelay(true)
        .connect_lazy();
    if let Identity::Token(token) = &identity {
        MetadataValue::<tonic::metadata::Ascii>::try_from(format!(
            "Bearer {}",
            token.expose_secret()
        ))
        .map_err(|_| ClientError::InvalidToken)?;
    }
    Ok(InterceptedService::new(
        MapErr::new(
            OtelGrpcLayer.layer(RpcMetricsLayer::client(service).layer(channel)),
            deadline_as_deadline_exceeded as fn(tonic::transport::Error) -> Status,
        ),
        Credentials {
            identity,
            audience: service.to_owned(),
            timeout: config.timeout,
        },
    ))
}

/// Codes worth another try for a call that is safe to repeat.
pub fn is_retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Aborted
    )
}

/// Repeats an idempotent call with exponential backoff (at most 5 tries, jittered)
/// while it fails with a [retryable](is_retryable) code.
pub async fn retry_idempotent<T, F, Fut>(call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    call.retry(
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(2))
            .with_max_times(4)
            .with_jitter(),
    )
    .when(|status: &Status| is_retryable(status.code()))
    .notify(|status: &Status, delay| {
        tracing::debug!(code = ?status.code(), ?delay, "retrying idempotent call");
    })
    .await
}
