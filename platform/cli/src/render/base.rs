//! `base/`: what any cluster runs. Per service an env file that kustomize turns into a
//! ConfigMap (named with a hash of its content, so a config change rolls the pods), a
//! Deployment, a ClusterIP Service and, when replicated, a PodDisruptionBudget; the
//! namespace; and the Prometheus alert rules ([`super::monitoring`]). Pods carry the
//! `prometheus.io/*` scrape annotations for their metrics port. The store and the auth
//! Secret are left to an overlay: a base cannot know where a cluster keeps its data.
//!
//! So that a base alone is never deployed with nowhere to store (its default, SQLite
//! under the working directory, is on a read-only root filesystem and per pod), `base/`
//! is a kustomize Component whose replacements take the store URL from the overlay's
//! `micros-store` ConfigMap: `kubectl kustomize k8s/base` refuses to build, naming it,
//! and an overlay includes the base under `components:`.

use std::{collections::BTreeMap, time::Duration};

use anyhow::Context;
use micros_platform::{
    config::ServerConfig,
    service::{Rollout, ServiceDescriptor},
};
use serde_json::{Value, json};

use super::{
    AUTH_KEYS, IMAGE, MICROS_USER, Manifests, NAMESPACE, SIGNING_KEY, STORE, STORE_PASSWORD_KEY,
    STORE_URL_KEY, client_url_key, container_security, monitoring, pod_security, resources,
    selector,
};

/// After SIGTERM, how long health says NOT_SERVING before the listener closes: long
/// enough for the failing readiness probe and the endpoint removal to reach every
/// client, so no new call lands on a closing server.
const SHUTDOWN_DELAY: &str = "5s";
const SHUTDOWN_DELAY_KEY: &str = "MICROS__SERVER__SHUTDOWN_DELAY";
const DRAIN_TIMEOUT_KEY: &str = "MICROS__SERVER__DRAIN_TIMEOUT";
const STORE_URL_ENV: &str = "MICROS__STORE__URL";
/// What the base writes where the overlay's store URL goes (replaced in every build).
const STORE_URL_PLACEHOLDER: &str = "from the overlay's micros-store ConfigMap";
/// `store.max_connections`: the descriptor's pool size (see [`super::postgres`]).
pub(super) const POOL_SIZE_KEY: &str = "MICROS__STORE__MAX_CONNECTIONS";
/// The settings of a service that keeps objects (`ServiceDescriptor::bucket`).
pub(super) const OBJECT_STORE_KEY: &str = "MICROS__SERVICE__OBJECT_STORE";
pub(super) const BUCKET_KEY: &str = "MICROS__SERVICE__S3__BUCKET";
/// Beyond the shutdown delay and the drain, time to close pools and exit before the
/// kubelet's SIGKILL.
const EXIT_MARGIN: Duration = Duration::from_secs(10);

pub(super) fn render(
    services: &[ServiceDescriptor],
    manifests: &mut Manifests,
) -> anyhow::Result<()> {
    manifests.yaml(
        "base/namespace.yaml",
        &json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": NAMESPACE },
        }),
    )?;
    let mut resources = vec!["namespace.yaml".to_owned()];
    let mut config_maps = Vec::new();
    for service in services {
        let name = service.name;
        let config = cluster_config(service, services)?;
        manifests.text(format!("base/{name}/config.env"), &env_file(&config));
        let deployment = deployment(service, &config)
            .with_context(|| format!("service `{name}` cannot be deployed"))?;
        manifests.yaml(format!("base/{name}/deployment.yaml"), &deployment)?;
        manifests.yaml(format!("base/{name}/service.yaml"), &kube_service(service))?;
        resources.push(format!("{name}/deployment.yaml"));
        resources.push(format!("{name}/service.yaml"));
        if let Some(budget) = disruption_budget(service) {
            manifests.yaml(format!("base/{name}/disruption-budget.yaml"), &budget)?;
            resources.push(format!("{name}/disruption-budget.yaml"));
        }
        config_maps.push(json!({
            "name": config_map_name(name),
            "envs": [format!("{name}/config.env")],
        }));
    }
    manifests.text(monitoring::RULES_FILE, &monitoring::alert_rules()?);
    config_maps.push(monitoring::rules_config_map());
    let storing: Vec<&str> = services
        .iter()
        .filter(|service| !service.databases.is_empty())
        .map(|service| service.name)
        .collect();
    manifests.yaml(
        "base/kustomization.yaml",
        &json!({
            "apiVersion": "kustomize.config.k8s.io/v1alpha1",
            "kind": "Component",
            "namespace": NAMESPACE,
            "labels": [{
                "pairs": { "app.kubernetes.io/part-of": "micros" },
                "includeTemplates": true,
            }],
            "resources": resources,
            "replacements": store_replacements(&storing),
            "configMapGenerator": config_maps,
        }),
    )
}

