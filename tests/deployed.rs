//! The kind configuration, proven to run: every Deployment's environment and ConfigMap
//! are taken from `kubectl kustomize k8s/overlays/kind`, each service starts as
//! `micros serve <service>` with exactly that environment (secrets and the downward API
//! resolved from the built objects; only what names a place is rewritten: listen on
//! loopback on free ports (gRPC and metrics), cluster hosts to where their stand-ins run, the store to the
//! test PostgreSQL with databases of its own, MinIO to `s3s-fs`), every service reaches
//! SERVING, and one orchestrator call (planning a site deletion, which describes the site
//! in every service) crosses all of them.
//!
//! Needs kubectl, PostgreSQL (`MICROS_TEST_POSTGRES_URL`) and s3s-fs; each skips with a
//! message when missing unless CI requires it.

mod kube;
mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use kube::{find, kubectl, kustomize, objects};
use micros_platform::{
    auth::{Issuer, Role, SigningKey},
    ids::SiteId,
    store::Backend,
    testing::{S3Server, ServiceProcess, TestStore, backends},
};
use micros_proto::{
    media::v1::{
        Chunk, UploadMetadata, UploadRequest, media_service_client::MediaServiceClient,
        upload_request::Part,
    },
    orchestrator::v1::{self as pb, orchestrator_service_client::OrchestratorServiceClient},
    productdata::v1::{
        CreateDocumentRequest, Page, create_document_request,
        product_data_service_client::ProductDataServiceClient,
    },
};
use secrecy::SecretString;
use serde_json::Value;
use sha2::Digest;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const MICROS: &str = env!("CARGO_BIN_EXE_micros");
const CASTAGNOLI: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// A service as the overlay deploys it.
struct Deployed {
    name: String,
    /// Its container's environment, every reference resolved.
    env: BTreeMap<String, String>,
    /// The services it calls (`MICROS__CLIENTS__…` hosts).
    calls: BTreeSet<String>,
}

/// The value a `secretKeyRef` names.
fn secret(objects: &[Value], reference: &Value) -> String {
    let name = reference["name"].as_str().unwrap();
    let key = reference["key"].as_str().unwrap();
    let secret = find(objects, "Secret", name);
    secret["stringData"][key]
        .as_str()
        .unwrap_or_else(|| panic!("Secret {name} has no stringData.{key}"))
        .to_owned()
}

/// A Kubernetes memory quantity (`256Mi`, `1Gi`, bytes) in bytes.
fn bytes(quantity: &str) -> u64 {
    for (suffix, unit) in [("Ki", 1u64 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30)] {
        if let Some(number) = quantity.strip_suffix(suffix) {
            return number.parse::<u64>().unwrap() * unit;
        }
    }
    quantity.parse().unwrap()
}

/// Every micros Deployment of the overlay with its container's environment as the
/// kubelet would give it.
fn deployed(objects: &[Value]) -> Vec<Deployed> {
    objects
        .iter()
        .filter(|object| object["kind"] == "Deployment")
        .map(|deployment| {
            let name = deployment["metadata"]["name"].as_str().unwrap().to_owned();
            let container = &deployment["spec"]["template"]["spec"]["containers"][0];
            assert_eq!(
                container["command"],
                serde_json::json!(["micros", "serve", name]),
                "{name} runs its role"
            );
            let mut env = BTreeMap::new();
            for source in container["envFrom"].as_array().into_iter().flatten() {
                let config_map = source["configMapRef"]["name"].as_str().unwrap();
                let data = find(objects, "ConfigMap", config_map)["data"]
                    .as_object()
                    .unwrap();
                for (key, value) in data {
                    env.insert(key.clone(), value.as_str().unwrap().to_owned());
                }
            }
            for variable in container["env"].as_array().into_iter().flatten() {
                let key = variable["name"].as_str().unwrap().to_owned();
                let from = &variable["valueFrom"];
                let value = if let Some(value) = variable["value"].as_str() {
                    value.to_owned()
                } else if !from["secretKeyRef"].is_null() {
                    secret(objects, &from["secretKeyRef"])
                } else if from["resourceFieldRef"]["resource"] == "limits.memory" {
                    assert_eq!(from["resourceFieldRef"]["divisor"], "1", "{name}: {key}");
                    bytes(container["resources"]["limits"]["memory"].as_str().unwrap()).to_string()
                } else {
                    panic!("{name}: {key} comes from a source this test cannot resolve: {from}")
                };
                env.insert(key, value);
            }
            let calls = env
                .iter()
                .filter(|(key, _)| key.starts_with("MICROS__CLIENTS__"))
                .map(|(_, url)| host(url).to_owned())
                .collect();
            Deployed { name, env, calls }
        })
        .collect()
}

