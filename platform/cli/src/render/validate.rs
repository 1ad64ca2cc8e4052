//! What a descriptor must satisfy before it becomes manifests, so that a mistake is
//! reported by `micros render` naming the service, not by the cluster at apply time.

use std::collections::BTreeSet;

use anyhow::{Context, bail, ensure};
use micros_platform::service::{Compute, Rollout, ServiceDescriptor};

/// Keys `micros render` derives from the descriptor or the overlay; an override of one
/// would make the manifests contradict themselves (a port the probes do not use).
const MANAGED_KEYS: [&str; 11] = [
    "MICROS__SERVER__HOST",
    "MICROS__SERVER__PORT",
    "MICROS__TELEMETRY__METRICS_PORT",
    "MICROS__STORE__URL",
    "MICROS__STORE__PASSWORD",
    "MICROS__STORE__MAX_CONNECTIONS",
    "MICROS__SERVICE__OBJECT_STORE",
    "MICROS__SERVICE__S3__BUCKET",
    "MICROS__STORE__DATABASE_PREFIX",
    "MICROS__AUTH__SIGNING_KEY",
    "MICROS__AUTH__ISSUER_KEY",
];

/// The range Kubernetes allocates NodePorts from by default.
const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

pub(super) fn descriptors(services: &[ServiceDescriptor]) -> anyhow::Result<()> {
    let mut names = BTreeSet::new();
    let mut node_ports = BTreeSet::new();
    for service in services {
        descriptor(service, services)
            .with_context(|| format!("service `{}` cannot be deployed", service.name))?;
        ensure!(
            names.insert(service.name),
            "two services are named `{}`",
            service.name
        );
        if let Some(node_port) = service.node_port {
            ensure!(
                node_ports.insert(node_port),
                "two services ask for NodePort {node_port}"
            );
        }
    }
    Ok(())
}

fn descriptor(service: &ServiceDescriptor, services: &[ServiceDescriptor]) -> anyhow::Result<()> {
    ensure!(
        dns_label(service.name, 40),
        "the name `{}` must be lowercase letters, digits and `-`, start with a letter and \
         be at most 40 characters (it names Kubernetes objects and a DNS name)",
        service.name
    );
    ensure!(service.port != 0, "port 0 is for tests; give it a port");
    ensure!(
        service.metrics_port != 0 && service.metrics_port != service.port,
        "its metrics port ({}) must be set and differ from its gRPC port",
        service.metrics_port
    );
    ensure!(service.shards >= 1, "shards must be at least 1");
    ensure!(service.replicas >= 1, "replicas must be at least 1");
    ensure!(
        service.rollout != Rollout::Recreate || service.replicas == 1,
        "a Recreate rollout is for a service that runs once; it asks for {} replicas",
        service.replicas
    );
    ensure!(service.pool_size >= 1, "pool_size must be at least 1");
    if let Some(bucket) = service.bucket {
        ensure!(
            (3..=63).contains(&bucket.len())
                && bucket
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !bucket.starts_with('-')
                && !bucket.ends_with('-'),
            "bucket `{bucket}` must be 3–63 lowercase letters, digits and `-` (an S3 bucket name)"
        );
    }
    for database in service.databases {
        ensure!(
            !database.is_empty()
                && database
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "database `{database}` must be lowercase letters, digits and `_`"
        );
    }
    for dependency in service.depends_on {
        ensure!(
            services.iter().any(|other| other.name == *dependency),
            "it depends on `{dependency}`, which is not a registered service"
        );
    }
    service
        .deployed_config(services)
        .map_err(anyhow::Error::msg)?;
    compute("requests", service.resources.requests)?;
    compute("limits", service.resources.limits)?;
    let (requests, limits) = (service.resources.requests, service.resources.limits);
    ensure!(
        requests.cpu_millis <= limits.cpu_millis && requests.memory_mib <= limits.memory_mib,
        "resource requests ({requests:?}) exceed its limits ({limits:?})"
    );
    if let Some(node_port) = service.node_port {
        ensure!(
            NODE_PORTS.contains(&node_port),
            "NodePort {node_port} is outside {}–{}",
            NODE_PORTS.start(),
            NODE_PORTS.end()
        );
    }
    let mut keys = BTreeSet::new();
    for (key, value) in service.config_overrides {
        ensure!(
            key.starts_with("MICROS__") && key.len() > "MICROS__".len(),
            "config override `{key}` is not a MICROS__… variable"
        );
        ensure!(
            !MANAGED_KEYS.contains(key)
                && service.memory_limit_setting != Some(*key)
                && !key.starts_with("MICROS__CLIENTS__")
                && !service
                    .deployed_settings
                    .iter()
                    .any(|(deployed, _)| deployed == key),
            "config override `{key}` is set by `micros render` from the descriptors"
        );
        ensure!(keys.insert(key), "config override `{key}` is set twice");
        ensure!(
            !value.contains(['\n', '\r']),
            "config override `{key}` spans lines; an env file cannot hold it"
        );
    }
    Ok(())
}

fn compute(what: &str, compute: Compute) -> anyhow::Result<()> {
    if compute.cpu_millis == 0 || compute.memory_mib == 0 {
        bail!("resource {what} need CPU and memory above zero, not {compute:?}");
    }
    Ok(())
}

/// An RFC 1035 label (what Service names must be), no longer than `max`.
fn dns_label(name: &str, max: usize) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= max
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1] != b'-'
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}
