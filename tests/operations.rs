//! Operations meeting and stopping, through gRPC only, against all five services with the
//! orchestrator's calls going through gates a test can cut (a service down, an answer
//! lost): site leases refuse an overlapping apply naming the holder; an abort with a
//! service down leaves no site deleted anywhere; a restore racing a delete never leaves a
//! site half-deleted; a stale plan ends with nothing changed.

mod support;

use std::collections::BTreeMap;

use micros_orchestrator::OrchestratorSettings;
use micros_platform::testing;
use micros_proto::{
    lifecycle::v1::TenantState,
    orchestrator::v1::{
        self as pb, ApplyPlanRequest, ApprovePlanRequest, CreatePlanRequest,
        OperationControlRequest, PlanKind, orchestrator_service_client::OrchestratorServiceClient,
    },
};
use support::{Gate, Snapshot, Suite, agreed_state, check_sites, orchestrator_client, settle};
use tonic::Code;
use tonic_types::StatusExt;

type Client = OrchestratorServiceClient<micros_platform::client::ServiceChannel>;

fn request(kind: PlanKind, inputs: &[String]) -> CreatePlanRequest {
    CreatePlanRequest {
        kind: kind as i32,
        inputs: inputs.to_vec(),
        reason: "operations test".to_owned(),
        ticket: "OPS-9".to_owned(),
        ..Default::default()
    }
}

/// A plan made by alice and approved by bob.
async fn approved_plan(alice: &mut Client, bob: &mut Client, made: CreatePlanRequest) -> pb::Plan {
    let plan = alice.create_plan(made).await.unwrap().into_inner();
    assert!(plan.errors.is_empty(), "{:?}", plan.errors);
    bob.approve_plan(ApprovePlanRequest {
        plan_id: plan.plan_id.clone(),
        fingerprint: plan.fingerprint.clone(),
    })
    .await
    .unwrap();
    plan
}

