//! What the orchestrator asks the catalog (what inputs are, which sites exist), with the
//! catalog's failures named as the catalog's, written once for the planner, holds,
//! reports, the reaper, drills and site summaries.

use std::collections::HashMap;

use micros_platform::{
    error::{InvalidArgument, status_with_info},
    input,
};
use micros_proto::catalog::v1::{
    GetSiteRequest, InputKind, ListSitesRequest, ResolveRequest, ResolvedInput, Site,
};

use crate::{
    error::OrchestratorError,
    fleet::{CATALOG, Fleet},
};

/// Sites listed per page; the catalog's own bound.
const PAGE_SIZE: i32 = 1000;

fn downstream(status: tonic::Status) -> OrchestratorError {
    OrchestratorError::Downstream {
        service: CATALOG.to_owned(),
        status,
    }
}

impl Fleet {
    /// What the catalog says each of `inputs` is, in input order, in one call.
    pub async fn resolve(
        &self,
        inputs: &[String],
    ) -> Result<Vec<ResolvedInput>, OrchestratorError> {
        Ok(self
            .catalog()
            .resolve(ResolveRequest {
                inputs: inputs.to_vec(),
            })
            .await
            .map_err(downstream)?
            .into_inner()
            .results)
    }

    /// The site an operator named by ID or URL: refused as `NOT_A_SITE` when it names
    /// something else, and as the catalog's `SITE_NOT_FOUND` when no site answers to it.
    pub async fn resolve_site(&self, site: &str) -> Result<ResolvedInput, OrchestratorError> {
        if site.is_empty() {
            return Err(InvalidArgument::missing("site").into());
        }
        input::check("site", None, site)?;
        let resolved = self
            .resolve(&[site.to_owned()])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                OrchestratorError::Unexpected("the catalog resolved no input".to_owned())
            })?;
        if !matches!(resolved.kind(), InputKind::Site | InputKind::SiteUrl) {
            let message = match resolved.kind() {
                InputKind::AppInstallation => {
                    "is an app installation, not a site ID or site URL".to_owned()
                }
                _ => format!("is not a site ID or site URL: {}", resolved.problem),
            };
            return Err(InvalidArgument::field("site", "NOT_A_SITE", site, message).into());
        }
        if !resolved.found {
            return Err(downstream(status_with_info(
                tonic::Code::NotFound,
                resolved.problem,
                "SITE_NOT_FOUND",
                "micros.catalog",
                HashMap::from([("site".to_owned(), site.to_owned())]),
            )));
        }
        Ok(resolved)
    }

    /// Every site in the catalog, page by page; deleted ones too when `show_deleted`.
    pub async fn sites(&self, show_deleted: bool) -> Result<Vec<Site>, OrchestratorError> {
        let mut catalog = self.catalog();
        let mut sites = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = catalog
                .list_sites(ListSitesRequest {
                    page_size: PAGE_SIZE,
                    page_token,
                    show_deleted,
                })
                .await
                .map_err(downstream)?
                .into_inner();
            sites.extend(page.sites);
            if page.next_page_token.is_empty() {
                return Ok(sites);
            }
            page_token = page.next_page_token;
        }
    }

    /// The catalog's record of `site_id`, deleted or not.
    pub async fn site_record(&self, site_id: &str) -> Result<Site, OrchestratorError> {
        Ok(self
            .catalog()
            .get_site(GetSiteRequest {
                site_id: site_id.to_owned(),
                show_deleted: true,
            })
            .await
            .map_err(downstream)?
            .into_inner())
    }
}
