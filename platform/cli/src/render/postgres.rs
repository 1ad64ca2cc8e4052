//! The kind cluster's PostgreSQL: one server (a StatefulSet with a volume) holding a
//! database per service database, and the `micros-store` ConfigMap (its URL, for the
//! base's replacements) and Secret (its password) through which services reach it.
//!
//! The init script creates every database when the volume is new; services also create
//! their database on start when it is missing (see the runtime's store), which is what
//! covers a service added after the cluster was created.

use std::collections::BTreeSet;

use micros_platform::{config::StoreConfig, service::ServiceDescriptor};
use serde_json::{Value, json};

use super::{
    Manifests, STORE, STORE_PASSWORD_KEY, STORE_URL_KEY, container_security, pod_security,
    selector, surge,
};

/// The Service name, and so the host name in the store URL.
const NAME: &str = "postgres";
/// Debian-based, so its `postgres` user is uid 999 (the Alpine image uses 70).
const IMAGE: &str = "postgres:17";
const USER_ID: u32 = 999;
const PORT: u16 = 5432;
/// The role the services log in as; the image makes it a superuser, which lets a
/// service create its own database.
const DATABASE_USER: &str = "micros";
/// Public like everything in this repository: for a local cluster only.
const DEVELOPMENT_PASSWORD: &str = "kind-development-only";
const DEVELOPMENT_ONLY: &str =
    "DEVELOPMENT ONLY: this password is public; a real cluster supplies its own.";
/// Where the volume is mounted.
const DATA_MOUNT: &str = "/var/lib/postgresql/data";
/// A subdirectory of the volume, so initdb finds it empty whatever the provisioner
/// leaves at the mount point.
const PGDATA: &str = "/var/lib/postgresql/data/pgdata";
/// PostgreSQL's reserved superuser slots (its default 3) and a few for an operator's psql.
const SPARE_CONNECTIONS: u32 = 3 + 5;
/// Longer than `pg_isready`'s default connect timeout (3 s).
const PROBE_TIMEOUT_SECONDS: u32 = 5;

/// Writes the PostgreSQL objects under `dir` and returns their file names.
pub(super) fn render(
    services: &[ServiceDescriptor],
    dir: &str,
    manifests: &mut Manifests,
) -> anyhow::Result<Vec<String>> {
    let files = [
        ("store.yaml", None, store_config()),
        ("secret.yaml", Some(DEVELOPMENT_ONLY), secret()),
        ("init.yaml", None, init_script(services)),
        ("service.yaml", None, service()),
        (
            "statefulset.yaml",
            None,
            stateful_set(max_connections(services)),
        ),
    ];
    let mut names = Vec::new();
    for (file, note, document) in files {
        let path = format!("{dir}/{file}");
        match note {
            Some(note) => manifests.yaml_noted(path, note, &document)?,
            None => manifests.yaml(path, &document)?,
        }
        names.push(file.to_owned());
    }
    Ok(names)
}

/// An init container that holds a service back until PostgreSQL answers, so a fresh
/// cluster starts without a round of crash-loop restarts. The shell is PID 1, which
/// ignores SIGTERM unless it traps it: without the trap a pod deleted while PostgreSQL is
/// down would wait for the kubelet's SIGKILL.
pub(super) fn wait_container() -> Value {
    json!({
        "name": "wait-for-postgres",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": [
            "sh",
            "-c",
            format!(
                "trap 'exit 143' TERM; \
                 until pg_isready -q -h {NAME} -p {PORT} -U {DATABASE_USER}; do sleep 1; done"
            ),
        ],
        "resources": {
            "requests": { "cpu": "10m", "memory": "16Mi" },
            "limits": { "cpu": "100m", "memory": "64Mi" },
        },
        "securityContext": container_security(USER_ID),
    })
}

fn password_ref() -> Value {
    json!({ "secretKeyRef": { "name": STORE, "key": STORE_PASSWORD_KEY } })
}

/// The server's URL for the base's replacements; local to kustomize (it configures the
/// build and is not applied to the cluster).
fn store_config() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": STORE,
            "annotations": { "config.kubernetes.io/local-config": "true" },
        },
        "data": { STORE_URL_KEY: format!("postgres://{DATABASE_USER}@{NAME}:{PORT}") },
    })
}

/// The password the server is created with and the services log in with.
fn secret() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": STORE,
            "annotations": { "micros.dev/purpose": "development only; the value is public" },
        },
        "type": "Opaque",
        "stringData": { STORE_PASSWORD_KEY: DEVELOPMENT_PASSWORD },
    })
}

