//! The operator CLI as operators use it: inputs from a file, exit codes scripts rely on,
//! `--output json`, a plan applied and watched to the end (across an orchestrator
//! restart), and the report.

mod support;

use std::{
    io::{BufRead, BufReader, Read},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use micros_orchestrator::OrchestratorSettings;
use micros_platform::{
    auth::Role,
    store::Backend,
    testing::{ServiceProcess, TestStore, test_token},
};
use micros_proto::orchestrator::v1 as pb;
use nix::sys::signal::Signal;
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
            .provision_site(support::provision_request(
                format!("Cli {index}"),
                format!("cli{index}.example.com"),
                "us-east",
                &["insight"],
            ))
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
    let stale_json = micros(
        &url,
        "alice",
        &operator,
        &[
            "--output",
            "json",
            "apply",
            plan_id,
            "--fingerprint",
            &"0".repeat(32),
        ],
    );
    assert_eq!(stale_json.status.code(), Some(3), "{}", text(&stale_json));
    let error: serde_json::Value = serde_json::from_slice(&stale_json.stderr)
        .unwrap_or_else(|_| panic!("a JSON error: {}", text(&stale_json)));
    assert_eq!(error["error"]["code"], "FAILED_PRECONDITION", "{error}");
    assert_eq!(error["error"]["exit_code"], 3, "{error}");
    assert_eq!(
        error["error"]["reason"], "PLAN_FINGERPRINT_MISMATCH",
        "{error}"
    );
    assert!(error["error"]["metadata"].is_object(), "{error}");

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
    assert_eq!(
        last["rehearsal"]["state"], "REHEARSAL_STATE_DONE",
        "the canary's rollback was rehearsed: {last}"
    );
    assert_eq!(last["rehearsal"]["canary_targets"], 1);
    assert_eq!(last["targets_done"], 3);
    assert_eq!(
        updates[0]["operation_id"], last["operation_id"],
        "the operation ID comes first"
    );
    let operation_id = last["operation_id"].as_str().unwrap().to_owned();

    let site = micros(
        &url,
        "alice",
        &[Role::Operator],
        &["--output", "json", "site", "get", "cli1.example.com"],
    );
    assert!(site.status.success(), "{}", text(&site));
    let site: serde_json::Value = serde_json::from_slice(&site.stdout).unwrap();
    assert_eq!(site["state"], "SITE_STATE_DELETED");

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

fn orchestrator_process(env: &[(String, String)]) -> ServiceProcess {
    let env: Vec<(&str, &str)> = env
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    ServiceProcess::start(env!("CARGO_BIN_EXE_micros").as_ref(), "orchestrator", &env)
        .unwrap_or_else(|error| panic!("{error}"))
}

fn with(env: &[(String, String)], extra: &[(&str, String)]) -> Vec<(String, String)> {
    let mut all = env.to_vec();
    all.extend(
        extra
            .iter()
            .map(|(key, value)| ((*key).to_owned(), value.clone())),
    );
    all
}

/// `apply --watch` prints the operation ID before anything else; the orchestrator is
/// killed while the operation waits for a service and started again on the same port and
/// database; the watch reconnects, follows the resumed operation to its end and exits 0.
/// Against an orchestrator that does not come back, it gives up with exit code 6.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_survives_an_orchestrator_restart() {
    let suite = Suite::start(Backend::Sqlite).await;
    let store = TestStore::new(Backend::Sqlite);
    let env = with(
        &suite.client_env(),
        &[
            ("MICROS__STORE__URL", store.config.url.clone()),
            (
                "MICROS__STORE__DATABASE_PREFIX",
                store.config.database_prefix.clone(),
            ),
            ("MICROS__SERVICE__REAPER_INTERVAL", "0s".to_owned()),
            ("MICROS__SERVICE__MAX_BACKOFF", "200ms".to_owned()),
        ],
    );

    let planning = orchestrator_process(&env);
    let url = format!("http://{}", planning.addr());
    let mut admin = orchestrator_client(&url, "provisioner", &[Role::Admin]);
    let mut sites = Vec::new();
    for index in 0..3 {
        let site = admin
            .provision_site(support::provision_request(
                format!("Restart {index}"),
                format!("restart{index}.example.com"),
                "us-east",
                &[],
            ))
            .await
            .unwrap()
            .into_inner();
        sites.push(site.site_id);
    }
    let plan = orchestrator_client(&url, "alice", &[Role::Operator])
        .create_plan(pb::CreatePlanRequest {
            kind: pb::PlanKind::DeleteSites as i32,
            inputs: sites,
            reason: "restart test".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    drop(planning);

    // Media unreachable: the executor retries it, so the operation keeps running.
    let unreachable = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let stalled = orchestrator_process(&with(
        &env,
        &[(
            "MICROS__CLIENTS__MEDIA__URL",
            format!("http://{unreachable}"),
        )],
    ));
    let addr = stalled.addr();
    let url = format!("http://{addr}");
    let mut applying = Command::new(env!("CARGO_BIN_EXE_micros"))
        .arg("--orchestrator")
        .arg(&url)
        .arg("--token")
        .arg(test_token("alice", &[Role::Operator, Role::Viewer]))
        .args([
            "apply",
            &plan.plan_id,
            "--fingerprint",
            &plan.fingerprint,
            "--watch",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(applying.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let operation_id = first
        .strip_prefix("operation ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the operation ID first, got {first:?}"))
        .to_owned();
    assert!(
        first.contains(&format!("micros watch {operation_id}")),
        "{first}"
    );
    let mut operator = orchestrator_client(&url, "alice", &[Role::Operator]);
    let running = operator
        .get_operation(pb::GetOperationRequest {
            operation_id: operation_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(running.state(), pb::OperationState::Running);

    stalled.signal(Signal::SIGKILL);
    assert!(!stalled.wait(Duration::from_secs(10)).unwrap().success());
    let restarted = orchestrator_process(&with(
        &env,
        &[("MICROS__SERVER__PORT", addr.port().to_string())],
    ));
    assert_eq!(restarted.addr(), addr);

    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = applying.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the watch did not end within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut stderr = String::new();
    applying
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status}\n{first}{rest}\n{stderr}");
    assert!(stderr.contains("reconnecting"), "{stderr}");
    assert!(
        rest.contains(&format!("operation {operation_id} succeeded: 3/3 targets")),
        "{rest}"
    );

    drop(restarted);
    let gone = micros(
        &url,
        "alice",
        &[Role::Viewer],
        &[
            "--output",
            "json",
            "--reconnect-for",
            "1s",
            "watch",
            &operation_id,
        ],
    );
    assert_eq!(gone.status.code(), Some(6), "{}", text(&gone));
    // Every line on stderr is a JSON object: reconnection notices, then the error.
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&gone.stderr)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert!(lines[0]["reconnecting"].is_object(), "{lines:?}");
    let error = lines.last().unwrap();
    assert_eq!(error["error"]["code"], "UNAVAILABLE", "{error}");
    assert_eq!(
        error["error"]["reason"], "ORCHESTRATOR_UNREACHABLE",
        "{error}"
    );
    assert_eq!(error["error"]["metadata"]["operation_id"], operation_id);
    suite.stop().await;
}

/// `micros token` mints only what some service would believe, with one spelling per
/// principal: a lookalike of `dev` could otherwise approve `dev`'s plans, and a
/// lifecycle token from the issuer key would be refused by every service.
#[test]
fn token_refuses_lookalike_principals_and_an_unbelievable_lifecycle_role() {
    let data_dir = tempfile::tempdir().unwrap();
    let token = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_micros"))
            .arg("--data-dir")
            .arg(data_dir.path())
            .arg("token")
            .args(args)
            .output()
            .expect("run micros token")
    };
    // `up` is what makes the keys; an issuer key in the environment stands in for it.
    let issuer = micros_platform::auth::SigningKey::generate();
    let with_issuer = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_micros"));
        command
            .env(
                "MICROS_ISSUER_SIGNING_KEY",
                secrecy::ExposeSecret::expose_secret(&issuer.encode()),
            )
            .arg("--data-dir")
            .arg(data_dir.path())
            .arg("token")
            .args(args);
        command.output().expect("run micros token")
    };
    let minted = with_issuer(&["--principal", "bob", "--role", "approver"]);
    assert!(minted.status.success(), "{}", text(&minted));
    for lookalike in ["Dev", "dev ", "dev\u{200b}"] {
        let refused = with_issuer(&["--principal", lookalike, "--role", "approver"]);
        assert!(!refused.status.success(), "{lookalike:?} was minted");
        assert!(
            text(&refused).contains("invalid principal"),
            "{lookalike:?}: {}",
            text(&refused)
        );
    }
    let lifecycle = with_issuer(&["--role", "lifecycle"]);
    assert!(!lifecycle.status.success(), "{}", text(&lifecycle));
    assert!(
        text(&lifecycle).contains("--service orchestrator"),
        "{}",
        text(&lifecycle)
    );
    let peer = token(&[
        "--service",
        "identity",
        "--role",
        "lifecycle",
        "--audience",
        "catalog",
    ]);
    assert!(!peer.status.success(), "{}", text(&peer));
    assert!(
        text(&peer).contains("only the orchestrator's key"),
        "{}",
        text(&peer)
    );
}

#[test]
fn a_reader_that_went_away_ends_the_command_quietly() {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let output = Command::new(env!("CARGO_BIN_EXE_micros"))
        .arg("services")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run micros");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
