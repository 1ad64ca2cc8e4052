//! The operator CLI as operators use it: inputs from a file, exit codes scripts rely on,
//! `--output json`, a plan applied and watched to the end, and the report.

mod support;

use std::process::{Command, Output};

use micros_orchestrator::OrchestratorSettings;
use micros_platform::{auth::Role, store::Backend, testing::test_token};
use micros_proto::orchestrator::v1 as pb;
use support::{Suite, orchestrator_client};

fn micros(orchestrator: &str, principal: &str, roles: &[Role], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_micros"))
        .arg("--orchestrator")
        .arg(orchestrator)
        .arg("--token")
        .arg(test_token(principal, roles))
        .args(args)
        .output()
        .expect("run micros")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_plan_apply_watch_and_report_from_the_command_line() {
    let suite = Suite::start(Backend::Sqlite).await;
    let orchestrator = suite
        .orchestrator(Backend::Sqlite, OrchestratorSettings::default())
        .await;
    let url = orchestrator.server.url();
    let mut admin = orchestrator_client(&url, "provisioner", &[Role::Admin]);
    let mut sites = Vec::new();
    for index in 0..3 {
        let site = admin
            .provision_site(pb::ProvisionSiteRequest {
                name: format!("Cli {index}"),
                url: format!("cli{index}.example.com"),
                region: "us-east".to_owned(),
                products: vec!["jira".to_owned()],
                admin: Some(pb::Contact {
                    email: format!("admin@cli{index}.example"),
                    name: String::new(),
                    kind: "admin".to_owned(),
                }),
                contacts: Vec::new(),
                apps: vec!["insight".to_owned()],
                site_id: String::new(),
                seats: 5,
            })
            .await
            .unwrap()
            .into_inner();
        sites.push(site.site_id);
    }
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("ids.txt");
    std::fs::write(
        &inputs,
        format!("# the list the script was given\n{}\n\n", sites.join("\n")),
    )
    .unwrap();
    let file = inputs.to_str().unwrap();
    let operator = [Role::Operator, Role::Viewer];

    let mistaken = micros(
        &url,
        "alice",
        &operator,
        &[
            "plan",
            "uninstall-app",
            "--input-file",
            file,
            "--app-key",
            "insight",
            "--reason",
            "remove Insight",
        ],
    );
    assert_eq!(mistaken.status.code(), Some(3), "{}", text(&mistaken));
    let said = text(&mistaken);
    assert!(
        said.contains(&format!("first bad input `{}`", sites[0])),
        "{said}"
    );
    assert!(said.contains("WRONG_KIND"), "{said}");

    let planned = micros(
        &url,
        "alice",
        &operator,
        &[
            "--output",
            "json",
            "plan",
            "delete-sites",
            "--input-file",
            file,
            "--expect-kind",
            "site",
            "--expect-count",
            "3",
            "--reason",
            "customers left",
        ],
    );
    assert!(planned.status.success(), "{}", text(&planned));
    let plan: serde_json::Value = serde_json::from_slice(&planned.stdout).unwrap();
    let plan_id = plan["plan_id"].as_str().unwrap();
    let fingerprint = plan["fingerprint"].as_str().unwrap();
    assert_eq!(plan["targets"].as_array().unwrap().len(), 3);

    let stale = micros(
        &url,
        "alice",
        &operator,
        &["apply", plan_id, "--fingerprint", &"0".repeat(32)],
    );
    assert_eq!(stale.status.code(), Some(3), "{}", text(&stale));
    assert!(text(&stale).contains("PLAN_FINGERPRINT_MISMATCH"));

    let unauthorised = micros(
        &url,
        "mallory",
        &[Role::Viewer],
        &["apply", plan_id, "--fingerprint", fingerprint],
    );
    assert_eq!(
        unauthorised.status.code(),
        Some(5),
        "{}",
        text(&unauthorised)
    );

    let applied = micros(
        &url,
        "alice",
        &operator,
        &[
            "--output",
            "json",
            "apply",
            plan_id,
            "--fingerprint",
            fingerprint,
            "--watch",
        ],
    );
    assert!(applied.status.success(), "{}", text(&applied));
    let updates: Vec<serde_json::Value> = String::from_utf8_lossy(&applied.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let last = updates.last().expect("progress updates");
    assert_eq!(last["state"], "OPERATION_STATE_SUCCEEDED");
    assert_eq!(last["targets_done"], 3);
    let operation_id = last["operation_id"].as_str().unwrap().to_owned();

    let site = micros(
        &url,
        "alice",
        &[Role::Operator],
        &["--output", "json", "site", "get", "cli1.example.com"],
    );
    assert!(site.status.success(), "{}", text(&site));
    let site: serde_json::Value = serde_json::from_slice(&site.stdout).unwrap();
    assert_eq!(site["state"], "deleted");

    let contacts = micros(
        &url,
        "alice",
        &[Role::Operator],
        &["contacts", "find", "admin@cli2.example"],
    );
    assert!(contacts.status.success(), "{}", text(&contacts));
    assert!(
        text(&contacts).contains(&sites[2]) && text(&contacts).contains("deleted"),
        "{}",
        text(&contacts)
    );

    let restored = micros(
        &url,
        "alice",
        &operator,
        &[
            "--output",
            "json",
            "restore",
            "--operation",
            &operation_id,
            "--reason",
            "mistake",
        ],
    );
    assert!(restored.status.success(), "{}", text(&restored));

    let report = micros(&url, "alice", &operator, &["report", &operation_id]);
    assert!(report.status.success(), "{}", text(&report));
    assert!(
        text(&report).contains("# Deletion of 3 sites"),
        "{}",
        text(&report)
    );
    assert!(
        text(&report).contains("admin@cli0.example"),
        "support can reach the customer: {}",
        text(&report)
    );

    let missing = micros(
        &url,
        "alice",
        &operator,
        &["watch", "op_0193a2b4c5d67e8f9a0b1c2d3e4f5a6b"],
    );
    assert_eq!(missing.status.code(), Some(4), "{}", text(&missing));

    orchestrator.stop().await;
    suite.stop().await;
}
