//! Every step boundary of delete, restore, purge, abort, drill and uninstall, failed: the
//! orchestrator (in this process, so its failpoints are this process's) stops there and
//! halts, keeping only what it recorded durably; resumed, it finishes. Lifecycle
//! failpoints lose a service's answer after it committed, or fail it before, and the
//! executor's retry must be answered from the service's record. After each case:
//! every site is in one state in all five services, fingerprints are the recorded ones,
//! sites outside the operation did not change, and each service applied each target of
//! the operation once (its audit). The kill-and-restart variants of the same steps, with
//! the orchestrator as a real process, are in `tests/fencing.rs` and `tests/crash.rs`.

mod support;

use std::time::Duration;

use micros_orchestrator::OrchestratorSettings;
use micros_platform::{auth::Role, failpoints, ids::SiteId, lifecycle::Target, testing};
use micros_proto::{
    lifecycle::v1::TenantState,
    orchestrator::v1::{
        self as pb, ApplyPlanRequest, ApprovePlanRequest, CreatePlanRequest,
        OperationControlRequest, PlanKind, orchestrator_service_client::OrchestratorServiceClient,
    },
};
use support::{Snapshot, Suite, agreed_state, check_sites, orchestrator_client, settle};

type Client = OrchestratorServiceClient<micros_platform::client::ServiceChannel>;

/// What a case runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    Delete,
    Restore,
    Drill,
    Purge,
    Uninstall,
    /// A deletion stopped after its canary, then aborted.
    Abort,
}

/// Where it fails, and whether the failure halts the operation (an executor step) or is
/// retried unseen (a lifecycle call's answer).
struct Case {
    work: Work,
    failpoint: &'static str,
    halts: bool,
}

const fn halting(work: Work, failpoint: &'static str) -> Case {
    Case {
        work,
        failpoint,
        halts: true,
    }
}

const fn retried(work: Work, failpoint: &'static str) -> Case {
    Case {
        work,
        failpoint,
        halts: false,
    }
}

const CASES: &[Case] = &[
    halting(Work::Delete, "executor::delete::in_flight"),
    halting(Work::Delete, "executor::delete::catalog_done"),
    halting(Work::Delete, "executor::delete::services_done"),
    halting(Work::Delete, "executor::delete::recorded"),
    halting(Work::Delete, "executor::delete::verified"),
    halting(Work::Delete, "executor::rehearsal::restored"),
    retried(Work::Delete, "lifecycle::after_commit"),
    retried(Work::Delete, "lifecycle::before_commit"),
    halting(Work::Restore, "executor::restore::in_flight"),
    halting(Work::Restore, "executor::restore::catalog_done"),
    halting(Work::Restore, "executor::restore::services_done"),
    retried(Work::Restore, "lifecycle::after_commit"),
    halting(Work::Drill, "executor::delete::services_done"),
    halting(Work::Drill, "executor::drill::catalog_done"),
    halting(Work::Drill, "executor::drill::services_done"),
    halting(Work::Purge, "executor::purge::in_flight"),
    halting(Work::Purge, "executor::purge::services_done"),
    halting(Work::Purge, "executor::purge::catalog_done"),
    retried(Work::Purge, "lifecycle::purge::after_claim"),
    retried(Work::Purge, "lifecycle::purge::after_batches"),
    retried(Work::Purge, "lifecycle::after_commit"),
    halting(Work::Uninstall, "executor::delete::catalog_done"),
    halting(Work::Uninstall, "executor::delete::recorded"),
    halting(Work::Uninstall, "executor::rehearsal::restored"),
    halting(Work::Abort, "executor::abort::catalog_done"),
    halting(Work::Abort, "executor::abort::services_done"),
    retried(Work::Abort, "executor::after_claim"),
];

const SITES: usize = 3;

struct World {
    suite: Suite,
    orchestrator: testing::TestService<micros_orchestrator::Orchestrator>,
    alice: Client,
    bob: Client,
}

fn request(kind: PlanKind, inputs: Vec<String>) -> CreatePlanRequest {
    CreatePlanRequest {
        kind: kind as i32,
        inputs,
        reason: "failpoint case".to_owned(),
        ..Default::default()
    }
}

impl World {
    async fn plan(&mut self, made: CreatePlanRequest) -> pb::Plan {
        let plan = self.alice.create_plan(made).await.unwrap().into_inner();
        assert!(plan.errors.is_empty(), "{:?}", plan.errors);
        self.bob
            .approve_plan(ApprovePlanRequest {
                plan_id: plan.plan_id.clone(),
                fingerprint: plan.fingerprint.clone(),
            })
            .await
            .unwrap();
        plan
    }

