//! `micros.catalog.v1.CatalogService`: proto ↔ domain, nothing else.

use micros_platform::{
    auth::{Role, require_role},
    error::parse_id,
    ids::{AppInstallationId, SiteId},
    input,
    lifecycle::{LifecycleError, LiveTenant, TenantState},
    paging,
    store::timestamp,
};
use micros_proto::catalog::v1::{self as pb, catalog_service_server::CatalogService};
use tonic::{Request, Response, Status};

use crate::{
    domain::{
        self, AppInstallation, NewSite, ProductAction, ProductState, Site, SiteProduct, SiteUrl,
    },
    error::CatalogError,
    resolve::{self, site_state},
    settings::CatalogSettings,
    store::{CatalogStore, Placement},
};

pub struct CatalogApi {
    store: CatalogStore,
    settings: CatalogSettings,
}

impl CatalogApi {
    pub fn new(store: CatalogStore, settings: CatalogSettings) -> Self {
        Self { store, settings }
    }

    async fn tenant(&self, field: &str, site_id: &str) -> Result<LiveTenant, CatalogError> {
        let site_id: SiteId = parse_id(field, site_id)?;
        Ok(self.store.lifecycle().live(site_id).await?)
    }

    /// A site for a read: active, or any state when an operator asks to see deleted ones.
    fn visible<T>(
        request: &Request<T>,
        site: Site,
        show_deleted: bool,
    ) -> Result<Site, CatalogError> {
        if site.state == TenantState::Active {
            return Ok(site);
        }
        if show_deleted {
            require_role(request, Role::Operator)?;
            return Ok(site);
        }
        Err(micros_platform::lifecycle::LifecycleError::SiteDeleted {
            site_id: site.site_id,
        }
        .into())
    }

    async fn change_product(
        &self,
        request: Request<pb::ProductRequest>,
        action: ProductAction,
    ) -> Result<Response<pb::SiteProduct>, Status> {
        require_role(&request, Role::Admin)?;
        let request = request.into_inner();
        let product = domain::key_in(
            "product",
            &request.product,
            &self.settings.products,
            "UNKNOWN_PRODUCT",
        )?;
        let tenant = self.tenant("site_id", &request.site_id).await?;
        let changed = self.store.change_product(&tenant, &product, action).await?;
        tracing::info!(site_id = %tenant.site_id(), product, action = action.as_str(), "product changed");
        Ok(Response::new(product_to_proto(changed)))
    }
}

#[tonic::async_trait]
impl CatalogService for CatalogApi {
    async fn create_site(
        &self,
        request: Request<pb::CreateSiteRequest>,
    ) -> Result<Response<pb::Site>, Status> {
        require_role(&request, Role::Admin)?;
        let request = request.into_inner();
        let site_id = if request.site_id.is_empty() {
            SiteId::new()
        } else {
            parse_id("site_id", &request.site_id)?
        };
        let new = NewSite {
            site_id,
            name: domain::site_name(&request.name)?,
            url: SiteUrl::parse("url", &request.url)?,
            region: domain::key_in(
                "region",
                &request.region,
                &self.settings.regions,
                "UNKNOWN_REGION",
            )?,
            shard: domain::shard_of(site_id, self.settings.product_data_shards),
        };
        let site = self.store.create_site(&new).await?;
        tracing::info!(site_id = %site.site_id, url = site.url.as_str(), "site created");
        Ok(Response::new(site_to_proto(site)))
    }

    async fn get_site(
        &self,
        request: Request<pb::GetSiteRequest>,
    ) -> Result<Response<pb::Site>, Status> {
        require_role(&request, Role::Viewer)?;
        let site_id: SiteId = parse_id("site_id", &request.get_ref().site_id)?;
        let site = self
            .store
            .site_any_state(site_id)
            .await?
            .ok_or(CatalogError::SiteNotFound { site_id })?;
        let show_deleted = request.get_ref().show_deleted;
        Ok(Response::new(site_to_proto(Self::visible(
            &request,
            site,
            show_deleted,
        )?)))
    }

    async fn resolve_site_url(
        &self,
        request: Request<pb::ResolveSiteUrlRequest>,
    ) -> Result<Response<pb::Site>, Status> {
        require_role(&request, Role::Viewer)?;
        let url = SiteUrl::parse("url", &request.get_ref().url)?;
        let site = self.store.site_by_url(url.as_str()).await?.ok_or_else(|| {
            CatalogError::UrlNotFound {
                url: url.as_str().to_owned(),
            }
        })?;
        let show_deleted = request.get_ref().show_deleted;
        Ok(Response::new(site_to_proto(Self::visible(
            &request,
            site,
            show_deleted,
        )?)))
    }

