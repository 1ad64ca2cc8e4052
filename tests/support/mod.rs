//! The whole suite for scenario tests: the five data services in process on 127.0.0.1:0
//! sharing one test clock, clients to each, and helpers to provision and inspect sites
//! through gRPC only.

// Each suite test is its own crate and uses only part of this module.
#![allow(dead_code)]

pub mod otlp;

use std::{collections::BTreeMap, time::Duration};

use micros_catalog::{Catalog, CatalogSettings};
use micros_identity::{Identity, IdentitySettings};
use micros_license::{License, LicenseSettings};
use micros_media::{Media, MediaSettings};
use micros_orchestrator::{Orchestrator, OrchestratorSettings};
use micros_platform::{
    auth::Role,
    client::{self, ServiceChannel},
    clock::TestClock,
    config::ClientConfig,
    lifecycle::{Target, grpc::target_to_proto},
    service::MicrosService,
    store::Backend,
    testing::{self, TestService, test_token},
};
use micros_product_data::{ProductData, ProductDataSettings};
use micros_proto::{
    lifecycle::v1::{
        DescribeRequest, TargetOutcome, TenantState, tenant_lifecycle_client::TenantLifecycleClient,
    },
    orchestrator::v1::{self as pb, orchestrator_service_client::OrchestratorServiceClient},
};
use secrecy::SecretString;

pub const SERVICES: [&str; 5] = ["catalog", "identity", "license", "media", "product-data"];

pub struct Suite {
    pub clock: TestClock,
    pub catalog: TestService<Catalog>,
    pub identity: TestService<Identity>,
    pub license: TestService<License>,
    pub media: TestService<Media>,
    pub product_data: TestService<ProductData>,
    pub blob_dir: tempfile::TempDir,
}

fn client_config(url: String) -> ClientConfig {
    ClientConfig {
        url,
        timeout: Duration::from_secs(60),
        connect_timeout: Duration::from_secs(5),
    }
}

impl Suite {
    pub async fn start(backend: Backend) -> Suite {
        let clock = TestClock::new();
        let shards = ProductData::DESCRIPTOR.shards;
        let catalog = testing::spawn_with::<Catalog>(
            backend,
            CatalogSettings {
                product_data_shards: shards,
                ..CatalogSettings::default()
            },
            clock.clone(),
            |_| {},
        )
        .await;
        let catalog_url = catalog.server.url();
        let asks_catalog = |config_clients: &mut BTreeMap<String, ClientConfig>| {
            *config_clients =
                BTreeMap::from([("catalog".to_owned(), client_config(catalog_url.clone()))]);
        };
        let identity = testing::spawn_with::<Identity>(
            backend,
            IdentitySettings::default(),
            clock.clone(),
            |config| asks_catalog(&mut config.clients),
        )
        .await;
        let license = testing::spawn_with::<License>(
            backend,
            LicenseSettings::default(),
            clock.clone(),
            |config| asks_catalog(&mut config.clients),
        )
        .await;
        let blob_dir = tempfile::tempdir().unwrap();
        let media_settings = MediaSettings {
            blob_dir: Some(blob_dir.path().to_owned()),
            ..MediaSettings::default()
        };
        let media =
            testing::spawn_with::<Media>(backend, media_settings, clock.clone(), |config| {
                asks_catalog(&mut config.clients)
            })
            .await;
        let product_data = testing::spawn_with::<ProductData>(
            backend,
            ProductDataSettings { shards },
            clock.clone(),
            |config| {
                config.clients =
                    BTreeMap::from([("catalog".to_owned(), client_config(catalog_url))]);
            },
        )
        .await;
        Suite {
            clock,
            catalog,
            identity,
            license,
            media,
            product_data,
            blob_dir,
        }
    }

    pub fn url(&self, service: &str) -> String {
        match service {
            "catalog" => self.catalog.server.url(),
            "identity" => self.identity.server.url(),
            "license" => self.license.server.url(),
            "media" => self.media.server.url(),
            "product-data" => self.product_data.server.url(),
            other => panic!("no service {other}"),
        }
    }

    /// `clients.*` for an orchestrator in this process.
    pub fn clients(&self) -> BTreeMap<String, ClientConfig> {
        SERVICES
            .iter()
            .map(|service| ((*service).to_owned(), client_config(self.url(service))))
            .collect()
    }