    async fn apply(&mut self, plan: &pb::Plan) -> String {
        self.alice
            .apply_plan(ApplyPlanRequest {
                plan_id: plan.plan_id.clone(),
                fingerprint: plan.fingerprint.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .operation_id
    }

    async fn run(&mut self, made: CreatePlanRequest) -> String {
        let plan = self.plan(made).await;
        let operation = self.apply(&plan).await;
        let ended = settle(&mut self.alice, &operation).await;
        assert_eq!(
            ended.state(),
            pb::OperationState::Succeeded,
            "{}",
            ended.halt_reason
        );
        operation
    }

    async fn control(&mut self, operation_id: &str, abort: bool) -> pb::Operation {
        let request = OperationControlRequest {
            operation_id: operation_id.to_owned(),
            reason: "failpoint case".to_owned(),
        };
        if abort {
            self.alice.abort_operation(request).await
        } else {
            self.alice.resume_operation(request).await
        }
        .unwrap()
        .into_inner()
    }
}

fn set_failpoint(name: &str) {
    fail::cfg(name, "1*return").unwrap();
}

/// Runs one case; the number of invariants it checked.
async fn run_case(world: &mut World, index: usize, case: &Case) -> usize {
    let url = world.orchestrator.server.url();
    let seeded = world
        .suite
        .seed(&url, &format!("case{index}"), SITES + 1)
        .await;
    let (targets, bystander) = seeded.split_at(SITES);
    let sites: Vec<String> = targets.iter().map(|site| site.site_id.clone()).collect();
    let bystanders = vec![bystander[0].site_id.clone()];
    let before = world.suite.snapshot(&sites).await;
    let bystanders_before = world.suite.snapshot(&bystanders).await;
    let label = format!("case {index} ({:?} at {})", case.work, case.failpoint);

    let (kind, inputs, undo) = match case.work {
        Work::Delete | Work::Abort => (PlanKind::DeleteSites, sites.clone(), String::new()),
        Work::Drill => (PlanKind::RestoreDrill, sites.clone(), String::new()),
        Work::Uninstall => (
            PlanKind::UninstallApp,
            targets
                .iter()
                .map(|site| site.app_installation_id.clone())
                .collect(),
            String::new(),
        ),
        Work::Restore | Work::Purge => {
            let deleted = world
                .run(request(PlanKind::DeleteSites, sites.clone()))
                .await;
            if case.work == Work::Purge {
                world.suite.clock.advance(Duration::from_secs(31 * 86_400));
                (PlanKind::PurgeSites, sites.clone(), String::new())
            } else {
                (PlanKind::RestoreSites, Vec::new(), deleted)
            }
        }
    };
    let plan = world
        .plan(CreatePlanRequest {
            undo_operation_id: undo,
            ..request(kind, inputs)
        })
        .await;
    let action = match kind {
        PlanKind::DeleteSites | PlanKind::RestoreDrill | PlanKind::UninstallApp => "soft_delete",
        PlanKind::RestoreSites => "restore",
        _ => "purge",
    };

    let fired_before = failpoints::fired(case.failpoint);
    let operation = if case.work == Work::Abort {
        // Stopped after the canary, then aborted; the abort itself fails once.
        set_failpoint("executor::delete::verified");
        let operation = world.apply(&plan).await;
        let halted = settle(&mut world.alice, &operation).await;
        assert_eq!(halted.state(), pb::OperationState::Halted, "{label}");
        set_failpoint(case.failpoint);
        world.control(&operation, true).await;
        operation
    } else {
        set_failpoint(case.failpoint);
        world.apply(&plan).await
    };
    let stopped = settle(&mut world.alice, &operation).await;
    let ended = if case.halts {
        assert_eq!(
            stopped.state(),
            pb::OperationState::Halted,
            "{label}: the failpoint halts the operation ({})",
            stopped.halt_reason
        );
        let resumed = world.control(&operation, false).await;
        if case.work == Work::Abort {
            assert_eq!(
                resumed.state(),
                pb::OperationState::Aborting,
                "{label}: a halted abort resumes as an abort"
            );
        }
        settle(&mut world.alice, &operation).await
    } else {
        // Retried unseen (a lost answer), or, failing right after a claim, given back
        // and claimed again by the sweep.
        stopped
    };
    fail::remove(case.failpoint);
    assert_eq!(
        failpoints::fired(case.failpoint),
        fired_before + 1,
        "{label}: the failpoint was on the path"
    );
    let expected = if case.work == Work::Abort {
        pb::OperationState::Aborted
    } else {
        pb::OperationState::Succeeded
    };
    assert_eq!(ended.state(), expected, "{label}: {}", ended.halt_reason);

    let after = world.suite.snapshot(&sites).await;
    let mut checked = 0;
    let expected_state = match case.work {
        Work::Delete => TenantState::Deleted,
        Work::Purge => TenantState::Purged,
        _ => TenantState::Active,
    };
    for site in &sites {
        let state =
            agreed_state(&after, site).unwrap_or_else(|problem| panic!("{label}: {problem}"));
        assert_eq!(state, expected_state, "{label}: {site}");
        checked += 1;
    }
    if case.work == Work::Uninstall {
        checked += check_uninstalled(&world.suite, targets, &label).await;
    } else {
        checked +=
            check_sites(&before, &after).unwrap_or_else(|problem| panic!("{label}: {problem}"));
    }
    let bystanders_after: Snapshot = world.suite.snapshot(&bystanders).await;
    assert_eq!(
        bystanders_after, bystanders_before,
        "{label}: a bystander changed"
    );
    checked += 1;
    checked += world
        .suite
        .check_applied_once(&operation, action)
        .await
        .unwrap_or_else(|problem| panic!("{label}: {problem}"));
    checked
}

/// Every app installation's rows are gone from every service (and nothing else of the
/// site: the site is active, checked by the caller).
async fn check_uninstalled(suite: &Suite, targets: &[support::Seeded], label: &str) -> usize {
    let apps: Vec<Target> = targets
        .iter()
        .map(|site| Target::AppInstallation {
            site_id: SiteId::parse(&site.site_id).unwrap(),
            app_installation_id: micros_platform::ids::AppInstallationId::parse(
                &site.app_installation_id,
            )
            .unwrap(),
        })
        .collect();
    let mut checked = 0;
    for (service, outcomes) in suite.describe(&apps).await {
        for outcome in outcomes {
            assert!(
                outcome.counts.iter().all(|count| count.live == 0),
                "{label}: an uninstalled app keeps live rows in {service}: {:?}",
                outcome.counts
            );
            checked += 1;
        }
    }
    checked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_step_stopped_resumes_to_the_same_end() {
    for backend in testing::backends() {
        let suite = Suite::start(backend).await;
        let orchestrator = suite
            .orchestrator(
                backend,
                OrchestratorSettings {
                    max_backoff: Duration::from_millis(100),
                    reaper_interval: Duration::ZERO,
                    runner_lease: Duration::from_secs(1),
                    ..OrchestratorSettings::default()
                },
            )
            .await;
        let url = orchestrator.server.url();
        let mut world = World {
            alice: orchestrator_client(&url, "alice", &[Role::Operator]),
            bob: orchestrator_client(&url, "bob", &[Role::Approver]),
            suite,
            orchestrator,
        };
        let mut invariants = 0;
        for (index, case) in CASES.iter().enumerate() {
            invariants += run_case(&mut world, index, case).await;
        }
        invariants += a_failed_rehearsal_halts_with_the_canary_restored(&mut world).await;
        println!(
            "{backend:?}: {} failpoint cases and a failed rehearsal, {invariants} invariants checked, 0 violations",
            CASES.len()
        );
        world.orchestrator.stop().await;
        world.suite.stop().await;
    }
}

/// A rollback that does not bring the canary back as it was deleted (here: its data in
/// media altered while it was deleted, as a broken restore path would) halts the
/// operation at the rehearsal, before any other target is touched, with the canary
/// restored; an abort then halts too, naming the canary whose data differs, rather than
/// pass it as restored.
async fn a_failed_rehearsal_halts_with_the_canary_restored(world: &mut World) -> usize {
    let url = world.orchestrator.server.url();
    let seeded = world.suite.seed(&url, "rehearsal", SITES).await;
    let sites: Vec<String> = seeded.iter().map(|site| site.site_id.clone()).collect();
    let plan = world
        .plan(request(PlanKind::DeleteSites, sites.clone()))
        .await;
    set_failpoint("executor::delete::verified");
    let operation = world.apply(&plan).await;
    let halted = settle(&mut world.alice, &operation).await;
    assert_eq!(halted.state(), pb::OperationState::Halted);
    fail::remove("executor::delete::verified");

    let canary = &sites[0];
    world.suite.corrupt_media(canary).await;
    let resumed = world.control(&operation, false).await;
    assert_eq!(resumed.state(), pb::OperationState::Running);
    let stopped = settle(&mut world.alice, &operation).await;
    assert_eq!(stopped.state(), pb::OperationState::Halted);
    assert!(
        stopped.halt_reason.contains("rollback rehearsal failed")
            && stopped.halt_reason.contains("in media")
            && stopped.halt_reason.contains("the canary is left restored"),
        "{}",
        stopped.halt_reason
    );
    let snapshot = world.suite.snapshot(&sites).await;
    for site in &sites {
        assert_eq!(
            agreed_state(&snapshot, site),
            Ok(TenantState::Active),
            "{site}: the canary restored, the rest never touched"
        );
    }
    // Aborting finds the canary's data still not what was deleted: it halts again,
    // naming it, instead of declaring the canary back.
    let aborting = world.control(&operation, true).await;
    assert_eq!(aborting.state(), pb::OperationState::Aborting);
    let ended = settle(&mut world.alice, &operation).await;
    assert_eq!(ended.state(), pb::OperationState::Halted);
    assert!(
        ended.halt_reason.contains(canary.as_str())
            && ended
                .halt_reason
                .contains("in media did not come back from the abort"),
        "{}",
        ended.halt_reason
    );
    let after = world.suite.snapshot(&sites).await;
    for site in &sites {
        assert_eq!(agreed_state(&after, site), Ok(TenantState::Active));
    }
    sites.len() * 2 + 3
}
