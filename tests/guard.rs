//! The deletion guard and the identities behind it, tried from outside through gRPC on
//! every backend, as a caller who is wrong or lying would: a deletion past the free rate
//! is refused in every service, also when the calls race; a grant is believed only from
//! the orchestrator, only for its own operation and only up to its count; a budget can
//! no longer be registered by the caller it limits; a token minted with the old shared
//! secret, by a peer service or by the issuer cannot make lifecycle calls.

mod support;

use std::time::Duration;

use futures::future::join_all;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use micros_orchestrator::OrchestratorSettings;
use micros_platform::{
    auth::{GRANT_HEADER, ISSUER_KID, Issuer, ORCHESTRATOR, Role},
    client::{self, ServiceChannel},
    config::ClientConfig,
    ids::OperationId,
    lifecycle::{Target, grpc::target_to_proto},
    testing::{self, peer_token, test_grant, test_key},
};
use micros_proto::lifecycle::v1::{
    DescribeRequest, Justification, RestoreRequest, SoftDeleteRequest, TenantState,
    restore_request::Source, tenant_lifecycle_client::TenantLifecycleClient,
};
use secrecy::SecretString;
use support::{SERVICES, Seeded, Suite};
use tonic::Code;
use tonic_types::StatusExt;

type Lifecycle = TenantLifecycleClient<ServiceChannel>;

/// The orchestrator's own lifecycle client for `service` (the test holds its key).
fn lifecycle(suite: &Suite, service: &str) -> Lifecycle {
    TenantLifecycleClient::new(suite.channel(service, "orchestrator", &[Role::Lifecycle]))
}

/// A lifecycle client for `service` presenting exactly `token`.
fn lifecycle_with(suite: &Suite, service: &str, token: &str) -> Lifecycle {
    TenantLifecycleClient::new(
        client::connect(
            service,
            &ClientConfig {
                url: suite.url(service),
                timeout: Duration::from_secs(30),
                connect_timeout: Duration::from_secs(5),
            },
            Some(&SecretString::from(token.to_owned())),
        )
        .unwrap(),
    )
}

fn site_targets(sites: &[Seeded]) -> Vec<Target> {
    sites
        .iter()
        .map(|site| Target::Site(site.site_id.parse().unwrap()))
        .collect()
}

fn soft_delete(
    targets: &[Target],
    operation_id: &str,
    grant: Option<&String>,
) -> tonic::Request<SoftDeleteRequest> {
    let mut request = tonic::Request::new(SoftDeleteRequest {
        targets: targets.iter().map(target_to_proto).collect(),
        operation_id: operation_id.to_owned(),
        justification: Some(Justification {
            reason: "guard test".to_owned(),
            ticket: "SEC-1".to_owned(),
        }),
        validate_only: false,
        lease_token: 0,
        call_key: String::new(),
    });
    if let Some(grant) = grant {
        request
            .metadata_mut()
            .insert(GRANT_HEADER, grant.parse().unwrap());
    }
    request
}

/// How many of `targets` `service` describes as deleted.
async fn deleted(client: &mut Lifecycle, targets: &[Target]) -> usize {
    client
        .describe(DescribeRequest {
            targets: targets.iter().map(target_to_proto).collect(),
        })
        .await
        .unwrap()
        .into_inner()
        .outcomes
        .iter()
        .filter(|outcome| outcome.state == TenantState::Deleted as i32)
        .count()
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_else(|| format!("no ErrorInfo: {status:?}"))
}

async fn seeded_suite(
    backend: micros_platform::store::Backend,
    count: usize,
) -> (Suite, Vec<Seeded>) {
    let suite = Suite::start(backend).await;
    let orchestrator = suite
        .orchestrator(backend, OrchestratorSettings::default())
        .await;
    let sites = suite.seed(&orchestrator.server.url(), "Guard", count).await;
    orchestrator.stop().await;
    (suite, sites)
}