/// The host of `http://host:port`.
fn host(url: &str) -> &str {
    url.trim_start_matches("http://")
        .split([':', '/'])
        .next()
        .unwrap()
}

/// `http://<host>:…` with the host and port replaced by `addr`.
fn readdress(url: &str, addr: &str) -> String {
    let rest = url.trim_start_matches("http://");
    let path = rest.find('/').map_or("", |index| &rest[index..]);
    format!("http://{addr}{path}")
}

async fn serving(addr: &str) -> bool {
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(format!("http://{addr}")) else {
        return false;
    };
    let Ok(channel) = endpoint.connect().await else {
        return false;
    };
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .is_ok_and(|response| response.into_inner().status() == ServingStatus::Serving)
}

#[test]
fn every_service_runs_with_its_kind_configuration() {
    let Some(kubectl) = kubectl() else { return };
    if !backends().contains(&Backend::Postgres) {
        assert!(
            std::env::var_os(kube::REQUIRE_ENV).is_none(),
            "the kind configuration stores in PostgreSQL: set MICROS_TEST_POSTGRES_URL"
        );
        eprintln!("skipped: the kind configuration needs MICROS_TEST_POSTGRES_URL");
        return;
    }
    let objects = objects(&kustomize(&kubectl, "overlays/kind"));
    let mut pending = deployed(&objects);
    let cluster_hosts: BTreeSet<String> = objects
        .iter()
        .filter(|object| object["kind"] == "Service")
        .map(|service| service["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();

    // The stand-ins: the test PostgreSQL (databases of this test's own, dropped after)
    // and s3s-fs with the bucket and the credentials the overlay gives media.
    let store = TestStore::new(Backend::Postgres);
    let media = pending
        .iter()
        .find(|service| service.env.contains_key("MICROS__SERVICE__S3__BUCKET"))
        .expect("a service stores objects");
    let bucket = media.env["MICROS__SERVICE__S3__BUCKET"].clone();
    let Some(s3) = S3Server::start(
        &bucket,
        &media.env["AWS_ACCESS_KEY_ID"],
        &media.env["AWS_SECRET_ACCESS_KEY"],
    ) else {
        return;
    };
    let mut places: BTreeMap<String, String> = BTreeMap::new();
    places.insert(
        host(&media.env["MICROS__SERVICE__S3__ENDPOINT"]).to_owned(),
        s3.endpoint().trim_start_matches("http://").to_owned(),
    );

    // In dependency order, each told where the ones it calls listen.
    let mut running: BTreeMap<String, ServiceProcess> = BTreeMap::new();
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|service| service.calls.iter().all(|call| places.contains_key(call)))
            .expect("the services' calls form no cycle");
        let service = pending.remove(ready);
        let mut env = service.env;
        assert_eq!(env["MICROS__SERVER__HOST"], "0.0.0.0", "{}", service.name);
        env.insert("MICROS__SERVER__HOST".to_owned(), "127.0.0.1".to_owned());
        env.insert("MICROS__SERVER__PORT".to_owned(), "0".to_owned());
        if env.contains_key("MICROS__TELEMETRY__METRICS_PORT") {
            env.insert("MICROS__TELEMETRY__METRICS_PORT".to_owned(), "0".to_owned());
        }
        if env.contains_key("MICROS__STORE__URL") {
            env.insert("MICROS__STORE__URL".to_owned(), store.config.url.clone());
            env.insert(
                "MICROS__STORE__DATABASE_PREFIX".to_owned(),
                store.config.database_prefix.clone(),
            );
        }
        for value in env.values_mut() {
            if value.starts_with("http://")
                && let Some(addr) = places.get(host(value))
            {
                *value = readdress(value, addr);
            }
            for cluster_host in &cluster_hosts {
                assert!(
                    !value.contains(&format!("//{cluster_host}:")),
                    "{}: {value} still names the cluster host {cluster_host}",
                    service.name
                );
            }
        }
        let process = ServiceProcess::start_with_environment(MICROS.as_ref(), &service.name, &env)
            .unwrap_or_else(|error| {
                panic!(
                    "{} does not start with its kind configuration: {error}",
                    service.name
                )
            });
        places.insert(service.name.clone(), process.addr().to_string());
        running.insert(service.name, process);
    }

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for (name, process) in &running {
            let addr = process.addr().to_string();
            let mut serving_now = false;
            for _ in 0..200 {
                if serving(&addr).await {
                    serving_now = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(
                serving_now,
                "{name} never reported SERVING:\n{}",
                process.log()
            );
        }

        // A token signed with the overlay's issuer key, as an operator would mint one.
        let issuer_key =
            find(&objects, "Secret", "micros-issuer-signing-key")["stringData"]["signing-key"]
                .as_str()
                .unwrap()
                .to_owned();
        let token = Issuer::new(
            &SigningKey::decode(&SecretString::from(issuer_key)).unwrap(),
            "micros",
        )
        .issue(
            "kind-operator",
            &[Role::Admin, Role::Operator, Role::Viewer],
            Duration::from_secs(600),
        )
        .unwrap();
        let channel = |service: &str| {
            micros_platform::client::connect(
                "kind",
                &micros_platform::config::ClientConfig {
                    url: format!("http://{}", running[service].addr()),
                    timeout: Duration::from_secs(30),
                    connect_timeout: Duration::from_secs(5),
                },
                Some(&SecretString::from(token.clone())),
            )
            .unwrap()
        };

        let mut orchestrator = OrchestratorServiceClient::new(channel("orchestrator"));
        let site = orchestrator
            .provision_site(pb::ProvisionSiteRequest {
                name: "Kind".to_owned(),
                url: "kind.example.net".to_owned(),
                region: "us-east".to_owned(),
                products: vec!["confluence".to_owned()],
                admin: Some(pb::Contact {
                    email: "admin@kind.example".to_owned(),
                    name: "Admin".to_owned(),
                    kind: "admin".to_owned(),
                }),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|status| {
                panic!(
                    "ProvisionSite: {status:?}\n{}",
                    running["orchestrator"].log()
                )
            })
            .into_inner();
        let site_id: SiteId = site.site_id.parse().unwrap();
        ProductDataServiceClient::new(channel("product-data"))
            .create_document(CreateDocumentRequest {
                site_id: site_id.to_string(),
                content: Some(create_document_request::Content::Page(Page {
                    title: "Runbook".to_owned(),
                    body: "Steps".to_owned(),
                })),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|status| panic!("CreateDocument: {status:?}"));
        let data = b"bytes kept in the bucket".to_vec();
        let messages = vec![
            UploadRequest {
                part: Some(Part::Metadata(UploadMetadata {
                    site_id: site_id.to_string(),
                    file_name: "note.txt".to_owned(),
                    content_type: "text/plain".to_owned(),
                    size_bytes: i64::try_from(data.len()).unwrap(),
                    sha256: format!("{:x}", sha2::Sha256::digest(&data)),
                    ..Default::default()
                })),
            },
            UploadRequest {
                part: Some(Part::Chunk(Chunk {
                    crc32c: Some(CASTAGNOLI.checksum(&data)),
                    data: data.clone(),
                })),
            },
        ];
        MediaServiceClient::new(channel("media"))
            .upload(tokio_stream::iter(messages))
            .await
            .unwrap_or_else(|status| panic!("Upload: {status:?}\n{}", running["media"].log()));
        assert_eq!(s3.keys(&bucket).len(), 1, "the bytes are in the bucket");

        // Planning the deletion resolves the site in the catalog and describes it in
        // every service, each with the orchestrator's service identity.
        let plan = orchestrator
            .create_plan(pb::CreatePlanRequest {
                kind: pb::PlanKind::DeleteSites as i32,
                inputs: vec![site_id.to_string()],
                expected_kind: pb::ExpectedKind::Site as i32,
                expected_count: 1,
                reason: "kind configuration check".to_owned(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|status| {
                panic!("CreatePlan: {status:?}\n{}", running["orchestrator"].log())
            })
            .into_inner();
        assert!(plan.errors.is_empty(), "{:?}", plan.errors);
        let blast = plan.blast_radius.expect("a blast radius");
        assert_eq!(blast.sites, 1, "{blast:?}");
        assert!(blast.users >= 1, "identity answered: {blast:?}");
        assert_eq!(blast.documents, 1, "product-data answered: {blast:?}");
        assert_eq!(blast.attachments, 1, "media answered: {blast:?}");
        assert!(
            blast.rows > blast.users + 2,
            "the catalog and license answered: {blast:?}"
        );
    });
    drop(running);
}
