//! The one mapping from errors to `tonic::Status`.
//!
//! Every crate has its own error enum and implements [`Problem`] for it; the
//! [`into_status`] conversion turns it into a status with a `google.rpc.ErrorInfo`
//! detail (reason in UPPER_SNAKE_CASE, domain `micros.<area>`, the offending values in
//! metadata), so that a grpcurl user sees *why* and *with what* a call was refused.
//! Internal errors are logged with their cause chain and answered with a generic message.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    ids::{IdError, IdKind},
    input,
};

/// What a caller needs to know about a failure.
pub trait Problem: std::error::Error {
    /// The gRPC code; `Code::Internal` hides the message from the caller.
    fn code(&self) -> Code;
    /// UPPER_SNAKE_CASE, stable: scripts match on it.
    fn reason(&self) -> &'static str;
    /// `micros.<area>` of the crate that raised it.
    fn domain(&self) -> &'static str;
    /// The offending values.
    fn metadata(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

/// The status a caller receives for `problem`.
pub fn into_status(problem: &dyn Problem) -> Status {
    let code = problem.code();
    let message = if code == Code::Internal {
        tracing::error!(error = %cause_chain(problem), reason = problem.reason(), "internal error");
        "internal error; the cause is in the service's log".to_owned()
    } else {
        problem.to_string()
    };
    let metadata: HashMap<String, String> = problem
        .metadata()
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
    status_with_info(code, message, problem.reason(), problem.domain(), metadata)
}

/// A status carrying `google.rpc.ErrorInfo`; for layers that have no error enum.
///
/// The message and every metadata value are cut to
/// [`MAX_STATUS_TEXT_CHARS`](crate::input::MAX_STATUS_TEXT_CHARS) (see
/// [`crate::input`]): whatever a caller sent, the trailers it gets back stay small.
pub fn status_with_info(
    code: Code,
    message: impl Into<String>,
    reason: &str,
    domain: &str,
    metadata: HashMap<String, String>,
) -> Status {
    let bound = |text: &str| input::cut(text, input::MAX_STATUS_TEXT_CHARS);
    let metadata: HashMap<String, String> = metadata
        .into_iter()
        .map(|(key, value)| (key, bound(&value)))
        .collect();
    Status::with_error_details(
        code,
        bound(&message.into()),
        ErrorDetails::with_error_info(reason, domain, metadata),
    )
}

fn cause_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Implements `From<$error> for tonic::Status` through [`into_status`]; the orphan rule
/// keeps this one line in each crate instead of a blanket impl here.
#[macro_export]
macro_rules! status_from_problem {
    ($error:ty) => {
        impl From<$error> for ::tonic::Status {
            fn from(error: $error) -> Self {
                $crate::error::into_status(&error)
            }
        }
    };
}

/// For a crate error enum with a variant wrapping [`PlatformError`]: `From` for each
/// failure it carries, so `?` works on them directly.
/// `platform_errors!(CatalogError::Platform);`
#[macro_export]
macro_rules! platform_errors {
    ($error:ident :: $variant:ident) => {
        impl From<$crate::error::InvalidArgument> for $error {
            fn from(error: $crate::error::InvalidArgument) -> Self {
                $error::$variant(error.into())
            }
        }
        impl From<$crate::auth::AuthError> for $error {
            fn from(error: $crate::auth::AuthError) -> Self {
                $error::$variant(error.into())
            }
        }
        impl From<$crate::store::StoreError> for $error {
            fn from(error: $crate::store::StoreError) -> Self {
                $error::$variant(error.into())
            }
        }
        impl From<::sqlx::Error> for $error {
            fn from(error: ::sqlx::Error) -> Self {
                $error::$variant(error.into())
            }
        }
    };
}

/// The failures every service shares, whatever its domain: a request field that fails
/// validation, credentials, the store. Each service's error enum wraps it once (as
/// `Platform`) beside the refusals of its own domain.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error(transparent)]
    InvalidArgument(#[from] InvalidArgument),
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl PlatformError {
    /// The conflict a write ran into (see [`StoreError::from_write`](crate::store::StoreError::from_write)).
    pub fn conflict(&self) -> Option<(&str, &str)> {
        match self {
            PlatformError::Store(crate::store::StoreError::Conflict { table, key }) => {
                Some((table, key))
            }
            _ => None,
        }
    }
}

impl From<sqlx::Error> for PlatformError {
    fn from(error: sqlx::Error) -> Self {
        PlatformError::Store(error.into())
    }
}

impl Problem for PlatformError {
    fn code(&self) -> Code {
        self.inner().code()
    }

    fn reason(&self) -> &'static str {
        self.inner().reason()
    }

    fn domain(&self) -> &'static str {
        self.inner().domain()
    }

    fn metadata(&self) -> Vec<(&'static str, String)> {
        self.inner().metadata()
    }
}

impl PlatformError {
    fn inner(&self) -> &dyn Problem {
        match self {
            PlatformError::InvalidArgument(inner) => inner,
            PlatformError::Auth(inner) => inner,
            PlatformError::Store(inner) => inner,
        }
    }
}

status_from_problem!(PlatformError);

/// A request field that failed validation; every crate's error enum wraps it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvalidArgument {
    #[error("{field}: {source}")]
    Id {
        field: String,
        #[source]
        source: IdError,
    },
    #[error("{field}: {message}")]
    Field {
        field: String,
        reason: &'static str,
        message: String,
        value: String,
    },
    /// An input breaking a rule of [`crate::input`]: `value` is already cut by
    /// [`input::echo`], `length` is the full length in bytes.
    #[error("{field}{}: {message} (`{value}`)", .index.map(|index| format!("[{index}]")).unwrap_or_default())]
    Input {
        field: String,
        index: Option<usize>,
        reason: &'static str,
        message: String,
        value: String,
        length: usize,
    },
}

