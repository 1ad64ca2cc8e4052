//! Grants: what lets one operation soft-delete more than the free rate.
//!
//! After a second principal approved a plan, the orchestrator signs a grant with its own
//! key, bound to the operation, the approved plan's fingerprint, the number of targets
//! approved and the approver, and sends it (header [`GRANT_HEADER`]) with each of the
//! operation's lifecycle calls. Every service verifies it with the orchestrator's public
//! key alone, and its deletion guard lets that operation take down at most the granted
//! number of distinct targets. No caller can raise its own limit: a grant is not
//! something a caller states, and no service but the orchestrator can sign one.

use serde::{Deserialize, Serialize};

/// The metadata key a grant travels in, next to `authorization`.
pub const GRANT_HEADER: &str = "micros-grant";

/// The `typ` header of a grant, so that neither is ever taken for the other.
pub(super) const GRANT_TYPE: &str = "micros-grant+jwt";

/// The audience of grants: every service's lifecycle.
pub(super) const GRANT_AUDIENCE: &str = "lifecycle";

/// What an approval allows one operation to delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub operation_id: String,
    /// The fingerprint of the plan the approver reviewed.
    pub plan_fingerprint: String,
    /// How many distinct targets (sites and app installations) the operation may take
    /// down in each service.
    pub targets: u64,
    pub approved_by: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct GrantClaims {
    pub sub: String,
    pub iss: String,
    pub aud: Vec<String>,
    pub iat: u64,
    pub exp: u64,
    #[serde(flatten)]
    pub grant: Grant,
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, time::Duration};

    use super::*;
    use crate::auth::{
        AuthError, Authenticator, Role, ServiceSigner, SigningKey, tokens::ORCHESTRATOR,
    };

    fn grant() -> Grant {
        Grant {
            operation_id: "op_1".into(),
            plan_fingerprint: "abc".into(),
            targets: 12,
            approved_by: "bob".into(),
        }
    }

    #[test]
    fn only_the_orchestrator_signs_grants() {
        let (issuer, orchestrator, identity) = (
            SigningKey::generate(),
            SigningKey::generate(),
            SigningKey::generate(),
        );
        let verifier = Authenticator::from_keys(
            "license",
            "micros",
            issuer.public(),
            BTreeMap::from([
                (ORCHESTRATOR.to_owned(), orchestrator.public()),
                ("identity".to_owned(), identity.public()),
            ]),
        );
        let ttl = Duration::from_secs(60);
        let signed = ServiceSigner::new(ORCHESTRATOR, &[], &orchestrator, ttl)
            .grant(&grant(), ttl)
            .unwrap();
        assert_eq!(verifier.verify_grant(&signed).unwrap(), grant());

        let by_peer = ServiceSigner::new("identity", &[], &identity, ttl)
            .grant(&grant(), ttl)
            .unwrap();
        assert!(matches!(
            verifier.verify_grant(&by_peer),
            Err(AuthError::InvalidGrant(_))
        ));

        let bearer = ServiceSigner::new(ORCHESTRATOR, &[Role::Lifecycle], &orchestrator, ttl)
            .token_for(&["license"])
            .unwrap();
        assert!(matches!(
            verifier.verify_grant(&bearer),
            Err(AuthError::InvalidGrant(_))
        ));
        assert!(
            verifier.verify(&signed).is_err(),
            "a grant is not a bearer token"
        );
    }
}
