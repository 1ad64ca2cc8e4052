//! The operator's daily path through the orchestrator, against all five services: holds
//! set in every service stop purges and the reaper (as does a hold in any one service);
//! the report carries each site's outage window and each step's timing; the newest
//! operation is listed first; a caller's mistake a service refused keeps that service's
//! reason; a site plan counts the apps it takes down; undoing a deletion needs no
//! approval, whatever its size.

mod support;

use std::time::Duration;

use micros_orchestrator::OrchestratorSettings;
use micros_platform::{
    auth::Role,
    ids::{OperationId, SiteId},
    lifecycle::{Target, grpc::target_to_proto},
    testing,
};
use micros_proto::{
    catalog::v1::SiteState,
    lifecycle::v1::{
        Justification, SetHoldRequest, TenantState, tenant_lifecycle_client::TenantLifecycleClient,
    },
    orchestrator::v1::{
        self as pb, ApplyPlanRequest, ApprovePlanRequest, CreatePlanRequest, ListOperationsRequest,
        ListSiteHoldsRequest, PlanKind, SetSiteHoldRequest,
        orchestrator_service_client::OrchestratorServiceClient,
    },
};
use support::{Suite, agreed_state, orchestrator_client, settle};
use tonic_types::StatusExt;

type Client = OrchestratorServiceClient<micros_platform::client::ServiceChannel>;

fn request(kind: PlanKind, inputs: &[String]) -> CreatePlanRequest {
    CreatePlanRequest {
        kind: kind as i32,
        inputs: inputs.to_vec(),
        reason: "operator test".to_owned(),
        ticket: "OPS-12".to_owned(),
        ..Default::default()
    }
}

/// Plans, approves when needed (bob), applies and waits; the operation as it ended.
async fn run(alice: &mut Client, bob: &mut Client, made: CreatePlanRequest) -> pb::Operation {
    let plan = alice.create_plan(made).await.unwrap().into_inner();
    assert!(plan.errors.is_empty(), "{:?}", plan.errors);
    if plan.requires_approval {
        bob.approve_plan(ApprovePlanRequest {
            plan_id: plan.plan_id.clone(),
            fingerprint: plan.fingerprint.clone(),
        })
        .await
        .unwrap();
    }
    let operation = alice
        .apply_plan(ApplyPlanRequest {
            plan_id: plan.plan_id,
            fingerprint: plan.fingerprint,
        })
        .await
        .unwrap()
        .into_inner();
    settle(alice, &operation.operation_id).await
}

async fn start(
    backend: micros_platform::store::Backend,
    reaper: Duration,
) -> (
    Suite,
    testing::TestService<micros_orchestrator::Orchestrator>,
    Client,
    Client,
) {
    let suite = Suite::start(backend).await;
    let orchestrator = suite
        .orchestrator(
            backend,
            OrchestratorSettings {
                reaper_interval: reaper,
                ..OrchestratorSettings::default()
            },
        )
        .await;
    let url = orchestrator.server.url();
    let alice = orchestrator_client(&url, "alice", &[Role::Operator, Role::Admin]);
    let bob = orchestrator_client(&url, "bob", &[Role::Approver]);
    (suite, orchestrator, alice, bob)
}

