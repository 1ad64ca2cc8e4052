//! The committed manifests deploy: `kubectl kustomize` builds `k8s/overlays/kind` (and
//! refuses `k8s/base` alone, which has nowhere to store), every object passes
//! `kubernetes-validate --strict`, every container has resource limits and runs as
//! non-root, and every service this binary links is probed over gRPC on its own port.
//!
//! The tools are looked up on PATH; a missing one skips these tests with a message,
//! unless `MICROS_REQUIRE_K8S_TOOLS` is set (as in CI), when it fails them.

mod kube;

use std::process::Command;

use kube::{describe, k8s, kubectl, kustomize, objects, tool};
use serde_json::Value;

const MICROS: &str = env!("CARGO_BIN_EXE_micros");

/// The Kubernetes versions the manifests must be valid for: the oldest and the newest
/// minor still supported upstream when this was written.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.35.0", "1.37.0"];

/// The micros user from the Dockerfile.
const MICROS_USER: u64 = 10001;

#[test]
fn the_kind_overlay_builds_and_passes_schema_validation() {
    let Some(kubectl) = kubectl() else { return };
    let Some(validate) = tool("kubernetes-validate", "pip install kubernetes-validate") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for tree in ["overlays/kind"] {
        let yaml = kustomize(&kubectl, tree);
        let count = objects(&yaml).len();
        assert!(count > 0, "k8s/{tree} builds no objects");
        let file = dir.path().join("objects.yaml");
        std::fs::write(&file, &yaml).unwrap();
        let mut command = Command::new(&validate);
        command.arg("--strict");
        for version in KUBERNETES_VERSIONS {
            command.args(["--kubernetes-version", version]);
        }
        let output = command
            .arg(&file)
            .output()
            .expect("run kubernetes-validate");
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "k8s/{tree} fails schema validation:\n{report}"
        );
        // A kind without a schema is only a warning to the tool; here every object
        // must have been checked against every version.
        let passed = report
            .lines()
            .filter(|line| line.contains(" passed for resource "))
            .count();
        assert_eq!(
            passed,
            count * KUBERNETES_VERSIONS.len(),
            "k8s/{tree}: not every object was validated:\n{report}"
        );
    }
}

/// Every container and init container of every workload in `objects`, with its pod spec.
fn containers(objects: &[Value]) -> Vec<(String, &Value, &Value)> {
    let mut found = Vec::new();
    for object in objects {
        let pod = &object["spec"]["template"]["spec"];
        for list in ["initContainers", "containers"] {
            for container in pod[list].as_array().into_iter().flatten() {
                let name = format!(
                    "{} container {}",
                    describe(object),
                    container["name"].as_str().unwrap_or("?")
                );
                found.push((name, container, pod));
            }
        }
    }
    found
}

#[test]
fn every_container_is_limited_and_unprivileged() {
    let Some(kubectl) = kubectl() else { return };
    for tree in ["overlays/kind"] {
        let objects = objects(&kustomize(&kubectl, tree));
        let containers = containers(&objects);
        assert!(!containers.is_empty(), "k8s/{tree} runs no containers");
        for (name, container, pod) in containers {
            for kind in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    assert!(
                        container["resources"][kind][resource].is_string(),
                        "k8s/{tree}: {name} sets no {resource} {kind}"
                    );
                }
            }
            let security = &container["securityContext"];
            let effective = |field: &str| {
                if security[field].is_null() {
                    pod["securityContext"][field].clone()
                } else {
                    security[field].clone()
                }
            };
            assert_eq!(
                effective("runAsNonRoot"),
                Value::Bool(true),
                "k8s/{tree}: {name} may run as root"
            );
            assert!(
                effective("runAsUser")
                    .as_u64()
                    .is_some_and(|user| user != 0),
                "k8s/{tree}: {name} names no non-root user"
            );
            assert_eq!(
                security["allowPrivilegeEscalation"],
                Value::Bool(false),
                "k8s/{tree}: {name} may escalate privileges"
            );
            assert_eq!(
                security["readOnlyRootFilesystem"],
                Value::Bool(true),
                "k8s/{tree}: {name} can write its image"
            );
            assert_eq!(
                security["capabilities"]["drop"],
                serde_json::json!(["ALL"]),
                "k8s/{tree}: {name} keeps capabilities"
            );
        }
    }
}

