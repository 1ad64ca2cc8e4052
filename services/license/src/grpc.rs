//! `micros.license.v1.LicenseService`: proto ↔ domain, nothing else.

use micros_platform::{
    auth::{Role, require_role},
    error::{InvalidArgument, parse_id},
    ids::{LicenseId, SiteId},
    paging,
    store::timestamp,
};
use micros_proto::license::v1::{self as pb, license_service_server::LicenseService};
use tonic::{Request, Response, Status};

use crate::{
    domain::{self, License, LicenseChange, LicenseState, NewLicense},
    error::LicenseError,
    settings::LicenseSettings,
    store::LicenseStore,
};

pub struct LicenseApi {
    licenses: LicenseStore,
    settings: LicenseSettings,
}

impl LicenseApi {
    pub fn new(licenses: LicenseStore, settings: LicenseSettings) -> Self {
        Self { licenses, settings }
    }

    fn seats(&self, requested: i32) -> Result<u32, LicenseError> {
        Ok(domain::seats(requested, self.settings.max_seats)?)
    }
}

#[tonic::async_trait]
impl LicenseService for LicenseApi {
    async fn create_license(
        &self,
        request: Request<pb::CreateLicenseRequest>,
    ) -> Result<Response<pb::License>, Status> {
        require_role(&request, Role::Admin)?;
        let request = request.into_inner();
        let site_id: SiteId = parse_id("site_id", &request.site_id)?;
        let new = NewLicense {
            license_id: if request.license_id.is_empty() {
                LicenseId::new()
            } else {
                parse_id("license_id", &request.license_id)?
            },
            product: domain::product(&request.product, &self.settings.products)?,
            seats: self.seats(request.seats)?,
        };
        let tenant = self.licenses.register(site_id).await?;
        let license = self.licenses.create(&tenant, &new).await?;
        tracing::info!(
            %site_id,
            license_id = %license.license_id,
            product = license.product,
            seats = license.seats,
            "license created"
        );
        Ok(Response::new(license_to_proto(license)))
    }

    async fn get_license(
        &self,
        request: Request<pb::GetLicenseRequest>,
    ) -> Result<Response<pb::License>, Status> {
        require_role(&request, Role::Viewer)?;
        let request = request.into_inner();
        let site_id: SiteId = parse_id("site_id", &request.site_id)?;
        let license_id: LicenseId = parse_id("license_id", &request.license_id)?;
        let tenant = self.licenses.live(site_id).await?;
        let license = self.licenses.get(&tenant, license_id).await?;
        Ok(Response::new(license_to_proto(license)))
    }

    async fn list_licenses(
        &self,
        request: Request<pb::ListLicensesRequest>,
    ) -> Result<Response<pb::ListLicensesResponse>, Status> {
        require_role(&request, Role::Viewer)?;
        let request = request.into_inner();
        let site_id: SiteId = parse_id("site_id", &request.site_id)?;
        let page = paging::Page::of(request.page_size, &request.page_token)?;
        let Some(tenant) = self.licenses.reader(site_id).await? else {
            return Ok(Response::new(pb::ListLicensesResponse::default()));
        };
        let licenses = self
            .licenses
            .list(&tenant, page.after.as_deref(), page.fetch())
            .await?;
        let (licenses, next_page_token) =
            page.cut(licenses, |license| license.license_id.to_string());
        Ok(Response::new(pb::ListLicensesResponse {
            licenses: licenses.into_iter().map(license_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn update_license(
        &self,
        request: Request<pb::UpdateLicenseRequest>,
    ) -> Result<Response<pb::License>, Status> {
        require_role(&request, Role::Admin)?;
        let request = request.into_inner();
        let site_id: SiteId = parse_id("site_id", &request.site_id)?;
        let license_id: LicenseId = parse_id("license_id", &request.license_id)?;
        let change = LicenseChange {
            seats: request.seats.map(|seats| self.seats(seats)).transpose()?,
            state: request.state.map(state_from_proto).transpose()?,
        };
        if change.seats.is_none() && change.state.is_none() {
            return Err(LicenseError::from(InvalidArgument::missing("seats | state")).into());
        }
        let tenant = self.licenses.live(site_id).await?;
        let license = self.licenses.update(&tenant, license_id, change).await?;
        tracing::info!(
            %site_id,
            %license_id,
            seats = license.seats,
            state = license.state.as_str(),
            "license updated"
        );
        Ok(Response::new(license_to_proto(license)))
    }
}

fn state_from_proto(value: i32) -> Result<LicenseState, LicenseError> {
    match pb::LicenseState::try_from(value) {
        Ok(pb::LicenseState::Active) => Ok(LicenseState::Active),
        Ok(pb::LicenseState::Suspended) => Ok(LicenseState::Suspended),
        Ok(pb::LicenseState::Cancelled) => Ok(LicenseState::Cancelled),
        Ok(pb::LicenseState::Unspecified) | Err(_) => Err(InvalidArgument::field(
            "state",
            "INVALID_LICENSE_STATE",
            value.to_string(),
            "must be LICENSE_STATE_ACTIVE, LICENSE_STATE_SUSPENDED or LICENSE_STATE_CANCELLED",
        )
        .into()),
    }
}

fn license_to_proto(license: License) -> pb::License {
    pb::License {
        license_id: license.license_id.to_string(),
        site_id: license.site_id.to_string(),
        product: license.product,
        seats: i32::try_from(license.seats).unwrap_or(i32::MAX),
        state: match license.state {
            LicenseState::Active => pb::LicenseState::Active,
            LicenseState::Suspended => pb::LicenseState::Suspended,
            LicenseState::Cancelled => pb::LicenseState::Cancelled,
        } as i32,
        create_time: Some(timestamp(license.create_time)),
        update_time: Some(timestamp(license.update_time)),
    }
}