impl InvalidArgument {
    /// A field whose value breaks a rule other than ID syntax.
    pub fn field(
        field: impl Into<String>,
        reason: &'static str,
        value: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Field {
            field: field.into(),
            reason,
            message: message.into(),
            value: value.into(),
        }
    }

    /// A required field left empty.
    pub fn missing(field: impl Into<String>) -> Self {
        let field = field.into();
        Self::Field {
            message: "is required".to_owned(),
            reason: "MISSING_FIELD",
            value: String::new(),
            field,
        }
    }
}

impl Problem for InvalidArgument {
    fn code(&self) -> Code {
        Code::InvalidArgument
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Id {
                source: IdError::WrongKind { .. },
                ..
            } => "WRONG_ID_KIND",
            Self::Id { .. } => "MALFORMED_ID",
            Self::Field { reason, .. } | Self::Input { reason, .. } => reason,
        }
    }

    fn domain(&self) -> &'static str {
        "micros.platform"
    }

    fn metadata(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Id {
                field,
                source:
                    IdError::WrongKind {
                        expected,
                        actual,
                        input,
                    },
            } => vec![
                ("field", field.clone()),
                ("expected_kind", expected.prefix().to_owned()),
                ("actual_kind", actual.prefix().to_owned()),
                ("value", input::echo(input)),
            ],
            Self::Id {
                field,
                source:
                    IdError::Malformed {
                        expected, input, ..
                    },
            } => {
                let mut metadata = vec![("field", field.clone()), ("value", input::echo(input))];
                if let Some(kind) = expected {
                    metadata.push(("expected_kind", kind.prefix().to_owned()));
                }
                metadata
            }
            Self::Field { field, value, .. } => {
                vec![("field", field.clone()), ("value", input::echo(value))]
            }
            Self::Input {
                field,
                index,
                value,
                length,
                ..
            } => {
                let mut metadata = vec![
                    ("field", field.clone()),
                    ("value", value.clone()),
                    ("length", length.to_string()),
                ];
                if let Some(index) = index {
                    metadata.push(("index", index.to_string()));
                }
                metadata
            }
        }
    }
}

status_from_problem!(InvalidArgument);

/// Parses request field `field` as an ID of kind `K`; empty is [`InvalidArgument::missing`],
/// longer than [`input::MAX_INPUT_BYTES`] is `INPUT_TOO_LONG` with its length.
pub fn parse_id<K: IdKind>(field: &str, value: &str) -> Result<crate::ids::Id<K>, InvalidArgument> {
    if value.is_empty() {
        return Err(InvalidArgument::missing(field));
    }
    if value.len() > input::MAX_INPUT_BYTES {
        input::check(field, None, value)?;
    }
    crate::ids::Id::parse(value).map_err(|source| InvalidArgument::Id {
        field: field.to_owned(),
        source,
    })
}

/// Parses request field `field`, a protobuf timestamp, as a stored time (unix
/// microseconds); one out of `SystemTime`'s range is `INVALID_TIMESTAMP`.
pub fn parse_timestamp(field: &str, at: prost_types::Timestamp) -> Result<i64, InvalidArgument> {
    crate::store::from_timestamp(at).ok_or_else(|| {
        InvalidArgument::field(
            field,
            "INVALID_TIMESTAMP",
            format!("{at:?}"),
            "is not a valid timestamp",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AppInstallationId, SiteKind};

    #[test]
    fn wrong_kind_status_carries_both_kinds() {
        let app = AppInstallationId::new().to_string();
        let status = Status::from(parse_id::<SiteKind>("site_id", &app).unwrap_err());
        assert_eq!(status.code(), Code::InvalidArgument);
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "WRONG_ID_KIND");
        assert_eq!(info.domain, "micros.platform");
        assert_eq!(info.metadata["expected_kind"], "site");
        assert_eq!(info.metadata["actual_kind"], "app");
        assert_eq!(info.metadata["value"], app);
        assert_eq!(info.metadata["field"], "site_id");
    }

    #[test]
    fn a_huge_input_yields_a_small_status() {
        let huge = format!("site_{}", "0".repeat(1 << 20));
        let status = Status::from(parse_id::<SiteKind>("site_id", &huge).unwrap_err());
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "INPUT_TOO_LONG");
        assert_eq!(info.metadata["length"], huge.len().to_string());
        assert!(status.message().len() < 300, "{}", status.message());
        assert!(
            status.details().len() < 400,
            "{} bytes",
            status.details().len()
        );

        let echoed = status_with_info(
            Code::NotFound,
            huge.clone(),
            "SOMETHING",
            "micros.test",
            HashMap::from([("value".to_owned(), huge.clone())]),
        );
        assert!(echoed.message().len() < 1200);
        // The details repeat the message beside the metadata: a few KiB at most.
        assert!(
            echoed.details().len() < 2500,
            "{} bytes",
            echoed.details().len()
        );
    }

    #[test]
    fn empty_id_is_missing() {
        let status = Status::from(parse_id::<SiteKind>("site_id", "").unwrap_err());
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "MISSING_FIELD");
    }
}