/// The purge operations the reaper started so far, with the sites each targets.
async fn reaped(alice: &mut Client) -> Vec<Vec<String>> {
    let operations = alice
        .list_operations(ListOperationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .operations;
    let mut purges = Vec::new();
    for operation in operations
        .iter()
        .filter(|operation| operation.kind() == PlanKind::PurgeSites)
    {
        settle(alice, &operation.operation_id).await;
        let report = alice
            .get_report(pb::GetReportRequest {
                operation_id: operation.operation_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        purges.push(report.sites.into_iter().map(|site| site.site_id).collect());
    }
    purges
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hold_in_any_service_stops_purge_plans_and_the_reaper() {
    for backend in testing::backends() {
        let (suite, orchestrator, mut alice, mut bob) =
            start(backend, Duration::from_millis(200)).await;
        let seeded = suite.seed(&orchestrator.server.url(), "held", 3).await;
        let sites: Vec<String> = seeded.iter().map(|site| site.site_id.clone()).collect();
        let [held, held_in_media, free] = [0, 1, 2].map(|index| sites[index].clone());
        let deleted = run(&mut alice, &mut bob, request(PlanKind::DeleteSites, &sites)).await;
        assert_eq!(deleted.state(), pb::OperationState::Succeeded);

        let hold = alice
            .set_site_hold(SetSiteHoldRequest {
                site: "https://held-0.example.net".to_owned(),
                hold: true,
                reason: "litigation".to_owned(),
                ticket: "LEGAL-7".to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(hold.site_id, held);
        assert_eq!(hold.principal, "alice");
        for (service, outcomes) in suite
            .describe(&[Target::Site(SiteId::parse(&held).unwrap())])
            .await
        {
            assert!(outcomes[0].hold, "held in {service}");
        }
        // A hold set in one service alone (by whatever means) counts as much.
        TenantLifecycleClient::new(suite.channel("media", "legal", &[Role::Lifecycle]))
            .set_hold(SetHoldRequest {
                targets: vec![target_to_proto(&Target::Site(
                    SiteId::parse(&held_in_media).unwrap(),
                ))],
                hold: true,
                operation_id: OperationId::new().to_string(),
                justification: Some(Justification {
                    reason: "media-only hold".to_owned(),
                    ticket: String::new(),
                }),
                lease_token: 0,
            })
            .await
            .unwrap();
        let refused = alice
            .set_site_hold(SetSiteHoldRequest {
                site: free.clone(),
                hold: true,
                reason: String::new(),
                ticket: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);

        suite.clock.advance(Duration::from_secs(31 * 86_400));
        let plan = alice
            .create_plan(request(PlanKind::PurgeSites, &sites))
            .await
            .unwrap()
            .into_inner();
        let on_hold: Vec<&str> = plan
            .errors
            .iter()
            .filter(|error| error.reason == "ON_HOLD")
            .map(|error| error.input.as_str())
            .collect();
        assert_eq!(on_hold, vec![held.as_str(), held_in_media.as_str()]);
        assert!(
            plan.errors
                .iter()
                .any(|error| error.message.contains("media"))
        );

        // The reaper purges only the free site.
        let mut purges = Vec::new();
        for _ in 0..300 {
            purges = reaped(&mut alice).await;
            if !purges.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(purges, vec![vec![free.clone()]]);
        let snapshot = suite.snapshot(&sites).await;
        assert_eq!(agreed_state(&snapshot, &free), Ok(TenantState::Purged));
        assert_eq!(agreed_state(&snapshot, &held), Ok(TenantState::Deleted));
        assert_eq!(
            agreed_state(&snapshot, &held_in_media),
            Ok(TenantState::Deleted)
        );

        let listed = alice
            .list_site_holds(ListSiteHoldsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .holds;
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].site_id.as_str(), listed[0].reason.as_str()),
            (held.as_str(), "litigation")
        );

        // Released, the held site goes at the reaper's next pass.
        alice
            .set_site_hold(SetSiteHoldRequest {
                site: held.clone(),
                hold: false,
                reason: "case closed".to_owned(),
                ticket: "LEGAL-7".to_owned(),
            })
            .await
            .unwrap();
        for _ in 0..300 {
            if agreed_state(&suite.snapshot(std::slice::from_ref(&held)).await, &held)
                == Ok(TenantState::Purged)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let snapshot = suite.snapshot(&sites).await;
        assert_eq!(agreed_state(&snapshot, &held), Ok(TenantState::Purged));
        assert_eq!(
            agreed_state(&snapshot, &held_in_media),
            Ok(TenantState::Deleted)
        );
        assert!(
            alice
                .list_site_holds(ListSiteHoldsRequest::default())
                .await
                .unwrap()
                .into_inner()
                .holds
                .is_empty()
        );
        orchestrator.stop().await;
        suite.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_app_of_a_site_with_nothing_in_some_services_is_uninstalled() {
    for backend in testing::backends() {
        let (suite, orchestrator, mut alice, mut bob) = start(backend, Duration::ZERO).await;
        // Provisioned only: media and product-data hold nothing of the site yet.
        let provisioned = alice
            .provision_site(support::provision_request(
                "Fresh".to_owned(),
                "fresh.example.net".to_owned(),
                "eu-west",
                &["insight"],
            ))
            .await
            .unwrap()
            .into_inner();
        let site = SiteId::parse(&provisioned.site_id).unwrap();
        let absent_in: Vec<String> = suite
            .describe(&[Target::Site(site)])
            .await
            .into_iter()
            .filter(|(_, outcomes)| outcomes[0].state() == TenantState::Absent)
            .map(|(service, _)| service)
            .collect();
        assert!(
            !absent_in.is_empty(),
            "some service holds nothing of it yet"
        );
        let uninstalled = run(
            &mut alice,
            &mut bob,
            CreatePlanRequest {
                app_key: "insight".to_owned(),
                ..request(PlanKind::UninstallApp, &provisioned.app_installation_ids)
            },
        )
        .await;
        assert_eq!(
            uninstalled.state(),
            pb::OperationState::Succeeded,
            "{backend:?}, absent in {absent_in:?}: {}",
            uninstalled.halt_reason
        );
        orchestrator.stop().await;
        suite.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_hold_changes_take_turns_and_every_service_ends_on_the_same_answer() {
    for backend in testing::backends() {
        let (suite, orchestrator, alice, _bob) = start(backend, Duration::ZERO).await;
        let seeded = suite.seed(&orchestrator.server.url(), "racing", 1).await;
        let site = seeded[0].site_id.clone();
        let target = [Target::Site(SiteId::parse(&site).unwrap())];
        for round in 0..3 {
            let racers = (0..6).map(|racer| {
                let (mut client, site) = (alice.clone(), site.clone());
                async move {
                    client
                        .set_site_hold(SetSiteHoldRequest {
                            site,
                            hold: racer % 2 == 0,
                            reason: format!("round {round}, racer {racer}"),
                            ticket: String::new(),
                        })
                        .await
                }
            });
            let answers = futures::future::join_all(racers).await;
            let mut changed = 0;
            for answer in &answers {
                match answer {
                    Ok(_) => changed += 1,
                    Err(status) => {
                        assert_eq!(status.code(), tonic::Code::Aborted, "{status}");
                        assert_eq!(
                            status.get_details_error_info().unwrap().reason,
                            "HOLD_CHANGE_IN_FLIGHT"
                        );
                    }
                }
            }
            assert!(changed >= 1, "{answers:?}");
            let holds: Vec<(String, bool)> = suite
                .describe(&target)
                .await
                .into_iter()
                .map(|(service, outcomes)| (service, outcomes[0].hold))
                .collect();
            let held = holds[0].1;
            assert!(
                holds.iter().all(|(_, hold)| *hold == held),
                "round {round}: {holds:?}"
            );
            let listed = alice
                .clone()
                .list_site_holds(ListSiteHoldsRequest::default())
                .await
                .unwrap()
                .into_inner()
                .holds
                .iter()
                .any(|hold| hold.site_id == site);
            assert_eq!(
                listed, held,
                "round {round}: the orchestrator's list agrees"
            );
        }
        orchestrator.stop().await;
        suite.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reports_lists_errors_and_plans_as_an_operator_needs_them() {
    for backend in testing::backends() {
        let (suite, orchestrator, mut alice, mut bob) = start(backend, Duration::ZERO).await;
        let seeded = suite.seed(&orchestrator.server.url(), "daily", 7).await;
        let sites: Vec<String> = seeded.iter().map(|site| site.site_id.clone()).collect();

        // A site plan counts the apps it takes down with its sites.
        let plan = alice
            .create_plan(request(PlanKind::DeleteSites, &sites))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(plan.blast_radius.unwrap().app_installations, 7);

        let deleted = run(&mut alice, &mut bob, request(PlanKind::DeleteSites, &sites)).await;
        assert_eq!(deleted.state(), pb::OperationState::Succeeded);
        // Undoing it needs nobody's approval, even above the threshold.
        let restore_plan = alice
            .create_plan(CreatePlanRequest {
                undo_operation_id: deleted.operation_id.clone(),
                ..request(PlanKind::RestoreSites, &[])
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!restore_plan.requires_approval);
        let restored = run(
            &mut alice,
            &mut bob,
            CreatePlanRequest {
                undo_operation_id: deleted.operation_id.clone(),
                ..request(PlanKind::RestoreSites, &[])
            },
        )
        .await;
        assert_eq!(restored.state(), pb::OperationState::Succeeded);

        let listed = alice
            .list_operations(ListOperationsRequest {
                page_size: 1,
                page_token: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            listed.operations[0].operation_id, restored.operation_id,
            "newest first"
        );
        let older = alice
            .list_operations(ListOperationsRequest {
                page_size: 1,
                page_token: listed.next_page_token,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(older.operations[0].operation_id, deleted.operation_id);

        let report = alice
            .get_report(pb::GetReportRequest {
                operation_id: restored.operation_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(report.undone_operation_id, deleted.operation_id);
        assert!(
            report
                .markdown
                .contains(&format!("undoes operation `{}`", deleted.operation_id))
        );
        for site in &report.sites {
            let (down, back) = (site.deleted_at.unwrap(), site.restored_at.unwrap());
            assert!(
                (down.seconds, down.nanos) <= (back.seconds, back.nanos),
                "{}: down {down:?}, back {back:?}",
                site.site_id
            );
            assert!(
                report
                    .markdown
                    .contains(&format!("({}): active; down ", site.site_id))
            );
        }
        for service in support::SERVICES {
            let steps: Vec<&pb::WaveStep> = report
                .steps
                .iter()
                .filter(|step| step.service == service)
                .collect();
            assert!(!steps.is_empty(), "{service} has steps");
            for step in steps {
                let (start, end) = (step.start_time.unwrap(), step.end_time.unwrap());
                assert!((start.seconds, start.nanos) <= (end.seconds, end.nanos));
                assert!(step.seconds >= 0.0 && step.wave >= 1);
            }
        }

        // The orchestrator's own view of a site uses the catalog's state names.
        let site = alice
            .get_site(pb::GetSiteRequest {
                site: sites[0].clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(site.state(), SiteState::Active);
        assert_eq!(site.app_installations, 1);

        // A caller's mistake refused downstream keeps its reason and names the service.
        let refused = alice
            .provision_site(pb::ProvisionSiteRequest {
                name: "Nowhere".to_owned(),
                url: "nowhere.example.net".to_owned(),
                region: "mars-north".to_owned(),
                products: vec!["jira".to_owned()],
                admin: Some(pb::Contact {
                    email: "admin@nowhere.example".to_owned(),
                    name: String::new(),
                    kind: "admin".to_owned(),
                }),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused}");
        let info = refused.get_details_error_info().unwrap();
        assert_eq!(info.reason, "UNKNOWN_REGION");
        assert_eq!(info.metadata["service"], "catalog");
        orchestrator.stop().await;
        suite.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_named_canary_goes_first_and_its_rollback_is_rehearsed() {
    for backend in testing::backends() {
        let (suite, orchestrator, mut alice, mut bob) = start(backend, Duration::ZERO).await;
        let seeded = suite.seed(&orchestrator.server.url(), "canary", 4).await;
        let sites: Vec<String> = seeded.iter().map(|site| site.site_id.clone()).collect();
        let ours = sites[3].clone();

        let typo = alice
            .create_plan(CreatePlanRequest {
                canary: vec!["site_not-in-the-plan".to_owned()],
                ..request(PlanKind::DeleteSites, &sites)
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            typo.errors
                .iter()
                .any(|error| error.reason == "CANARY_NOT_IN_PLAN")
        );
        let restore_with_canary = alice
            .create_plan(CreatePlanRequest {
                canary: vec![ours.clone()],
                undo_operation_id: OperationId::new().to_string(),
                ..request(PlanKind::RestoreSites, &[])
            })
            .await
            .unwrap_err();
        assert_eq!(
            restore_with_canary.get_details_error_info().unwrap().reason,
            "CANARY_UNEXPECTED"
        );

        let plan = alice
            .create_plan(CreatePlanRequest {
                canary: vec![ours.clone()],
                ..request(PlanKind::DeleteSites, &sites)
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(plan.targets[0].input, ours, "the named canary goes first");
        let deleted = run(
            &mut alice,
            &mut bob,
            CreatePlanRequest {
                canary: vec![ours.clone()],
                ..request(PlanKind::DeleteSites, &sites)
            },
        )
        .await;
        assert_eq!(
            deleted.state(),
            pb::OperationState::Succeeded,
            "{}",
            deleted.halt_reason
        );
        let rehearsal = deleted.rehearsal.unwrap();
        assert_eq!(rehearsal.state(), pb::RehearsalState::Done);
        assert_eq!(rehearsal.canary_targets, 1);
        assert!(rehearsal.seconds > 0.0);

        // Every service saw the canary deleted, restored and deleted again before any
        // other site: its first applied call names the canary alone, and the rehearsal's
        // second delete carries its own call key.
        for service in support::SERVICES {
            let audit = suite.audit(service, &deleted.operation_id).await;
            let applied: Vec<&testing::AuditEntry> = audit
                .iter()
                .filter(|entry| entry.outcome == "applied")
                .collect();
            assert_eq!(
                applied[0].targets,
                vec![ours.clone()],
                "{service}: {applied:?}"
            );
            let again = applied
                .iter()
                .position(|entry| entry.call_key == "rehearsal")
                .unwrap_or_else(|| panic!("{service} deleted the canary again: {applied:?}"));
            assert_eq!(applied[again].targets, vec![ours.clone()]);
            assert!(
                applied[again + 1..]
                    .iter()
                    .all(|entry| !entry.targets.contains(&ours)),
                "{service}: the other waves come after the rehearsal"
            );
        }
        let report = alice
            .get_report(pb::GetReportRequest {
                operation_id: deleted.operation_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            report.markdown.contains("## Rollback rehearsal")
                && report
                    .markdown
                    .contains("verified against the fingerprints recorded at its deletion"),
            "{}",
            report.markdown
        );
        let snapshot = suite.snapshot(&sites).await;
        for site in &sites {
            assert_eq!(agreed_state(&snapshot, site), Ok(TenantState::Deleted));
        }
        orchestrator.stop().await;
        suite.stop().await;
    }
}
