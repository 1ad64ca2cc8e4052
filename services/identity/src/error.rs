//! Everything identity can refuse, and how each maps to a gRPC status.

use micros_platform::{
    error::{PlatformError, Problem},
    ids::{GroupId, SiteId, UserId},
    lifecycle::LifecycleError,
};
use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Invalid input, credentials and storage, as the platform says.
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// The tenant lifecycle's refusals (a deleted or unknown site, a purge on hold…).
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error("site {site_id} has no user {user_id}")]
    UserNotFound { site_id: SiteId, user_id: UserId },
    #[error("site {site_id} has no group {group_id}")]
    GroupNotFound { site_id: SiteId, group_id: GroupId },
    #[error("user {user_id} already exists with other attributes")]
    UserIdTaken { user_id: UserId },
    #[error("site {site_id} already has a user with email {email}")]
    UserEmailTaken { site_id: SiteId, email: String },
    #[error("group {group_id} already exists with other attributes")]
    GroupIdTaken { group_id: GroupId },
    #[error("site {site_id} already has a group named {name}")]
    GroupNameTaken { site_id: SiteId, name: String },
    #[error("user {user_id} is not a member of group {group_id}")]
    MembershipNotFound { group_id: GroupId, user_id: UserId },
    #[error("site {site_id} has no grant {grant}")]
    GrantNotFound { site_id: SiteId, grant: String },
    /// The grant exists but was removed with its app installation; only restoring that
    /// operation brings it back, so granting it again must not pretend to succeed.
    #[error("grant {grant} was removed by {deleted_by}; restore that operation to bring it back")]
    GrantRemoved { grant: String, deleted_by: String },
}

micros_platform::platform_errors!(IdentityError::Platform);

impl Problem for IdentityError {
    fn code(&self) -> Code {
        match self {
            Self::Platform(inner) => inner.code(),
            Self::Lifecycle(inner) => inner.code(),
            Self::UserNotFound { .. }
            | Self::GroupNotFound { .. }
            | Self::MembershipNotFound { .. }
            | Self::GrantNotFound { .. } => Code::NotFound,
            Self::UserIdTaken { .. }
            | Self::UserEmailTaken { .. }
            | Self::GroupIdTaken { .. }
            | Self::GroupNameTaken { .. } => Code::AlreadyExists,
            Self::GrantRemoved { .. } => Code::FailedPrecondition,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Platform(inner) => inner.reason(),
            Self::Lifecycle(inner) => inner.reason(),
            Self::UserNotFound { .. } => "USER_NOT_FOUND",
            Self::GroupNotFound { .. } => "GROUP_NOT_FOUND",
            Self::UserIdTaken { .. } => "USER_ID_TAKEN",
            Self::UserEmailTaken { .. } => "USER_EMAIL_TAKEN",
            Self::GroupIdTaken { .. } => "GROUP_ID_TAKEN",
            Self::GroupNameTaken { .. } => "GROUP_NAME_TAKEN",
            Self::MembershipNotFound { .. } => "MEMBERSHIP_NOT_FOUND",
            Self::GrantNotFound { .. } => "GRANT_NOT_FOUND",
            Self::GrantRemoved { .. } => "GRANT_REMOVED",
        }
    }

    fn domain(&self) -> &'static str {
        match self {
            Self::Platform(inner) => inner.domain(),
            Self::Lifecycle(inner) => inner.domain(),
            _ => "micros.identity",
        }
    }

    fn metadata(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Platform(inner) => inner.metadata(),
            Self::Lifecycle(inner) => inner.metadata(),
            Self::UserNotFound { site_id, user_id } => vec![
                ("site_id", site_id.to_string()),
                ("user_id", user_id.to_string()),
            ],
            Self::GroupNotFound { site_id, group_id } => vec![
                ("site_id", site_id.to_string()),
                ("group_id", group_id.to_string()),
            ],
            Self::UserIdTaken { user_id } => vec![("user_id", user_id.to_string())],
            Self::UserEmailTaken { site_id, email } => {
                vec![("site_id", site_id.to_string()), ("email", email.clone())]
            }
            Self::GroupIdTaken { group_id } => vec![("group_id", group_id.to_string())],
            Self::GroupNameTaken { site_id, name } => {
                vec![("site_id", site_id.to_string()), ("name", name.clone())]
            }
            Self::MembershipNotFound { group_id, user_id } => vec![
                ("group_id", group_id.to_string()),
                ("user_id", user_id.to_string()),
            ],
            Self::GrantNotFound { site_id, grant } => {
                vec![("site_id", site_id.to_string()), ("grant", grant.clone())]
            }
            Self::GrantRemoved { grant, deleted_by } => {
                vec![("grant", grant.clone()), ("deleted_by", deleted_by.clone())]
            }
        }
    }
}

micros_platform::status_from_problem!(IdentityError);
