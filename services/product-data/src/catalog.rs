//! What product-data asks the catalog: where a site's documents live (placement) and
//! whether an app is installed on a site. Calls present this service's identity.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use micros_platform::{
    auth::{Authenticator, Role},
    client::{Clients, ServiceChannel, is_retryable, retry_idempotent},
    config::{AuthConfig, ClientConfig},
    ids::{AppInstallationId, SiteId},
};
use micros_proto::catalog::v1::{
    GetPlacementRequest, ListAppInstallationsRequest, catalog_service_client::CatalogServiceClient,
};
use secrecy::ExposeSecret;
use tonic::{
    Code, Request, Status,
    metadata::{Ascii, MetadataValue},
};
use tonic_types::StatusExt;

use crate::error::ProductDataError;

/// The principal of the token this service mints for itself.
const PRINCIPAL: &str = "service:product-data";
/// How long a minted token is valid; it is replaced once less than a quarter is left.
const MINTED_TOKEN_TTL: Duration = Duration::from_secs(3600);

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
    token: Arc<ServiceToken>,
}

impl Catalog {
    /// A lazily connecting client for `clients.catalog`; refused at start-up when it is
    /// not configured, naming the setting.
    pub fn connect(
        clients: &BTreeMap<String, ClientConfig>,
        auth: &AuthConfig,
    ) -> anyhow::Result<Self> {
        // The token goes on each request instead of into the channel, so that a minted
        // one can be replaced before it expires.
        let channel = Clients::new(clients.clone(), None).channel("catalog")?;
        Ok(Self {
            client: CatalogServiceClient::new(channel),
            token: Arc::new(ServiceToken::from_config(auth)?),
        })
    }

    fn request<T>(&self, message: T, authorization: &MetadataValue<Ascii>) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", authorization.clone());
        request
    }

    /// `GetPlacement`, which answers for deleted sites too; retried while the catalog is
    /// unavailable.
    pub async fn placement(&self, site_id: SiteId) -> Result<PlacementAnswer, ProductDataError> {
        let authorization = self.token.authorization()?;
        let answer = retry_idempotent(|| {
            let mut client = self.client.clone();
            let request = self.request(
                GetPlacementRequest {
                    site_id: site_id.to_string(),
                },
                &authorization,
            );
            async move { client.get_placement(request).await }
        })
        .await;
        match answer {
            Ok(placement) => {
                let placement = placement.into_inner();
                Ok(PlacementAnswer::Placed {
                    shard: i64::from(placement.shard),
                    shard_count: i64::from(placement.shard_count),
                })
            }
            Err(status) if status.code() == Code::NotFound => Ok(PlacementAnswer::Unknown),
            Err(status)
                if status.code() == Code::FailedPrecondition
                    && status
                        .get_details_error_info()
                        .is_some_and(|info| info.reason == "SITE_PURGED") =>
            {
                Ok(PlacementAnswer::Purged)
            }
            Err(status) => Err(failure("GetPlacement", status)),
        }
    }

    /// Whether `app_installation_id` is installed on the site (an active site in the
    /// catalog); retried while the catalog is unavailable.
    pub async fn app_installed(
        &self,
        site_id: SiteId,
        app_installation_id: AppInstallationId,
    ) -> Result<bool, ProductDataError> {
        let authorization = self.token.authorization()?;
        let answer = retry_idempotent(|| {
            let mut client = self.client.clone();
            let request = self.request(
                ListAppInstallationsRequest {
                    site_id: site_id.to_string(),
                    app_key: String::new(),
                },
                &authorization,
            );
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

/// The bearer token this service presents: `auth.service_token` when configured,
/// otherwise one it signs itself with `auth.token_secret` (principal
/// `service:product-data`, role viewer), re-issued before it expires.
enum ServiceToken {
    Configured(MetadataValue<Ascii>),
    Minted {
        authenticator: Box<Authenticator>,
        current: Mutex<Option<(MetadataValue<Ascii>, Instant)>>,
    },
}

impl ServiceToken {
    fn from_config(auth: &AuthConfig) -> anyhow::Result<Self> {
        let configured = auth.service_token.expose_secret();
        if configured.is_empty() {
            return Ok(ServiceToken::Minted {
                authenticator: Box::new(Authenticator::new(auth)),
                current: Mutex::new(None),
            });
        }
        Ok(ServiceToken::Configured(bearer(configured).map_err(
            |_| anyhow::anyhow!("auth.service_token is not a valid header value"),
        )?))
    }

    fn authorization(&self) -> Result<MetadataValue<Ascii>, ProductDataError> {
        match self {
            ServiceToken::Configured(value) => Ok(value.clone()),
            ServiceToken::Minted {
                authenticator,
                current,
            } => {
                let mut current = current
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if let Some((value, renew_at)) = current.as_ref()
                    && Instant::now() < *renew_at
                {
                    return Ok(value.clone());
                }
                let token = authenticator.issue(PRINCIPAL, &[Role::Viewer], MINTED_TOKEN_TTL)?;
                let value = bearer(&token).map_err(|_| {
                    micros_platform::auth::AuthError::Signing(
                        "the minted token is not a valid header value".to_owned(),
                    )
                })?;
                *current = Some((value.clone(), Instant::now() + MINTED_TOKEN_TTL * 3 / 4));
                Ok(value)
            }
        }
    }
}

/// An `authorization` value, marked sensitive so that it is never logged.
fn bearer(
    token: &str,
) -> Result<MetadataValue<Ascii>, tonic::metadata::errors::InvalidMetadataValue> {
    let mut value = MetadataValue::try_from(format!("Bearer {token}"))?;
    value.set_sensitive(true);
    Ok(value)
}
