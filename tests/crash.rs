//! Step 7 of the scenario: the orchestrator, a real process, is killed with SIGKILL in
//! the middle of a 40-site restore and started again on the same database; it resumes,
//! every site comes back with the fingerprints recorded before the deletion, and no
//! step ran twice (the counts of every service are the original ones, and each wave's
//! call to each service was logged once).

mod support;

use std::{collections::BTreeSet, time::Duration};

use micros_platform::{
    auth::Role,
    ids::SiteId,
    lifecycle::Target,
    testing::{self, ServiceProcess, TestStore},
};
use micros_proto::{
    lifecycle::v1::TenantState,
    orchestrator::v1::{self as pb, ApplyPlanRequest, CreatePlanRequest, PlanKind},
};
use nix::sys::signal::Signal;
use support::{Suite, orchestrator_client, prints, settle};

const SITES: usize = 40;

fn start(env: &[(String, String)]) -> ServiceProcess {
    let env: Vec<(&str, &str)> = env
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    ServiceProcess::start(env!("CARGO_BIN_EXE_micros").as_ref(), "orchestrator", &env)
        .expect("the orchestrator starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_restore_the_orchestrator_resumes_and_finishes_once() {
    for backend in testing::backends() {
        let suite = Suite::start(backend).await;
        let store = TestStore::new(backend);
        let mut env = suite.client_env();
        env.extend([
            ("MICROS__STORE__URL".to_owned(), store.config.url.clone()),
            (
                "MICROS__STORE__DATABASE_PREFIX".to_owned(),
                store.config.database_prefix.clone(),
            ),
            ("MICROS__SERVICE__RESTORE_BATCH".to_owned(), "1".to_owned()),
        ]);
        let process = start(&env);
        let url = format!("http://{}", process.addr());
        let mut alice = orchestrator_client(&url, "alice", &[Role::Operator, Role::Admin]);
        let mut bob = orchestrator_client(&url, "bob", &[Role::Approver]);

        let mut site_ids = Vec::new();
        for index in 0..SITES {
            let provisioned = alice
                .provision_site(support::provision_request(
                    format!("Crash {index}"),
                    format!("crash{index}.example.org"),
                    "eu-west",
                    &["insight"],
                ))
                .await
                .unwrap()
                .into_inner();
            site_ids.push(provisioned.site_id);
        }
        let targets: Vec<Target> = site_ids
            .iter()
            .map(|id| Target::Site(SiteId::parse(id).unwrap()))
            .collect();
        let before = prints(&suite.describe(&targets).await);

        let delete = alice
            .create_plan(CreatePlanRequest {
                kind: PlanKind::DeleteSites as i32,
                inputs: site_ids.clone(),
                reason: "drill".to_owned(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        bob.approve_plan(pb::ApprovePlanRequest {
            plan_id: delete.plan_id.clone(),
            fingerprint: delete.fingerprint.clone(),
        })
        .await
        .unwrap();
        let deleting = alice
            .apply_plan(ApplyPlanRequest {
                plan_id: delete.plan_id,
                fingerprint: delete.fingerprint,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            settle(&mut alice, &deleting.operation_id).await.state(),
            pb::OperationState::Succeeded
        );

        let restore = alice
            .create_plan(CreatePlanRequest {
                kind: PlanKind::RestoreSites as i32,
                undo_operation_id: deleting.operation_id.clone(),
                reason: "drill".to_owned(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        bob.approve_plan(pb::ApprovePlanRequest {
            plan_id: restore.plan_id.clone(),
            fingerprint: restore.fingerprint.clone(),
        })
        .await
        .unwrap();
        let restoring = alice
            .apply_plan(ApplyPlanRequest {
                plan_id: restore.plan_id,
                fingerprint: restore.fingerprint,
            })
            .await
            .unwrap()
            .into_inner();
        let mut done_at_kill = 0;
        for _ in 0..2000 {
            let progress = alice
                .get_operation(pb::GetOperationRequest {
                    operation_id: restoring.operation_id.clone(),
                })
                .await
                .unwrap()
                .into_inner();
            if progress.targets_done >= 3 {
                done_at_kill = progress.targets_done;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        process.signal(Signal::SIGKILL);
        let killed = process.wait(Duration::from_secs(10)).unwrap();
        assert!(!killed.success(), "{backend:?}: killed, not finished");
        assert!(
            (3..SITES as i32).contains(&done_at_kill),
            "killed in the middle of the restore ({done_at_kill} of {SITES} sites done)"
        );

        let restarted = start(&env);
        let url = format!("http://{}", restarted.addr());
        let mut alice = orchestrator_client(&url, "alice", &[Role::Operator, Role::Admin]);
        let finished = settle(&mut alice, &restoring.operation_id).await;
        assert_eq!(
            finished.state(),
            pb::OperationState::Succeeded,
            "{}",
            finished.halt_reason
        );
        assert_eq!(finished.targets_done, SITES as i32);

        let after = suite.describe(&targets).await;
        assert!(
            after
                .values()
                .flatten()
                .all(|outcome| outcome.state == TenantState::Active as i32)
        );
        assert_eq!(
            prints(&after),
            before,
            "every site back with its fingerprints and counts: nothing doubled"
        );

        let report = alice
            .get_report(pb::GetReportRequest {
                operation_id: restoring.operation_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let steps: Vec<&str> = report
            .markdown
            .lines()
            .filter(|line| line.starts_with("- wave "))
            .collect();
        let distinct: BTreeSet<String> = steps
            .iter()
            .map(|line| line.split(" (").next().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(
            steps.len(),
            SITES * 5,
            "one restore per wave per service:\n{}",
            report.markdown
        );
        assert_eq!(distinct.len(), steps.len(), "no step logged twice");
        assert_eq!(report.confidence, 1.0);
        drop(restarted);
        suite.stop().await;
        drop(store);
    }
}
