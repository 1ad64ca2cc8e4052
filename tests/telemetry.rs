//! Telemetry as an operator gets it with nothing but `OTEL_EXPORTER_OTLP_ENDPOINT` set:
//! the suite runs as real `micros serve` processes under their default configuration,
//! exporting to a real OTLP/gRPC receiver in this process, and serving `/metrics` for
//! Prometheus on their metrics ports.

mod support;

use std::{
    collections::BTreeSet,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use micros_platform::{
    auth::Role,
    ids::{OperationId, SiteId},
    lifecycle::{Target, grpc::target_to_proto},
    testing::ServiceProcess,
};
use micros_proto::{
    lifecycle::v1::{
        Justification, RestoreRequest, SoftDeleteRequest, restore_request::Source,
        tenant_lifecycle_client::TenantLifecycleClient,
    },
    orchestrator::v1 as pb,
};
use support::{SERVICES, connect, orchestrator_client, otlp::Receiver};

/// The five data services and the orchestrator, each a `micros serve` process with
/// `env` added; the orchestrator's purge reaper is off so that the only calls are the
/// test's.
struct ProcessSuite {
    services: Vec<(&'static str, ServiceProcess)>,
}

impl ProcessSuite {
    fn start(env: &[(&str, &str)]) -> ProcessSuite {
        let exe = env!("CARGO_BIN_EXE_micros");
        let mut services: Vec<(&'static str, ServiceProcess)> = Vec::new();
        let mut client_env: Vec<(String, String)> = Vec::new();
        for service in SERVICES.iter().copied().chain(["orchestrator"]) {
            let mut all: Vec<(&str, &str)> = env.to_vec();
            if service == "orchestrator" {
                all.push(("MICROS__SERVICE__REAPER_INTERVAL", "0s"));
            }
            all.extend(
                client_env
                    .iter()
                    .map(|(key, value)| (key.as_str(), value.as_str())),
            );
            let process = ServiceProcess::start(exe.as_ref(), service, &all)
                .unwrap_or_else(|error| panic!("{error}"));
            client_env.push((
                format!(
                    "MICROS__CLIENTS__{}__URL",
                    service.to_uppercase().replace('-', "_")
                ),
                format!("http://{}", process.addr()),
            ));
            services.push((service, process));
        }
        ProcessSuite { services }
    }

    fn process(&self, name: &str) -> &ServiceProcess {
        let (_, process) = self
            .services
            .iter()
            .find(|(service, _)| *service == name)
            .unwrap_or_else(|| panic!("no service {name}"));
        process
    }

    fn url(&self, name: &str) -> String {
        format!("http://{}", self.process(name).addr())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_orchestrator_call_is_one_trace_across_every_service_it_reached() {
    let receiver = Receiver::start().await;
    let endpoint = receiver.endpoint();
    // An empty RUST_LOG counts as unset: the processes run the default filters.
    let suite = ProcessSuite::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("RUST_LOG", ""),
    ]);
    let mut admin = orchestrator_client(&suite.url("orchestrator"), "provisioner", &[Role::Admin]);
    admin
        .provision_site(support::provision_request(
            "traced".to_owned(),
            "traced.example.com".to_owned(),
            "us-east",
            &[],
        ))
        .await
        .expect("ProvisionSite");

    // ProvisionSite creates the site in the catalog, a license and the admin user.
    let reached: BTreeSet<String> = ["orchestrator", "catalog", "license", "identity"]
        .iter()
        .map(|service| format!("micros-{service}"))
        .collect();
    // The batch exporter sends every few seconds: poll for the whole trace.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (spans, trace_id) = loop {
        let spans = receiver.spans();
        let root = spans.iter().find(|span| {
            span.service == "micros-orchestrator" && span.name.ends_with("ProvisionSite")
        });
        if let Some(root) = root {
            let services: BTreeSet<String> = spans
                .iter()
                .filter(|span| span.trace_id == root.trace_id)
                .map(|span| span.service.clone())
                .collect();
            if services.is_superset(&reached) {
                let trace_id = root.trace_id.clone();
                assert!(
                    root.parent_span_id.is_empty(),
                    "the orchestrator's server span starts the trace: {root:?}"
                );
                break (spans, trace_id);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no complete trace within 60 s; received {} spans: {spans:#?}",
            spans.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let traces: BTreeSet<&str> = spans.iter().map(|span| span.trace_id.as_str()).collect();
    assert_eq!(
        traces,
        BTreeSet::from([trace_id.as_str()]),
        "one call, one trace: {spans:#?}"
    );
    for service in ["catalog", "license", "identity"] {
        let served = spans.iter().any(|span| {
            span.service == format!("micros-{service}") && span.name.starts_with("micros.")
        });
        assert!(served, "a server span from {service}: {spans:#?}");
    }
}

/// `GET /metrics` over plain HTTP/1.1: the Prometheus text a scraper reads.
fn scrape(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics port");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain"), "{head}");
    body.to_owned()
}

/// The value of the sample of `name` whose labels include all of `labels`.
fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (labels_text, value) = match rest.strip_prefix('{') {
            Some(rest) => rest.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        labels
            .iter()
            .all(|(key, wanted)| labels_text.contains(&format!("{key}=\"{wanted}\"")))
            .then(|| value.trim().parse().ok())?
    })
}

/// Metric names (without the `_bucket`/`_count`/`_sum` of histogram series) in a scrape.
fn metric_names(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .flat_map(|name| {
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix));
            [Some(name.to_owned()), base.map(str::to_owned)]
        })
        .flatten()
        .collect()
}