/// `(name, port, metrics port)` for every service `micros services` lists.
fn linked_services() -> Vec<(String, u64, u64)> {
    let output = Command::new(MICROS)
        .arg("services")
        .output()
        .expect("run micros services");
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields.get(1), Some(&"port"), "unexpected line: {line}");
            assert_eq!(fields.get(3), Some(&"metrics"), "unexpected line: {line}");
            (
                fields[0].to_owned(),
                fields[2].parse().expect("a port"),
                fields[4].parse().expect("a metrics port"),
            )
        })
        .collect()
}

#[test]
fn every_service_is_probed_over_grpc_on_its_port() {
    let Some(kubectl) = kubectl() else { return };
    let services = linked_services();
    assert!(!services.is_empty(), "micros services lists nothing");
    let objects = objects(&kustomize(&kubectl, "overlays/kind"));
    let find = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|object| object["kind"] == kind && object["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("k8s/overlays/kind has no {kind} {name}"))
    };
    for (name, port, _) in services {
        let deployment = find("Deployment", &name);
        let pod = &deployment["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        assert_eq!(
            container["command"],
            serde_json::json!(["micros", "serve", name]),
            "{name}: the container must run its role"
        );
        assert_eq!(container["ports"][0]["containerPort"], port, "{name}");
        let config = find(
            "ConfigMap",
            container["envFrom"][0]["configMapRef"]["name"]
                .as_str()
                .unwrap_or_else(|| panic!("{name} reads no ConfigMap")),
        );
        assert_eq!(
            (
                &config["data"]["MICROS__SERVER__HOST"],
                &config["data"]["MICROS__SERVER__PORT"]
            ),
            (&Value::from("0.0.0.0"), &Value::from(port.to_string())),
            "{name} must listen where it is probed"
        );
        for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
            assert_eq!(
                container[probe]["grpc"]["port"], port,
                "{name}: {probe} must be gRPC health on port {port}: {}",
                container[probe]
            );
        }
        assert_eq!(
            container["securityContext"]["runAsUser"], MICROS_USER,
            "{name} runs as the image's micros user"
        );
        // SIGTERM → 5s NOT_SERVING → up to 25s drain: the kubelet must wait longer.
        assert!(
            pod["terminationGracePeriodSeconds"]
                .as_u64()
                .is_some_and(|seconds| seconds > 30),
            "{name}: terminationGracePeriodSeconds must exceed the runtime's drain"
        );
        let service = find("Service", &name);
        assert_eq!(service["spec"]["ports"][0]["port"], port, "{name}");
        assert_eq!(service["spec"]["ports"][0]["targetPort"], "grpc", "{name}");
    }
}