#[tokio::test]
async fn a_deletion_past_the_free_rate_is_refused_in_every_service() {
    for backend in testing::backends() {
        let (suite, sites) = seeded_suite(backend, 7).await;
        let targets = site_targets(&sites);
        for service in SERVICES {
            let mut client = lifecycle(&suite, service);
            let refused = client
                .soft_delete(soft_delete(
                    &targets[..6],
                    &OperationId::new().to_string(),
                    None,
                ))
                .await
                .unwrap_err();
            assert_eq!(
                refused.code(),
                Code::FailedPrecondition,
                "{service} {backend:?}"
            );
            assert_eq!(reason(&refused), "DELETION_RATE_EXCEEDED", "{service}");
            let info = refused.get_details_error_info().unwrap();
            assert_eq!(info.metadata["limit_per_hour"], "5", "{service}");
            assert_eq!(info.metadata["requested_targets"], "6", "{service}");
            assert_eq!(
                deleted(&mut client, &targets).await,
                0,
                "{service}: nothing changed"
            );

            client
                .soft_delete(soft_delete(
                    &targets[..5],
                    &OperationId::new().to_string(),
                    None,
                ))
                .await
                .unwrap_or_else(|status| panic!("{service}: five are free: {status:?}"));
            let sixth = client
                .soft_delete(soft_delete(
                    &targets[5..6],
                    &OperationId::new().to_string(),
                    None,
                ))
                .await
                .unwrap_err();
            assert_eq!(reason(&sixth), "DELETION_RATE_EXCEEDED", "{service}");
            assert_eq!(deleted(&mut client, &targets).await, 5, "{service}");
        }

        suite.clock.advance(Duration::from_secs(3601));
        for service in SERVICES {
            lifecycle(&suite, service)
                .soft_delete(soft_delete(
                    &targets[5..6],
                    &OperationId::new().to_string(),
                    None,
                ))
                .await
                .unwrap_or_else(|status| panic!("{service}: the hour moved on: {status:?}"));
        }
        suite.stop().await;
    }
}

#[tokio::test]
async fn racing_single_site_deletions_stay_within_the_free_rate() {
    for backend in testing::backends() {
        let (suite, sites) = seeded_suite(backend, 9).await;
        let targets = site_targets(&sites);
        for service in ["catalog", "identity", "product-data"] {
            let calls = targets.iter().map(|target| {
                let mut client = lifecycle(&suite, service);
                let request = soft_delete(
                    std::slice::from_ref(target),
                    &OperationId::new().to_string(),
                    None,
                );
                async move { client.soft_delete(request).await }
            });
            let answers = join_all(calls).await;
            let refusals: Vec<String> = answers
                .iter()
                .filter_map(|answer| answer.as_ref().err().map(reason))
                .collect();
            assert_eq!(
                answers.len() - refusals.len(),
                5,
                "{service} {backend:?}: exactly the free rate passes: {refusals:?}"
            );
            assert!(
                refusals
                    .iter()
                    .all(|reason| reason == "DELETION_RATE_EXCEEDED"),
                "{service}: {refusals:?}"
            );
            assert_eq!(
                deleted(&mut lifecycle(&suite, service), &targets).await,
                5,
                "{service} {backend:?}"
            );
        }
        suite.stop().await;
    }
}

#[tokio::test]
async fn a_grant_counts_only_from_the_orchestrator_for_its_operation_up_to_its_size() {
    for backend in testing::backends() {
        let (suite, sites) = seeded_suite(backend, 9).await;
        let targets = site_targets(&sites);
        let operation = OperationId::new().to_string();
        for service in SERVICES {
            let mut client = lifecycle(&suite, service);

            // A peer signs a grant with its own key: refused before anything runs.
            let forged = test_grant("identity", &operation, 100);
            let refused = client
                .soft_delete(soft_delete(&targets[..8], &operation, Some(&forged)))
                .await
                .unwrap_err();
            assert_eq!(
                refused.code(),
                Code::PermissionDenied,
                "{service} {backend:?}"
            );
            assert_eq!(reason(&refused), "INVALID_GRANT", "{service}");

            // The orchestrator's grant for another operation lends nothing to this one.
            let elsewhere = test_grant(ORCHESTRATOR, &OperationId::new().to_string(), 100);
            let refused = client
                .soft_delete(soft_delete(&targets[..8], &operation, Some(&elsewhere)))
                .await
                .unwrap_err();
            assert_eq!(reason(&refused), "GRANT_FOR_ANOTHER_OPERATION", "{service}");
            assert_eq!(deleted(&mut client, &targets).await, 0, "{service}");

            // Granted 8: the first 8 go, in two calls; a retry of one costs nothing more;
            // a ninth is refused with the approver named.
            let grant = test_grant(ORCHESTRATOR, &operation, 8);
            client
                .soft_delete(soft_delete(&targets[..6], &operation, Some(&grant)))
                .await
                .unwrap_or_else(|status| panic!("{service}: granted: {status:?}"));
            client
                .soft_delete(soft_delete(&targets[4..8], &operation, Some(&grant)))
                .await
                .unwrap_or_else(|status| panic!("{service}: still granted: {status:?}"));
            let over = client
                .soft_delete(soft_delete(&targets[8..9], &operation, Some(&grant)))
                .await
                .unwrap_err();
            assert_eq!(over.code(), Code::FailedPrecondition, "{service}");
            assert_eq!(reason(&over), "DELETION_GRANT_EXCEEDED", "{service}");
            let info = over.get_details_error_info().unwrap();
            assert_eq!(
                (
                    info.metadata["granted_targets"].as_str(),
                    info.metadata["used_targets"].as_str(),
                    info.metadata["approved_by"].as_str(),
                ),
                ("8", "8", "test-approver"),
                "{service}"
            );
            assert_eq!(deleted(&mut client, &targets).await, 8, "{service}");

            // Undone, then replayed under the same operation without its grant: what
            // the grant allowed needs the grant again.
            client
                .restore(RestoreRequest {
                    targets: targets[..8].iter().map(target_to_proto).collect(),
                    operation_id: OperationId::new().to_string(),
                    source: Some(Source::UndoOperationId(operation.clone())),
                    justification: Some(Justification {
                        reason: "guard test".to_owned(),
                        ticket: "SEC-1".to_owned(),
                    }),
                    validate_only: false,
                    lease_token: 0,
                    call_key: String::new(),
                })
                .await
                .unwrap_or_else(|status| panic!("{service}: undo: {status:?}"));
            // (A call key of its own: an identical repeat of an earlier call would only
            // be answered with that call's recorded outcome.)
            let mut replay = soft_delete(&targets[..2], &operation, None);
            replay.get_mut().call_key = "replay".to_owned();
            let replayed = client.soft_delete(replay).await.unwrap_err();
            assert_eq!(reason(&replayed), "DELETION_GRANT_REQUIRED", "{service}");
            assert_eq!(deleted(&mut client, &targets).await, 0, "{service}");
        }
        suite.stop().await;
    }
}