/// Polls `metrics_addr` until `done` holds for a scrape, or fails after 30 s.
async fn scrape_until(metrics_addr: SocketAddr, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = scrape(metrics_addr);
        if done(&metrics) {
            return metrics;
        }
        assert!(Instant::now() < deadline, "{what} within 30 s:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn site_targets(sites: &[SiteId]) -> Vec<micros_proto::lifecycle::v1::Target> {
    sites
        .iter()
        .map(|site| target_to_proto(&Target::Site(*site)))
        .collect()
}

fn justification() -> Option<Justification> {
    Some(Justification {
        reason: "metrics test".to_owned(),
        ticket: String::new(),
    })
}

/// A burst of direct deletions to the catalog, a restore, and an orchestrator operation
/// that halts on the catalog's refusal: a scrape of each service finds every counter and
/// gauge moved, OTLP receives the same metrics, and every metric the alert rules name is
/// one the services export.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_after_deletions_restores_and_a_halt_find_the_counters_moved() {
    let receiver = Receiver::start().await;
    let endpoint = receiver.endpoint();
    let suite = ProcessSuite::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
        ("RUST_LOG", ""),
    ]);
    let orchestrator_url = suite.url("orchestrator");
    let mut admin = orchestrator_client(&orchestrator_url, "provisioner", &[Role::Admin]);
    let mut sites = Vec::new();
    for index in 0..7 {
        let provisioned = admin
            .provision_site(support::provision_request(
                format!("metered{index}"),
                format!("metered{index}.example.com"),
                "us-east",
                &[],
            ))
            .await
            .expect("ProvisionSite")
            .into_inner();
        sites.push(SiteId::parse(&provisioned.site_id).unwrap());
    }

    // The catalog lets 5 site deletions an hour through without an approved operation.
    let mut lifecycle = TenantLifecycleClient::new(connect(
        &suite.url("catalog"),
        "service:orchestrator",
        &[Role::Lifecycle],
    ));
    let burst = OperationId::new().to_string();
    lifecycle
        .soft_delete(SoftDeleteRequest {
            targets: site_targets(&sites[..5]),
            operation_id: burst.clone(),
            justification: justification(),
            validate_only: false,
            lease_token: 0,
            call_key: String::new(),
        })
        .await
        .expect("5 deletions are within the rate");
    let refused = lifecycle
        .soft_delete(SoftDeleteRequest {
            targets: site_targets(&sites[5..6]),
            operation_id: OperationId::new().to_string(),
            justification: justification(),
            validate_only: false,
            lease_token: 0,
            call_key: String::new(),
        })
        .await
        .expect_err("the sixth is beyond the rate");
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused}");
    lifecycle
        .restore(RestoreRequest {
            targets: site_targets(&sites[..2]),
            operation_id: OperationId::new().to_string(),
            source: Some(Source::UndoOperationId(burst)),
            justification: justification(),
            validate_only: false,
            lease_token: 0,
            call_key: String::new(),
        })
        .await
        .expect("restore");

    // An unapproved operation gets no deletion budget: the catalog refuses its wave and
    // the operation halts.
    let mut operator = orchestrator_client(&orchestrator_url, "alice", &[Role::Operator]);
    let plan = operator
        .create_plan(pb::CreatePlanRequest {
            kind: pb::PlanKind::DeleteSites as i32,
            inputs: vec![sites[6].to_string()],
            reason: "metrics test".to_owned(),
            ..Default::default()
        })
        .await
        .expect("plan")
        .into_inner();
    let operation = operator
        .apply_plan(pb::ApplyPlanRequest {
            plan_id: plan.plan_id,
            fingerprint: plan.fingerprint,
        })
        .await
        .expect("apply")
        .into_inner();

    let catalog = suite.process("catalog").metrics_addr();
    let catalog_metrics = scrape_until(catalog, "the catalog counts the refused wave", |m| {
        sample(
            m,
            "micros_lifecycle_refusals_total",
            &[("reason", "DELETION_RATE_EXCEEDED")],
        ) == Some(2.0)
    })
    .await;
    let catalog_only = [("service_name", "micros-catalog")];
    assert_eq!(
        sample(
            &catalog_metrics,
            "micros_lifecycle_sites_soft_deleted_total",
            &catalog_only
        ),
        Some(5.0),
        "{catalog_metrics}"
    );
    assert_eq!(
        sample(
            &catalog_metrics,
            "micros_lifecycle_sites_deleted_last_hour",
            &catalog_only
        ),
        Some(5.0),
        "{catalog_metrics}"
    );
    assert_eq!(
        sample(
            &catalog_metrics,
            "micros_lifecycle_sites_restored_total",
            &[("source", "operation")]
        ),
        Some(2.0),
        "{catalog_metrics}"
    );
    let soft_delete_calls = |code| {
        sample(
            &catalog_metrics,
            "rpc_server_call_duration_seconds_count",
            &[
                ("rpc_service", "micros.lifecycle.v1.TenantLifecycle"),
                ("rpc_method", "SoftDelete"),
                ("rpc_response_status_code", code),
            ],
        )
    };
    assert_eq!(soft_delete_calls("OK"), Some(1.0), "{catalog_metrics}");
    assert_eq!(
        soft_delete_calls("FAILED_PRECONDITION"),
        Some(2.0),
        "{catalog_metrics}"
    );

    // A restore drill on scratch copies of two active sites, which needs nobody's
    // approval, touches neither and leaves its outcome in the drill gauges.
    let drill = operator
        .create_plan(pb::CreatePlanRequest {
            kind: pb::PlanKind::RestoreDrill as i32,
            inputs: vec![sites[0].to_string(), sites[5].to_string()],
            reason: "metrics test".to_owned(),
            ..Default::default()
        })
        .await
        .expect("drill plan")
        .into_inner();
    assert!(!drill.requires_approval);
    operator
        .apply_plan(pb::ApplyPlanRequest {
            plan_id: drill.plan_id,
            fingerprint: drill.fingerprint,
        })
        .await
        .expect("apply the drill");

    let orchestrator = suite.process("orchestrator").metrics_addr();
    let orchestrator_metrics = scrape_until(
        orchestrator,
        "the operation halts and the drill ends",
        |m| {
            sample(m, "micros_orchestrator_operations", &[("state", "halted")]) == Some(1.0)
                && sample(m, "micros_orchestrator_drill_last_ok", &[]) == Some(1.0)
        },
    )
    .await;
    let this_operation = [("operation_id", operation.operation_id.as_str())];
    for (gauge, value) in [
        ("micros_orchestrator_operation_targets", 1.0),
        ("micros_orchestrator_operation_targets_done", 0.0),
        ("micros_orchestrator_operation_wave", 1.0),
    ] {
        assert_eq!(
            sample(&orchestrator_metrics, gauge, &this_operation),
            Some(value),
            "{gauge}: {orchestrator_metrics}"
        );
    }
    assert_eq!(
        sample(
            &orchestrator_metrics,
            "rpc_client_call_duration_seconds_count",
            &[
                ("peer_service", "catalog"),
                ("rpc_method", "CreateSite"),
                ("rpc_response_status_code", "OK"),
            ],
        ),
        Some(7.0),
        "{orchestrator_metrics}"
    );

    let exported = metric_names(&catalog_metrics)
        .union(&metric_names(&orchestrator_metrics))
        .cloned()
        .collect::<BTreeSet<_>>();
    for name in alert_rule_metrics() {
        assert!(
            exported.contains(&name),
            "the alert rules name {name}, which no service exports"
        );
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    let wanted = [
        ("micros-catalog", "micros.lifecycle.sites.soft_deleted"),
        ("micros-catalog", "rpc.server.call.duration"),
        ("micros-orchestrator", "micros.orchestrator.operations"),
    ];
    while !wanted.iter().all(|(service, metric)| {
        receiver
            .metrics()
            .iter()
            .any(|(from, name)| from == service && name == metric)
    }) {
        assert!(
            Instant::now() < deadline,
            "OTLP metrics within 30 s; received {:?}",
            receiver.metrics()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every `micros_…` metric the committed alert rules' expressions name.
fn alert_rule_metrics() -> BTreeSet<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../k8s/base/monitoring/alert-rules.yaml");
    let rules: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let names: BTreeSet<String> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|group| group["rules"].as_array().unwrap())
        .flat_map(|rule| {
            rule["expr"]
                .as_str()
                .unwrap()
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|word| word.starts_with("micros_"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        names.len() >= 3,
        "the rules name too few metrics: {names:?}"
    );
    names
}
