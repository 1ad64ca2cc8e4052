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
    store::Backend,
    testing::{self, TestService, test_token},
};
use micros_product_data::{ProductData, ProductDataSettings};
use micros_proto::{
    lifecycle::v1::{
        DescribeRequest, TargetOutcome, tenant_lifecycle_client::TenantLifecycleClient,
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
        let catalog = testing::spawn_with::<Catalog>(
            backend,
            CatalogSettings::default(),
            clock.clone(),
            |_| {},
        )
        .await;
        let catalog_url = catalog.server.url();
        let identity = testing::spawn_with::<Identity>(
            backend,
            IdentitySettings::default(),
            clock.clone(),
            |_| {},
        )
        .await;
        let license = testing::spawn_with::<License>(
            backend,
            LicenseSettings::default(),
            clock.clone(),
            |_| {},
        )
        .await;
        let blob_dir = tempfile::tempdir().unwrap();
        let media_settings = MediaSettings {
            blob_dir: Some(blob_dir.path().to_owned()),
            ..MediaSettings::default()
        };
        let media =
            testing::spawn_with::<Media>(backend, media_settings, clock.clone(), |_| {}).await;
        let product_data = testing::spawn_with::<ProductData>(
            backend,
            ProductDataSettings::default(),
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
