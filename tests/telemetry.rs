//! Telemetry as an operator gets it with nothing but `OTEL_EXPORTER_OTLP_ENDPOINT` set:
//! the suite runs as real `micros serve` processes under their default configuration,
//! exporting to a real OTLP/gRPC receiver in this process.

mod support;

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use micros_platform::{auth::Role, testing::ServiceProcess};
use micros_proto::orchestrator::v1 as pb;
use support::{SERVICES, orchestrator_client, otlp::Receiver};

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

    fn url(&self, name: &str) -> String {
        let (_, process) = self
            .services
            .iter()
            .find(|(service, _)| *service == name)
            .unwrap_or_else(|| panic!("no service {name}"));
        format!("http://{}", process.addr())
    }
}

fn provision_request(name: &str) -> pb::ProvisionSiteRequest {
    pb::ProvisionSiteRequest {
        name: name.to_owned(),
        url: format!("{name}.example.com"),
        region: "us-east".to_owned(),
        products: vec!["jira".to_owned()],
        admin: Some(pb::Contact {
            email: format!("admin@{name}.example"),
            name: String::new(),
            kind: "admin".to_owned(),
        }),
        contacts: Vec::new(),
        apps: Vec::new(),
        site_id: String::new(),
        seats: 5,
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
        .provision_site(provision_request("traced"))
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