#[tokio::test]
async fn a_caller_cannot_register_its_own_budget() {
    let (suite, _) = seeded_suite(micros_platform::store::Backend::Sqlite, 0).await;
    // The RPC that let a lifecycle caller raise its own limit is gone: the path answers
    // UNIMPLEMENTED, as any unknown method does.
    let mut grpc =
        tonic::client::Grpc::new(suite.channel("catalog", "orchestrator", &[Role::Lifecycle]));
    grpc.ready().await.unwrap();
    let status = grpc
        .unary::<(), (), _>(
            tonic::Request::new(()),
            http::uri::PathAndQuery::from_static(
                "/micros.catalog.v1.CatalogService/RegisterDeletionBudget",
            ),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    suite.stop().await;
}

#[tokio::test]
async fn lifecycle_tokens_from_the_shared_secret_a_peer_or_the_issuer_are_refused() {
    let (suite, sites) = seeded_suite(micros_platform::store::Backend::Sqlite, 1).await;
    let targets = site_targets(&sites);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // What every service used to accept: HS256 with the one shared secret.
    let shared_secret = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &serde_json::json!({
            "sub": "service:orchestrator", "roles": ["lifecycle"], "iss": "micros",
            "aud": ["micros"], "iat": now, "exp": now + 600,
        }),
        &EncodingKey::from_secret(b"micros-test-secret-0123456789abcdef"),
    )
    .unwrap();
    let by_peer = peer_token("identity", &[Role::Lifecycle]);
    let by_issuer = Issuer::new(&test_key(ISSUER_KID), "micros")
        .issue("mallory", &[Role::Lifecycle], Duration::from_secs(600))
        .unwrap();
    let cases = [
        (
            "shared secret",
            shared_secret,
            Code::Unauthenticated,
            "INVALID_CREDENTIALS",
        ),
        ("peer", by_peer, Code::PermissionDenied, "ROLE_NOT_TRUSTED"),
        (
            "issuer",
            by_issuer,
            Code::PermissionDenied,
            "ROLE_NOT_TRUSTED",
        ),
    ];
    for service in SERVICES {
        for (who, token, code, expected) in &cases {
            let status = lifecycle_with(&suite, service, token)
                .soft_delete(soft_delete(&targets, &OperationId::new().to_string(), None))
                .await
                .unwrap_err();
            assert_eq!(status.code(), *code, "{who} at {service}: {status:?}");
            assert_eq!(reason(&status), *expected, "{who} at {service}");
        }
        assert_eq!(
            deleted(&mut lifecycle(&suite, service), &targets).await,
            0,
            "{service}"
        );
    }
    suite.stop().await;
}
