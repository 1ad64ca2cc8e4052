//! Provisioning and product events: short workflows whose every step is idempotent
//! (caller-chosen site ID, IDs derived from it), so a retry after any failure completes
//! the same site instead of creating another.

use micros_platform::{
    error::{InvalidArgument, parse_id},
    ids::{AppInstallationId, LicenseId, SiteId},
};
use micros_proto::{
    catalog::v1::{self as catalog, GetPlacementRequest, InstallAppRequest, ProductRequest},
    license::v1::{CreateLicenseRequest, license_service_client::LicenseServiceClient},
    orchestrator::v1 as pb,
};
use tonic::Status;

use crate::{error::OrchestratorError, fleet::Fleet, report::Contacts};

fn downstream(service: &str) -> impl Fn(Status) -> OrchestratorError + '_ {
    move |status| OrchestratorError::Downstream {
        service: service.to_owned(),
        status,
    }
}

pub async fn provision(
    fleet: &Fleet,
    request: pb::ProvisionSiteRequest,
) -> Result<pb::ProvisionSiteResponse, OrchestratorError> {
    let site_id: SiteId = if request.site_id.is_empty() {
        SiteId::new()
    } else {
        parse_id("site_id", &request.site_id)?
    };
    let admin = request
        .admin
        .clone()
        .ok_or_else(|| InvalidArgument::missing("admin"))?;
    if admin.email.trim().is_empty() {
        return Err(InvalidArgument::missing("admin.email").into());
    }
    let mut catalog_client = fleet.catalog();
    catalog_client
        .create_site(catalog::CreateSiteRequest {
            name: request.name.clone(),
            url: request.url.clone(),
            region: request.region.clone(),
            site_id: site_id.to_string(),
        })
        .await
        .map_err(downstream("catalog"))?;

    let seats = if request.seats > 0 { request.seats } else { 10 };
    let mut license_ids = Vec::new();
    for product in &request.products {
        catalog_client
            .activate_product(ProductRequest {
                site_id: site_id.to_string(),
                product: product.clone(),
            })
            .await
            .map_err(downstream("catalog"))?;
        let license_id = LicenseId::derived(site_id.uuid(), &format!("license:{product}"));
        LicenseServiceClient::new(fleet.channel("license")?)
            .create_license(CreateLicenseRequest {
                site_id: site_id.to_string(),
                product: product.clone(),
                seats,
                license_id: license_id.to_string(),
            })
            .await
            .map_err(downstream("license"))?;
        license_ids.push(license_id.to_string());
    }

    let admin_user_id = crate::identity::provision(fleet, site_id, &request, &admin).await?;

    let placement = catalog_client
        .get_placement(GetPlacementRequest {
            site_id: site_id.to_string(),
            show_deleted: false,
        })
        .await
        .map_err(downstream("catalog"))?
        .into_inner();

    let mut app_installation_ids = Vec::new();
    for app in &request.apps {
        let app_installation_id = AppInstallationId::derived(site_id.uuid(), &format!("app:{app}"));
        catalog_client
            .install_app(InstallAppRequest {
                site_id: site_id.to_string(),
                app_key: app.clone(),
                app_installation_id: app_installation_id.to_string(),
            })
            .await
            .map_err(downstream("catalog"))?;
        app_installation_ids.push(app_installation_id.to_string());
    }
    tracing::info!(%site_id, products = ?request.products, apps = ?request.apps, "site provisioned");
    Ok(pb::ProvisionSiteResponse {
        site_id: site_id.to_string(),
        admin_user_id,
        license_ids,
        app_installation_ids,
        shard: placement.shard,
    })
}

pub async fn change_product(
    fleet: &Fleet,
    request: pb::ChangeProductRequest,
) -> Result<pb::ChangeProductResponse, OrchestratorError> {
    let site_id: SiteId = parse_id("site_id", &request.site_id)?;
    let product_request = ProductRequest {
        site_id: site_id.to_string(),
        product: request.product.clone(),
    };
    let mut catalog_client = fleet.catalog();
    let event = request.event();
    let changed = match event {
        pb::ProductEvent::Activate => catalog_client.activate_product(product_request).await,
        pb::ProductEvent::Deactivate => catalog_client.deactivate_product(product_request).await,
        pb::ProductEvent::Suspend => catalog_client.suspend_product(product_request).await,
        pb::ProductEvent::Unsuspend => catalog_client.unsuspend_product(product_request).await,
        pb::ProductEvent::Unspecified => return Err(InvalidArgument::missing("event").into()),
    }
    .map_err(downstream("catalog"))?
    .into_inner();
    let enabled = changed.state() == catalog::ProductState::Active;
    crate::identity::set_product_access(fleet, site_id, &request.product, enabled).await?;
    Ok(pb::ChangeProductResponse {
        site_id: site_id.to_string(),
        product: request.product,
        state: changed
            .state()
            .as_str_name()
            .trim_start_matches("PRODUCT_STATE_")
            .to_lowercase(),
    })
}

pub async fn admin_contacts(fleet: &Fleet, sites: &[SiteId]) -> Contacts {
    crate::identity::admin_contacts(fleet, sites).await
}

pub async fn find_sites_by_contact(
    fleet: &Fleet,
    email: &str,
) -> Result<pb::FindSitesByContactResponse, OrchestratorError> {
    crate::identity::find_sites_by_contact(fleet, email).await
}
