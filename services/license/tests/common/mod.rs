//! What the test files need: a license service asking a catalog, on a backend,
//! requests, a refusal check.

#![allow(dead_code)] // Each test file uses its own part of these helpers.

use micros_catalog::{Catalog, CatalogSettings};
use micros_license::{License, LicenseSettings};
use micros_platform::{
    auth::Role,
    client::ServiceChannel,
    clock::TestClock,
    ids::SiteId,
    store::Backend,
    testing::{self, TestService},
};
use micros_proto::license::v1::{
    CreateLicenseRequest, GetLicenseRequest, ListLicensesRequest,
    license_service_client::LicenseServiceClient,
};
use tonic::{Code, Status};
use tonic_types::{ErrorInfo, StatusExt};

pub type Client = LicenseServiceClient<ServiceChannel>;

/// The service with default settings, asking a catalog of its own (which lives as long
/// as it; sites come from [`TestService::catalog_site`]), and a client holding an admin
/// token.
pub async fn spawn(backend: Backend) -> (TestService<License>, Client) {
    spawn_with(backend, LicenseSettings::default()).await
}

/// [`spawn`] with `settings`.
pub async fn spawn_with(
    backend: Backend,
    settings: LicenseSettings,
) -> (TestService<License>, Client) {
    let catalog = testing::spawn::<Catalog>(
        backend,
        CatalogSettings {
            product_data_shards: 4,
            ..CatalogSettings::default()
        },
    )
    .await;
    let mut service = spawn_asking(backend, settings, catalog.server.url()).await;
    service.keep(catalog);
    let client = LicenseServiceClient::new(service.channel(&[Role::Admin]));
    (service, client)
}

/// The service asking the catalog at `catalog_url` (which may be down).
pub async fn spawn_asking(
    backend: Backend,
    settings: LicenseSettings,
    catalog_url: String,
) -> TestService<License> {
    testing::spawn_with::<License>(backend, settings, TestClock::new(), |config| {
        config.clients = testing::catalog_clients(catalog_url)
    })
    .await
}

pub fn new_license(site_id: SiteId, product: &str, seats: i32) -> CreateLicenseRequest {
    CreateLicenseRequest {
        site_id: site_id.to_string(),
        product: product.to_owned(),
        seats,
        license_id: String::new(),
    }
}

/// A read of one license of the site.
pub fn get(site_id: SiteId, license_id: &str) -> GetLicenseRequest {
    GetLicenseRequest {
        site_id: site_id.to_string(),
        license_id: license_id.to_owned(),
    }
}

/// The first page of the site's licenses.
pub fn list(site_id: SiteId) -> ListLicensesRequest {
    ListLicensesRequest {
        site_id: site_id.to_string(),
        ..ListLicensesRequest::default()
    }
}

/// Asserts `status` has `code` and an ErrorInfo with `reason`, and returns the ErrorInfo.
#[track_caller]
pub fn refused(status: &Status, code: Code, reason: &str) -> ErrorInfo {
    assert_eq!(status.code(), code, "{status:?}");
    let info = status
        .get_details_error_info()
        .expect("an ErrorInfo detail");
    assert_eq!(info.reason, reason, "{status:?}");
    info
}
