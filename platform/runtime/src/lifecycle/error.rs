//! What the lifecycle refuses, and why.

use tonic::Code;

use crate::{
    auth::AuthError,
    error::{InvalidArgument, PlatformError, Problem},
    ids::{OperationId, SiteId},
    store::StoreError,
};

use super::model::Target;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// Invalid input, credentials, the store.
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error("site {site_id} is deleted")]
    SiteDeleted { site_id: SiteId },
    #[error("site {site_id} is not known to this service")]
    SiteNotFound { site_id: SiteId },
    #[error("site {site_id} is already deleted by operation {deleted_by}")]
    AlreadyDeleted { site_id: SiteId, deleted_by: String },
    #[error("site {site_id} was deleted by operation {deleted_by}, not {requested}")]
    DeletedByAnotherOperation {
        site_id: SiteId,
        deleted_by: String,
        requested: OperationId,
    },
    #[error("site {site_id} is not deleted")]
    NotDeleted { site_id: SiteId },
    #[error("site {site_id} is not active here; restore it first")]
    NotActive { site_id: SiteId },
    #[error("site {site_id} is purged; nothing is left to restore")]
    Purged { site_id: SiteId },
    #[error("site {site_id} is being purged")]
    BeingPurged { site_id: SiteId },
    #[error("the targets changed while the call ran (a concurrent restore or hold); retry")]
    ConcurrentChange,
    #[error(
        "site {site_id} has seen lease token {newer}, newer than this call's {token}: the call comes from an executor that no longer holds the operation"
    )]
    StaleLease {
        site_id: SiteId,
        token: i64,
        newer: i64,
    },
    #[error("{target} expires at {}; purging is refused before then", crate::store::rfc3339(*expire_time))]
    PurgeBeforeExpiry { target: Target, expire_time: i64 },
    #[error("site {site_id} is on hold; it cannot be purged until the hold is cleared")]
    OnHold { site_id: SiteId },
    #[error(
        "operation {operation_id} is a {action} operation; it cannot be used for another action"
    )]
    OperationReused {
        operation_id: OperationId,
        action: String,
    },
    #[error(
        "point in time {} is before {}, the oldest history kept",
        crate::store::rfc3339(*point_in_time), crate::store::rfc3339(*earliest)
    )]
    PointInTimeTooOld { point_in_time: i64, earliest: i64 },
    #[error(
        "at most {limit} targets may be soft-deleted per hour without an approved operation; \
         {recent} were in the last hour and this call takes down {requested} more. Plan the \
         deletion with the orchestrator: an approved operation carries a grant"
    )]
    DeletionRateExceeded {
        limit: u32,
        recent: i64,
        requested: i64,
    },
    #[error(
        "operation {operation_id} was granted {granted} targets (approved by {approved_by}); \
         {used} are taken down and this call takes down {requested} more"
    )]
    DeletionGrantExceeded {
        operation_id: OperationId,
        granted: u64,
        used: i64,
        requested: i64,
        approved_by: String,
    },
    #[error(
        "operation {operation_id} took {targets} of these targets down under a grant; taking \
         them down again needs that grant"
    )]
    DeletionGrantRequired {
        operation_id: OperationId,
        targets: i64,
    },
    #[error("the grant is for operation {granted}, not {operation_id}")]
    GrantForAnotherOperation {
        operation_id: OperationId,
        granted: String,
    },
    #[error("{0}")]
    Refused(Refusal),
    /// A service used the machinery against its own declaration: a bug, not a request error.
    #[error("lifecycle misuse: {0}")]
    Misuse(String),
}

