//! Everything the license service can refuse, and how each maps to a gRPC status.

use micros_platform::{
    error::{PlatformError, Problem},
    ids::{LicenseId, SiteId},
    lifecycle::LifecycleError,
};
use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum LicenseError {
    /// Invalid input, credentials and storage, as the platform says.
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// The site is unknown here, soft-deleted or purged (SITE_NOT_FOUND, SITE_DELETED),
    /// or a write lost a race with its deletion.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error("site {site_id} has no license {license_id}")]
    LicenseNotFound {
        site_id: SiteId,
        license_id: LicenseId,
    },
    #[error("license {license_id} already exists with other attributes")]
    LicenseIdTaken { license_id: LicenseId },
    #[error("license {license_id} is cancelled; a cancelled license never changes again")]
    LicenseCancelled { license_id: LicenseId },
}

micros_platform::platform_errors!(LicenseError::Platform);

impl Problem for LicenseError {
    fn code(&self) -> Code {
        match self {
            Self::Platform(inner) => inner.code(),
            Self::Lifecycle(inner) => inner.code(),
            Self::LicenseNotFound { .. } => Code::NotFound,
            Self::LicenseIdTaken { .. } => Code::AlreadyExists,
            Self::LicenseCancelled { .. } => Code::FailedPrecondition,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Platform(inner) => inner.reason(),
            Self::Lifecycle(inner) => inner.reason(),
            Self::LicenseNotFound { .. } => "LICENSE_NOT_FOUND",
            Self::LicenseIdTaken { .. } => "LICENSE_ID_TAKEN",
            Self::LicenseCancelled { .. } => "LICENSE_CANCELLED",
        }
    }

    fn domain(&self) -> &'static str {
        match self {
            Self::Platform(inner) => inner.domain(),
            Self::Lifecycle(inner) => inner.domain(),
            _ => "micros.license",
        }
    }

    fn metadata(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Platform(inner) => inner.metadata(),
            Self::Lifecycle(inner) => inner.metadata(),
            Self::LicenseNotFound {
                site_id,
                license_id,
            } => vec![
                ("site_id", site_id.to_string()),
                ("license_id", license_id.to_string()),
            ],
            Self::LicenseIdTaken { license_id } | Self::LicenseCancelled { license_id } => {
                vec![("license_id", license_id.to_string())]
            }
        }
    }
}

micros_platform::status_from_problem!(LicenseError);
