//! The kind cluster's object store: MinIO, an S3-compatible server, in a StatefulSet with
//! a volume, so that attachment bytes survive pod restarts as their metadata in
//! PostgreSQL does; and what a service with a bucket needs to use it.

use serde_json::{Value, json};

use super::{Manifests, container_security, pod_security, selector};

/// The Service name, and so the host name in the endpoint.
const NAME: &str = "minio";
/// The last server release MinIO published as an image; its Docker Hub repository is
/// gone, quay.io still serves it.
const IMAGE: &str = "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z";
/// The MinIO client, which creates a service's bucket.
const CLIENT_IMAGE: &str = "quay.io/minio/mc:RELEASE.2025-08-13T08-35-41Z";
const PORT: u16 = 9000;
/// Neither image needs root; any user that owns the volume (through `fsGroup`) will do.
const USER_ID: u32 = 1000;
const SECRET: &str = "minio";
const USER_KEY: &str = "root-user";
const PASSWORD_KEY: &str = "root-password";
/// Public like everything in this repository: for a local cluster only.
const DEVELOPMENT_USER: &str = "micros";
const DEVELOPMENT_PASSWORD: &str = "kind-development-only";
const DEVELOPMENT_ONLY: &str =
    "DEVELOPMENT ONLY: these credentials are public; a real cluster supplies its own.";
const DATA_MOUNT: &str = "/data";
/// The root filesystem is read-only: certificates (none) and client config go here.
const SCRATCH_MOUNT: &str = "/tmp";
const PROBE_TIMEOUT_SECONDS: u32 = 5;

/// Writes the MinIO objects under `dir` and returns their file names.
pub(super) fn render(dir: &str, manifests: &mut Manifests) -> anyhow::Result<Vec<String>> {
    manifests.yaml_noted(format!("{dir}/secret.yaml"), DEVELOPMENT_ONLY, &secret())?;
    manifests.yaml(format!("{dir}/service.yaml"), &service())?;
    manifests.yaml(format!("{dir}/statefulset.yaml"), &stateful_set())?;
    Ok(["secret.yaml", "service.yaml", "statefulset.yaml"]
        .map(str::to_owned)
        .to_vec())
}

/// The settings of a service that keeps objects, pointed at this server, and the
/// credentials the S3 client reads from the standard AWS variables.
pub(super) fn client_env() -> Value {
    json!([
        { "name": "MICROS__SERVICE__S3__ENDPOINT", "value": format!("http://{NAME}:{PORT}") },
        { "name": "MICROS__SERVICE__S3__ALLOW_HTTP", "value": "true" },
        { "name": "AWS_ACCESS_KEY_ID", "valueFrom": secret_ref(USER_KEY) },
        { "name": "AWS_SECRET_ACCESS_KEY", "valueFrom": secret_ref(PASSWORD_KEY) },
    ])
}

/// An init container that waits for the server and creates `bucket` if it is missing,
/// so the service's first upload finds it. It traps SIGTERM (it is PID 1).
pub(super) fn bucket_container(bucket: &str) -> Value {
    json!({
        "name": "make-bucket",
        "image": CLIENT_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": [
            "sh",
            "-c",
            format!(
                "trap 'exit 143' TERM; \
                 until mc alias set {NAME} http://{NAME}:{PORT} \"$MINIO_ROOT_USER\" \
                 \"$MINIO_ROOT_PASSWORD\" >/dev/null && mc mb --ignore-existing {NAME}/{bucket}; \
                 do sleep 1; done"
            ),
        ],
        "env": [
            { "name": "MINIO_ROOT_USER", "valueFrom": secret_ref(USER_KEY) },
            { "name": "MINIO_ROOT_PASSWORD", "valueFrom": secret_ref(PASSWORD_KEY) },
            { "name": "MC_CONFIG_DIR", "value": format!("{SCRATCH_MOUNT}/mc") },
        ],
        "resources": {
            "requests": { "cpu": "10m", "memory": "16Mi" },
            "limits": { "cpu": "100m", "memory": "64Mi" },
        },
        "securityContext": container_security(USER_ID),
        "volumeMounts": [{ "name": "make-bucket-scratch", "mountPath": SCRATCH_MOUNT }],
    })
}

/// The volume [`bucket_container`] keeps its client config in.
pub(super) fn bucket_volume() -> Value {
    json!({ "name": "make-bucket-scratch", "emptyDir": { "sizeLimit": "1Mi" } })
}

fn secret_ref(key: &str) -> Value {
    json!({ "secretKeyRef": { "name": SECRET, "key": key } })
}

fn secret() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": SECRET,
            "annotations": { "micros.dev/purpose": "development only; the value is public" },
        },
        "type": "Opaque",
        "stringData": { USER_KEY: DEVELOPMENT_USER, PASSWORD_KEY: DEVELOPMENT_PASSWORD },
    })
}

fn service() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": NAME, "labels": selector(NAME) },
        "spec": {
            "selector": selector(NAME),
            "ports": [{
                "name": "s3",
                "port": PORT,
                "targetPort": "s3",
                "protocol": "TCP",
            }],
        },
    })
}

fn stateful_set() -> Value {
    let probe = |path: &str, period_seconds: u32, failure_threshold: u32| {
        json!({
            "httpGet": { "path": path, "port": "s3" },
            "periodSeconds": period_seconds,
            "failureThreshold": failure_threshold,
            "timeoutSeconds": PROBE_TIMEOUT_SECONDS,
        })
    };
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
                        "args": [
                            "server",
                            DATA_MOUNT,
                            "--address",
                            format!(":{PORT}"),
                            "--certs-dir",
                            format!("{SCRATCH_MOUNT}/certs"),
                        ],
                        "env": [
                            { "name": "MINIO_ROOT_USER", "valueFrom": secret_ref(USER_KEY) },
                            {
                                "name": "MINIO_ROOT_PASSWORD",
                                "valueFrom": secret_ref(PASSWORD_KEY),
                            },
                        ],
                        "ports": [{ "name": "s3", "containerPort": PORT, "protocol": "TCP" }],
                        "startupProbe": probe("/minio/health/live", 5, 36),
                        "readinessProbe": probe("/minio/health/ready", 5, 2),
                        "livenessProbe": probe("/minio/health/live", 10, 6),
                        "resources": {
                            "requests": { "cpu": "100m", "memory": "128Mi" },
                            "limits": { "cpu": "1000m", "memory": "512Mi" },
                        },
                        "securityContext": container_security(USER_ID),
                        "volumeMounts": [
                            { "name": "data", "mountPath": DATA_MOUNT },
                            { "name": "scratch", "mountPath": SCRATCH_MOUNT },
                        ],
                    }],
                    "volumes": [{ "name": "scratch", "emptyDir": { "sizeLimit": "16Mi" } }],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": { "name": "data" },
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": { "requests": { "storage": "2Gi" } },
                },
            }],
        },
    })
}
