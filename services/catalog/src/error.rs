//! Everything the catalog can refuse, and how each maps to a gRPC status.

use micros_platform::{
    error::{PlatformError, Problem},
    ids::{AppInstallationId, SiteId},
    lifecycle::LifecycleError,
};
use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// Invalid input, credentials and storage, as the platform says.
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// The tenant lifecycle's refusals (a deleted or unknown site, a purge on hold…).
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error("site {site_id} does not exist")]
    SiteNotFound { site_id: SiteId },
    #[error("no site answers on {url}")]
    UrlNotFound { url: String },
    #[error("{url} already belongs to site {site_id}")]
    UrlTaken { url: String, site_id: SiteId },
    #[error("site {site_id} already exists with other attributes")]
    SiteIdTaken { site_id: SiteId },
    #[error("cannot {action} {product} on site {site_id}: it is {from}")]
    ProductTransition {
        site_id: SiteId,
        product: String,
        action: &'static str,
        from: &'static str,
    },
    #[error("app installation {app_installation_id} does not exist on site {site_id}")]
    AppInstallationNotFound {
        site_id: SiteId,
        app_installation_id: AppInstallationId,
    },
    #[error("app installation {app_installation_id} already exists with other attributes")]
    AppInstallationIdTaken {
        app_installation_id: AppInstallationId,
    },
}

micros_platform::platform_errors!(CatalogError::Platform);

impl Problem for CatalogError {
    fn code(&self) -> Code {
        match self {
            Self::Platform(inner) => inner.code(),
            Self::Lifecycle(inner) => inner.code(),
            Self::SiteNotFound { .. }
            | Self::UrlNotFound { .. }
            | Self::AppInstallationNotFound { .. } => Code::NotFound,
            Self::UrlTaken { .. }
            | Self::SiteIdTaken { .. }
            | Self::AppInstallationIdTaken { .. } => Code::AlreadyExists,
            Self::ProductTransition { .. } => Code::FailedPrecondition,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Platform(inner) => inner.reason(),
            Self::Lifecycle(inner) => inner.reason(),
            Self::SiteNotFound { .. } => "SITE_NOT_FOUND",
            Self::UrlNotFound { .. } => "SITE_URL_NOT_FOUND",
            Self::UrlTaken { .. } => "SITE_URL_TAKEN",
            Self::SiteIdTaken { .. } => "SITE_ID_TAKEN",
            Self::ProductTransition { .. } => "INVALID_PRODUCT_TRANSITION",
            Self::AppInstallationNotFound { .. } => "APP_INSTALLATION_NOT_FOUND",
            Self::AppInstallationIdTaken { .. } => "APP_INSTALLATION_ID_TAKEN",
        }
    }

    fn domain(&self) -> &'static str {
        match self {
            Self::Platform(inner) => inner.domain(),
            Self::Lifecycle(inner) => inner.domain(),
            _ => "micros.catalog",
        }
    }

    fn metadata(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Platform(inner) => inner.metadata(),
            Self::Lifecycle(inner) => inner.metadata(),
            Self::SiteNotFound { site_id } | Self::SiteIdTaken { site_id } => {
                vec![("site_id", site_id.to_string())]
            }
            Self::UrlNotFound { url } => vec![("url", url.clone())],
            Self::UrlTaken { url, site_id } => {
                vec![("url", url.clone()), ("site_id", site_id.to_string())]
            }
            Self::ProductTransition {
                site_id,
                product,
                action,
                from,
            } => vec![
                ("site_id", site_id.to_string()),
                ("product", product.clone()),
                ("action", (*action).to_owned()),
                ("state", (*from).to_owned()),
            ],
            Self::AppInstallationNotFound {
                site_id,
                app_installation_id,
            } => vec![
                ("site_id", site_id.to_string()),
                ("app_installation_id", app_installation_id.to_string()),
            ],
            Self::AppInstallationIdTaken {
                app_installation_id,
            } => {
                vec![("app_installation_id", app_installation_id.to_string())]
            }
        }
    }
}

micros_platform::status_from_problem!(CatalogError);
