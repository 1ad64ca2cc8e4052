//! Who may call what: EdDSA (Ed25519) tokens whose signer is named by the key that
//! verifies them, and grants that let an approved operation delete more than the free
//! rate.
//!
//! * **Operators' tokens** are signed by the *issuer* key (`micros token`, `micros up`);
//!   every service holds only its public half (`auth.issuer_key`).
//! * **Service tokens**: each service signs its own, short-lived and for one audience
//!   (the service it calls), with its own private key (`auth.signing_key`), and renews
//!   them; the others hold its public key (`auth.service_keys.<name>`). A service speaks
//!   only as `service:<its name>`; the `lifecycle` role is believed only from the
//!   orchestrator's key and the `approver` role only from the issuer's, so a peer with
//!   its own key can neither become the orchestrator nor approve anything.
//! * **Grants** ([`grant`]) are signed by the orchestrator once a second principal
//!   approved an operation, and carried with each of its lifecycle calls.
//!
//! The server's [`AuthLayer`](crate::layers::AuthLayer) verifies the token (and a grant,
//! if one came) and puts the [`Principal`] (and the [`Grant`]) in the request's
//! extensions; handlers ask for the role they need with [`require_role`]. Health and
//! reflection are exempt (probes and grpcurl carry no token).

pub mod grant;
pub mod keys;
mod tokens;

use serde::{Deserialize, Serialize};
use tonic::Code;

pub use grant::{GRANT_HEADER, Grant};
pub use keys::{PublicKey, SigningKey};
pub use tokens::{
    Authenticator, ISSUER_KID, Issuer, ORCHESTRATOR, ServiceSigner, service_principal,
};

use crate::error::Problem;

/// What a principal may do. Roles are coarse on purpose; a handler names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads tenant data and state.
    Viewer,
    /// Creates and changes tenants through the domain APIs.
    Admin,
    /// Plans and applies bulk operations through the orchestrator.
    Operator,
    /// Approves another principal's plan.
    Approver,
    /// Calls `TenantLifecycle`: believed only from a token the orchestrator's key signed.
    Lifecycle,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Admin,
        Role::Operator,
        Role::Approver,
        Role::Lifecycle,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Lifecycle => "lifecycle",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| {
                let known: Vec<&str> = Role::ALL.iter().map(|role| role.as_str()).collect();
                format!("unknown role `{text}`; roles are {}", known.join(", "))
            })
    }
}

/// Who is calling, as proven by the bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub roles: Vec<Role>,
}

/// The longest principal name a token may carry.
pub const MAX_PRINCIPAL_BYTES: usize = 128;

