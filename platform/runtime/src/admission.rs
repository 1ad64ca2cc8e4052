//! Catalog admission: a data-owning service takes a site's first data only for a site
//! the catalog knows and has active, and answers a read for such a site that holds
//! nothing here yet with nothing (not `SITE_NOT_FOUND`).
//!
//! The catalog is the source of truth for sites; data stored for a site it does not
//! know is outside every lifecycle flow it drives (no deletion, restore or purge would
//! ever reach it). So the first write for a site this database has no registry row for
//! asks the catalog's `GetSite` first: active → the site is registered and the write
//! goes on; unknown → NOT_FOUND `SITE_NOT_FOUND`; deleted or purged → the catalog's
//! reason; the catalog unreachable → UNAVAILABLE `CATALOG_UNAVAILABLE` (never assumed).
//! Once the registry row exists, the service's own registry answers and the catalog is
//! not asked again.
//!
//! A service declares `"catalog"` in its descriptor's `depends_on`, connects one
//! [`SiteAdmission`] from its service clients and goes through [`SiteAdmission::admit`]
//! where it used [`Lifecycle::register`], and [`SiteAdmission::read`] where a read may
//! meet a site with no data here.

use micros_proto::catalog::v1::{GetSiteRequest, catalog_service_client::CatalogServiceClient};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::{
    client::{ClientError, Clients, ServiceChannel, retry_idempotent},
    ids::SiteId,
    input,
    lifecycle::{Lifecycle, LifecycleError, LiveTenant, Refusal, TenantState},
};

/// Asks the catalog whether a site may receive its first data here.
#[derive(Clone)]
pub struct SiteAdmission {
    catalog: CatalogServiceClient<ServiceChannel>,
}

impl std::fmt::Debug for SiteAdmission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteAdmission").finish_non_exhaustive()
    }
}

impl SiteAdmission {
    /// A lazily connecting client for `clients.catalog`; refused at start-up when it is
    /// not configured, naming the setting.
    pub fn connect(clients: &Clients) -> Result<Self, ClientError> {
        Ok(Self {
            catalog: CatalogServiceClient::new(clients.channel("catalog")?),
        })
    }

    /// The live handle of `site_id` for a write, registering the site in `lifecycle`
    /// once the catalog confirms it is active when this database has never held it.
    pub async fn admit(
        &self,
        lifecycle: &Lifecycle,
        site_id: SiteId,
    ) -> Result<LiveTenant, LifecycleError> {
        if lifecycle.state(site_id).await? == TenantState::Absent {
            self.confirm_active(site_id).await?;
        }
        lifecycle.register(site_id).await
    }

    /// The live handle of `site_id` for a read, or `None` when this database holds
    /// nothing for it and the catalog has it active: the read answers empty.
    pub async fn read(
        &self,
        lifecycle: &Lifecycle,
        site_id: SiteId,
    ) -> Result<Option<LiveTenant>, LifecycleError> {
        match lifecycle.live(site_id).await {
            Ok(tenant) => Ok(Some(tenant)),
            Err(LifecycleError::SiteNotFound { .. })
                if lifecycle.state(site_id).await? == TenantState::Absent =>
            {
                self.confirm_active(site_id).await?;
                Ok(None)
            }
            Err(other) => Err(other),
        }
    }

    /// Ok when the catalog answers that the site is active; its refusal otherwise.
    pub async fn confirm_active(&self, site_id: SiteId) -> Result<(), LifecycleError> {
        let answer = retry_idempotent(|| {
            let mut catalog = self.catalog.clone();
            let request = GetSiteRequest {
                site_id: site_id.to_string(),
                show_deleted: false,
            };
            async move { catalog.get_site(request).await }
        })
        .await;
        match answer {
            Ok(site) if site.get_ref().state == ACTIVE => Ok(()),
            Ok(_) => Err(LifecycleError::SiteDeleted { site_id }),
            Err(status) => Err(refusal(site_id, &status)),
        }
    }
}

/// `micros.catalog.v1.SiteState.SITE_STATE_ACTIVE`.
const ACTIVE: i32 = micros_proto::catalog::v1::SiteState::Active as i32;

/// The catalog's refusal as this service answers it: its site reasons passed through,
/// anything else (unreachable, or refusing this service) as UNAVAILABLE.
fn refusal(site_id: SiteId, status: &Status) -> LifecycleError {
    let reason = status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default();
    match (status.code(), reason.as_str()) {
        (Code::NotFound, "SITE_DELETED") => LifecycleError::SiteDeleted { site_id },
        (Code::NotFound, _) => LifecycleError::SiteNotFound { site_id },
        (Code::FailedPrecondition, "SITE_PURGED") => LifecycleError::Purged { site_id },
        (code, _) => {
            tracing::warn!(%site_id, ?code, message = status.message(), "the catalog could not confirm a site");
            LifecycleError::Refused(Refusal {
                code: Code::Unavailable,
                reason: "CATALOG_UNAVAILABLE",
                domain: "micros.platform",
                message: format!(
                    "the catalog could not confirm that site {site_id} is active ({code:?}); no data was accepted, retry later"
                ),
                metadata: vec![
                    ("site_id", site_id.to_string()),
                    ("catalog_code", format!("{code:?}")),
                    ("catalog_message", input::echo(status.message())),
                ],
            })
        }
    }
}
