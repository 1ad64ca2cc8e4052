//! Signing and verifying bearer tokens. The `kid` header names the signer: [`ISSUER_KID`]
//! for operators' tokens, a service's name for its own; the verifier picks that signer's
//! public key and the rules that go with it.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{
    AuthError, Principal, Role,
    grant::{GRANT_AUDIENCE, Grant, GrantClaims},
    keys::{PublicKey, SigningKey},
};
use crate::config::AuthConfig;

/// The `kid` of tokens the issuer key signs.
pub const ISSUER_KID: &str = "issuer";

/// The audience of operators' tokens: any Micros service.
const SUITE_AUDIENCE: &str = "micros";

/// Clock skew tolerated between the signer and the verifier.
const LEEWAY_SECS: u64 = 30;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    roles: Vec<Role>,
    iss: String,
    aud: Vec<String>,
    iat: u64,
    exp: u64,
}

pub(super) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn header(kid: &str) -> Header {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    header
}

pub(super) fn sign<T: Serialize>(
    header: &Header,
    claims: &T,
    key: &EncodingKey,
) -> Result<String, AuthError> {
    jsonwebtoken::encode(header, claims, key).map_err(|error| AuthError::Signing(error.to_string()))
}

fn validation(issuer: &str, audiences: &[&str]) -> Validation {
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[issuer]);
    validation.set_audience(audiences);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.leeway = LEEWAY_SECS;
    validation
}

fn invalid(error: jsonwebtoken::errors::Error) -> AuthError {
    match error.kind() {
        jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
        _ => AuthError::InvalidToken(error.to_string()),
    }
}

/// The principal a service's own tokens carry.
pub fn service_principal(service: &str) -> String {
    format!("service:{service}")
}

/// Signs operators' tokens: what `micros token` and `micros up` hold, never a service.
#[derive(Clone)]
pub struct Issuer {
    key: EncodingKey,
    issuer: String,
}

impl Issuer {
    pub fn new(key: &SigningKey, issuer: &str) -> Self {
        Self {
            key: key.encoding_key(),
            issuer: issuer.to_owned(),
        }
    }

    /// A token for `principal` with `roles`, valid for `ttl` at every service.
    pub fn issue(
        &self,
        principal: &str,
        roles: &[Role],
        ttl: Duration,
    ) -> Result<String, AuthError> {
        Principal::check_name(principal)?;
        let iat = now_secs();
        let claims = Claims {
            sub: principal.to_owned(),
            roles: roles.to_vec(),
            iss: self.issuer.clone(),
            aud: vec![SUITE_AUDIENCE.to_owned()],
            iat,
            exp: iat + ttl.as_secs(),
        };
        sign(&header(ISSUER_KID), &claims, &self.key)
    }
}

/// A service's own identity: short-lived tokens for one audience each, made on demand,
/// kept until half their life has passed, then renewed.
pub struct ServiceSigner {
    service: String,
    roles: Vec<Role>,
    key: EncodingKey,
    ttl: Duration,
    cache: Mutex<HashMap<String, (String, u64)>>,
}

impl std::fmt::Debug for ServiceSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceSigner")
            .field("service", &self.service)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

