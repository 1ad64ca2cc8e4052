//! The orchestrator as real processes on one database: two replicas never drive the
//! same operation, and one killed at a step boundary is resumed by its restart.
//!
//! * A replica frozen (SIGSTOP) in the middle of a wave, right after its catalog call,
//!   loses its claim; the other replica takes the operation over and aborts it, reverting
//!   the canary. Thawed (SIGCONT), the stale replica goes on with its wave: its soft
//!   deletes carry its old lease token and every service refuses them (STALE_LEASE,
//!   audited), so no site ends deleted in some services after the abort.
//! * An orchestrator killed (`MICROS_FAILPOINTS=…=kill`) between two steps of a deletion
//!   or of its abort restarts and finishes with every site in one state everywhere.

mod support;

use std::{collections::BTreeMap, time::Duration};

use micros_platform::{
    auth::Role,
    testing::{self, ServiceProcess, TestStore},
};
use micros_proto::{
    lifecycle::v1::TenantState,
    orchestrator::v1::{
        self as pb, ApplyPlanRequest, ApprovePlanRequest, CreatePlanRequest,
        OperationControlRequest, PlanKind,
    },
};
use nix::sys::signal::Signal;
use support::{Suite, agreed_state, check_sites, orchestrator_client, settle};

/// Starts `micros serve orchestrator` against the suite, on the shared `store`, as
/// `runner`, with `extra` variables (failpoints).
fn orchestrator(
    suite: &Suite,
    store: &TestStore,
    runner: &str,
    extra: &[(&str, &str)],
) -> ServiceProcess {
    let mut env: Vec<(String, String)> = suite.client_env();
    env.extend(
        [
            ("MICROS__STORE__URL", store.config.url.as_str()),
            (
                "MICROS__STORE__DATABASE_PREFIX",
                store.config.database_prefix.as_str(),
            ),
            ("MICROS__SERVICE__RUNNER_ID", runner),
            ("MICROS__SERVICE__RUNNER_LEASE", "1s"),
            ("MICROS__SERVICE__MAX_BACKOFF", "200ms"),
            ("MICROS__SERVICE__REAPER_INTERVAL", "0s"),
        ]
        .iter()
        .chain(extra)
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned())),
    );
    let env: Vec<(&str, &str)> = env
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    ServiceProcess::start(env!("CARGO_BIN_EXE_micros").as_ref(), "orchestrator", &env)
        .expect("the orchestrator starts")
}

