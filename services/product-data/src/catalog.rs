//! What product-data asks the catalog: where a site's documents live (placement) and
//! whether an app is installed on a site. Calls present this service's identity (see
//! `micros_platform::service::service_clients`).

use micros_platform::{
    client::{ClientError, Clients, ServiceChannel, is_retryable, retry_idempotent},
    ids::{AppInstallationId, SiteId},
};
use micros_proto::catalog::v1::{
    GetPlacementsRequest, ListAppInstallationsRequest, PlacementStatus,
    catalog_service_client::CatalogServiceClient,
};
use tonic::{Code, Status};

/// Sites per `GetPlacements` call: a lifecycle call naming the incident's 883 unseen
/// sites locates them in one call, well inside the catalog's 10,000-input bound.
const PLACEMENT_BATCH: usize = 1000;

use crate::error::ProductDataError;

/// Where the catalog placed a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlacementAnswer {
    /// On `shard` of the catalog's `shard_count`.
    Placed { shard: i64, shard_count: i64 },
    /// The catalog has never had the site.
    Unknown,
    /// The catalog purged the site and no longer knows its placement.
    Purged,
}

#[derive(Clone)]
pub struct Catalog {
    client: CatalogServiceClient<ServiceChannel>,
}

impl Catalog {
    /// A lazily connecting client for `clients.catalog`; refused at start-up when it is
    /// not configured, naming the setting.
    pub fn connect(clients: &Clients) -> Result<Self, ClientError> {
        Ok(Self {
            client: CatalogServiceClient::new(clients.channel("catalog")?),
        })
    }

    /// `GetPlacements` with `show_deleted` (a deleted site's rows are restored and
    /// purged where it was placed), [`PLACEMENT_BATCH`] sites a call, each call retried
    /// while the catalog is unavailable; the answers are in the order of `sites`.
    /// Whether a site may receive data is the catalog admission's question
    /// (`micros_platform::admission`).
    pub async fn placements(
        &self,
        sites: &[SiteId],
    ) -> Result<Vec<PlacementAnswer>, ProductDataError> {
        let mut answers = Vec::with_capacity(sites.len());
        for batch in sites.chunks(PLACEMENT_BATCH) {
            let response = retry_idempotent(|| {
                let mut client = self.client.clone();
                let request = GetPlacementsRequest {
                    site_ids: batch.iter().map(ToString::to_string).collect(),
                    show_deleted: true,
                };
                async move { client.get_placements(request).await }
            })
            .await
            .map_err(|status| failure("GetPlacements", status))?
            .into_inner();
            if response.placements.len() != batch.len() {
                return Err(ProductDataError::CatalogFailed {
                    call: "GetPlacements",
                    code: Code::Internal,
                    message: format!(
                        "answered {} placements for {} sites",
                        response.placements.len(),
                        batch.len()
                    ),
                });
            }
            let shard_count = i64::from(response.shard_count);
            for placement in &response.placements {
                answers.push(match placement.status() {
                    PlacementStatus::Placed => PlacementAnswer::Placed {
                        shard: i64::from(placement.shard),
                        shard_count,
                    },
                    PlacementStatus::NotFound | PlacementStatus::Deleted => {
                        PlacementAnswer::Unknown
                    }
                    PlacementStatus::Purged => PlacementAnswer::Purged,
                    PlacementStatus::Unspecified => {
                        return Err(ProductDataError::CatalogFailed {
                            call: "GetPlacements",
                            code: Code::Internal,
                            message: format!("no placement status for {}", placement.site_id),
                        });
                    }
                });
            }
        }
        Ok(answers)
    }

    /// Whether `app_installation_id` is installed on the site (an active site in the
    /// catalog); retried while the catalog is unavailable.
    pub async fn app_installed(
        &self,
        site_id: SiteId,
        app_installation_id: AppInstallationId,
    ) -> Result<bool, ProductDataError> {
        let answer = retry_idempotent(|| {
            let mut client = self.client.clone();
            let request = ListAppInstallationsRequest {
                site_id: site_id.to_string(),
                app_key: String::new(),
            };
            async move { client.list_app_installations(request).await }
        })
        .await;
        match answer {
            Ok(apps) => {
                let wanted = app_installation_id.to_string();
                Ok(apps
                    .into_inner()
                    .app_installations
                    .iter()
                    .any(|app| app.app_installation_id == wanted))
            }
            // A site the catalog does not have, or has deleted, has no app installed.
            Err(status) if status.code() == Code::NotFound => Ok(false),
            Err(status) => Err(failure("ListAppInstallations", status)),
        }
    }
}

fn failure(call: &'static str, status: Status) -> ProductDataError {
    if is_retryable(status.code()) {
        ProductDataError::CatalogUnavailable {
            message: status.message().to_owned(),
        }
    } else {
        ProductDataError::CatalogFailed {
            call,
            code: status.code(),
            message: status.message().to_owned(),
        }
    }
}
