//! The orchestrator's plan → approve → apply rules, waves, pause/abort and restore, over
//! real gRPC against a real catalog (the only lifecycle service configured here; the
//! whole suite runs in the top-level scenario test).

use std::{collections::BTreeMap, time::Duration};

use micros_catalog::{Catalog, CatalogSettings};
use micros_orchestrator::{Orchestrator, OrchestratorSettings};
use micros_platform::{
    auth::Role,
    client::ServiceChannel,
    clock::TestClock,
    config::ClientConfig,
    store::Backend,
    testing::{
        self, TestService,
        lifecycle_contract::{Lifecycle, site_target},
    },
};
use micros_proto::{
    catalog::v1::{
        CreateSiteRequest, InstallAppRequest, SiteState,
        catalog_service_client::CatalogServiceClient,
    },
    orchestrator::v1::{
        self as pb, ApplyPlanRequest, ApprovePlanRequest, CreatePlanRequest, GetOperationRequest,
        OperationControlRequest, PlanKind, orchestrator_service_client::OrchestratorServiceClient,
    },
};
use tonic::Code;
use tonic_types::StatusExt;

struct Suite {
    catalog_service: TestService<Catalog>,
    orchestrator_service: TestService<Orchestrator>,
    catalog: CatalogServiceClient<ServiceChannel>,
}

async fn suite(backend: Backend, threshold: u32) -> Suite {
    suite_with(
        backend,
        OrchestratorSettings {
            services: vec!["catalog".to_owned()],
            approval_threshold_sites: threshold,
            max_wave: 4,
            ..OrchestratorSettings::default()
        },
    )
    .await
}

async fn suite_with(backend: Backend, settings: OrchestratorSettings) -> Suite {
    let clock = TestClock::new();
    let catalog_service = testing::spawn_with::<Catalog>(
        backend,
        CatalogSettings {
            product_data_shards: 4,
            ..CatalogSettings::default()
        },
        clock.clone(),
        |_| {},
    )
    .await;
    let orchestrator_service =
        orchestrator(backend, settings, clock, catalog_service.server.url()).await;
    let catalog =
        CatalogServiceClient::new(catalog_service.channel(&[Role::Admin, Role::Operator]));
    Suite {
        catalog_service,
        orchestrator_service,
        catalog,
    }
}

/// An orchestrator whose one lifecycle service is the catalog at `catalog_url`.
async fn orchestrator(
    backend: Backend,
    settings: OrchestratorSettings,
    clock: TestClock,
    catalog_url: String,
) -> TestService<Orchestrator> {
    testing::spawn_with::<Orchestrator>(backend, settings, clock, |config| {
        config.clients = BTreeMap::from([(
            "catalog".to_owned(),
            ClientConfig {
                url: catalog_url,
                timeout: Duration::from_secs(30),
                connect_timeout: Duration::from_secs(5),
            },
        )]);
    })
    .await
}

/// A client of `orchestrator` as principal `name` with `roles`.
fn principal_of(
    orchestrator: &TestService<Orchestrator>,
    name: &str,
    roles: &[Role],
) -> OrchestratorServiceClient<ServiceChannel> {
    let token = testing::test_token(name, roles);
    OrchestratorServiceClient::new(
        micros_platform::client::connect(
            "orchestrator",
            &ClientConfig {
                url: orchestrator.server.url(),
                timeout: Duration::from_secs(30),
                connect_timeout: Duration::from_secs(5),
            },
            Some(&secrecy::SecretString::from(token)),
        )
        .unwrap(),
    )
}

impl Suite {
    fn as_principal(
        &self,
        name: &str,
        roles: &[Role],
    ) -> OrchestratorServiceClient<ServiceChannel> {
        principal_of(&self.orchestrator_service, name, roles)
    }

    /// Bob approves: only approved deletions get a budget beyond the catalog's hourly rate.
    async fn approved(&self, made: &pb::Plan) {
        self.approver()
            .approve_plan(ApprovePlanRequest {
                plan_id: made.plan_id.clone(),
                fingerprint: made.fingerprint.clone(),
            })
            .await
            .unwrap();
    }

