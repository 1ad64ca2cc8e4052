//! Bearer-token authentication: HS256 JWTs that carry a principal and its roles.
//!
//! The server's [`AuthLayer`](crate::layers::AuthLayer) verifies the token and puts the
//! [`Principal`] in the request's extensions; handlers ask for the role they need with
//! [`require_role`]. Health and reflection are exempt (probes and grpcurl carry no token).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tonic::Code;

use crate::{config::AuthConfig, error::Problem};

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
    /// Calls `TenantLifecycle`: only the orchestrator's service identity holds it.
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

impl Principal {
    /// Whether the principal holds `role`. Every role includes [`Role::Viewer`]: whoever
    /// may change something may also read it.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role) || (role == Role::Viewer && !self.roles.is_empty())
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    roles: Vec<Role>,
    iss: String,
    iat: u64,
    exp: u64,
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
    #[error("no principal on the request: the auth layer did not run")]
    NoPrincipal,
    #[error("{principal} lacks the `{}` role this call requires", required.as_str())]
    MissingRole { principal: String, required: Role },
    #[error("could not sign a token: {0}")]
    Signing(String),
}

impl Problem for AuthError {
    fn code(&self) -> Code {
        match self {
            AuthError::MissingToken
            | AuthError::MalformedHeader
            | AuthError::InvalidToken(_)
            | AuthError::Expired => Code::Unauthenticated,
            AuthError::MissingRole { .. } => Code::PermissionDenied,
            AuthError::NoPrincipal | AuthError::Signing(_) => Code::Internal,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "MISSING_CREDENTIALS",
            AuthError::MalformedHeader => "MALFORMED_CREDENTIALS",
            AuthError::InvalidToken(_) => "INVALID_CREDENTIALS",
            AuthError::Expired => "EXPIRED_CREDENTIALS",
            AuthError::MissingRole { .. } => "MISSING_ROLE",
            AuthError::NoPrincipal => "NO_PRINCIPAL",
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
            _ => Vec::new(),
        }
    }
}

crate::status_from_problem!(AuthError);

/// Verifies (and, for `micros up` and tests, issues) tokens signed with one secret.
#[derive(Clone)]
pub struct Authenticator {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Self {
        Self::from_secret(&config.token_secret, &config.issuer)
    }

    pub fn from_secret(secret: &SecretString, issuer: &str) -> Self {
        let key = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 30;
        Self {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
            issuer: issuer.to_owned(),
        }
    }

    /// A signed token for `principal` with `roles`, valid for `ttl`.
    pub fn issue(
        &self,
        principal: &str,
        roles: &[Role],
        ttl: Duration,
    ) -> Result<String, AuthError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = Claims {
            sub: principal.to_owned(),
            roles: roles.to_vec(),
            iss: self.issuer.clone(),
            iat: now,
            exp: now + ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|error| AuthError::Signing(error.to_string()))
    }

    /// The principal of an `authorization` header value.
    pub fn verify_header(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let header = header.ok_or(AuthError::MissingToken)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or(AuthError::MalformedHeader)?;
        self.verify(token.trim())
    }

    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::InvalidToken(error.to_string()),
            })?;
        Ok(Principal {
            name: data.claims.sub,
            roles: data.claims.roles,
        })
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn authenticator(secret: &str) -> Authenticator {
        Authenticator::from_secret(&SecretString::from(secret), "micros")
    }

    #[test]
    fn issued_token_verifies_with_roles() {
        let auth = authenticator("0123456789abcdef0123456789abcdef");
        let token = auth
            .issue(
                "alice",
                &[Role::Admin, Role::Viewer],
                Duration::from_secs(60),
            )
            .unwrap();
        let principal = auth
            .verify_header(Some(&format!("Bearer {token}")))
            .unwrap();
        assert_eq!(principal.name, "alice");
        assert!(principal.has(Role::Admin));
        assert!(!principal.has(Role::Lifecycle));
    }

    #[test]
    fn token_from_another_secret_is_refused() {
        let token = authenticator("0123456789abcdef0123456789abcdef")
            .issue("mallory", &[Role::Lifecycle], Duration::from_secs(60))
            .unwrap();
        let error = authenticator("fedcba9876543210fedcba9876543210")
            .verify(&token)
            .unwrap_err();
        assert!(matches!(error, AuthError::InvalidToken(_)), "{error}");
    }

    #[test]
    fn header_shapes() {
        let auth = authenticator("0123456789abcdef0123456789abcdef");
        assert!(matches!(
            auth.verify_header(None),
            Err(AuthError::MissingToken)
        ));
        assert!(matches!(
            auth.verify_header(Some("Basic abc")),
            Err(AuthError::MalformedHeader)
        ));
    }
}