impl ServiceSigner {
    pub fn new(service: &str, roles: &[Role], key: &SigningKey, ttl: Duration) -> Self {
        Self {
            service: service.to_owned(),
            roles: roles.to_vec(),
            key: key.encoding_key(),
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    /// A valid token for calls to `audiences` (normally one service; tests that reach
    /// several services with one channel name them all).
    pub fn token_for(&self, audiences: &[&str]) -> Result<String, AuthError> {
        let now = now_secs();
        let cache_key = audiences.join(",");
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some((token, renew_at)) = cache.get(&cache_key)
            && now < *renew_at
        {
            return Ok(token.clone());
        }
        let claims = Claims {
            sub: service_principal(&self.service),
            roles: self.roles.clone(),
            iss: service_principal(&self.service),
            aud: audiences
                .iter()
                .map(|audience| (*audience).to_owned())
                .collect(),
            iat: now,
            exp: now + self.ttl.as_secs(),
        };
        let token = sign(&header(&self.service), &claims, &self.key)?;
        cache.insert(cache_key, (token.clone(), now + self.ttl.as_secs() / 2));
        Ok(token)
    }

    /// A grant for an approved operation, signed with this service's key; only the
    /// orchestrator's grants are believed.
    pub fn grant(&self, grant: &Grant, ttl: Duration) -> Result<String, AuthError> {
        let iat = now_secs();
        let claims = GrantClaims {
            sub: grant.operation_id.clone(),
            iss: service_principal(&self.service),
            aud: vec![GRANT_AUDIENCE.to_owned()],
            iat,
            exp: iat + ttl.as_secs(),
            grant: grant.clone(),
        };
        let mut header = header(&self.service);
        header.typ = Some(super::grant::GRANT_TYPE.to_owned());
        sign(&header, &claims, &self.key)
    }
}

/// Verifies tokens and grants for one service.
#[derive(Clone)]
pub struct Authenticator {
    service: String,
    issuer: String,
    issuer_key: DecodingKey,
    service_keys: BTreeMap<String, DecodingKey>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("service", &self.service)
            .field("issuer", &self.issuer)
            .field(
                "service_keys",
                &self.service_keys.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// The service whose key alone may sign the `lifecycle` role and grants.
pub const ORCHESTRATOR: &str = "orchestrator";

impl Authenticator {
    /// From validated config (see [`AuthConfig::keys`]).
    pub fn new(config: &AuthConfig) -> Result<Self, crate::config::ConfigError> {
        let keys = config.keys()?;
        Ok(Self::from_keys(
            &config.service,
            &config.issuer,
            keys.issuer,
            keys.services,
        ))
    }

    pub fn from_keys(
        service: &str,
        issuer: &str,
        issuer_key: PublicKey,
        service_keys: BTreeMap<String, PublicKey>,
    ) -> Self {
        Self {
            service: service.to_owned(),
            issuer: issuer.to_owned(),
            issuer_key: issuer_key.decoding_key(),
            service_keys: service_keys
                .into_iter()
                .map(|(name, key)| (name, key.decoding_key()))
                .collect(),
        }
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

    /// The signer named by the token's `kid`, and its key.
    fn signer<'a>(&'a self, token: &str) -> Result<(String, &'a DecodingKey), AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(invalid)?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::InvalidToken(format!(
                "tokens are signed with EdDSA, not {:?}",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| AuthError::InvalidToken("the token names no signer (`kid`)".into()))?;
        if kid == ISSUER_KID {
            return Ok((kid, &self.issuer_key));
        }
        match self.service_keys.get(&kid) {
            Some(key) => Ok((kid, key)),
            None => Err(AuthError::UnknownSigner(kid.chars().take(64).collect())),
        }
    }

    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let (signer, key) = self.signer(token)?;
        let by_issuer = signer == ISSUER_KID;
        let validation = if by_issuer {
            validation(&self.issuer, &[&self.service, SUITE_AUDIENCE])
        } else {
            validation(&service_principal(&signer), &[&self.service])
        };
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(invalid)?
            .claims;
        Principal::check_name(&claims.sub)?;
        if !by_issuer && claims.sub != service_principal(&signer) {
            return Err(AuthError::InvalidToken(format!(
                "a token signed by {signer} speaks for {}, not {}",
                service_principal(&signer),
                claims.sub.chars().take(64).collect::<String>()
            )));
        }
        for role in &claims.roles {
            let trusted = match role {
                Role::Lifecycle => signer == ORCHESTRATOR,
                Role::Approver => by_issuer,
                Role::Viewer | Role::Admin | Role::Operator => true,
            };
            if !trusted {
                return Err(AuthError::UntrustedRole {
                    signer,
                    role: *role,
                });
            }
        }
        Ok(Principal {
            name: claims.sub,
            roles: claims.roles,
        })
    }

    /// A grant signed by the orchestrator's key, for any service.
    pub fn verify_grant(&self, token: &str) -> Result<Grant, AuthError> {
        let refused = |error: AuthError| AuthError::InvalidGrant(error.to_string());
        let (signer, key) = self.signer(token).map_err(refused)?;
        if signer != ORCHESTRATOR {
            return Err(AuthError::InvalidGrant(format!(
                "grants are signed by the orchestrator, not by {signer}"
            )));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|error| refused(invalid(error)))?;
        if header.typ.as_deref() != Some(super::grant::GRANT_TYPE) {
            return Err(AuthError::InvalidGrant(
                "not a grant (a bearer token was sent as one)".into(),
            ));
        }
        let validation = validation(&service_principal(ORCHESTRATOR), &[GRANT_AUDIENCE]);
        let claims = jsonwebtoken::decode::<GrantClaims>(token, key, &validation)
            .map_err(|error| refused(invalid(error)))?
            .claims;
        if claims.sub != claims.grant.operation_id {
            return Err(AuthError::InvalidGrant(
                "the grant's subject is not its operation".into(),
            ));
        }
        Ok(claims.grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Problem;

    struct Keys {
        issuer: SigningKey,
        orchestrator: SigningKey,
        identity: SigningKey,
    }

    fn keys() -> Keys {
        Keys {
            issuer: SigningKey::generate(),
            orchestrator: SigningKey::generate(),
            identity: SigningKey::generate(),
        }
    }

    fn verifier(keys: &Keys, service: &str) -> Authenticator {
        Authenticator::from_keys(
            service,
            "micros",
            keys.issuer.public(),
            BTreeMap::from([
                (ORCHESTRATOR.to_owned(), keys.orchestrator.public()),
                ("identity".to_owned(), keys.identity.public()),
            ]),
        )
    }

    fn signer(key: &SigningKey, service: &str, roles: &[Role]) -> ServiceSigner {
        ServiceSigner::new(service, roles, key, Duration::from_secs(300))
    }

    #[test]
    fn operator_tokens_verify_with_their_roles() {
        let keys = keys();
        let token = Issuer::new(&keys.issuer, "micros")
            .issue(
                "alice",
                &[Role::Admin, Role::Approver],
                Duration::from_secs(60),
            )
            .unwrap();
        let principal = verifier(&keys, "catalog")
            .verify_header(Some(&format!("Bearer {token}")))
            .unwrap();
        assert_eq!(principal.name, "alice");
        assert!(principal.has(Role::Approver));
        assert!(!principal.has(Role::Lifecycle));
    }

    /// Each of these would pass an exact comparison with `dev` and so could approve
    /// `dev`'s plan if it were a principal of its own.
    const LOOKALIKES: [&str; 5] = ["Dev", "dev ", " dev", "dev\u{200b}", "d\u{0435}v"];

    #[test]
    fn only_canonical_principal_names_are_minted() {
        let keys = keys();
        let issuer = Issuer::new(&keys.issuer, "micros");
        for name in LOOKALIKES.into_iter().chain(["", "-dev", &"a".repeat(129)]) {
            let error = issuer
                .issue(name, &[Role::Approver], Duration::from_secs(60))
                .unwrap_err();
            assert!(
                matches!(error, AuthError::InvalidPrincipal { .. }),
                "{name:?}: {error}"
            );
        }
        for name in [
            "dev",
            "alice@example.com",
            "ops.bot-2",
            "service:orchestrator-drills",
        ] {
            assert!(
                issuer
                    .issue(name, &[Role::Viewer], Duration::from_secs(60))
                    .is_ok(),
                "{name}"
            );
        }
    }

    #[test]
    fn a_signed_lookalike_principal_is_refused_at_verification() {
        let keys = keys();
        for name in LOOKALIKES {
            let token = sign(
                &header(ISSUER_KID),
                &Claims {
                    sub: name.into(),
                    roles: vec![Role::Approver],
                    iss: "micros".into(),
                    aud: vec!["micros".into()],
                    iat: now_secs(),
                    exp: now_secs() + 60,
                },
                &keys.issuer.encoding_key(),
            )
            .unwrap();
            let error = verifier(&keys, "orchestrator").verify(&token).unwrap_err();
            assert_eq!(error.reason(), "INVALID_PRINCIPAL", "{name:?}: {error}");
            assert_eq!(error.code(), tonic::Code::Unauthenticated);
        }
    }

    #[test]
    fn the_issuer_cannot_mint_the_lifecycle_role() {
        let keys = keys();
        let token = Issuer::new(&keys.issuer, "micros")
            .issue("mallory", &[Role::Lifecycle], Duration::from_secs(60))
            .unwrap();
        let error = verifier(&keys, "catalog").verify(&token).unwrap_err();
        assert!(
            matches!(&error, AuthError::UntrustedRole { signer, role: Role::Lifecycle } if signer == ISSUER_KID),
            "{error}"
        );
    }

    #[test]
    fn only_the_orchestrator_key_carries_lifecycle() {
        let keys = keys();
        let catalog = verifier(&keys, "catalog");
        let orchestrator = signer(&keys.orchestrator, ORCHESTRATOR, &[Role::Lifecycle]);
        let principal = catalog
            .verify(&orchestrator.token_for(&["catalog"]).unwrap())
            .unwrap();
        assert_eq!(principal.name, "service:orchestrator");
        assert!(principal.has(Role::Lifecycle));

        let peer = signer(&keys.identity, "identity", &[Role::Lifecycle]);
        let error = catalog
            .verify(&peer.token_for(&["catalog"]).unwrap())
            .unwrap_err();
        assert!(matches!(error, AuthError::UntrustedRole { .. }), "{error}");
    }

    #[test]
    fn a_peer_cannot_speak_as_another_service() {
        let keys = keys();
        // Identity's key, claiming to be the orchestrator by its `kid`: the signature
        // does not verify under the orchestrator's key.
        let forged = sign(
            &header(ORCHESTRATOR),
            &Claims {
                sub: "service:orchestrator".into(),
                roles: vec![Role::Lifecycle],
                iss: "service:orchestrator".into(),
                aud: vec!["catalog".into()],
                iat: now_secs(),
                exp: now_secs() + 60,
            },
            &keys.identity.encoding_key(),
        )
        .unwrap();
        let error = verifier(&keys, "catalog").verify(&forged).unwrap_err();
        assert!(matches!(error, AuthError::InvalidToken(_)), "{error}");
    }

    #[test]
    fn a_service_token_is_for_its_audience_only() {
        let keys = keys();
        let orchestrator = signer(&keys.orchestrator, ORCHESTRATOR, &[Role::Lifecycle]);
        let token = orchestrator.token_for(&["media"]).unwrap();
        let error = verifier(&keys, "catalog").verify(&token).unwrap_err();
        assert!(matches!(error, AuthError::InvalidToken(_)), "{error}");
        assert!(verifier(&keys, "media").verify(&token).is_ok());
    }

    #[test]
    fn shared_secret_tokens_are_refused() {
        let keys = keys();
        let hs256 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: "service:orchestrator".into(),
                roles: vec![Role::Lifecycle],
                iss: "micros".into(),
                aud: vec!["micros".into()],
                iat: now_secs(),
                exp: now_secs() + 60,
            },
            &EncodingKey::from_secret(b"micros-test-secret-0123456789abcdef"),
        )
        .unwrap();
        let error = verifier(&keys, "catalog").verify(&hs256).unwrap_err();
        assert!(matches!(error, AuthError::InvalidToken(_)), "{error}");
    }

    #[test]
    fn unknown_signers_are_named() {
        let keys = keys();
        let stranger = signer(&SigningKey::generate(), "billing", &[Role::Viewer]);
        let error = verifier(&keys, "catalog")
            .verify(&stranger.token_for(&["catalog"]).unwrap())
            .unwrap_err();
        assert!(matches!(&error, AuthError::UnknownSigner(name) if name == "billing"));
    }

    #[test]
    fn header_shapes() {
        let keys = keys();
        let auth = verifier(&keys, "catalog");
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