/// The kind config maps host ports to NodePorts; each must land on a Service port in
/// what `kubectl apply -k` sends, or the host reaches nothing (kustomize merges a Service
/// port patch by port *and* protocol, and drops one that matches no port).
#[test]
fn every_host_port_mapping_reaches_a_node_port_service() {
    let Some(kubectl) = kubectl() else { return };
    let objects = objects(&kustomize(&kubectl, "overlays/kind"));
    let kind_config: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(k8s().join("overlays/kind/kind-config.yaml")).unwrap(),
    )
    .expect("kind-config.yaml is YAML");
    let mappings: Vec<&Value> = kind_config["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|node| node["extraPortMappings"].as_array().into_iter().flatten())
        .collect();
    assert!(
        !mappings.is_empty(),
        "the kind config maps no host port (the orchestrator must be reachable)"
    );
    for mapping in mappings {
        let node_port = &mapping["containerPort"];
        let service = objects
            .iter()
            .filter(|object| object["kind"] == "Service")
            .find(|service| {
                service["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|port| port["nodePort"] == *node_port)
            })
            .unwrap_or_else(|| {
                panic!(
                    "host port {} maps to NodePort {node_port}, which no Service has",
                    mapping["hostPort"]
                )
            });
        assert_eq!(service["spec"]["type"], "NodePort", "{}", describe(service));
        assert_eq!(mapping["protocol"], "TCP");
    }
    let orchestrator = objects
        .iter()
        .find(|object| object["kind"] == "Service" && object["metadata"]["name"] == "orchestrator")
        .expect("an orchestrator Service");
    assert_eq!(orchestrator["spec"]["ports"][0]["nodePort"], 30056);
}

/// Every probe of every container, with its container's name.
fn probes(objects: &[Value]) -> Vec<(String, &'static str, &Value)> {
    let mut found = Vec::new();
    for (name, container, _) in containers(objects) {
        for kind in ["startupProbe", "readinessProbe", "livenessProbe"] {
            if !container[kind].is_null() {
                found.push((name.clone(), kind, &container[kind]));
            }
        }
    }
    found
}

/// A probe without `timeoutSeconds` gets 1 s: a database busy for a second fails its
/// readiness (and, in a row, its liveness: a restart under load).
#[test]
fn every_probe_sets_a_timeout_its_check_fits_in() {
    let Some(kubectl) = kubectl() else { return };
    let objects = objects(&kustomize(&kubectl, "overlays/kind"));
    let probes = probes(&objects);
    assert!(!probes.is_empty(), "nothing is probed");
    for (name, kind, probe) in probes {
        let timeout = probe["timeoutSeconds"].as_u64();
        assert!(
            timeout.is_some_and(|seconds| seconds >= 2),
            "{name}: {kind} has timeoutSeconds {timeout:?}, the 1 s default or less: {probe}"
        );
        // pg_isready waits 3 s by default before it gives up.
        let command = probe["exec"]["command"].to_string();
        if command.contains("pg_isready") {
            assert!(
                timeout.is_some_and(|seconds| seconds > 3),
                "{name}: {kind} ends before pg_isready does: {probe}"
            );
        }
    }
}

/// A shell as PID 1 ignores SIGTERM unless it traps it: a pod deleted while such a
/// container waits would wait for the kubelet's SIGKILL.
#[test]
fn every_shell_loop_stops_on_sigterm() {
    let Some(kubectl) = kubectl() else { return };
    let objects = objects(&kustomize(&kubectl, "overlays/kind"));
    let mut scripts = 0;
    for (name, container, _) in containers(&objects) {
        let command = &container["command"];
        if command[0] == "sh" && command[1] == "-c" {
            scripts += 1;
            let script = command[2].as_str().unwrap_or_default();
            assert!(
                script.trim_start().starts_with("trap "),
                "{name}: its script does not trap SIGTERM: {script}"
            );
        }
    }
    assert!(scripts > 0, "no shell script to check");
}

/// Kubernetes splices `$(VAR)` into a value as it is: a secret spliced into a URL breaks
/// the URL when it holds `@`, `/` or `%`. Secrets reach a service as settings of their
/// own (`MICROS__STORE__PASSWORD`), which the service escapes where it needs to.
#[test]
fn no_secret_is_spliced_into_a_value() {
    let Some(kubectl) = kubectl() else { return };
    let objects = objects(&kustomize(&kubectl, "overlays/kind"));
    for (name, container, _) in containers(&objects) {
        for variable in container["env"].as_array().into_iter().flatten() {
            let value = variable["value"].as_str().unwrap_or_default();
            assert!(
                !value.contains("$("),
                "{name}: {} splices a variable into its value: {value}",
                variable["name"]
            );
        }
    }
}

/// The catalog places sites on as many shards as product-data opens, and the kind
/// PostgreSQL creates exactly those databases: three views of one descriptor value.
#[test]
fn the_shard_count_is_one_value_everywhere() {
    let Some(kubectl) = kubectl() else { return };
    let objects = objects(&kustomize(&kubectl, "overlays/kind"));
    let config_of = |service: &str| {
        let deployment = objects
            .iter()
            .find(|object| object["kind"] == "Deployment" && object["metadata"]["name"] == service)
            .unwrap_or_else(|| panic!("no Deployment {service}"));
        let name = &deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"]
            ["name"];
        objects
            .iter()
            .find(|object| object["kind"] == "ConfigMap" && object["metadata"]["name"] == *name)
            .unwrap_or_else(|| panic!("no ConfigMap {name}"))["data"]
            .clone()
    };
    let placed_on = config_of("catalog")["MICROS__SERVICE__PRODUCT_DATA_SHARDS"].clone();
    let opened = config_of("product-data")["MICROS__SERVICE__SHARDS"].clone();
    assert!(
        placed_on.is_string(),
        "the catalog's config has no shard count"
    );
    assert_eq!(placed_on, opened, "the catalog and product-data disagree");
    let init = objects
        .iter()
        .find(|object| {
            object["kind"] == "ConfigMap" && object["metadata"]["name"] == "postgres-init"
        })
        .expect("the PostgreSQL init script")["data"]["databases.sql"]
        .as_str()
        .unwrap()
        .to_owned();
    let databases = init
        .matches("CREATE DATABASE \"micros_product_data_")
        .count();
    assert_eq!(
        placed_on.as_str().unwrap().parse::<usize>().unwrap(),
        databases,
        "{init}"
    );
}

fn deployments(objects: &[Value]) -> Vec<&Value> {
    objects
        .iter()
        .filter(|object| object["kind"] == "Deployment")
        .collect()
}

/// A rolling service keeps serving through a rollout and a node drain: at least two
/// pods, none removed before its replacement is ready, and a budget that lets a drain
/// take one at a time. A service that must not run twice is stopped before it is
/// replaced, and runs once.
#[test]
fn services_survive_rollouts_and_drains() {
    let Some(kubectl) = kubectl() else { return };
    let objects = objects(&kustomize(&kubectl, "overlays/kind"));
    for deployment in deployments(&objects) {
        let name = describe(deployment);
        let spec = &deployment["spec"];
        let replicas = spec["replicas"].as_u64().unwrap_or(1);
        let budgets: Vec<&Value> = objects
            .iter()
            .filter(|object| {
                object["kind"] == "PodDisruptionBudget"
                    && object["spec"]["selector"]["matchLabels"]
                        .as_object()
                        .is_some_and(|labels| {
                            labels.iter().all(|(key, value)| {
                                spec["template"]["metadata"]["labels"][key] == *value
                            })
                        })
            })
            .collect();
        match spec["strategy"]["type"].as_str() {
            Some("Recreate") => {
                assert_eq!(replicas, 1, "{name}: Recreate, yet {replicas} run at once");
                assert!(
                    budgets.is_empty(),
                    "{name}: a budget on one pod blocks drains"
                );
            }
            _ => {
                assert!(
                    replicas >= 2,
                    "{name}: {replicas} replica(s); a drain stops it"
                );
                assert_eq!(
                    spec["strategy"]["rollingUpdate"]["maxUnavailable"], 0,
                    "{name}: a rollout may remove a pod before its replacement is ready"
                );
                assert_eq!(budgets.len(), 1, "{name}: no PodDisruptionBudget");
                assert_eq!(budgets[0]["spec"]["maxUnavailable"], 1, "{name}");
            }
        }
    }
}

/// `(name, databases)` for every service `micros services` lists.
fn service_databases() -> Vec<(String, Vec<String>)> {
    let output = Command::new(MICROS)
        .arg("services")
        .output()
        .expect("run micros services");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let databases = fields
                .iter()
                .skip_while(|field| **field != "databases")
                .skip(1)
                .map(|database| database.trim_end_matches(',').to_owned())
                .collect();
            (fields[0].to_owned(), databases)
        })
        .collect()
}