/// The overlay's store URL into every storing Deployment; kustomize fails the build,
/// naming the `micros-store` ConfigMap, when no overlay provides it.
fn store_replacements(services: &[&str]) -> Value {
    if services.is_empty() {
        return json!([]);
    }
    let targets: Vec<Value> = services
        .iter()
        .map(|name| {
            json!({
                "select": { "kind": "Deployment", "name": name },
                "fieldPaths": [format!(
                    "spec.template.spec.containers.[name={name}].env.[name={STORE_URL_ENV}].value"
                )],
            })
        })
        .collect();
    json!([{
        "source": {
            "kind": "ConfigMap",
            "name": STORE,
            "fieldPath": format!("data.{STORE_URL_KEY}"),
        },
        "targets": targets,
    }])
}

/// The `MICROS__…` environment of a service in a cluster: listen on every interface on
/// the descriptor's port, JSON logs, a shutdown delay, each dependency at its Service's
/// DNS name, the deployment facts it configures itself from (product-data's shard count),
/// then the descriptor's overrides.
fn cluster_config(
    service: &ServiceDescriptor,
    services: &[ServiceDescriptor],
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut config: BTreeMap<String, String> = [
        ("MICROS__SERVER__HOST", "0.0.0.0".to_owned()),
        ("MICROS__SERVER__PORT", service.port.to_string()),
        (
            "MICROS__TELEMETRY__METRICS_PORT",
            service.metrics_port.to_string(),
        ),
        (SHUTDOWN_DELAY_KEY, SHUTDOWN_DELAY.to_owned()),
        ("MICROS__TELEMETRY__LOG_FORMAT", "json".to_owned()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    for dependency in services
        .iter()
        .filter(|other| service.depends_on.contains(&other.name))
    {
        config.insert(
            client_url_key(dependency.name),
            format!("http://{}:{}", dependency.name, dependency.port),
        );
    }
    if !service.databases.is_empty() {
        config.insert(POOL_SIZE_KEY.to_owned(), service.pool_size.to_string());
    }
    if let Some(bucket) = service.bucket {
        config.insert(OBJECT_STORE_KEY.to_owned(), "s3".to_owned());
        config.insert(BUCKET_KEY.to_owned(), bucket.to_owned());
    }
    let deployed = service
        .deployed_config(services)
        .map_err(|error| anyhow::anyhow!("service `{}`: {error}", service.name))?;
    for (key, value) in deployed {
        config.insert(key.to_owned(), value);
    }
    for (key, value) in service.config_overrides {
        config.insert((*key).to_owned(), (*value).to_owned());
    }
    Ok(config)
}

fn env_file(config: &BTreeMap<String, String>) -> String {
    config
        .iter()
        .map(|(key, value)| format!("{key}={value}\n"))
        .collect()
}

/// The settings the pod spec supplies: the service's signing key, the container's memory limit
/// for a service that sizes buffers by it, and for a service with databases the store,
/// whose URL the overlay supplies through [`store_replacements`]. A secret is always a
/// setting of its own, never spliced into another value.
fn env(service: &ServiceDescriptor) -> Value {
    let mut env = vec![json!({
        "name": "MICROS__AUTH__SIGNING_KEY",
        "valueFrom": {
            "secretKeyRef": { "name": super::signing_key_secret(service.name), "key": SIGNING_KEY },
        },
    })];
    if let Some(key) = service.memory_limit_setting {
        env.push(json!({
            "name": key,
            "valueFrom": { "resourceFieldRef": { "resource": "limits.memory", "divisor": "1" } },
        }));
    }
    if !service.databases.is_empty() {
        env.push(json!({ "name": STORE_URL_ENV, "value": STORE_URL_PLACEHOLDER }));
        env.push(json!({
            "name": "MICROS__STORE__PASSWORD",
            "valueFrom": { "secretKeyRef": { "name": STORE, "key": STORE_PASSWORD_KEY } },
        }));
    }
    Value::Array(env)
}

fn config_map_name(service: &str) -> String {
    format!("{service}-config")
}

fn deployment(
    service: &ServiceDescriptor,
    config: &BTreeMap<String, String>,
) -> anyhow::Result<Value> {
    let name = service.name;
    let probe = |period_seconds: u32, failure_threshold: u32| {
        json!({
            "grpc": { "port": service.port },
            "periodSeconds": period_seconds,
            "failureThreshold": failure_threshold,
            "timeoutSeconds": 2,
        })
    };
    Ok(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "labels": selector(name) },
        "spec": {
            "replicas": service.replicas,
            "strategy": strategy(service.rollout),
            "selector": { "matchLabels": selector(name) },
            "template": {
                "metadata": {
                    "labels": selector(name),
                    "annotations": monitoring::scrape_annotations(service),
                },
                "spec": {
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "terminationGracePeriodSeconds": termination_grace(config)?,
                    "securityContext": pod_security(MICROS_USER),
                    "containers": [{
                        "name": name,
                        "image": IMAGE,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["micros", "serve", name],
                        "ports": [
                            {
                                "name": "grpc",
                                "containerPort": service.port,
                                "protocol": "TCP",
                            },
                            {
                                "name": "metrics",
                                "containerPort": service.metrics_port,
                                "protocol": "TCP",
                            },
                        ],
                        "envFrom": [
                            { "configMapRef": { "name": config_map_name(name) } },
                            { "configMapRef": { "name": AUTH_KEYS } },
                        ],
                        "env": env(service),
                        // Health is NOT_SERVING until the stores are open and migrated:
                        // the startup probe gives that a minute before liveness counts.
                        "startupProbe": probe(2, 30),
                        "readinessProbe": probe(5, 2),
                        "livenessProbe": probe(10, 3),
                        "resources": resources(service.resources),
                        "securityContext": container_security(MICROS_USER),
                    }],
                },
            },
        },
    }))
}

