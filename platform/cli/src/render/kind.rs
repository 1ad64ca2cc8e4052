//! `overlays/kind/`: the base completed for a local kind cluster. It adds the PostgreSQL
//! the services store in (and the `micros-store` the base's replacements read), MinIO
//! for the services that keep objects and development-only secrets, patches every
//! Deployment to use the image `kind load docker-image` put on the node (never pulled),
//! to wait for its stores and to use the bucket, turns each host-exposed Service into a
//! NodePort, and writes the kind cluster config that maps those NodePorts to the host.

use micros_platform::{
    auth::{ISSUER_KID, SigningKey},
    service::ServiceDescriptor,
};
use serde_json::{Map, Value, json};

use super::{AUTH_KEYS, Manifests, NAMESPACE, SIGNING_KEY, minio, postgres, signing_key_secret};
use crate::token::service_key_env;

const DIR: &str = "overlays/kind";
/// `kind create cluster --config …` names the cluster this; `kind load docker-image
/// --name micros` targets it.
const CLUSTER_NAME: &str = "micros";
/// A development key of the kind cluster, derived from `name`. Published in this
/// repository, so it protects nothing: for a local cluster only.
fn development_key(name: &str) -> SigningKey {
    SigningKey::public_for_development(&format!("kind-development-only-key:{name}"))
}

/// The Secret holding one development private key.
fn key_secret(name: &str, key: &SigningKey) -> Value {
    use secrecy::ExposeSecret;
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": signing_key_secret(name),
            "annotations": { "micros.dev/purpose": "development only; the value is public" },
        },
        "type": "Opaque",
        "stringData": { SIGNING_KEY: key.encode().expose_secret() },
    })
}

/// Development keys: a Secret per service with its private key, the issuer's private key
/// (operators mint tokens with it, `micros token`; no pod refers to it), and the public
/// keys every service trusts.
fn render_keys(
    services: &[ServiceDescriptor],
    manifests: &mut Manifests,
    resources: &mut Vec<String>,
) -> anyhow::Result<()> {
    let note = "DEVELOPMENT ONLY: these keys are public; a real cluster supplies its own \
                (`micros token --new-key`).";
    let issuer = development_key(ISSUER_KID);
    let mut public = Map::new();
    public.insert(
        "MICROS__AUTH__ISSUER_KEY".to_owned(),
        Value::String(issuer.public().encode()),
    );
    let mut keys = vec![(ISSUER_KID, issuer)];
    for service in services {
        let key = development_key(service.name);
        public.insert(
            service_key_env(service.name),
            Value::String(key.public().encode()),
        );
        keys.push((service.name, key));
    }
    for (name, key) in &keys {
        let file = format!("keys/{name}-signing-key.yaml");
        manifests.yaml_noted(format!("{DIR}/{file}"), note, &key_secret(name, key))?;
        resources.push(file);
    }
    manifests.yaml(
        format!("{DIR}/keys/auth-keys.yaml"),
        &json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": { "name": AUTH_KEYS },
            "data": public,
        }),
    )?;
    resources.push("keys/auth-keys.yaml".to_owned());
    Ok(())
}

pub(super) fn render(
    services: &[ServiceDescriptor],
    manifests: &mut Manifests,
) -> anyhow::Result<()> {
    let mut resources = Vec::new();
    render_keys(services, manifests, &mut resources)?;
    let stores = services.iter().any(|service| !service.databases.is_empty());
    if stores {
        for file in postgres::render(services, &format!("{DIR}/postgres"), manifests)? {
            resources.push(format!("postgres/{file}"));
        }
    }
    if services.iter().any(|service| service.bucket.is_some()) {
        for file in minio::render(&format!("{DIR}/minio"), manifests)? {
            resources.push(format!("minio/{file}"));
        }
    }
    let mut patches = Vec::new();
    for service in services {
        let name = service.name;
        let path = format!("patches/{name}-deployment.yaml");
        manifests.yaml(format!("{DIR}/{path}"), &deployment_patch(service))?;
        patches.push(json!({ "path": path }));
        if let Some(node_port) = service.node_port {
            let path = format!("patches/{name}-service.yaml");
            manifests.yaml(
                format!("{DIR}/{path}"),
                &node_port_patch(service, node_port),
            )?;
            patches.push(json!({ "path": path }));
        }
    }
    manifests.yaml(
        format!("{DIR}/kustomization.yaml"),
        &json!({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": NAMESPACE,
            "labels": [{
                "pairs": { "app.kubernetes.io/part-of": "micros" },
                "includeTemplates": true,
            }],
            "components": ["../../base"],
            "resources": resources,
            "patches": patches,
        }),
    )?;
    manifests.yaml(format!("{DIR}/kind-config.yaml"), &kind_config(services))
}

/// The image is loaded into the node, never pulled (a missing `kind load` shows as
/// ErrImageNeverPull, not as a pull from a registry); a service with databases waits for
/// PostgreSQL, and one with a bucket uses MinIO, creating the bucket before it starts.
fn deployment_patch(service: &ServiceDescriptor) -> Value {
    let mut container = json!({
        "name": service.name,
        "imagePullPolicy": "Never",
    });
    let mut init_containers = Vec::new();
    let mut pod = json!({});
    if !service.databases.is_empty() {
        init_containers.push(postgres::wait_container());
    }
    if let Some(bucket) = service.bucket {
        container["env"] = minio::client_env();
        init_containers.push(minio::bucket_container(bucket));
        pod["volumes"] = json!([minio::bucket_volume()]);
    }
    if !init_containers.is_empty() {
        pod["initContainers"] = Value::Array(init_containers);
    }
    pod["containers"] = json!([container]);
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": service.name },
        "spec": { "template": { "spec": pod } },
    })
}

/// kustomize merges Service ports by port *and* protocol: without `protocol` the patch
/// matches no port of the base Service and its `nodePort` is dropped.
fn node_port_patch(service: &ServiceDescriptor, node_port: u16) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": service.name },
        "spec": {
            "type": "NodePort",
            "ports": [{ "port": service.port, "protocol": "TCP", "nodePort": node_port }],
        },
    })
}

/// One control-plane node; every NodePort service is published on the host's loopback
/// at its descriptor port.
fn kind_config(services: &[ServiceDescriptor]) -> Value {
    let mappings: Vec<Value> = services
        .iter()
        .filter_map(|service| {
            service.node_port.map(|node_port| {
                json!({
                    "containerPort": node_port,
                    "hostPort": service.port,
                    "listenAddress": "127.0.0.1",
                    "protocol": "TCP",
                })
            })
        })
        .collect();
    let mut node = json!({ "role": "control-plane" });
    if !mappings.is_empty() {
        node["extraPortMappings"] = Value::Array(mappings);
    }
    json!({
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "name": CLUSTER_NAME,
        "nodes": [node],
    })
}
