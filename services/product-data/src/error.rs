//! Everything product-data can refuse, and how each maps to a gRPC status.

use micros_platform::{
    error::{PlatformError, Problem},
    ids::{AppInstallationId, DocumentId, SiteId},
    lifecycle::{LifecycleError, Refusal},
};
use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum ProductDataError {
    /// Invalid input, credentials and storage, as the platform says.
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// The tenant lifecycle's refusals (a deleted or unknown site, a purge on hold…).
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error("site {site_id} has no document {document_id}")]
    DocumentNotFound {
        site_id: SiteId,
        document_id: DocumentId,
    },
    #[error("document {document_id} already exists with other content")]
    DocumentIdTaken { document_id: DocumentId },
    #[error("document {document_id} is a {product} document; a {change} change does not apply")]
    ProductMismatch {
        document_id: DocumentId,
        product: &'static str,
        change: &'static str,
    },
    #[error("document {document_id} is at version {actual}, not {expected}")]
    VersionMismatch {
        document_id: DocumentId,
        expected: i64,
        actual: i64,
    },
    #[error("concurrent creates kept taking the next issue number of {project_key}; try again")]
    IssueNumberContention { project_key: String },
    #[error("app installation {app_installation_id} is not installed on site {site_id}")]
    AppInstallationNotFound {
        site_id: SiteId,
        app_installation_id: AppInstallationId,
    },
    #[error("site {site_id} does not exist in the catalog")]
    SiteNotFound { site_id: SiteId },
    #[error(
        "the catalog places sites on {catalog} product-data shards but this service has \
         {configured}: set service.shards (MICROS__SERVICE__SHARDS) to the catalog's \
         product_data_shards"
    )]
    ShardCountMismatch { catalog: i64, configured: usize },
    #[error("the catalog places site {site_id} on shard {shard}, outside 0..{shard_count}")]
    InvalidPlacement {
        site_id: SiteId,
        shard: i64,
        shard_count: i64,
    },
    #[error("the catalog did not answer: {message}")]
    CatalogUnavailable { message: String },
    #[error("the catalog refused {call} with {code:?}: {message}")]
    CatalogFailed {
        call: &'static str,
        code: Code,
        message: String,
    },
}

micros_platform::platform_errors!(ProductDataError::Platform);

impl Problem for ProductDataError {
    fn code(&self) -> Code {
        match self {
            Self::Platform(inner) => inner.code(),
            Self::Lifecycle(inner) => inner.code(),
            Self::DocumentNotFound { .. }
            | Self::AppInstallationNotFound { .. }
            | Self::SiteNotFound { .. } => Code::NotFound,
            Self::DocumentIdTaken { .. } => Code::AlreadyExists,
            Self::ProductMismatch { .. } => Code::InvalidArgument,
            Self::VersionMismatch { .. } | Self::IssueNumberContention { .. } => Code::Aborted,
            Self::ShardCountMismatch { .. } | Self::InvalidPlacement { .. } => {
                Code::FailedPrecondition
            }
            Self::CatalogUnavailable { .. } => Code::Unavailable,
            Self::CatalogFailed { .. } => Code::Internal,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Platform(inner) => inner.reason(),
            Self::Lifecycle(inner) => inner.reason(),
            Self::DocumentNotFound { .. } => "DOCUMENT_NOT_FOUND",
            Self::DocumentIdTaken { .. } => "DOCUMENT_ID_TAKEN",
            Self::ProductMismatch { .. } => "PRODUCT_MISMATCH",
            Self::VersionMismatch { .. } => "VERSION_MISMATCH",
            Self::IssueNumberContention { .. } => "ISSUE_NUMBER_CONTENTION",
            Self::AppInstallationNotFound { .. } => "APP_INSTALLATION_NOT_FOUND",
            Self::SiteNotFound { .. } => "SITE_NOT_FOUND",
            Self::ShardCountMismatch { .. } => "SHARD_COUNT_MISMATCH",
            Self::InvalidPlacement { .. } => "INVALID_PLACEMENT",
            Self::CatalogUnavailable { .. } => "CATALOG_UNAVAILABLE",
            Self::CatalogFailed { .. } => "CATALOG_FAILED",
        }
    }

    fn domain(&self) -> &'static str {
        match self {
            Self::Platform(inner) => inner.domain(),
            Self::Lifecycle(inner) => inner.domain(),
            _ => "micros.productdata",
        }
    }

    fn metadata(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Platform(inner) => inner.metadata(),
            Self::Lifecycle(inner) => inner.metadata(),
            Self::DocumentNotFound {
                site_id,
                document_id,
            } => vec![
                ("site_id", site_id.to_string()),
                ("document_id", document_id.to_string()),
            ],
            Self::DocumentIdTaken { document_id } => {
                vec![("document_id", document_id.to_string())]
            }
            Self::ProductMismatch {
                document_id,
                product,
                change,
            } => vec![
                ("document_id", document_id.to_string()),
                ("product", (*product).to_owned()),
                ("change", (*change).to_owned()),
            ],
            Self::VersionMismatch {
                document_id,
                expected,
                actual,
            } => vec![
                ("document_id", document_id.to_string()),
                ("expected_version", expected.to_string()),
                ("actual_version", actual.to_string()),
            ],
            Self::IssueNumberContention { project_key } => {
                vec![("project_key", project_key.clone())]
            }
            Self::AppInstallationNotFound {
                site_id,
                app_installation_id,
            } => vec![
                ("site_id", site_id.to_string()),
                ("app_installation_id", app_installation_id.to_string()),
            ],
            Self::SiteNotFound { site_id } => vec![("site_id", site_id.to_string())],
            Self::ShardCountMismatch {
                catalog,
                configured,
            } => vec![
                ("catalog_shard_count", catalog.to_string()),
                ("configured_shard_count", configured.to_string()),
            ],
            Self::InvalidPlacement {
                site_id,
                shard,
                shard_count,
            } => vec![
                ("site_id", site_id.to_string()),
                ("shard", shard.to_string()),
                ("shard_count", shard_count.to_string()),
            ],
            Self::CatalogUnavailable { .. } => Vec::new(),
            Self::CatalogFailed { call, code, .. } => {
                vec![("call", (*call).to_owned()), ("code", format!("{code:?}"))]
            }
        }
    }
}

micros_platform::status_from_problem!(ProductDataError);

/// How a placement failure reaches the orchestrator through `TenantLifecycle`, whose
/// shard locator may only fail with a lifecycle error: the same code, reason, domain,
/// message and metadata as on the domain API.
impl From<ProductDataError> for LifecycleError {
    fn from(error: ProductDataError) -> Self {
        match error {
            ProductDataError::Lifecycle(inner) => inner,
            ProductDataError::Platform(inner) => LifecycleError::Platform(inner),
            other => LifecycleError::Refused(Refusal {
                code: other.code(),
                reason: other.reason(),
                domain: other.domain(),
                message: other.to_string(),
                metadata: other.metadata(),
            }),
        }
    }
}