    /// The operator applies `made` as planned.
    async fn apply(&self, made: &pb::Plan) -> pb::Operation {
        self.operator()
            .apply_plan(ApplyPlanRequest {
                plan_id: made.plan_id.clone(),
                fingerprint: made.fingerprint.clone(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// The plan the operator makes of `request`.
    async fn made(&self, request: CreatePlanRequest) -> pb::Plan {
        self.operator()
            .create_plan(request)
            .await
            .unwrap()
            .into_inner()
    }

    /// Applies `made` and waits for it to succeed; the operation as it ended.
    async fn applied(&self, made: &pb::Plan) -> pb::Operation {
        let operation = self.apply(made).await;
        let done = self.wait(&operation.operation_id).await;
        assert_eq!(
            done.state(),
            pb::OperationState::Succeeded,
            "{}",
            done.halt_reason
        );
        done
    }

    /// Asserts that the catalog says every one of `sites` is `state` now.
    async fn assert_sites(&self, sites: &[String], state: micros_proto::catalog::v1::SiteState) {
        let resolved = self.resolved(sites).await;
        assert!(
            resolved.iter().all(|site| site.site_state() == state),
            "{state:?}: {resolved:?}"
        );
    }

    /// What the catalog says each of `sites` is now.
    async fn resolved(&self, sites: &[String]) -> Vec<micros_proto::catalog::v1::ResolvedInput> {
        self.catalog
            .clone()
            .resolve(micros_proto::catalog::v1::ResolveRequest {
                inputs: sites.to_vec(),
            })
            .await
            .unwrap()
            .into_inner()
            .results
    }

    fn operator(&self) -> OrchestratorServiceClient<ServiceChannel> {
        self.as_principal("alice", &[Role::Operator])
    }

    fn approver(&self) -> OrchestratorServiceClient<ServiceChannel> {
        self.as_principal("bob", &[Role::Operator, Role::Approver])
    }

    async fn sites(&mut self, count: usize) -> (Vec<String>, Vec<String>) {
        let mut sites = Vec::new();
        let mut apps = Vec::new();
        for index in 0..count {
            let site = self
                .catalog
                .create_site(CreateSiteRequest {
                    name: format!("Site {index}"),
                    url: format!("site-{index}.example.com"),
                    region: "eu-west".to_owned(),
                    site_id: String::new(),
                })
                .await
                .unwrap()
                .into_inner();
            let app = self
                .catalog
                .install_app(InstallAppRequest {
                    site_id: site.site_id.clone(),
                    app_key: "insight".to_owned(),
                    app_installation_id: String::new(),
                })
                .await
                .unwrap()
                .into_inner();
            sites.push(site.site_id);
            apps.push(app.app_installation_id);
        }
        (sites, apps)
    }

    async fn wait(&self, operation_id: &str) -> pb::Operation {
        let mut client = self.operator();
        for _ in 0..600 {
            let operation = client
                .get_operation(GetOperationRequest {
                    operation_id: operation_id.to_owned(),
                })
                .await
                .unwrap()
                .into_inner();
            if !matches!(
                operation.state(),
                pb::OperationState::Running | pb::OperationState::Aborting
            ) {
                return operation;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("operation {operation_id} did not finish");
    }
}

fn plan(kind: PlanKind, inputs: &[String]) -> CreatePlanRequest {
    CreatePlanRequest {
        kind: kind as i32,
        inputs: inputs.to_vec(),
        reason: "test".to_owned(),
        ticket: "INC-7".to_owned(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_plan_over_many_batches_is_the_plan_made_in_one() {
    for backend in testing::backends() {
        let mut suite = suite_with(
            backend,
            OrchestratorSettings {
                services: vec!["catalog".to_owned()],
                plan_batch: 2,
                ..OrchestratorSettings::default()
            },
        )
        .await;
        let (sites, apps) = suite.sites(7).await;
        let unbatched = orchestrator(
            backend,
            OrchestratorSettings {
                services: vec!["catalog".to_owned()],
                plan_batch: 1000,
                ..OrchestratorSettings::default()
            },
            TestClock::new(),
            suite.catalog_service.server.url(),
        )
        .await;
        // Errors of every kind the batches must carry across: an app installation in a
        // site plan, an input listed twice (in different batches), an unknown site.
        let mut inputs = sites.clone();
        inputs.insert(3, apps[0].clone());
        inputs.push(sites[1].clone());
        inputs.push(micros_platform::ids::SiteId::new().to_string());
        let request = plan(PlanKind::DeleteSites, &inputs);

        let batched = suite.made(request.clone()).await;
        let whole = principal_of(&unbatched, "alice", &[Role::Operator])
            .create_plan(request)
            .await
            .unwrap()
            .into_inner();

        let targets = |made: &pb::Plan| -> Vec<String> {
            made.targets
                .iter()
                .map(|target| target.site_id.clone())
                .collect()
        };
        let errors = |made: &pb::Plan| -> Vec<(String, String)> {
            made.errors
                .iter()
                .map(|error| (error.input.clone(), error.reason.clone()))
                .collect()
        };
        assert_eq!(
            targets(&batched),
            sites,
            "{backend:?}: every site, in input order"
        );
        assert_eq!(
            errors(&batched),
            vec![
                (apps[0].clone(), "WRONG_KIND".to_owned()),
                (sites[1].clone(), "DUPLICATE_INPUT".to_owned()),
                (inputs[9].clone(), "NOT_FOUND".to_owned()),
            ]
        );
        assert_eq!(targets(&batched), targets(&whole));
        assert_eq!(errors(&batched), errors(&whole));
        assert_eq!(batched.blast_radius, whole.blast_radius);
        assert_eq!(
            batched.blast_radius.as_ref().map(|blast| blast.sites),
            Some(7)
        );
        assert!(
            batched
                .blast_radius
                .as_ref()
                .is_some_and(|blast| blast.rows > 7)
        );
        assert_eq!(batched.fingerprint, whole.fingerprint);

        unbatched.stop().await;
        suite.orchestrator_service.stop().await;
        suite.catalog_service.stop().await;
    }
}

#[tokio::test]
async fn an_id_and_its_url_are_one_target_and_the_second_is_named_as_the_duplicate() {
    let mut suite = suite(Backend::Sqlite, 100).await;
    let (sites, _) = suite.sites(3).await;
    let url = "https://site-1.example.com".to_owned();
    let inputs = [
        sites[0].clone(),
        sites[1].clone(),
        url.clone(),
        sites[2].clone(),
    ];
    let made = suite
        .operator()
        .create_plan(plan(PlanKind::DeleteSites, &inputs))
        .await
        .expect("the duplicate is a plan error, not a failed call")
        .into_inner();
    let targets: Vec<&str> = made.targets.iter().map(|t| t.site_id.as_str()).collect();
    assert_eq!(
        targets,
        sites.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(made.errors.len(), 1, "{:?}", made.errors);
    assert_eq!(
        (
            made.errors[0].input.as_str(),
            made.errors[0].reason.as_str()
        ),
        (url.as_str(), "DUPLICATE_TARGET")
    );
    assert!(
        made.errors[0].message.contains(&sites[1]),
        "{}",
        made.errors[0].message
    );
    assert_eq!(made.blast_radius.unwrap().sites, 3);
}

#[tokio::test]
async fn site_ids_fed_to_an_app_uninstall_make_a_plan_that_cannot_be_applied() {
    for backend in testing::backends() {
        let mut suite = suite(backend, 10).await;
        let (sites, _) = suite.sites(3).await;
        let made = suite
            .made(CreatePlanRequest {
                app_key: "insight".to_owned(),
                ..plan(PlanKind::UninstallApp, &sites)
            })
            .await;
        assert!(
            made.targets.is_empty(),
            "{backend:?}: zero app installations"
        );
        assert_eq!(made.errors.len(), 3);
        assert!(made.errors.iter().all(|error| error.reason == "WRONG_KIND"));
        assert!(
            made.errors[0].message.contains("is a site"),
            "{}",
            made.errors[0].message
        );
        let refused = suite
            .operator()
            .apply_plan(ApplyPlanRequest {
                plan_id: made.plan_id.clone(),
                fingerprint: made.fingerprint.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition);
        let info = refused.get_details_error_info().unwrap();
        assert_eq!(info.reason, "PLAN_HAS_ERRORS");
        assert!(info.metadata["first_error"].contains(&sites[0]));
        suite.orchestrator_service.stop().await;
        suite.catalog_service.stop().await;
    }
}

#[tokio::test]
async fn approval_is_needed_above_the_threshold_and_never_from_the_requester() {
    let mut suite = suite(Backend::Sqlite, 2).await;
    let (sites, _) = suite.sites(3).await;
    let made = suite.made(plan(PlanKind::DeleteSites, &sites)).await;
    assert!(made.requires_approval);
    assert!(made.errors.is_empty());
    let apply = ApplyPlanRequest {
        plan_id: made.plan_id.clone(),
        fingerprint: made.fingerprint.clone(),
    };
    let unapproved = suite
        .operator()
        .apply_plan(apply.clone())
        .await
        .unwrap_err();
    assert_eq!(
        unapproved.get_details_error_info().unwrap().reason,
        "APPROVAL_REQUIRED"
    );

    let self_approval = suite
        .as_principal("alice", &[Role::Operator, Role::Approver])
        .approve_plan(ApprovePlanRequest {
            plan_id: made.plan_id.clone(),
            fingerprint: made.fingerprint.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(self_approval.code(), Code::PermissionDenied);
    assert_eq!(
        self_approval.get_details_error_info().unwrap().reason,
        "SELF_APPROVAL"
    );

    let stale = suite
        .approver()
        .approve_plan(ApprovePlanRequest {
            plan_id: made.plan_id.clone(),
            fingerprint: "0".repeat(32),
        })
        .await
        .unwrap_err();
    assert_eq!(
        stale.get_details_error_info().unwrap().reason,
        "PLAN_FINGERPRINT_MISMATCH"
    );

    suite
        .approver()
        .approve_plan(ApprovePlanRequest {
            plan_id: made.plan_id.clone(),
            fingerprint: made.fingerprint.clone(),
        })
        .await
        .unwrap();
    let stale_apply = suite
        .operator()
        .apply_plan(ApplyPlanRequest {
            fingerprint: "f".repeat(32),
            ..apply.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(
        stale_apply.get_details_error_info().unwrap().reason,
        "PLAN_FINGERPRINT_MISMATCH"
    );
    let operation = suite
        .operator()
        .apply_plan(apply.clone())
        .await
        .unwrap()
        .into_inner();
    let done = suite.wait(&operation.operation_id).await;
    assert_eq!(
        done.state(),
        pb::OperationState::Succeeded,
        "{:?}",
        done.halt_reason
    );
    assert_eq!(done.targets_done, 3);
    let again = suite.operator().apply_plan(apply).await.unwrap_err();
    assert_eq!(
        again.get_details_error_info().unwrap().reason,
        "PLAN_ALREADY_APPLIED"
    );
}

#[tokio::test]
async fn plans_expire() {
    let mut suite = suite(Backend::Sqlite, 10).await;
    let (sites, _) = suite.sites(1).await;
    let made = suite.made(plan(PlanKind::DeleteSites, &sites)).await;
    suite
        .orchestrator_service
        .clock
        .advance(Duration::from_secs(2 * 3600));
    let expired = suite
        .operator()
        .apply_plan(ApplyPlanRequest {
            plan_id: made.plan_id,
            fingerprint: made.fingerprint,
        })
        .await
        .unwrap_err();
    assert_eq!(
        expired.get_details_error_info().unwrap().reason,
        "PLAN_EXPIRED"
    );
}

#[tokio::test]
async fn deletion_runs_in_waves_and_a_restore_brings_every_site_back_verified() {
    for backend in testing::backends() {
        let mut suite = suite(backend, 100).await;
        let (sites, _) = suite.sites(9).await;
        let made = suite
            .made(CreatePlanRequest {
                expected_count: 9,
                expected_kind: pb::ExpectedKind::Site as i32,
                ..plan(PlanKind::DeleteSites, &sites)
            })
            .await;
        suite.approved(&made).await;
        let operation = suite.apply(&made).await;
        assert_eq!(
            operation.waves, 4,
            "canary 1, then 2, 4 and the last 2 (max_wave 4)"
        );
        let deleted = suite.wait(&operation.operation_id).await;
        assert_eq!(
            deleted.state(),
            pb::OperationState::Succeeded,
            "{backend:?}: {}",
            deleted.halt_reason
        );
        suite
            .assert_sites(&sites, micros_proto::catalog::v1::SiteState::Deleted)
            .await;

        let restore = suite
            .made(CreatePlanRequest {
                undo_operation_id: operation.operation_id.clone(),
                ..plan(PlanKind::RestoreSites, &[])
            })
            .await;
        assert_eq!(
            restore.targets.len(),
            9,
            "the targets come from the deleting operation"
        );
        suite.approved(&restore).await;
        let restoring = suite.applied(&restore).await;
        let report = suite
            .operator()
            .get_report(pb::GetReportRequest {
                operation_id: restoring.operation_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(report.percent_restored, 100.0);
        assert_eq!(report.confidence, 1.0);
        assert!(
            report.markdown.contains("Restore of 9 sites"),
            "{}",
            report.markdown
        );
    }
}

#[tokio::test]
async fn restoring_an_operation_leaves_out_its_sites_that_are_active_again() {
    let mut suite = suite(Backend::Sqlite, 100).await;
    let (sites, _) = suite.sites(3).await;
    let made = suite.made(plan(PlanKind::DeleteSites, &sites)).await;
    suite.approved(&made).await;
    let deleting = suite.applied(&made).await;

    let restore_of = |inputs: &[String]| CreatePlanRequest {
        undo_operation_id: deleting.operation_id.clone(),
        ..plan(PlanKind::RestoreSites, inputs)
    };
    let first = suite.made(restore_of(&sites[..1])).await;
    suite.applied(&first).await;

    let rest = suite.made(restore_of(&[])).await;
    assert!(rest.errors.is_empty(), "{:?}", rest.errors);
    assert_eq!(rest.already_active, vec![sites[0].clone()]);
    let targets: Vec<&str> = rest.targets.iter().map(|t| t.site_id.as_str()).collect();
    assert_eq!(targets, vec![sites[1].as_str(), sites[2].as_str()]);
    suite.applied(&rest).await;
    suite
        .assert_sites(&sites, micros_proto::catalog::v1::SiteState::Active)
        .await;

    let nothing_left = suite.made(restore_of(&[])).await;
    assert!(nothing_left.targets.is_empty() && nothing_left.errors.is_empty());
    assert_eq!(nothing_left.already_active, sites);

    let named = suite.made(restore_of(&sites[..1])).await;
    assert_eq!(
        named.errors.first().map(|error| error.reason.as_str()),
        Some("WRONG_STATE"),
        "a site the operator names is refused, not skipped, when it is active"
    );
}

#[tokio::test]
async fn a_restore_takes_no_site_another_operation_deleted_since_nor_an_unknown_operation() {
    let mut suite = suite(Backend::Sqlite, 100).await;
    let (sites, _) = suite.sites(2).await;
    let first = suite
        .applied(&suite.made(plan(PlanKind::DeleteSites, &sites)).await)
        .await;
    let restore_of = |operation: &str, inputs: &[String]| CreatePlanRequest {
        undo_operation_id: operation.to_owned(),
        ..plan(PlanKind::RestoreSites, inputs)
    };
    suite
        .applied(
            &suite
                .made(restore_of(&first.operation_id, &sites[..1]))
                .await,
        )
        .await;
    let second = suite
        .applied(&suite.made(plan(PlanKind::DeleteSites, &sites[..1])).await)
        .await;

    let stale = suite.made(restore_of(&first.operation_id, &[])).await;
    let targets: Vec<&str> = stale.targets.iter().map(|t| t.site_id.as_str()).collect();
    assert_eq!(targets, vec![sites[1].as_str()]);
    assert_eq!(stale.errors.len(), 1, "{:?}", stale.errors);
    assert_eq!(
        (
            stale.errors[0].input.as_str(),
            stale.errors[0].reason.as_str()
        ),
        (sites[0].as_str(), "DELETED_BY_ANOTHER_OPERATION")
    );
    assert!(
        stale.errors[0].message.contains(&second.operation_id),
        "{}",
        stale.errors[0].message
    );

    let unknown = suite
        .operator()
        .create_plan(restore_of(
            &micros_platform::ids::OperationId::new().to_string(),
            &[],
        ))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown}");
    assert_eq!(
        unknown.get_details_error_info().unwrap().reason,
        "OPERATION_NOT_FOUND"
    );
}

#[tokio::test]
async fn abort_undoes_what_the_operation_already_deleted() {
    let mut suite = suite(Backend::Sqlite, 100).await;
    let (sites, _) = suite.sites(12).await;
    let made = suite.made(plan(PlanKind::DeleteSites, &sites)).await;
    suite.approved(&made).await;
    let operation = suite.apply(&made).await;
    let paused = suite
        .operator()
        .pause_operation(OperationControlRequest {
            operation_id: operation.operation_id.clone(),
            reason: "look first".to_owned(),
        })
        .await
        .expect("five waves take longer than one call")
        .into_inner();
    assert_eq!(paused.state(), pb::OperationState::Paused);
    let resumed_by_someone_else = suite
        .as_principal("viewer", &[Role::Viewer])
        .resume_operation(OperationControlRequest {
            operation_id: operation.operation_id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(resumed_by_someone_else.code(), Code::PermissionDenied);
    suite
        .operator()
        .abort_operation(OperationControlRequest {
            operation_id: operation.operation_id.clone(),
            reason: "wrong list".to_owned(),
        })
        .await
        .unwrap();
    let final_state = suite.wait(&operation.operation_id).await;
    assert_eq!(
        final_state.state(),
        pb::OperationState::Aborted,
        "{}",
        final_state.halt_reason
    );
    suite
        .assert_sites(&sites, micros_proto::catalog::v1::SiteState::Active)
        .await;
    let resume_aborted = suite
        .operator()
        .resume_operation(OperationControlRequest {
            operation_id: operation.operation_id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        resume_aborted.get_details_error_info().unwrap().reason,
        "INVALID_OPERATION_TRANSITION"
    );
}

/// What the catalog says each of `sites` is now.
async fn site_states(suite: &Suite, sites: &[String]) -> Vec<SiteState> {
    suite
        .resolved(sites)
        .await
        .iter()
        .map(|result| result.site_state())
        .collect()
}

/// Polls the catalog until `sites` are in `states` (the reaper runs on a timer of real
/// time), for at most ten seconds; answers the states last seen.
async fn until_states(suite: &Suite, sites: &[String], states: &[SiteState]) -> Vec<SiteState> {
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = site_states(suite, sites).await;
        if seen == states {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen
}

impl Suite {
    /// Deletes `sites` through a plan the operator applies, to the end.
    async fn delete_sites(&self, sites: &[String]) {
        let made = self.made(plan(PlanKind::DeleteSites, sites)).await;
        self.applied(&made).await;
    }
}

#[tokio::test]
async fn the_reaper_purges_expired_sites_but_never_a_held_one() {
    const DAY: Duration = Duration::from_secs(24 * 3600);
    let mut suite = suite_with(
        Backend::Sqlite,
        OrchestratorSettings {
            services: vec!["catalog".to_owned()],
            reaper_interval: Duration::from_millis(100),
            ..OrchestratorSettings::default()
        },
    )
    .await;
    let (mut sites, _) = suite.sites(4).await;
    // A witness deleted 20 days before the others: its purge is the observable sign that
    // the reaper ran while the others were deleted but not yet expired.
    let witness = sites.remove(0);
    suite.delete_sites(std::slice::from_ref(&witness)).await;
    let clock = suite.orchestrator_service.clock.clone();
    clock.advance(20 * DAY);
    suite.delete_sites(&sites).await;
    let mut lifecycle = Lifecycle::of(&suite.catalog_service);
    lifecycle.set_hold(site_target(&sites[0]), true).await;

    clock.advance(11 * DAY);
    assert_eq!(
        until_states(&suite, std::slice::from_ref(&witness), &[SiteState::Purged]).await,
        vec![SiteState::Purged],
        "the reaper purges the witness, 31 days after its deletion"
    );
    let mut operator = suite.operator();
    let operations = operator
        .list_operations(pb::ListOperationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .operations;
    for operation in &operations {
        suite.wait(&operation.operation_id).await;
    }
    assert_eq!(
        site_states(&suite, &sites).await,
        vec![SiteState::Deleted; 3],
        "the reaper's pass that purged the witness purged nothing before its retention"
    );

    clock.advance(20 * DAY);
    assert_eq!(
        until_states(
            &suite,
            &sites,
            &[SiteState::Deleted, SiteState::Purged, SiteState::Purged]
        )
        .await,
        vec![SiteState::Deleted, SiteState::Purged, SiteState::Purged],
        "the held site stays"
    );
}

#[tokio::test]
async fn a_restore_drill_deletes_restores_and_verifies_every_wave() {
    for backend in testing::backends() {
        let mut suite = suite(backend, 100).await;
        let (sites, _) = suite.sites(7).await;
        let made = suite.made(plan(PlanKind::RestoreDrill, &sites)).await;
        assert!(made.errors.is_empty(), "{:?}", made.errors);
        suite.approved(&made).await;
        let done = suite.applied(&made).await;
        assert_eq!(done.targets_done, 7);
        suite
            .assert_sites(&sites, micros_proto::catalog::v1::SiteState::Active)
            .await;
        let report = suite
            .operator()
            .get_report(pb::GetReportRequest {
                operation_id: done.operation_id,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(report.confidence, 1.0, "{}", report.markdown);
        assert!(
            report.markdown.contains("soft_delete in catalog")
                && report.markdown.contains("restore in catalog")
        );
    }
}