    /// `MICROS__CLIENTS__…` for an orchestrator process.
    pub fn client_env(&self) -> Vec<(String, String)> {
        SERVICES
            .iter()
            .map(|service| {
                (
                    format!(
                        "MICROS__CLIENTS__{}__URL",
                        service.to_uppercase().replace('-', "_")
                    ),
                    self.url(service),
                )
            })
            .collect()
    }

    pub async fn orchestrator(
        &self,
        backend: Backend,
        settings: OrchestratorSettings,
    ) -> TestService<Orchestrator> {
        let clients = self.clients();
        testing::spawn_with::<Orchestrator>(backend, settings, self.clock.clone(), move |config| {
            config.clients = clients;
        })
        .await
    }

    /// A channel to `service` as a principal with `roles`.
    pub fn channel(&self, service: &str, principal: &str, roles: &[Role]) -> ServiceChannel {
        connect(&self.url(service), principal, roles)
    }

    /// Every service's view of `targets`, as the orchestrator would see it.
    pub async fn describe(&self, targets: &[Target]) -> BTreeMap<String, Vec<TargetOutcome>> {
        let mut all = BTreeMap::new();
        for service in SERVICES {
            let outcomes =
                TenantLifecycleClient::new(self.channel(service, "inspector", &[Role::Lifecycle]))
                    .max_decoding_message_size(64 << 20)
                    .describe(DescribeRequest {
                        targets: targets.iter().map(target_to_proto).collect(),
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .outcomes;
            all.insert(service.to_owned(), outcomes);
        }
        all
    }

    pub async fn stop(self) {
        self.product_data.stop().await;
        self.media.stop().await;
        self.license.stop().await;
        self.identity.stop().await;
        self.catalog.stop().await;
    }
}

pub fn connect(url: &str, principal: &str, roles: &[Role]) -> ServiceChannel {
    client::connect(
        "suite",
        &client_config(url.to_owned()),
        Some(&SecretString::from(test_token(principal, roles))),
    )
    .unwrap()
}

/// The orchestrator as an operator (`alice`) or an approver (`bob`) sees it.
pub fn orchestrator_client(
    url: &str,
    principal: &str,
    roles: &[Role],
) -> OrchestratorServiceClient<ServiceChannel> {
    OrchestratorServiceClient::new(connect(url, principal, roles))
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

/// Waits until the operation stops moving and returns it.
pub async fn settle(
    client: &mut OrchestratorServiceClient<ServiceChannel>,
    operation_id: &str,
) -> pb::Operation {
    for _ in 0..3000 {
        match client
            .get_operation(pb::GetOperationRequest {
                operation_id: operation_id.to_owned(),
            })
            .await
        {
            Ok(operation) => {
                let operation = operation.into_inner();
                if !matches!(
                    operation.state(),
                    pb::OperationState::Running | pb::OperationState::Aborting
                ) {
                    return operation;
                }
            }
            Err(status) if status.code() == tonic::Code::Unavailable => {}
            Err(status) => panic!("watching {operation_id}: {status}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("operation {operation_id} did not settle in 300 s");
}

/// (fingerprint, live counts) per service for each site target, for before/after checks.
pub fn prints(
    described: &BTreeMap<String, Vec<TargetOutcome>>,
) -> BTreeMap<(String, usize), (String, Vec<i64>)> {
    described
        .iter()
        .flat_map(|(service, outcomes)| {
            outcomes.iter().enumerate().map(move |(index, outcome)| {
                (
                    (service.clone(), index),
                    (
                        outcome.fingerprint.clone(),
                        outcome.counts.iter().map(|count| count.live).collect(),
                    ),
                )
            })
        })
        .collect()
}

mod gate;
pub use gate::Gate;

/// A site seeded with data in every service: its ID and its `insight` installation.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub site_id: String,
    pub app_installation_id: String,
}

/// What one service says of one site: its state and fingerprint.
pub type View = (TenantState, String);

/// Per site, per service, the site as that service describes it.
pub type Snapshot = BTreeMap<String, BTreeMap<String, View>>;

impl Suite {
    /// Gates in front of every service, for an orchestrator whose calls a test can cut.
    pub async fn gates(&self) -> BTreeMap<String, Gate> {
        let mut gates = BTreeMap::new();
        for service in SERVICES {
            gates.insert(service.to_owned(), Gate::new(&self.url(service)).await);
        }
        gates
    }

    /// An orchestrator in this process that reaches every service through `gates`.
    pub async fn orchestrator_through(
        &self,
        backend: Backend,
        settings: OrchestratorSettings,
        gates: &BTreeMap<String, Gate>,
    ) -> TestService<Orchestrator> {
        let clients: BTreeMap<String, ClientConfig> = gates
            .iter()
            .map(|(service, gate)| (service.clone(), client_config(gate.url())))
            .collect();
        testing::spawn_with::<Orchestrator>(backend, settings, self.clock.clone(), move |config| {
            config.clients = clients;
        })
        .await
    }

    /// Provisions `count` sites through the orchestrator at `orchestrator_url` (products,
    /// an admin, `insight`), then gives each data in every service: a document owned by
    /// the app and one not, and an attachment.
    pub async fn seed(&self, orchestrator_url: &str, prefix: &str, count: usize) -> Vec<Seeded> {
        use micros_proto::{
            media::v1::{Chunk, UploadMetadata, UploadRequest, upload_request::Part},
            productdata::v1::{CreateDocumentRequest, Page, create_document_request},
        };
        use sha2::Digest;
        let mut orchestrator = orchestrator_client(orchestrator_url, "provisioner", &[Role::Admin]);
        let mut media = micros_proto::media::v1::media_service_client::MediaServiceClient::new(
            self.channel("media", "admin", &[Role::Admin]),
        );
        let mut documents =
            micros_proto::productdata::v1::product_data_service_client::ProductDataServiceClient::new(
                self.channel("product-data", "admin", &[Role::Admin]),
            );
        let mut seeded = Vec::with_capacity(count);
        for index in 0..count {
            let provisioned = orchestrator
                .provision_site(provision_request(
                    format!("{prefix} {index}"),
                    format!("{prefix}-{index}.example.net"),
                    "eu-west",
                    &["insight"],
                ))
                .await
                .unwrap()
                .into_inner();
            let site_id = provisioned.site_id;
            let app_installation_id = provisioned.app_installation_ids[0].clone();
            for app in [app_installation_id.clone(), String::new()] {
                documents
                    .create_document(CreateDocumentRequest {
                        site_id: site_id.clone(),
                        document_id: String::new(),
                        app_installation_id: app,
                        content: Some(create_document_request::Content::Page(Page {
                            title: format!("{prefix} {index}"),
                            body: "kept".to_owned(),
                        })),
                    })
                    .await
                    .unwrap();
            }
            let data = format!("attachment of {prefix} {index}").into_bytes();
            media
                .upload(tokio_stream::iter(vec![
                    UploadRequest {
                        part: Some(Part::Metadata(UploadMetadata {
                            site_id: site_id.clone(),
                            file_name: "notes.txt".to_owned(),
                            content_type: "text/plain".to_owned(),
                            size_bytes: data.len() as i64,
                            sha256: format!("{:x}", sha2::Sha256::digest(&data)),
                            ..Default::default()
                        })),
                    },
                    UploadRequest {
                        part: Some(Part::Chunk(Chunk {
                            data: data.clone(),
                            crc32c: Some(crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(&data)),
                        })),
                    },
                ]))
                .await
                .unwrap();
            seeded.push(Seeded {
                site_id,
                app_installation_id,
            });
        }
        seeded
    }

    /// How every service describes each of `sites`.
    pub async fn snapshot(&self, sites: &[String]) -> Snapshot {
        let targets: Vec<Target> = sites
            .iter()
            .map(|site| Target::Site(micros_platform::ids::SiteId::parse(site).unwrap()))
            .collect();
        let described = self.describe(&targets).await;
        let mut snapshot: Snapshot = BTreeMap::new();
        for (service, outcomes) in described {
            for (site, outcome) in sites.iter().zip(outcomes) {
                snapshot
                    .entry(site.clone())
                    .or_default()
                    .insert(service.clone(), (outcome.state(), outcome.fingerprint));
            }
        }
        snapshot
    }
}

/// A jira site as the suite tests provision it: `name` on `url`, 5 seats, `apps`
/// installed, its admin `admin@<url's first label>.example`.
pub fn provision_request(
    name: String,
    url: String,
    region: &str,
    apps: &[&str],
) -> pb::ProvisionSiteRequest {
    let host = url.split('.').next().unwrap_or_default().to_owned();
    pb::ProvisionSiteRequest {
        name,
        url,
        region: region.to_owned(),
        products: vec!["jira".to_owned()],
        admin: Some(pb::Contact {
            email: format!("admin@{host}.example"),
            name: String::new(),
            kind: "admin".to_owned(),
        }),
        contacts: Vec::new(),
        apps: apps.iter().map(|app| (*app).to_owned()).collect(),
        site_id: String::new(),
        seats: 5,
    }
}

/// The one state every service agrees `site` is in, or what disagrees.
pub fn agreed_state(snapshot: &Snapshot, site: &str) -> Result<TenantState, String> {
    let views = &snapshot[site];
    let states: std::collections::BTreeSet<i32> =
        views.values().map(|(state, _)| *state as i32).collect();
    if states.len() == 1 {
        Ok(views.values().next().unwrap().0)
    } else {
        Err(format!(
            "{site} is in mixed states: {:?}",
            views
                .iter()
                .map(|(service, (state, _))| format!("{service}={}", state.as_str_name()))
                .collect::<Vec<_>>()
        ))
    }
}

/// Checks that every site is in one state in all services, and that the data of every
/// site not purged is exactly what `before` recorded (fingerprints per service).
pub fn check_sites(before: &Snapshot, after: &Snapshot) -> Result<usize, String> {
    let mut checked = 0;
    for (site, views) in after {
        let state = agreed_state(after, site)?;
        checked += 1;
        if state == TenantState::Purged {
            continue;
        }
        for (service, (_, print)) in views {
            let recorded = &before[site][service].1;
            if print != recorded {
                return Err(format!(
                    "{site} in {service} has fingerprint {print}, not {recorded} as before: data changed"
                ));
            }
            checked += 1;
        }
    }
    Ok(checked)
}

impl Suite {
    /// The lifecycle audit of `operation_id` in `service` (every database of it).
    pub async fn audit(&self, service: &str, operation_id: &str) -> Vec<testing::AuditEntry> {
        match service {
            "catalog" => self.catalog.audit(operation_id).await,
            "identity" => self.identity.audit(operation_id).await,
            "license" => self.license.audit(operation_id).await,
            "media" => self.media.audit(operation_id).await,
            "product-data" => self.product_data.audit(operation_id).await,
            other => panic!("no service {other}"),
        }
    }

    /// Checks that every service applied each call of `action` (by call key) to each
    /// target of `operation_id` at most once: a call repeated after a crash or a cut
    /// answer was answered from the service's record, not applied again. The number of (service, target) checked.
    pub async fn check_applied_once(
        &self,
        operation_id: &str,
        action: &str,
    ) -> Result<usize, String> {
        let mut checked = 0;
        for service in SERVICES {
            let mut seen = std::collections::BTreeSet::new();
            for entry in self.audit(service, operation_id).await {
                if entry.action != action || entry.outcome != "applied" {
                    continue;
                }
                for target in entry.targets {
                    if !seen.insert((target.clone(), entry.call_key.clone())) {
                        return Err(format!(
                            "{service} applied {action} of {operation_id} to {target} twice"
                        ));
                    }
                    checked += 1;
                }
            }
        }
        Ok(checked)
    }
}

impl Suite {
    /// Alters a (soft-deleted) site's attachment metadata behind media's back, as a
    /// broken restore path would, and drops its cached fingerprint so media sees it.
    pub async fn corrupt_media(&self, site_id: &str) {
        sqlx::any::install_default_drivers();
        let url = micros_platform::store::database_url(&self.media.config.store, "media").unwrap();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        let changed =
            sqlx::query("UPDATE attachments SET file_name = 'altered.txt' WHERE site_id = $1")
                .bind(site_id.to_owned())
                .execute(&pool)
                .await
                .unwrap()
                .rows_affected();
        assert!(changed > 0, "{site_id} has attachments in media");
        sqlx::query("UPDATE tenant_digests SET version = version + 1 WHERE site_id = $1")
            .bind(site_id.to_owned())
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
}
