//! Everything the orchestrator refuses, and how each maps to a gRPC status.

use micros_platform::{
    error::{PlatformError, Problem, into_status, status_with_info},
    ids::{OperationId, PlanId, SiteId},
};
use tonic::Code;
use tonic_types::StatusExt;

#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    /// Invalid input, credentials and storage, as the platform says.
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error("plan {plan_id} does not exist")]
    PlanNotFound { plan_id: PlanId },
    #[error("operation {operation_id} does not exist")]
    OperationNotFound { operation_id: OperationId },
    #[error("plan {plan_id} has {errors} errors and cannot be applied; the first: {first}")]
    PlanHasErrors {
        plan_id: PlanId,
        errors: usize,
        first: String,
    },
    #[error("plan {plan_id} has no targets: there is nothing to apply")]
    PlanEmpty { plan_id: PlanId },
    #[error("plan {plan_id} expired at {expire_time}; make a new plan")]
    PlanExpired {
        plan_id: PlanId,
        expire_time: String,
    },
    #[error(
        "plan {plan_id} has fingerprint {actual}, not {given}: the plan is not the one you reviewed"
    )]
    FingerprintMismatch {
        plan_id: PlanId,
        actual: String,
        given: String,
    },
    #[error(
        "plan {plan_id} touches {sites} sites, above the approval threshold of {threshold}; a second principal with the approver role must approve it"
    )]
    ApprovalRequired {
        plan_id: PlanId,
        sites: usize,
        threshold: u32,
    },
    #[error("{principal} requested plan {plan_id} and cannot approve it too")]
    SelfApproval { plan_id: PlanId, principal: String },
    #[error("plan {plan_id} was already applied as operation {operation_id}")]
    AlreadyApplied {
        plan_id: PlanId,
        operation_id: OperationId,
    },
    #[error("operation {operation_id} is {from}; it cannot become {to}")]
    InvalidTransition {
        operation_id: OperationId,
        from: &'static str,
        to: &'static str,
    },
    #[error(
        "{} of the plan's sites are held by operation {holder} until it ends (the first: {}); wait for it, or abort it",
        .sites.len(), .sites.first().map(String::as_str).unwrap_or("")
    )]
    SitesBusy { holder: String, sites: Vec<String> },
    /// Another hold change on the site is being made in every service; retry when it is.
    #[error("another hold change on {site_id} is in flight (until {until} at the latest); retry")]
    HoldChangeInFlight { site_id: SiteId, until: String },
    /// This runner no longer holds the operation (another runner claimed it): it stops
    /// without changing anything.
    #[error("operation {operation_id} is driven by another runner now")]
    Fenced { operation_id: OperationId },
    /// A verification after a wave found something other than planned; the operation
    /// halts with this as its reason.
    #[error("unexpected result: {0}")]
    Unexpected(String),
    #[error("{service} answered {}", downstream(.status))]
    Downstream {
        service: String,
        status: tonic::Status,
    },
}

micros_platform::platform_errors!(OrchestratorError::Platform);

/// A service's refusal as an operator reads it in a halt reason: the code's name, the
/// service's own reason, and its message (tonic's `Display` of a code is a generic
/// sentence that says nothing about this refusal).
fn downstream(status: &tonic::Status) -> String {
    match status.get_details_error_info() {
        Some(info) => format!("{:?} {}: {}", status.code(), info.reason, status.message()),
        None => format!("{:?}: {}", status.code(), status.message()),
    }
}

impl From<micros_platform::failpoints::Injected> for OrchestratorError {
    fn from(injected: micros_platform::failpoints::Injected) -> Self {
        OrchestratorError::Platform(injected.into())
    }
}