async fn approved(url: &str, kind: PlanKind, inputs: Vec<String>) -> pb::Plan {
    let mut alice = orchestrator_client(url, "alice", &[Role::Operator]);
    let mut bob = orchestrator_client(url, "bob", &[Role::Approver]);
    let plan = alice
        .create_plan(CreatePlanRequest {
            kind: kind as i32,
            inputs,
            reason: "fencing test".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    bob.approve_plan(ApprovePlanRequest {
        plan_id: plan.plan_id.clone(),
        fingerprint: plan.fingerprint.clone(),
    })
    .await
    .unwrap();
    plan
}

async fn apply(url: &str, plan: &pb::Plan) -> String {
    orchestrator_client(url, "alice", &[Role::Operator])
        .apply_plan(ApplyPlanRequest {
            plan_id: plan.plan_id.clone(),
            fingerprint: plan.fingerprint.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .operation_id
}

/// Polls `condition` until it holds (an observable event), failing after 60 s.
async fn until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..1200 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 60 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_replica_loses_its_operation_and_changes_nothing_after() {
    for backend in testing::backends() {
        let suite = Suite::start(backend).await;
        let store = TestStore::new(backend);
        // The first replica pauses right after its first catalog call, so it is frozen
        // with a wave in flight.
        let first = orchestrator(
            &suite,
            &store,
            "replica-a",
            &[(
                "MICROS_FAILPOINTS",
                "executor::delete::catalog_done=1*sleep(3000)",
            )],
        );
        let second = orchestrator(&suite, &store, "replica-b", &[]);
        let first_url = format!("http://{}", first.addr());
        let second_url = format!("http://{}", second.addr());
        let seeded = suite.seed(&first_url, "fence", 8).await;
        let sites: Vec<String> = seeded.iter().map(|site| site.site_id.clone()).collect();
        let before = suite.snapshot(&sites).await;
        let plan = approved(&first_url, PlanKind::DeleteSites, sites.clone()).await;
        let operation = apply(&first_url, &plan).await;
        // The first replica logged its catalog call: it is at the failpoint, with the
        // other services' calls of the wave still to make.
        until("the first wave's catalog call logged", || async {
            orchestrator_client(&second_url, "carol", &[Role::Viewer])
                .get_report(pb::GetReportRequest {
                    operation_id: operation.clone(),
                })
                .await
                .is_ok_and(|report| {
                    report
                        .into_inner()
                        .markdown
                        .contains("- wave 1: soft_delete in catalog")
                })
        })
        .await;
        first.signal(Signal::SIGSTOP);

        // The operator aborts through the second replica, which takes the operation over
        // once the frozen one's claim lapses, and reverts the canary everywhere.
        let mut watcher = orchestrator_client(&second_url, "carol", &[Role::Operator]);
        watcher
            .abort_operation(OperationControlRequest {
                operation_id: operation.clone(),
                reason: "the first replica hangs".to_owned(),
            })
            .await
            .unwrap();
        let finished = settle(&mut watcher, &operation).await;
        assert_eq!(
            finished.state(),
            pb::OperationState::Aborted,
            "{backend:?}: the second replica took over: {}",
            finished.halt_reason
        );
        // Thawed, the first replica goes on with its wave: its soft deletes reach the
        // other services after the abort, with its old token, and are refused.
        first.signal(Signal::SIGCONT);
        until("the stale replica's call refused", || async {
            let mut refused = false;
            for service in support::SERVICES {
                refused |= suite
                    .audit(service, &operation)
                    .await
                    .iter()
                    .any(|entry| entry.outcome == "refused: STALE_LEASE");
            }
            refused
        })
        .await;

        let after = suite.snapshot(&sites).await;
        for site in &sites {
            assert_eq!(agreed_state(&after, site), Ok(TenantState::Active));
        }
        check_sites(&before, &after).unwrap();
        suite
            .check_applied_once(&operation, "soft_delete")
            .await
            .unwrap();
        let still = settle(&mut watcher, &operation).await;
        assert_eq!(still.state(), pb::OperationState::Aborted);
        drop(first);
        drop(second);
        suite.stop().await;
        drop(store);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_two_steps_the_orchestrator_finishes_after_a_restart() {
    // Failpoint settings, and whether the operation is aborted (after its canary: the
    // canary's verification is held back two seconds so the abort lands mid-operation).
    let kills: BTreeMap<&str, bool> = BTreeMap::from([
        ("executor::delete::catalog_done=kill", false),
        ("executor::delete::recorded=kill", false),
        (
            "executor::delete::verified=1*sleep(2000);executor::abort::catalog_done=kill",
            true,
        ),
    ]);
    for backend in testing::backends() {
        let suite = Suite::start(backend).await;
        for (index, (failpoint, aborting)) in kills.iter().enumerate() {
            let store = TestStore::new(backend);
            let doomed = orchestrator(
                &suite,
                &store,
                "replica",
                &[("MICROS_FAILPOINTS", failpoint)],
            );
            let url = format!("http://{}", doomed.addr());
            let prefix = format!("kill{index}");
            let seeded = suite.seed(&url, &prefix, 6).await;
            let sites: Vec<String> = seeded.iter().map(|site| site.site_id.clone()).collect();
            let before = suite.snapshot(&sites).await;
            let plan = approved(&url, PlanKind::DeleteSites, sites.clone()).await;
            let operation = apply(&url, &plan).await;
            if *aborting {
                until("the canary deleted everywhere", || async {
                    let snapshot = suite.snapshot(&sites[..1]).await;
                    agreed_state(&snapshot, &sites[0]) == Ok(TenantState::Deleted)
                })
                .await;
                orchestrator_client(&url, "alice", &[Role::Operator])
                    .abort_operation(OperationControlRequest {
                        operation_id: operation.clone(),
                        reason: "kill test".to_owned(),
                    })
                    .await
                    .unwrap();
            }
            let died = doomed.wait(Duration::from_secs(60));
            assert!(
                died.is_ok_and(|status| !status.success()),
                "{failpoint}: the process died at the failpoint"
            );

            let restarted = orchestrator(&suite, &store, "replica", &[]);
            let url = format!("http://{}", restarted.addr());
            let mut alice = orchestrator_client(&url, "alice", &[Role::Operator]);
            let ended = settle(&mut alice, &operation).await;
            let (state, site_state) = if *aborting {
                (pb::OperationState::Aborted, TenantState::Active)
            } else {
                (pb::OperationState::Succeeded, TenantState::Deleted)
            };
            assert_eq!(ended.state(), state, "{failpoint}: {}", ended.halt_reason);
            let after = suite.snapshot(&sites).await;
            for site in &sites {
                assert_eq!(agreed_state(&after, site), Ok(site_state), "{failpoint}");
            }
            check_sites(&before, &after).unwrap_or_else(|problem| panic!("{failpoint}: {problem}"));
            suite
                .check_applied_once(&operation, "soft_delete")
                .await
                .unwrap_or_else(|problem| panic!("{failpoint}: {problem}"));
            drop(restarted);
            drop(store);
        }
        suite.stop().await;
    }
}