/// How many pods beyond `replicas` a rollout runs at once: none for Recreate; for a
/// rolling update its `maxSurge`, a count or a percentage rounded up (Kubernetes'
/// default, with no strategy written, is 25%).
fn surge(strategy: &Value, replicas: u64) -> u64 {
    if strategy["type"] == "Recreate" {
        return 0;
    }
    let max_surge = &strategy["rollingUpdate"]["maxSurge"];
    if let Some(count) = max_surge.as_u64() {
        return count;
    }
    let percent: u64 = max_surge
        .as_str()
        .and_then(|value| value.strip_suffix('%'))
        .map_or(25, |value| value.parse().unwrap());
    (replicas * percent).div_ceil(100)
}

/// Every pool of every pod a rollout may run at once, plus the connection each opens
/// per database at start-up, fits in PostgreSQL's `max_connections` beside its three
/// superuser slots.
#[test]
fn postgres_admits_every_pool() {
    let Some(kubectl) = kubectl() else { return };
    let objects = objects(&kustomize(&kubectl, "overlays/kind"));
    let init = objects
        .iter()
        .find(|object| {
            object["kind"] == "ConfigMap" && object["metadata"]["name"] == "postgres-init"
        })
        .expect("the PostgreSQL init script")["data"]["databases.sql"]
        .as_str()
        .unwrap()
        .to_owned();
    let created: Vec<&str> = init
        .lines()
        .filter_map(|line| line.strip_prefix("CREATE DATABASE \"micros_"))
        .map(|rest| rest.trim_end_matches("\";"))
        .collect();
    let mut needed = 0;
    for (service, databases) in service_databases() {
        let deployment = deployments(&objects)
            .into_iter()
            .find(|deployment| deployment["metadata"]["name"] == service)
            .unwrap_or_else(|| panic!("no Deployment {service}"));
        let spec = &deployment["spec"];
        let replicas = spec["replicas"].as_u64().unwrap_or(1);
        let pods = replicas + surge(&spec["strategy"], replicas);
        let config_map =
            &spec["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"];
        let pool: u64 = objects
            .iter()
            .find(|object| {
                object["kind"] == "ConfigMap" && object["metadata"]["name"] == *config_map
            })
            .and_then(|config| config["data"]["MICROS__STORE__MAX_CONNECTIONS"].as_str())
            .map_or(8, |pool| pool.parse().unwrap());
        let opened = created
            .iter()
            .filter(|name| {
                databases.iter().any(|database| {
                    **name == database
                        || name
                            .strip_prefix(database.as_str())
                            .and_then(|rest| rest.strip_prefix('_'))
                            .is_some_and(|shard| shard.parse::<u32>().is_ok())
                })
            })
            .count() as u64;
        needed += pods * opened * (pool + 1);
    }
    let postgres = objects
        .iter()
        .find(|object| object["kind"] == "StatefulSet" && object["metadata"]["name"] == "postgres")
        .expect("the kind PostgreSQL");
    let args = postgres["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    let max_connections: u64 = args
        .split("max_connections=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map_or(100, |value| value.parse().unwrap());
    assert!(
        needed + 3 <= max_connections,
        "the pools need {needed} connections but PostgreSQL allows {max_connections} (3 reserved)"
    );
}

/// The base alone would run every service on the default store, SQLite under the
/// working directory: on a read-only root filesystem, and one per pod. It must not build
/// without an overlay that says where the store is.
#[test]
fn the_base_alone_refuses_to_build() {
    let Some(kubectl) = kubectl() else { return };
    let output = Command::new(&kubectl)
        .arg("kustomize")
        .arg(k8s().join("base"))
        .output()
        .expect("run kubectl kustomize");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "k8s/base builds on its own:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(stderr.contains("micros-store"), "{stderr}");
}

/// Attachment bytes must live as long as their metadata: in an S3-compatible store
/// backed by a persistent volume, not in a pod's scratch space; and no pod keeps
/// unbounded scratch space.
#[test]
fn media_keeps_blobs_in_a_persistent_object_store() {
    let Some(kubectl) = kubectl() else { return };
    let objects = objects(&kustomize(&kubectl, "overlays/kind"));
    let media = deployments(&objects)
        .into_iter()
        .find(|deployment| deployment["metadata"]["name"] == "media")
        .expect("a media Deployment");
    let pod = &media["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let config_map = &container["envFrom"][0]["configMapRef"]["name"];
    let config = &objects
        .iter()
        .find(|object| object["kind"] == "ConfigMap" && object["metadata"]["name"] == *config_map)
        .expect("media's ConfigMap")["data"];
    assert_eq!(config["MICROS__SERVICE__OBJECT_STORE"], "s3", "{config}");
    assert!(
        config["MICROS__SERVICE__S3__BUCKET"].is_string(),
        "{config}"
    );
    let endpoint = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|variable| variable["name"] == "MICROS__SERVICE__S3__ENDPOINT")
        .and_then(|variable| variable["value"].as_str())
        .expect("media's S3 endpoint");
    let host = endpoint
        .trim_start_matches("http://")
        .split(':')
        .next()
        .unwrap();
    let service = objects
        .iter()
        .find(|object| object["kind"] == "Service" && object["metadata"]["name"] == host)
        .unwrap_or_else(|| panic!("the endpoint {endpoint} names no Service"));
    let store = objects
        .iter()
        .find(|object| {
            object["kind"] == "StatefulSet"
                && service["spec"]["selector"]
                    .as_object()
                    .is_some_and(|labels| {
                        labels.iter().all(|(key, value)| {
                            object["spec"]["template"]["metadata"]["labels"][key] == *value
                        })
                    })
        })
        .unwrap_or_else(|| panic!("no StatefulSet behind {}", describe(service)));
    assert!(
        store["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
            .is_string(),
        "{} keeps its data on no persistent volume",
        describe(store)
    );
    for object in &objects {
        let volumes = &object["spec"]["template"]["spec"]["volumes"];
        for volume in volumes.as_array().into_iter().flatten() {
            if !volume["emptyDir"].is_null() {
                assert!(
                    volume["emptyDir"]["sizeLimit"].is_string(),
                    "{}: emptyDir {} has no sizeLimit",
                    describe(object),
                    volume["name"]
                );
            }
        }
    }
}

#[test]
fn every_service_is_scraped_on_its_metrics_port_and_alert_rules_ship() {
    let Some(kubectl) = kubectl() else { return };
    let objects = objects(&kustomize(&kubectl, "overlays/kind"));
    let find = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|object| object["kind"] == kind && object["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("k8s/overlays/kind has no {kind} {name}"))
    };
    for (name, _, metrics_port) in linked_services() {
        let template = &find("Deployment", &name)["spec"]["template"];
        let annotations = &template["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"], "true", "{name}");
        assert_eq!(
            annotations["prometheus.io/port"],
            metrics_port.to_string(),
            "{name}"
        );
        assert_eq!(annotations["prometheus.io/path"], "/metrics", "{name}");
        let container = &template["spec"]["containers"][0];
        let metrics = container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|port| port["name"] == "metrics")
            .unwrap_or_else(|| panic!("{name} names no metrics port"));
        assert_eq!(metrics["containerPort"], metrics_port, "{name}");
        let config = find(
            "ConfigMap",
            container["envFrom"][0]["configMapRef"]["name"]
                .as_str()
                .unwrap(),
        );
        assert_eq!(
            config["data"]["MICROS__TELEMETRY__METRICS_PORT"],
            metrics_port.to_string(),
            "{name} must serve metrics where it is scraped"
        );
    }
    let rules = find("ConfigMap", "micros-alert-rules");
    let text = rules["data"]["alert-rules.yaml"].as_str().unwrap();
    for alert in ["MicrosSiteDeletionSpike", "MicrosOperationHalted"] {
        assert!(text.contains(&format!("alert: {alert}")), "{text}");
    }
}
