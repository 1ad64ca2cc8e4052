//! Metrics on the OpenTelemetry metrics SDK, read by Prometheus on each service's
//! metrics port ([`MetricsEndpoint`]) and exported over OTLP when configured (see
//! [`crate::telemetry`]). Names below are the Prometheus ones; every series also carries
//! `service_name` (`micros-catalog`, …).
//!
//! * `rpc_server_call_duration_seconds` (histogram; its `_count` counts calls): every
//!   call a server answered, by `rpc_service`, `rpc_method` and `rpc_response_status_code`
//!   (`OK`, `NOT_FOUND`, …), measured outside load shedding and auth so that refused
//!   calls count too ([`RpcMetricsLayer::server`]);
//! * `rpc_client_call_duration_seconds`: the same for calls made through
//!   [`crate::client`], with `peer_service` (the service called);
//! * `micros_lifecycle_*`: what the tenant lifecycle did (see [`crate::lifecycle`]);
//! * `micros_orchestrator_*`: operations, their targets and waves (the orchestrator).
//!
//! Instruments are created on first use from the global meter provider, which
//! [`crate::telemetry::init`] installs first; without it (in-process tests) they record
//! nothing.

mod endpoint;
mod rpc_layer;
mod status;

pub use endpoint::MetricsEndpoint;
pub use rpc_layer::{RpcMetrics, RpcMetricsFuture, RpcMetricsLayer};
pub use status::code_name;

/// The meter every Micros instrument comes from.
pub fn meter() -> opentelemetry::metrics::Meter {
    opentelemetry::global::meter("micros")
}