    async fn list_sites(
        &self,
        request: Request<pb::ListSitesRequest>,
    ) -> Result<Response<pb::ListSitesResponse>, Status> {
        require_role(&request, Role::Viewer)?;
        if request.get_ref().show_deleted {
            require_role(&request, Role::Operator)?;
        }
        let request = request.into_inner();
        let page = paging::Page::of(request.page_size, &request.page_token)?;
        let sites = self
            .store
            .list_sites(page.after.as_deref(), page.fetch(), request.show_deleted)
            .await?;
        let (sites, next_page_token) = page.cut(sites, |site| site.site_id.to_string());
        Ok(Response::new(pb::ListSitesResponse {
            sites: sites.into_iter().map(site_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn resolve(
        &self,
        request: Request<pb::ResolveRequest>,
    ) -> Result<Response<pb::ResolveResponse>, Status> {
        require_role(&request, Role::Operator)?;
        let inputs = request.into_inner().inputs;
        input::check_list("inputs", &inputs)?;
        Ok(Response::new(pb::ResolveResponse {
            results: resolve::resolve(&self.store, &inputs).await?,
        }))
    }

    async fn activate_product(
        &self,
        request: Request<pb::ProductRequest>,
    ) -> Result<Response<pb::SiteProduct>, Status> {
        self.change_product(request, ProductAction::Activate).await
    }

    async fn deactivate_product(
        &self,
        request: Request<pb::ProductRequest>,
    ) -> Result<Response<pb::SiteProduct>, Status> {
        self.change_product(request, ProductAction::Deactivate)
            .await
    }

    async fn suspend_product(
        &self,
        request: Request<pb::ProductRequest>,
    ) -> Result<Response<pb::SiteProduct>, Status> {
        self.change_product(request, ProductAction::Suspend).await
    }

    async fn unsuspend_product(
        &self,
        request: Request<pb::ProductRequest>,
    ) -> Result<Response<pb::SiteProduct>, Status> {
        self.change_product(request, ProductAction::Unsuspend).await
    }

    async fn list_products(
        &self,
        request: Request<pb::ListProductsRequest>,
    ) -> Result<Response<pb::ListProductsResponse>, Status> {
        require_role(&request, Role::Viewer)?;
        let tenant = self.tenant("site_id", &request.get_ref().site_id).await?;
        let products = self.store.products(&tenant).await?;
        Ok(Response::new(pb::ListProductsResponse {
            products: products.into_iter().map(product_to_proto).collect(),
        }))
    }

    async fn install_app(
        &self,
        request: Request<pb::InstallAppRequest>,
    ) -> Result<Response<pb::AppInstallation>, Status> {
        require_role(&request, Role::Admin)?;
        let request = request.into_inner();
        let app_key = domain::app_key(&request.app_key)?;
        let app_installation_id = if request.app_installation_id.is_empty() {
            AppInstallationId::new()
        } else {
            parse_id("app_installation_id", &request.app_installation_id)?
        };
        let tenant = self.tenant("site_id", &request.site_id).await?;
        let installed = self
            .store
            .install_app(&tenant, app_installation_id, &app_key)
            .await?;
        Ok(Response::new(app_to_proto(installed)))
    }

    async fn uninstall_app(
        &self,
        request: Request<pb::UninstallAppRequest>,
    ) -> Result<Response<pb::UninstallAppResponse>, Status> {
        require_role(&request, Role::Admin)?;
        let request = request.into_inner();
        let app_installation_id: AppInstallationId =
            parse_id("app_installation_id", &request.app_installation_id)?;
        let tenant = self.tenant("site_id", &request.site_id).await?;
        let operation_id = self
            .store
            .uninstall_app(&tenant, app_installation_id)
            .await?;
        tracing::info!(site_id = %tenant.site_id(), %app_installation_id, %operation_id, "app uninstalled");
        Ok(Response::new(pb::UninstallAppResponse {
            operation_id: operation_id.to_string(),
        }))
    }

    async fn list_app_installations(
        &self,
        request: Request<pb::ListAppInstallationsRequest>,
    ) -> Result<Response<pb::ListAppInstallationsResponse>, Status> {
        require_role(&request, Role::Viewer)?;
        let request = request.into_inner();
        let tenant = self.tenant("site_id", &request.site_id).await?;
        let filter = (!request.app_key.is_empty()).then_some(request.app_key.as_str());
        let apps = self.store.app_installations(&tenant, filter).await?;
        Ok(Response::new(pb::ListAppInstallationsResponse {
            app_installations: apps.into_iter().map(app_to_proto).collect(),
        }))
    }

    /// A deleted site is NOT_FOUND `SITE_DELETED`, as in GetSite, unless `show_deleted`
    /// is set: product-data finds a deleted site's shard that way to restore or purge
    /// its rows, and a shard index is all it reveals, so a viewer may ask. Scratch
    /// copies (restore drills) are answered: the drill needs their placement.
    async fn get_placement(
        &self,
        request: Request<pb::GetPlacementRequest>,
    ) -> Result<Response<pb::Placement>, Status> {
        require_role(&request, Role::Viewer)?;
        let request = request.into_inner();
        let site_id: SiteId = parse_id("site_id", &request.site_id)?;
        let placed = self.store.placed_sites(&[site_id]).await?;
        let shard = match placed
            .get(&site_id)
            .map(|site| site.placement(request.show_deleted))
        {
            None => return Err(CatalogError::SiteNotFound { site_id }.into()),
            Some(Placement::Purged) => {
                return Err(CatalogError::from(LifecycleError::Purged { site_id }).into());
            }
            Some(Placement::Deleted) => {
                return Err(CatalogError::from(LifecycleError::SiteDeleted { site_id }).into());
            }
            Some(Placement::Placed(shard)) => shard,
        };
        Ok(Response::new(pb::Placement {
            site_id: site_id.to_string(),
            shard: i32::try_from(shard).unwrap_or_default(),
            shard_count: i32::from(self.settings.product_data_shards),
        }))
    }

    /// GetPlacement's answers for many sites with one statement; what GetPlacement
    /// refuses is a per-site status here, so one unknown site does not fail the rest.
    async fn get_placements(
        &self,
        request: Request<pb::GetPlacementsRequest>,
    ) -> Result<Response<pb::GetPlacementsResponse>, Status> {
        require_role(&request, Role::Viewer)?;
        let request = request.into_inner();
        input::check_list("site_ids", &request.site_ids)?;
        let site_ids: Vec<SiteId> = request
            .site_ids
            .iter()
            .enumerate()
            .map(|(index, site_id)| parse_id(&format!("site_ids[{index}]"), site_id))
            .collect::<Result<_, _>>()?;
        let placed = self.store.placed_sites(&site_ids).await?;
        let placements = site_ids
            .iter()
            .map(|site_id| {
                let (status, shard) = match placed
                    .get(site_id)
                    .map(|site| site.placement(request.show_deleted))
                {
                    None => (pb::PlacementStatus::NotFound, 0),
                    Some(Placement::Deleted) => (pb::PlacementStatus::Deleted, 0),
                    Some(Placement::Purged) => (pb::PlacementStatus::Purged, 0),
                    Some(Placement::Placed(shard)) => (
                        pb::PlacementStatus::Placed,
                        i32::try_from(shard).unwrap_or_default(),
                    ),
                };
                pb::SitePlacement {
                    site_id: site_id.to_string(),
                    status: status as i32,
                    shard,
                }
            })
            .collect();
        Ok(Response::new(pb::GetPlacementsResponse {
            placements,
            shard_count: i32::from(self.settings.product_data_shards),
        }))
    }
}

fn site_to_proto(site: Site) -> pb::Site {
    pb::Site {
        site_id: site.site_id.to_string(),
        name: site.name,
        url: site.url.as_str().to_owned(),
        region: site.region,
        state: site_state(site.state) as i32,
        create_time: Some(timestamp(site.create_time)),
        delete_time: site.delete_time.map(timestamp),
        expire_time: site.expire_time.map(timestamp),
        shard: i32::try_from(site.shard).unwrap_or_default(),
    }
}

fn product_to_proto(product: SiteProduct) -> pb::SiteProduct {
    pb::SiteProduct {
        site_id: product.site_id.to_string(),
        product: product.product,
        state: match product.state {
            ProductState::Active => pb::ProductState::Active,
            ProductState::Suspended => pb::ProductState::Suspended,
            ProductState::Inactive => pb::ProductState::Inactive,
        } as i32,
        update_time: Some(timestamp(product.update_time)),
    }
}

fn app_to_proto(app: AppInstallation) -> pb::AppInstallation {
    pb::AppInstallation {
        app_installation_id: app.app_installation_id.to_string(),
        site_id: app.site_id.to_string(),
        app_key: app.app_key,
        install_time: Some(timestamp(app.install_time)),
    }
}
