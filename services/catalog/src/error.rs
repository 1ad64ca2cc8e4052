//! Everything the catalog can refuse, and how each maps to a gRPC status.

use micros_platform::{
    auth::AuthError,
    error::{InvalidArgument, Problem},
    ids::SiteId,
    store::StoreError,
};
use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    InvalidArgument(#[from] InvalidArgument),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("site {site_id} does not exist")]
    SiteNotFound { site_id: SiteId },
    #[error("site {site_id} is deleted; pass show_deleted to read it")]
    SiteDeleted { site_id: SiteId },
    #[error("no site answers on {url}")]
    UrlNotFound { url: String },
    #[error("{url} already belongs to site {site_id}")]
    UrlTaken { url: String, site_id: SiteId },
    #[error("site {site_id} already exists with other attributes")]
    SiteIdTaken { site_id: SiteId },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Problem for CatalogError {
    fn code(&self) -> Code {
        match self {
            Self::InvalidArgument(inner) => inner.code(),
            Self::Auth(inner) => inner.code(),
            Self::Store(inner) => inner.code(),
            Self::SiteNotFound { .. } | Self::SiteDeleted { .. } | Self::UrlNotFound { .. } => {
                Code::NotFound
            }
            Self::UrlTaken { .. } | Self::SiteIdTaken { .. } => Code::AlreadyExists,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::InvalidArgument(inner) => inner.reason(),
            Self::Auth(inner) => inner.reason(),
            Self::Store(inner) => inner.reason(),
            Self::SiteNotFound { .. } => "SITE_NOT_FOUND",
            Self::SiteDeleted { .. } => "SITE_DELETED",
            Self::UrlNotFound { .. } => "SITE_URL_NOT_FOUND",
            Self::UrlTaken { .. } => "SITE_URL_TAKEN",
            Self::SiteIdTaken { .. } => "SITE_ID_TAKEN",
        }
    }

    fn domain(&self) -> &'static str {
        match self {
            Self::InvalidArgument(inner) => inner.domain(),
            Self::Auth(inner) => inner.domain(),
            Self::Store(inner) => inner.domain(),
            _ => "micros.catalog",
        }
    }

    fn metadata(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::InvalidArgument(inner) => inner.metadata(),
            Self::Auth(inner) => inner.metadata(),
            Self::Store(inner) => inner.metadata(),
            Self::SiteNotFound { site_id }
            | Self::SiteDeleted { site_id }
            | Self::SiteIdTaken { site_id } => vec![("site_id", site_id.to_string())],
            Self::UrlNotFound { url } => vec![("url", url.clone())],
            Self::UrlTaken { url, site_id } => {
                vec![("url", url.clone()), ("site_id", site_id.to_string())]
            }
        }
    }
}

micros_platform::status_from_problem!(CatalogError);
