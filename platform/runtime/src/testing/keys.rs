//! The keys of test services: fixed per name (derived from it), so that services started
//! in-process, as processes and by `micros up` in a test all trust one another, and
//! tests can sign as the issuer, as the orchestrator, or as a peer that must be refused.

use std::{collections::BTreeMap, time::Duration};

use crate::{
    auth::{Grant, ISSUER_KID, Issuer, ORCHESTRATOR, Role, ServiceSigner, SigningKey},
    config::AuthConfig,
};

/// The services of the suite, whose keys every test service holds.
pub const SUITE: [&str; 6] = [
    "catalog",
    "identity",
    "license",
    "media",
    "product-data",
    ORCHESTRATOR,
];

/// The test key of `name` ([`ISSUER_KID`] for the issuer).
pub fn test_key(name: &str) -> SigningKey {
    SigningKey::public_for_development(&format!("micros-test-key:{name}"))
}

/// The auth config of test service `service`: the test issuer, its own key, and every
/// suite service's public key.
pub fn test_auth(service: &str) -> AuthConfig {
    AuthConfig {
        service: service.to_owned(),
        issuer_key: test_key(ISSUER_KID).public().encode(),
        signing_key: test_key(service).encode(),
        service_keys: SUITE
            .iter()
            .map(|name| ((*name).to_owned(), test_key(name).public().encode()))
            .collect(),
        ..AuthConfig::default()
    }
}

/// [`test_auth`] as `MICROS__AUTH__…` variables, for services run as processes.
pub fn test_auth_env(service: &str) -> BTreeMap<String, String> {
    use secrecy::ExposeSecret;
    let auth = test_auth(service);
    let mut env = BTreeMap::from([
        ("MICROS__AUTH__ISSUER_KEY".to_owned(), auth.issuer_key),
        (
            "MICROS__AUTH__SIGNING_KEY".to_owned(),
            auth.signing_key.expose_secret().to_owned(),
        ),
    ]);
    for (name, key) in auth.service_keys {
        env.insert(
            format!(
                "MICROS__AUTH__SERVICE_KEYS__{}",
                name.to_uppercase().replace('-', "_")
            ),
            key,
        );
    }
    env
}

/// A token for tests. The `lifecycle` role is believed only from the orchestrator, so
/// a token with it is the orchestrator's own (principal `service:orchestrator`, for
/// every suite service); any other is an operator's from the test issuer.
pub fn test_token(principal: &str, roles: &[Role]) -> String {
    if roles.contains(&Role::Lifecycle) {
        ServiceSigner::new(
            ORCHESTRATOR,
            roles,
            &test_key(ORCHESTRATOR),
            Duration::from_secs(3600),
        )
        .token_for(&SUITE)
        .expect("sign a test service token")
    } else {
        Issuer::new(&test_key(ISSUER_KID), "micros")
            .issue(principal, roles, Duration::from_secs(3600))
            .expect("issue a test token")
    }
}

/// A token `service` signs for itself with `roles`, addressed to every suite service:
/// what a peer could forge with its own key.
pub fn peer_token(service: &str, roles: &[Role]) -> String {
    ServiceSigner::new(
        service,
        roles,
        &test_key(service),
        Duration::from_secs(3600),
    )
    .token_for(&SUITE)
    .expect("sign a peer's token")
}

/// A grant for `operation_id` over `targets`, signed by `signer`'s test key (the
/// orchestrator's, unless a test forges one).
pub fn test_grant(signer: &str, operation_id: &str, targets: u64) -> String {
    let grant = Grant {
        operation_id: operation_id.to_owned(),
        plan_fingerprint: "test".to_owned(),
        targets,
        approved_by: "test-approver".to_owned(),
    };
    ServiceSigner::new(signer, &[], &test_key(signer), Duration::from_secs(3600))
        .grant(&grant, Duration::from_secs(3600))
        .expect("sign a test grant")
}
