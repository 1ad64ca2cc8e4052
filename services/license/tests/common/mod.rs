//! What the test files need: a license service asking a catalog, on a backend, and
//! requests.

#![allow(dead_code)] // Each test file uses its own part of these helpers.

use micros_catalog::{Catalog, CatalogSettings};
use micros_license::{License, LicenseSettings};
use micros_platform::{
    auth::Role,
    client::ServiceChannel,
    ids::SiteId,
    store::Backend,
    testing::{self, TestService},
};
use micros_proto::license::v1::{
    CreateLicenseRequest, GetLicenseRequest, ListLicensesRequest,
    license_service_client::LicenseServiceClient,
};

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
    let service = testing::spawn_with_catalog::<License, Catalog>(
        backend,
        settings,
        CatalogSettings {
            product_data_shards: 4,
            ..CatalogSettings::default()
        },
    )
    .await;
    let client = LicenseServiceClient::new(service.channel(&[Role::Admin]));
    (service, client)
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