async fn apply(client: &mut Client, plan: &pb::Plan) -> Result<pb::Operation, tonic::Status> {
    client
        .apply_plan(ApplyPlanRequest {
            plan_id: plan.plan_id.clone(),
            fingerprint: plan.fingerprint.clone(),
        })
        .await
        .map(tonic::Response::into_inner)
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

fn metadata(status: &tonic::Status, key: &str) -> String {
    status
        .get_details_error_info()
        .and_then(|info| info.metadata.get(key).cloned())
        .unwrap_or_default()
}

/// Waits until the catalog says `site` is `state` (an observable step of an operation).
async fn until_catalog(suite: &Suite, site: &str, state: TenantState) {
    for _ in 0..600 {
        let snapshot = suite.snapshot(&[site.to_owned()]).await;
        if snapshot[site]["catalog"].0 == state {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{site} never became {} in the catalog", state.as_str_name());
}

fn all_in(snapshot: &Snapshot, state: TenantState) -> Result<(), String> {
    for site in snapshot.keys() {
        let agreed = agreed_state(snapshot, site)?;
        if agreed != state {
            return Err(format!("{site} is {}", agreed.as_str_name()));
        }
    }
    Ok(())
}

struct World {
    suite: Suite,
    gates: BTreeMap<String, Gate>,
    orchestrator: testing::TestService<micros_orchestrator::Orchestrator>,
    alice: Client,
    bob: Client,
}

async fn world(backend: micros_platform::store::Backend) -> World {
    let suite = Suite::start(backend).await;
    let gates = suite.gates().await;
    let orchestrator = suite
        .orchestrator_through(
            backend,
            OrchestratorSettings {
                max_backoff: std::time::Duration::from_millis(200),
                reaper_interval: std::time::Duration::ZERO,
                ..OrchestratorSettings::default()
            },
            &gates,
        )
        .await;
    let url = orchestrator.server.url();
    World {
        alice: orchestrator_client(&url, "alice", &[micros_platform::auth::Role::Operator]),
        bob: orchestrator_client(&url, "bob", &[micros_platform::auth::Role::Approver]),
        suite,
        gates,
        orchestrator,
    }
}

impl World {
    async fn stop(self) {
        self.orchestrator.stop().await;
        self.suite.stop().await;
    }
}

/// DESIGN step 7's second half, and the race of issue 9: delete [X, Y]; a delete plan for
/// [Y, Z] made before; a restore undoing the first; the restore and the delete applied
/// at the same moment, while media is slow to answer (its gate closed, so whichever
/// runs first holds its sites). One of them is refused with SITES_BUSY naming the other,
/// or they run one after the other; never interleaved: every site ends in one state in
/// all five services with its data intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restore_racing_a_delete_never_interleaves() {
    const ROUNDS: usize = 6;
    for backend in testing::backends() {
        let mut world = world(backend).await;
        let url = world.orchestrator.server.url();
        let mut refused = 0;
        for round in 0..ROUNDS {
            let seeded = world.suite.seed(&url, &format!("race{round}"), 3).await;
            let [x, y, z] = [0, 1, 2].map(|index| seeded[index].site_id.clone());
            let all = vec![x.clone(), y.clone(), z.clone()];
            let before = world.suite.snapshot(&all).await;

            let second_delete = approved_plan(
                &mut world.alice,
                &mut world.bob,
                request(PlanKind::DeleteSites, &[y.clone(), z.clone()]),
            )
            .await;
            let first_delete = approved_plan(
                &mut world.alice,
                &mut world.bob,
                request(PlanKind::DeleteSites, &[x.clone(), y.clone()]),
            )
            .await;
            let first = apply(&mut world.alice, &first_delete).await.unwrap();
            assert_eq!(
                settle(&mut world.alice, &first.operation_id).await.state(),
                pb::OperationState::Succeeded
            );
            let restore = approved_plan(
                &mut world.alice,
                &mut world.bob,
                CreatePlanRequest {
                    undo_operation_id: first.operation_id.clone(),
                    ..request(PlanKind::RestoreSites, &[])
                },
            )
            .await;

            world.gates["media"].close();
            let (mut one, mut other) = (world.alice.clone(), world.alice.clone());
            let (restoring, deleting) =
                tokio::join!(apply(&mut one, &restore), apply(&mut other, &second_delete));
            world.gates["media"].open();
            for (result, rival) in [(&restoring, &deleting), (&deleting, &restoring)] {
                if let Err(status) = result {
                    assert_eq!(status.code(), Code::FailedPrecondition, "{status}");
                    assert_eq!(reason(status), "SITES_BUSY", "{status}");
                    let holder = rival.as_ref().expect("the rival holds the sites");
                    assert_eq!(
                        metadata(status, "holding_operation_id"),
                        holder.operation_id
                    );
                    assert!(metadata(status, "sites").contains(&y), "{status:?}");
                    refused += 1;
                }
            }
            assert!(
                restoring.is_ok() || deleting.is_ok(),
                "one of them runs: {restoring:?} {deleting:?}"
            );
            for operation in [&restoring, &deleting].into_iter().flatten() {
                let ended = settle(&mut world.alice, &operation.operation_id).await;
                assert!(
                    matches!(
                        ended.state(),
                        pb::OperationState::Succeeded | pb::OperationState::Aborted
                    ),
                    "{:?}: {}",
                    ended.state(),
                    ended.halt_reason
                );
            }
            let after = world.suite.snapshot(&all).await;
            check_sites(&before, &after)
                .unwrap_or_else(|problem| panic!("round {round}: {problem}"));
        }
        println!("{backend:?}: {ROUNDS} rounds, {refused} applies refused with SITES_BUSY");
        assert!(
            refused > 0,
            "the race was run: the rivals overlapped in time"
        );
        world.stop().await;
    }
}

/// Issue 9's second problem: media down during the canary wave of a 12-site deletion.
/// While the deletion holds its sites, another plan over them lists them busy and an
/// apply is refused naming the holder; an abort waits for media and then leaves no site
/// deleted anywhere; the sites are free again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_abort_with_a_service_down_leaves_no_site_deleted_anywhere() {
    for backend in testing::backends() {
        let mut world = world(backend).await;
        let url = world.orchestrator.server.url();
        let seeded = world.suite.seed(&url, "outage", 12).await;
        let sites: Vec<String> = seeded.iter().map(|site| site.site_id.clone()).collect();
        let before = world.suite.snapshot(&sites).await;
        let deletion = approved_plan(
            &mut world.alice,
            &mut world.bob,
            request(PlanKind::DeleteSites, &sites),
        )
        .await;
        let rival = approved_plan(
            &mut world.alice,
            &mut world.bob,
            request(PlanKind::DeleteSites, &sites[10..]),
        )
        .await;

        world.gates["media"].close();
        let deleting = apply(&mut world.alice, &deletion).await.unwrap();
        until_catalog(&world.suite, &sites[0], TenantState::Deleted).await;

        let refused = apply(&mut world.alice, &rival).await.unwrap_err();
        assert_eq!(reason(&refused), "SITES_BUSY", "{refused}");
        assert_eq!(
            metadata(&refused, "holding_operation_id"),
            deleting.operation_id
        );
        assert_eq!(metadata(&refused, "site_count"), "2");
        let busy = world
            .alice
            .create_plan(request(PlanKind::DeleteSites, &sites[1..3]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(busy.targets.len(), 0);
        assert_eq!(busy.errors.len(), 2);
        assert!(
            busy.errors
                .iter()
                .all(|problem| problem.reason == "SITE_BUSY"
                    && problem.message.contains(&deleting.operation_id)),
            "{:?}",
            busy.errors
        );

        let aborting = world
            .alice
            .abort_operation(OperationControlRequest {
                operation_id: deleting.operation_id.clone(),
                reason: "media is down".to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(aborting.state(), pb::OperationState::Aborting);
        world.gates["media"].open();
        let aborted = settle(&mut world.alice, &deleting.operation_id).await;
        assert_eq!(
            aborted.state(),
            pb::OperationState::Aborted,
            "{}",
            aborted.halt_reason
        );
        let after = world.suite.snapshot(&sites).await;
        all_in(&after, TenantState::Active).unwrap();
        check_sites(&before, &after).unwrap();

        // The leases went with the operation: the rival plan now applies.
        let rival_running = apply(&mut world.alice, &rival).await.unwrap();
        assert_eq!(
            settle(&mut world.alice, &rival_running.operation_id)
                .await
                .state(),
            pb::OperationState::Succeeded
        );
        world.stop().await;
    }
}

/// A plan made before another operation changed one of its sites is stale: applying it
/// ends the operation aborted before any change, naming the site, and the other sites of
/// the plan stay exactly as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_plan_ends_aborted_with_nothing_changed() {
    for backend in testing::backends() {
        let mut world = world(backend).await;
        let url = world.orchestrator.server.url();
        let seeded = world.suite.seed(&url, "stale", 2).await;
        let sites: Vec<String> = seeded.iter().map(|site| site.site_id.clone()).collect();
        let stale = approved_plan(
            &mut world.alice,
            &mut world.bob,
            request(PlanKind::DeleteSites, &sites),
        )
        .await;
        let first = approved_plan(
            &mut world.alice,
            &mut world.bob,
            request(PlanKind::DeleteSites, &sites[..1]),
        )
        .await;
        let deleting = apply(&mut world.alice, &first).await.unwrap();
        settle(&mut world.alice, &deleting.operation_id).await;
        let before = world.suite.snapshot(&sites).await;

        let late = apply(&mut world.alice, &stale).await.unwrap();
        let ended = settle(&mut world.alice, &late.operation_id).await;
        assert_eq!(ended.state(), pb::OperationState::Aborted);
        assert!(
            ended.halt_reason.contains("nothing was changed")
                && ended.halt_reason.contains(&sites[0]),
            "{}",
            ended.halt_reason
        );
        let after = world.suite.snapshot(&sites).await;
        assert_eq!(after, before);
        assert_eq!(agreed_state(&after, &sites[1]), Ok(TenantState::Active));

        // The report does not read as a success: nothing was deleted or verified, and
        // the reason is listed.
        let report = world
            .alice
            .get_report(pb::GetReportRequest {
                operation_id: late.operation_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(report.confidence, 0.0, "{}", report.markdown);
        assert!(
            report.problems.first().is_some_and(
                |problem| problem.starts_with("halted: ") && problem.contains(&sites[0])
            ),
            "{:?}",
            report.problems
        );
        assert!(
            report.markdown.contains("## Problems"),
            "{}",
            report.markdown
        );
        world.stop().await;
    }
}

/// A site deleted in one service only (an operation that halted part-way, a service
/// restored from a backup) is shown as split by the orchestrator's GetSite, service by
/// service, instead of hiding behind the catalog's "active".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn get_site_shows_a_site_deleted_in_one_service_only_as_split() {
    use micros_platform::{
        auth::Role,
        ids::OperationId,
        lifecycle::{Target, grpc::target_to_proto},
    };
    use micros_proto::lifecycle::v1::{
        Justification, SoftDeleteRequest, tenant_lifecycle_client::TenantLifecycleClient,
    };

    for backend in testing::backends() {
        let mut world = world(backend).await;
        let url = world.orchestrator.server.url();
        let seeded = world.suite.seed(&url, "split", 1).await;
        let site = seeded[0].site_id.clone();
        let whole = world
            .alice
            .get_site(pb::GetSiteRequest { site: site.clone() })
            .await
            .unwrap()
            .into_inner();
        assert!(!whole.split, "{whole:?}");
        assert_eq!(whole.services.len(), 5, "{whole:?}");

        let mut product_data = TenantLifecycleClient::new(world.suite.channel(
            "product-data",
            "orchestrator",
            &[Role::Lifecycle],
        ));
        let stray = OperationId::new().to_string();
        product_data
            .soft_delete(SoftDeleteRequest {
                targets: vec![target_to_proto(&Target::Site(site.parse().unwrap()))],
                operation_id: stray.clone(),
                justification: Some(Justification {
                    reason: "a deletion that reached one service".to_owned(),
                    ticket: "OPS-9".to_owned(),
                }),
                validate_only: false,
                lease_token: 0,
                call_key: String::new(),
            })
            .await
            .unwrap();

        let split = world
            .alice
            .get_site(pb::GetSiteRequest { site: site.clone() })
            .await
            .unwrap()
            .into_inner();
        assert!(split.split, "{split:?}");
        assert_eq!(
            split.state(),
            micros_proto::catalog::v1::SiteState::Active,
            "the catalog still says active"
        );
        let states: BTreeMap<&str, TenantState> = split
            .services
            .iter()
            .map(|service| (service.service.as_str(), service.state()))
            .collect();
        assert_eq!(states["catalog"], TenantState::Active, "{split:?}");
        assert_eq!(states["product-data"], TenantState::Deleted, "{split:?}");
        assert!(
            split
                .services
                .iter()
                .all(|service| service.error.is_empty()),
            "{split:?}"
        );

        // A restore of that operation takes the site although the catalog says active,
        // and mends it.
        let mending = approved_plan(
            &mut world.alice,
            &mut world.bob,
            CreatePlanRequest {
                undo_operation_id: stray,
                ..request(PlanKind::RestoreSites, std::slice::from_ref(&site))
            },
        )
        .await;
        assert_eq!(mending.targets.len(), 1, "{mending:?}");
        let operation = apply(&mut world.alice, &mending).await.unwrap();
        let done = settle(&mut world.alice, &operation.operation_id).await;
        assert_eq!(
            done.state(),
            pb::OperationState::Succeeded,
            "{}",
            done.halt_reason
        );
        let mended = world
            .alice
            .get_site(pb::GetSiteRequest { site: site.clone() })
            .await
            .unwrap()
            .into_inner();
        assert!(!mended.split, "{mended:?}");

        // Active everywhere now: naming it again is refused, with nothing to restore.
        let again = world
            .alice
            .create_plan(CreatePlanRequest {
                undo_operation_id: operation.operation_id.clone(),
                ..request(PlanKind::RestoreSites, std::slice::from_ref(&site))
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            again.errors.first().map(|error| error.reason.as_str()),
            Some("WRONG_STATE"),
            "{again:?}"
        );
        world.stop().await;
    }
}
