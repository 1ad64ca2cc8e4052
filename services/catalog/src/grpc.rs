//! `micros.catalog.v1.CatalogService`: proto ↔ domain, nothing else.

use std::time::SystemTime;

use micros_platform::{
    auth::{Role, require_role},
    error::parse_id,
    ids::SiteId,
    paging,
    store::{timestamp, unix_micros},
};
use micros_proto::catalog::v1::{self as pb, catalog_service_server::CatalogService};
use tonic::{Request, Response, Status};

use crate::{
    domain::{self, NewSite, Site, SiteState, SiteUrl},
    error::CatalogError,
    settings::CatalogSettings,
    store::SiteStore,
};

pub struct CatalogApi {
    sites: SiteStore,
    settings: CatalogSettings,
}

impl CatalogApi {
    pub fn new(sites: SiteStore, settings: CatalogSettings) -> Self {
        Self { sites, settings }
    }

    fn visible(site: Site, show_deleted: bool) -> Result<Site, CatalogError> {
        if site.state == SiteState::Active || show_deleted {
            Ok(site)
        } else {
            Err(CatalogError::SiteDeleted {
                site_id: site.site_id,
            })
        }
    }
}

#[tonic::async_trait]
impl CatalogService for CatalogApi {
    async fn create_site(
        &self,
        request: Request<pb::CreateSiteRequest>,
    ) -> Result<Response<pb::Site>, Status> {
        require_role(&request, Role::Admin).map_err(CatalogError::from)?;
        let request = request.into_inner();
        let new = NewSite {
            site_id: if request.site_id.is_empty() {
                SiteId::new()
            } else {
                parse_id("site_id", &request.site_id).map_err(CatalogError::from)?
            },
            name: domain::site_name(&request.name).map_err(CatalogError::from)?,
            url: SiteUrl::parse("url", &request.url).map_err(CatalogError::from)?,
            region: domain::region(&request.region, &self.settings.regions)
                .map_err(CatalogError::from)?,
        };
        let site = self
            .sites
            .create(&new, unix_micros(SystemTime::now()))
            .await?;
        tracing::info!(site_id = %site.site_id, url = site.url.as_str(), "site created");
        Ok(Response::new(site_to_proto(site)))
    }

    async fn get_site(
        &self,
        request: Request<pb::GetSiteRequest>,
    ) -> Result<Response<pb::Site>, Status> {
        require_role(&request, Role::Viewer).map_err(CatalogError::from)?;
        let request = request.into_inner();
        let site_id: SiteId = parse_id("site_id", &request.site_id).map_err(CatalogError::from)?;
        let site = self
            .sites
            .get(&site_id.to_string())
            .await?
            .ok_or(CatalogError::SiteNotFound { site_id })?;
        Ok(Response::new(site_to_proto(Self::visible(
            site,
            request.show_deleted,
        )?)))
    }

    async fn resolve_site_url(
        &self,
        request: Request<pb::ResolveSiteUrlRequest>,
    ) -> Result<Response<pb::Site>, Status> {
        require_role(&request, Role::Viewer).map_err(CatalogError::from)?;
        let request = request.into_inner();
        let url = SiteUrl::parse("url", &request.url).map_err(CatalogError::from)?;
        let site =
            self.sites
                .by_url(url.as_str())
                .await?
                .ok_or_else(|| CatalogError::UrlNotFound {
                    url: url.as_str().to_owned(),
                })?;
        Ok(Response::new(site_to_proto(Self::visible(
            site,
            request.show_deleted,
        )?)))
    }

    async fn list_sites(
        &self,
        request: Request<pb::ListSitesRequest>,
    ) -> Result<Response<pb::ListSitesResponse>, Status> {
        require_role(&request, Role::Viewer).map_err(CatalogError::from)?;
        let request = request.into_inner();
        let page_size = paging::page_size(request.page_size).map_err(CatalogError::from)?;
        let after = paging::decode_token(&request.page_token).map_err(CatalogError::from)?;
        let mut sites = self
            .sites
            .list(after.as_deref(), page_size + 1, request.show_deleted)
            .await?;
        let next_page_token = if sites.len() > page_size {
            sites.truncate(page_size);
            sites
                .last()
                .map(|site| paging::encode_token(&site.site_id.to_string()))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListSitesResponse {
            sites: sites.into_iter().map(site_to_proto).collect(),
            next_page_token,
        }))
    }
}

fn site_to_proto(site: Site) -> pb::Site {
    pb::Site {
        site_id: site.site_id.to_string(),
        name: site.name,
        url: site.url.as_str().to_owned(),
        region: site.region,
        state: match site.state {
            SiteState::Active => pb::SiteState::Active,
            SiteState::Deleted => pb::SiteState::Deleted,
            SiteState::Purged => pb::SiteState::Purged,
        } as i32,
        create_time: Some(timestamp(site.create_time)),
        delete_time: site.delete_time.map(timestamp),
        expire_time: site.expire_time.map(timestamp),
    }
}