impl Problem for OrchestratorError {
    fn code(&self) -> Code {
        match self {
            Self::Platform(inner) => inner.code(),
            Self::PlanNotFound { .. } | Self::OperationNotFound { .. } => Code::NotFound,
            Self::PlanHasErrors { .. }
            | Self::PlanEmpty { .. }
            | Self::PlanExpired { .. }
            | Self::FingerprintMismatch { .. }
            | Self::ApprovalRequired { .. }
            | Self::AlreadyApplied { .. }
            | Self::InvalidTransition { .. }
            | Self::SitesBusy { .. } => Code::FailedPrecondition,
            Self::Fenced { .. } | Self::HoldChangeInFlight { .. } => Code::Aborted,
            Self::SelfApproval { .. } => Code::PermissionDenied,
            Self::Unexpected(_) => Code::FailedPrecondition,
            Self::Downstream { status, .. } => match status.code() {
                Code::Ok | Code::Unknown | Code::Internal => Code::Unavailable,
                code => code,
            },
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Platform(inner) => inner.reason(),
            Self::PlanNotFound { .. } => "PLAN_NOT_FOUND",
            Self::OperationNotFound { .. } => "OPERATION_NOT_FOUND",
            Self::PlanHasErrors { .. } => "PLAN_HAS_ERRORS",
            Self::PlanEmpty { .. } => "PLAN_EMPTY",
            Self::PlanExpired { .. } => "PLAN_EXPIRED",
            Self::FingerprintMismatch { .. } => "PLAN_FINGERPRINT_MISMATCH",
            Self::ApprovalRequired { .. } => "APPROVAL_REQUIRED",
            Self::SelfApproval { .. } => "SELF_APPROVAL",
            Self::AlreadyApplied { .. } => "PLAN_ALREADY_APPLIED",
            Self::InvalidTransition { .. } => "INVALID_OPERATION_TRANSITION",
            Self::SitesBusy { .. } => "SITES_BUSY",
            Self::HoldChangeInFlight { .. } => "HOLD_CHANGE_IN_FLIGHT",
            Self::Fenced { .. } => "OPERATION_FENCED",
            Self::Downstream { .. } => "DOWNSTREAM_FAILURE",
            Self::Unexpected(_) => "UNEXPECTED_RESULT",
        }
    }

    fn domain(&self) -> &'static str {
        match self {
            Self::Platform(inner) => inner.domain(),
            _ => "micros.orchestrator",
        }
    }

    fn metadata(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Platform(inner) => inner.metadata(),
            Self::PlanNotFound { plan_id }
            | Self::PlanEmpty { plan_id }
            | Self::PlanExpired { plan_id, .. } => {
                vec![("plan_id", plan_id.to_string())]
            }
            Self::OperationNotFound { operation_id } => {
                vec![("operation_id", operation_id.to_string())]
            }
            Self::PlanHasErrors {
                plan_id,
                errors,
                first,
            } => vec![
                ("plan_id", plan_id.to_string()),
                ("errors", errors.to_string()),
                ("first_error", first.clone()),
            ],
            Self::FingerprintMismatch {
                plan_id,
                actual,
                given,
            } => vec![
                ("plan_id", plan_id.to_string()),
                ("fingerprint", actual.clone()),
                ("given_fingerprint", given.clone()),
            ],
            Self::ApprovalRequired {
                plan_id,
                sites,
                threshold,
            } => vec![
                ("plan_id", plan_id.to_string()),
                ("sites", sites.to_string()),
                ("threshold", threshold.to_string()),
            ],
            Self::SelfApproval { plan_id, principal } => {
                vec![
                    ("plan_id", plan_id.to_string()),
                    ("principal", principal.clone()),
                ]
            }
            Self::AlreadyApplied {
                plan_id,
                operation_id,
            } => {
                vec![
                    ("plan_id", plan_id.to_string()),
                    ("operation_id", operation_id.to_string()),
                ]
            }
            Self::InvalidTransition {
                operation_id,
                from,
                to,
            } => vec![
                ("operation_id", operation_id.to_string()),
                ("state", (*from).to_owned()),
                ("requested_state", (*to).to_owned()),
            ],
            Self::HoldChangeInFlight { site_id, until } => vec![
                ("site_id", site_id.to_string()),
                ("expire_time", until.clone()),
            ],
            Self::SitesBusy { holder, sites } => vec![
                ("holding_operation_id", holder.clone()),
                // The first few, so the trailer stays small whatever the plan's size.
                (
                    "sites",
                    sites.iter().take(20).cloned().collect::<Vec<_>>().join(","),
                ),
                ("site_count", sites.len().to_string()),
            ],
            Self::Fenced { operation_id } => vec![("operation_id", operation_id.to_string())],
            Self::Unexpected(_) => Vec::new(),
            Self::Downstream { service, status } => vec![
                ("service", service.clone()),
                ("downstream_code", format!("{:?}", status.code())),
            ],
        }
    }
}

/// Through [`into_status`], except that a caller's mistake a service refused (an unknown
/// site, a bad region, a taken URL) reaches the caller with that service's own code,
/// reason and values, plus which service it was, instead of a generic downstream failure.
impl From<OrchestratorError> for tonic::Status {
    fn from(error: OrchestratorError) -> Self {
        if let OrchestratorError::Downstream { service, status } = &error
            && matches!(
                status.code(),
                Code::InvalidArgument
                    | Code::NotFound
                    | Code::AlreadyExists
                    | Code::FailedPrecondition
                    | Code::OutOfRange
            )
            && let Some(info) = status.get_details_error_info()
        {
            let mut metadata = info.metadata;
            metadata.insert("service".to_owned(), service.clone());
            return status_with_info(
                status.code(),
                format!("{service}: {}", status.message()),
                &info.reason,
                &info.domain,
                metadata,
            );
        }
        into_status(&error)
    }
}
