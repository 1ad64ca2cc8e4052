//! Logs, traces and metrics. Only the platform installs subscribers and exporters.
//!
//! `tracing` to stderr always; spans exported with OTLP/gRPC when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set (use `http://host:4317`: an endpoint without a
//! scheme means https in opentelemetry-otlp 0.33). W3C trace context is the global
//! propagator, so the server and client layers carry `traceparent` on every hop.
//!
//! Each layer has its own filter: logs follow `telemetry.log_filter` (or `RUST_LOG`),
//! the exporter `telemetry.trace_filter`. A global filter would also filter the
//! exporter, and the per-call spans, below `info`, would never leave the process.
//!
//! Metrics (see [`crate::metrics`]) are always read into a Prometheus registry, which
//! [`crate::service::run`] serves on the metrics port, and are exported over OTLP too
//! when the endpoint is set (every `OTEL_METRIC_EXPORT_INTERVAL`, 60 s by default).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{
    Resource, metrics::SdkMeterProvider, propagation::TraceContextPropagator,
    trace::SdkTracerProvider,
};
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::{LogFormat, TelemetryConfig};

/// Flushes and shuts the exporters down when dropped, so the last spans and metrics are
/// not lost.
#[must_use = "dropping the guard shuts telemetry down"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    meter_provider: SdkMeterProvider,
    registry: prometheus::Registry,
}

impl TelemetryGuard {
    /// Every metric of this process, for the Prometheus endpoint.
    pub fn prometheus_registry(&self) -> &prometheus::Registry {
        &self.registry
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("telemetry: shutting the span exporter down failed: {error}");
        }
        if let Err(error) = self.meter_provider.shutdown() {
            eprintln!("telemetry: shutting the metrics exporters down failed: {error}");
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter `{filter}`: {message}")]
    Filter { filter: String, message: String },
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
}

/// Installs the global subscriber for `service`; call once, first thing in `main`.
pub fn init(service: &str, config: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let log_filter = match std::env::var("RUST_LOG") {
        Ok(filter) if !filter.is_empty() => filter,
        _ => config.log_filter.clone(),
    };
    let log_filter = env_filter(&log_filter)?;
    let trace_filter = env_filter(&config.trace_filter)?;

    let fmt = match config.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
    }
    .with_filter(log_filter);

    let otlp =
        std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").is_ok_and(|endpoint| !endpoint.is_empty());
    let service_name =
        std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| format!("micros-{service}"));
    let resource = Resource::builder().with_service_name(service_name).build();
    let provider = if otlp {
        Some(otlp_provider(resource.clone())?)
    } else {
        None
    };
    let (meter_provider, registry) = meter_provider(resource, otlp)?;
    opentelemetry::global::set_meter_provider(meter_provider.clone());
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(service.to_owned()))
            .with_filter(trace_filter)
    });

    // A second init (tests that start several services in one process) keeps the first.
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init();
    Ok(TelemetryGuard {
        provider,
        meter_provider,
        registry,
    })
}

fn env_filter(filter: &str) -> Result<EnvFilter, TelemetryError> {
    EnvFilter::try_new(filter).map_err(|error| TelemetryError::Filter {
        filter: filter.to_owned(),
        message: error.to_string(),
    })
}

fn otlp_provider(resource: Resource) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|error| TelemetryError::Exporter(error.to_string()))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The metrics SDK read by a Prometheus registry (every metric labelled with
/// `service_name`, so one query spans the suite) and, with `otlp`, by a periodic OTLP
/// exporter.
fn meter_provider(
    resource: Resource,
    otlp: bool,
) -> Result<(SdkMeterProvider, prometheus::Registry), TelemetryError> {
    let registry = prometheus::Registry::new();
    let prometheus = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .with_resource_selector(opentelemetry_prometheus::ResourceSelector::KeyAllowList(
            [opentelemetry::Key::from_static_str("service.name")].into(),
        ))
        .scope_info_enabled(false)
        .build()
        .map_err(|error| TelemetryError::Exporter(error.to_string()))?;
    let mut builder = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(prometheus);
    if otlp {
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .build()
            .map_err(|error| TelemetryError::Exporter(error.to_string()))?;
        builder = builder.with_periodic_exporter(exporter);
    }
    Ok((builder.build(), registry))
}

/// Logs for tests, only with `TEST_LOG=1`, so a failing test's output stays readable.
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_some() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let _ = tracing_subscriber::registry()
            .with(EnvFilter::new(
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info,sqlx=warn".to_owned()),
            ))
            .with(tracing_subscriber::fmt::layer().with_test_writer())
            .try_init();
    }
}
