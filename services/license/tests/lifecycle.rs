//! The tenant lifecycle of the license service through `micros.lifecycle.v1.TenantLifecycle`
//! over real gRPC, as the orchestrator drives it, on every configured backend: the
//! platform's lifecycle contract, on licenses.

mod common;

use common::{Client, get, list, new_license, spawn};
use micros_license::License;
use micros_platform::{
    ids::SiteId,
    testing::{self, TestService, lifecycle_contract},
};
use micros_proto::license::v1::{self as pb, LicenseState, UpdateLicenseRequest};
use tonic::Status;

/// A license service and an admin's client, as the contract sees them.
struct Licenses {
    service: TestService<License>,
    client: Client,
}

fn set_seats(site_id: SiteId, license_id: &str, seats: i32) -> UpdateLicenseRequest {
    UpdateLicenseRequest {
        site_id: site_id.to_string(),
        license_id: license_id.to_owned(),
        seats: Some(seats),
        state: None,
    }
}

impl Licenses {
    async fn create(&mut self, site_id: SiteId, product: &str, seats: i32) -> pb::License {
        self.client
            .create_license(new_license(site_id, product, seats))
            .await
            .unwrap()
            .into_inner()
    }
}

impl lifecycle_contract::Subject for Licenses {
    type Service = License;
    /// Every license of the site, as listed: IDs, seats, state and update times.
    type View = Vec<pb::License>;

    fn service(&self) -> &TestService<License> {
        &self.service
    }

    async fn site(&mut self) -> SiteId {
        self.service.catalog_site().await
    }

    /// Three jira licenses (licenses are cancelled, never deleted, by their users).
    async fn seed(&mut self, site_id: SiteId) {
        for seats in [5, 10, 15] {
            self.create(site_id, "jira", seats).await;
        }
    }

    /// More seats on one license, another cancelled, and a new one.
    async fn change(&mut self, site_id: SiteId) {
        let licenses = self.view(site_id).await;
        self.client
            .update_license(set_seats(site_id, &licenses[0].license_id, 99))
            .await
            .unwrap();
        self.client
            .update_license(UpdateLicenseRequest {
                state: Some(LicenseState::Cancelled as i32),
                ..set_seats(site_id, &licenses[1].license_id, licenses[1].seats)
            })
            .await
            .unwrap();
        self.create(site_id, "confluence", 3).await;
    }

    async fn view(&mut self, site_id: SiteId) -> Vec<pb::License> {
        self.client
            .list_licenses(list(site_id))
            .await
            .unwrap()
            .into_inner()
            .licenses
    }

    async fn refusals(&mut self, site_id: SiteId) -> Vec<Status> {
        let license_id = micros_platform::ids::LicenseId::new().to_string();
        vec![
            self.client
                .create_license(new_license(site_id, "jira", 1))
                .await
                .unwrap_err(),
            self.client
                .get_license(get(site_id, &license_id))
                .await
                .unwrap_err(),
            self.client.list_licenses(list(site_id)).await.unwrap_err(),
            self.client
                .update_license(set_seats(site_id, &license_id, 2))
                .await
                .unwrap_err(),
        ]
    }

    async fn seed_app(&mut self, _site_id: SiteId) -> Option<String> {
        None
    }
}

#[tokio::test]
async fn licenses_keep_the_lifecycle_contract() {
    for backend in testing::backends() {
        let (service, client) = spawn(backend).await;
        let mut licenses = Licenses { service, client };
        lifecycle_contract::check(&mut licenses).await;
        licenses.service.stop().await;
    }
}