/// `CREATE DATABASE` for every service database and shard, named as the store names
/// them (`<prefix><database>`).
fn init_script(services: &[ServiceDescriptor]) -> Value {
    let prefix = StoreConfig::default().database_prefix;
    let databases: BTreeSet<String> = services
        .iter()
        .flat_map(ServiceDescriptor::database_names)
        .collect();
    let script: String = databases
        .iter()
        .map(|database| format!("CREATE DATABASE \"{prefix}{database}\";\n"))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": "postgres-init", "labels": selector(NAME) },
        "data": { "databases.sql": script },
    })
}

fn service() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": NAME, "labels": selector(NAME) },
        "spec": {
            // Headless: the StatefulSet's governing Service; the name resolves to the
            // pod once it is ready.
            "clusterIP": "None",
            "selector": selector(NAME),
            "ports": [{
                "name": "postgres",
                "port": PORT,
                "targetPort": "postgres",
                "protocol": "TCP",
            }],
        },
    })
}

/// PostgreSQL's `max_connections`: every pod a rollout may run at once (its replicas
/// and surge), each with a full pool per database (`store.max_connections` is the
/// descriptor's `pool_size`) and the one connection per database it opens at start-up to
/// create that database if missing, then [`SPARE_CONNECTIONS`]. Written from the same
/// descriptors as the pools, so a pool or replica change cannot exhaust the server.
pub(super) fn max_connections(services: &[ServiceDescriptor]) -> u32 {
    let pools: u32 = services
        .iter()
        .map(|service| {
            let pods = u32::from(service.replicas) + u32::from(surge(service.rollout));
            let databases = u32::try_from(service.database_names().len()).unwrap_or(u32::MAX);
            pods.saturating_mul(databases)
                .saturating_mul(service.pool_size.saturating_add(1))
        })
        .fold(0, u32::saturating_add);
    pools.saturating_add(SPARE_CONNECTIONS)
}

fn stateful_set(max_connections: u32) -> Value {
    let ready = json!([
        "pg_isready",
        "-q",
        "-h",
        "127.0.0.1",
        "-p",
        PORT.to_string(),
        "-U",
        DATABASE_USER
    ]);
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": { "name": NAME, "labels": selector(NAME) },
        "spec": {
            "serviceName": NAME,
            "replicas": 1,
            "selector": { "matchLabels": selector(NAME) },
            "template": {
                "metadata": { "labels": selector(NAME) },
                "spec": {
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": pod_security(USER_ID),
                    "containers": [{
                        "name": NAME,
                        "image": IMAGE,
                        "imagePullPolicy": "IfNotPresent",
                        // The image's entrypoint passes these to the server.
                        "args": ["-c", format!("max_connections={max_connections}")],
                        "env": [
                            { "name": "POSTGRES_USER", "value": DATABASE_USER },
                            { "name": "POSTGRES_PASSWORD", "valueFrom": password_ref() },
                            { "name": "PGDATA", "value": PGDATA },
                        ],
                        "ports": [{ "name": "postgres", "containerPort": PORT, "protocol": "TCP" }],
                        // The first start runs initdb and the init script on a server
                        // that listens on its socket only, so TCP readiness waits for it.
                        // Every probe outlasts pg_isready's own 3 s connect timeout: the
                        // default 1 s would fail a server that is merely busy.
                        "startupProbe": {
                            "exec": { "command": ready },
                            "periodSeconds": 5,
                            "failureThreshold": 36,
                            "timeoutSeconds": PROBE_TIMEOUT_SECONDS,
                        },
                        "readinessProbe": {
                            "exec": { "command": ready },
                            "periodSeconds": 5,
                            "failureThreshold": 2,
                            "timeoutSeconds": PROBE_TIMEOUT_SECONDS,
                        },
                        "livenessProbe": {
                            "exec": { "command": ready },
                            "periodSeconds": 10,
                            "failureThreshold": 6,
                            "timeoutSeconds": PROBE_TIMEOUT_SECONDS,
                        },
                        "resources": {
                            "requests": { "cpu": "100m", "memory": "256Mi" },
                            "limits": { "cpu": "1000m", "memory": "1Gi" },
                        },
                        "securityContext": container_security(USER_ID),
                        // The root filesystem is read-only: the socket directory and
                        // /tmp are scratch volumes.
                        "volumeMounts": [
                            { "name": "data", "mountPath": DATA_MOUNT },
                            {
                                "name": "init",
                                "mountPath": "/docker-entrypoint-initdb.d",
                                "readOnly": true,
                            },
                            { "name": "run", "mountPath": "/var/run/postgresql" },
                            { "name": "tmp", "mountPath": "/tmp" },
                        ],
                    }],
                    "volumes": [
                        { "name": "init", "configMap": { "name": "postgres-init" } },
                        { "name": "run", "emptyDir": { "sizeLimit": "1Mi" } },
                        { "name": "tmp", "emptyDir": { "sizeLimit": "64Mi" } },
                    ],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": { "name": "data" },
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": { "requests": { "storage": "1Gi" } },
                },
            }],
        },
    })
}