/// [`Rollout::Rolling`] adds one pod at a time and removes an old one only once the new
/// one is ready ([`super::surge`] counts the extra pod for PostgreSQL's connections).
fn strategy(rollout: Rollout) -> Value {
    match rollout {
        Rollout::Rolling => json!({
            "type": "RollingUpdate",
            "rollingUpdate": { "maxSurge": super::surge(rollout), "maxUnavailable": 0 },
        }),
        Rollout::Recreate => json!({ "type": "Recreate" }),
    }
}

/// Voluntary disruptions (a node drain) take at most one pod of a replicated service at
/// a time; a single-replica service gets none, which would block every drain.
fn disruption_budget(service: &ServiceDescriptor) -> Option<Value> {
    (service.replicas >= 2).then(|| {
        json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": { "name": service.name, "labels": selector(service.name) },
            "spec": {
                "maxUnavailable": 1,
                "selector": { "matchLabels": selector(service.name) },
            },
        })
    })
}

/// The kubelet sends SIGKILL this long after SIGTERM; the runtime needs its shutdown
/// delay and drain timeout (as configured for the cluster) and [`EXIT_MARGIN`].
fn termination_grace(config: &BTreeMap<String, String>) -> anyhow::Result<u64> {
    let duration = |key: &str, default: Duration| match config.get(key) {
        Some(value) => humantime::parse_duration(value)
            .with_context(|| format!("{key}={value} is not a duration like 30s")),
        None => Ok(default),
    };
    let total = duration(SHUTDOWN_DELAY_KEY, Duration::ZERO)?
        + duration(DRAIN_TIMEOUT_KEY, ServerConfig::default().drain_timeout)?
        + EXIT_MARGIN;
    Ok(total.as_secs() + u64::from(total.subsec_nanos() > 0))
}

fn kube_service(service: &ServiceDescriptor) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": service.name, "labels": selector(service.name) },
        "spec": {
            "selector": selector(service.name),
            "ports": [{
                "name": "grpc",
                "port": service.port,
                "targetPort": "grpc",
                "protocol": "TCP",
                "appProtocol": "kubernetes.io/h2c",
            }],
        },
    })
}