/// A refusal raised by a service's hook (media's blob copy, for one).
#[derive(Debug, Clone)]
pub struct Refusal {
    pub code: Code,
    pub reason: &'static str,
    pub domain: &'static str,
    pub message: String,
    pub metadata: Vec<(&'static str, String)>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl LifecycleError {
    /// The table and key a tenant write found taken: another caller created the same
    /// row first (a service turns it into its own `…_TAKEN` refusal).
    pub fn conflict(&self) -> Option<(&str, &str)> {
        match self {
            LifecycleError::Platform(platform) => platform.conflict(),
            _ => None,
        }
    }
}

impl From<InvalidArgument> for LifecycleError {
    fn from(error: InvalidArgument) -> Self {
        LifecycleError::Platform(error.into())
    }
}

impl From<AuthError> for LifecycleError {
    fn from(error: AuthError) -> Self {
        LifecycleError::Platform(error.into())
    }
}

impl From<StoreError> for LifecycleError {
    fn from(error: StoreError) -> Self {
        LifecycleError::Platform(error.into())
    }
}

impl From<sqlx::Error> for LifecycleError {
    fn from(error: sqlx::Error) -> Self {
        LifecycleError::Platform(error.into())
    }
}

impl Problem for LifecycleError {
    fn code(&self) -> Code {
        match self {
            Self::Platform(inner) => inner.code(),
            Self::SiteDeleted { .. } | Self::SiteNotFound { .. } => Code::NotFound,
            Self::OperationReused { .. } => Code::AlreadyExists,
            Self::ConcurrentChange | Self::StaleLease { .. } => Code::Aborted,
            Self::BeingPurged { .. }
            | Self::DeletionRateExceeded { .. }
            | Self::DeletionGrantExceeded { .. }
            | Self::DeletionGrantRequired { .. } => Code::FailedPrecondition,
            Self::GrantForAnotherOperation { .. } => Code::PermissionDenied,
            Self::Refused(refusal) => refusal.code,
            Self::Misuse(_) => Code::Internal,
            Self::AlreadyDeleted { .. }
            | Self::DeletedByAnotherOperation { .. }
            | Self::NotDeleted { .. }
            | Self::NotActive { .. }
            | Self::Purged { .. }
            | Self::PurgeBeforeExpiry { .. }
            | Self::OnHold { .. }
            | Self::PointInTimeTooOld { .. } => Code::FailedPrecondition,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Platform(inner) => inner.reason(),
            Self::SiteDeleted { .. } => "SITE_DELETED",
            Self::SiteNotFound { .. } => "SITE_NOT_FOUND",
            Self::AlreadyDeleted { .. } => "SITE_ALREADY_DELETED",
            Self::DeletedByAnotherOperation { .. } => "DELETED_BY_ANOTHER_OPERATION",
            Self::NotDeleted { .. } => "SITE_NOT_DELETED",
            Self::NotActive { .. } => "SITE_NOT_ACTIVE",
            Self::Purged { .. } => "SITE_PURGED",
            Self::BeingPurged { .. } => "SITE_BEING_PURGED",
            Self::ConcurrentChange => "CONCURRENT_CHANGE",
            Self::StaleLease { .. } => "STALE_LEASE",
            Self::PurgeBeforeExpiry { .. } => "PURGE_BEFORE_EXPIRY",
            Self::OnHold { .. } => "TENANT_ON_HOLD",
            Self::OperationReused { .. } => "OPERATION_ID_REUSED",
            Self::PointInTimeTooOld { .. } => "POINT_IN_TIME_TOO_OLD",
            Self::DeletionRateExceeded { .. } => "DELETION_RATE_EXCEEDED",
            Self::DeletionGrantExceeded { .. } => "DELETION_GRANT_EXCEEDED",
            Self::DeletionGrantRequired { .. } => "DELETION_GRANT_REQUIRED",
            Self::GrantForAnotherOperation { .. } => "GRANT_FOR_ANOTHER_OPERATION",
            Self::Refused(refusal) => refusal.reason,
            Self::Misuse(_) => "LIFECYCLE_MISUSE",
        }
    }

    fn domain(&self) -> &'static str {
        match self {
            Self::Platform(inner) => inner.domain(),
            Self::Refused(refusal) => refusal.domain,
            _ => "micros.lifecycle",
        }
    }

    fn metadata(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Platform(inner) => inner.metadata(),
            Self::Refused(refusal) => refusal.metadata.clone(),
            Self::Misuse(_) => Vec::new(),
            Self::SiteDeleted { site_id }
            | Self::SiteNotFound { site_id }
            | Self::NotDeleted { site_id }
            | Self::NotActive { site_id }
            | Self::Purged { site_id }
            | Self::BeingPurged { site_id }
            | Self::OnHold { site_id } => vec![("site_id", site_id.to_string())],
            Self::ConcurrentChange => Vec::new(),
            Self::DeletionRateExceeded {
                limit,
                recent,
                requested,
            } => vec![
                ("limit_per_hour", limit.to_string()),
                ("deleted_last_hour", recent.to_string()),
                ("requested_targets", requested.to_string()),
            ],
            Self::DeletionGrantExceeded {
                operation_id,
                granted,
                used,
                requested,
                approved_by,
            } => vec![
                ("operation_id", operation_id.to_string()),
                ("granted_targets", granted.to_string()),
                ("used_targets", used.to_string()),
                ("requested_targets", requested.to_string()),
                ("approved_by", approved_by.clone()),
            ],
            Self::DeletionGrantRequired {
                operation_id,
                targets,
            } => vec![
                ("operation_id", operation_id.to_string()),
                ("granted_targets", targets.to_string()),
            ],
            Self::GrantForAnotherOperation {
                operation_id,
                granted,
            } => vec![
                ("operation_id", operation_id.to_string()),
                ("grant_operation_id", granted.chars().take(64).collect()),
            ],
            Self::StaleLease {
                site_id,
                token,
                newer,
            } => vec![
                ("site_id", site_id.to_string()),
                ("lease_token", token.to_string()),
                ("newer_lease_token", newer.to_string()),
            ],
            Self::AlreadyDeleted {
                site_id,
                deleted_by,
            } => vec![
                ("site_id", site_id.to_string()),
                ("deleted_by", deleted_by.clone()),
            ],
            Self::DeletedByAnotherOperation {
                site_id,
                deleted_by,
                requested,
            } => vec![
                ("site_id", site_id.to_string()),
                ("deleted_by", deleted_by.clone()),
                ("requested_operation_id", requested.to_string()),
            ],
            Self::PurgeBeforeExpiry {
                target,
                expire_time,
            } => vec![
                ("target", target.key()),
                ("expire_time", crate::store::rfc3339(*expire_time)),
            ],
            Self::OperationReused {
                operation_id,
                action,
            } => vec![
                ("operation_id", operation_id.to_string()),
                ("action", action.clone()),
            ],
            Self::PointInTimeTooOld {
                point_in_time,
                earliest,
            } => vec![
                ("point_in_time", crate::store::rfc3339(*point_in_time)),
                ("earliest", crate::store::rfc3339(*earliest)),
            ],
        }
    }
}

crate::status_from_problem!(LifecycleError);