impl Principal {
    /// Refuses a name that is not in canonical form: 1 to [`MAX_PRINCIPAL_BYTES`] bytes of
    /// lowercase ASCII letters, digits and `. _ - + @ :`, starting with a letter or digit.
    ///
    /// Approval compares names (a plan's author may not approve it), so two spellings of
    /// one person must not exist: `Dev`, `dev ` or `dev` with a zero-width space would
    /// each approve `dev`'s plan. Names are checked where tokens are minted and again
    /// where they are verified, so no other spelling reaches a handler.
    pub fn check_name(name: &str) -> Result<(), AuthError> {
        let refuse = |why: &str| {
            Err(AuthError::InvalidPrincipal {
                principal: name.chars().take(64).collect(),
                why: why.to_owned(),
            })
        };
        if name.is_empty() {
            return refuse("it is empty");
        }
        if name.len() > MAX_PRINCIPAL_BYTES {
            return refuse("it is longer than 128 bytes");
        }
        if !name.starts_with(|first: char| first.is_ascii_lowercase() || first.is_ascii_digit()) {
            return refuse("it must start with a lowercase letter or a digit");
        }
        let allowed = |c: char| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || matches!(c, '.' | '_' | '-' | '+' | '@' | ':')
        };
        if !name.chars().all(allowed) {
            return refuse("only lowercase letters, digits and . _ - + @ : are allowed");
        }
        Ok(())
    }

    /// Whether the principal holds `role`. Every role includes [`Role::Viewer`]: whoever
    /// may change something may also read it.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role) || (role == Role::Viewer && !self.roles.is_empty())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token: send `authorization: Bearer <token>`")]
    MissingToken,
    #[error("the authorization header is not `Bearer <token>`")]
    MalformedHeader,
    #[error("invalid bearer token: {0}")]
    InvalidToken(String),
    #[error("the token has expired")]
    Expired,
    #[error("the token is signed by `{0}`, whose key this service does not hold")]
    UnknownSigner(String),
    #[error("a token signed by `{signer}` cannot carry the `{}` role", role.as_str())]
    UntrustedRole { signer: String, role: Role },
    #[error("invalid grant: {0}")]
    InvalidGrant(String),
    #[error("no principal on the request: the auth layer did not run")]
    NoPrincipal,
    #[error("{principal} lacks the `{}` role this call requires", required.as_str())]
    MissingRole { principal: String, required: Role },
    #[error("invalid principal `{principal}`: {why}")]
    InvalidPrincipal { principal: String, why: String },
    #[error("could not sign a token: {0}")]
    Signing(String),
}

impl Problem for AuthError {
    fn code(&self) -> Code {
        match self {
            AuthError::MissingToken
            | AuthError::MalformedHeader
            | AuthError::InvalidToken(_)
            | AuthError::UnknownSigner(_)
            | AuthError::InvalidPrincipal { .. }
            | AuthError::Expired => Code::Unauthenticated,
            AuthError::MissingRole { .. }
            | AuthError::UntrustedRole { .. }
            | AuthError::InvalidGrant(_) => Code::PermissionDenied,
            AuthError::NoPrincipal | AuthError::Signing(_) => Code::Internal,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "MISSING_CREDENTIALS",
            AuthError::MalformedHeader => "MALFORMED_CREDENTIALS",
            AuthError::InvalidToken(_) => "INVALID_CREDENTIALS",
            AuthError::Expired => "EXPIRED_CREDENTIALS",
            AuthError::UnknownSigner(_) => "UNKNOWN_SIGNER",
            AuthError::UntrustedRole { .. } => "ROLE_NOT_TRUSTED",
            AuthError::InvalidGrant(_) => "INVALID_GRANT",
            AuthError::MissingRole { .. } => "MISSING_ROLE",
            AuthError::NoPrincipal => "NO_PRINCIPAL",
            AuthError::InvalidPrincipal { .. } => "INVALID_PRINCIPAL",
            AuthError::Signing(_) => "TOKEN_SIGNING_FAILED",
        }
    }

    fn domain(&self) -> &'static str {
        "micros.auth"
    }

    fn metadata(&self) -> Vec<(&'static str, String)> {
        match self {
            AuthError::MissingRole {
                principal,
                required,
            } => vec![
                ("principal", principal.clone()),
                ("required_role", required.as_str().to_owned()),
            ],
            AuthError::UnknownSigner(signer) => vec![("signer", signer.clone())],
            AuthError::InvalidPrincipal { principal, .. } => {
                vec![("principal", principal.clone())]
            }
            AuthError::UntrustedRole { signer, role } => vec![
                ("signer", signer.clone()),
                ("role", role.as_str().to_owned()),
            ],
            _ => Vec::new(),
        }
    }
}

crate::status_from_problem!(AuthError);

/// The caller of `request`, if it holds `role`.
pub fn require_role<T>(request: &tonic::Request<T>, role: Role) -> Result<Principal, AuthError> {
    let principal = request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or(AuthError::NoPrincipal)?;
    if principal.has(role) {
        Ok(principal)
    } else {
        Err(AuthError::MissingRole {
            principal: principal.name,
            required: role,
        })
    }
}
