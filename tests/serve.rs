//! `micros serve` as a process: a config typo stops start-up naming the key, SIGTERM
//! reports NOT_SERVING, drains and exits 0, and SIGTERM during start-up stops it at once.

use std::{
    net::TcpListener,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use micros_platform::testing::{ServiceProcess, test_auth_env};
use nix::sys::signal::Signal;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const MICROS: &str = env!("CARGO_BIN_EXE_micros");

#[test]
fn config_typo_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(MICROS)
        .args(["serve", "catalog"])
        .env("MICROS__SERVR__PORT", "1")
        .envs(test_auth_env("catalog"))
        .env(
            "MICROS__STORE__URL",
            format!("sqlite://{}", dir.path().display()),
        )
        .output()
        .expect("run micros serve");
    assert!(!output.status.success(), "a typo must stop start-up");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown field `servr`"), "{stderr}");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing was created before the config was valid"
    );
}

#[test]
fn missing_issuer_key_is_a_start_up_error() {
    let output = Command::new(MICROS)
        .args(["serve", "catalog"])
        .env_remove("MICROS__AUTH__ISSUER_KEY")
        .output()
        .expect("run micros serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("auth.issuer_key"), "{stderr}");
}

async fn health(addr: &str) -> Option<ServingStatus> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .ok()?
        .connect()
        .await
        .ok()?;
    let mut client = HealthClient::new(channel);
    let response = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .ok()?;
    Some(response.into_inner().status())
}

#[test]
fn sigterm_reports_not_serving_then_exits_zero() {
    let catalog = ServiceProcess::start(
        MICROS.as_ref(),
        "catalog",
        &[("MICROS__SERVER__SHUTDOWN_DELAY", "2s")],
    )
    .expect("catalog starts");
    let addr = catalog.addr().to_string();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(
        runtime.block_on(health(&addr)),
        Some(ServingStatus::Serving)
    );

    catalog.signal(Signal::SIGTERM);
    let draining = runtime.block_on(async {
        for _ in 0..40 {
            if health(&addr).await == Some(ServingStatus::NotServing) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    });
    assert!(
        draining,
        "health must answer NOT_SERVING while draining:\n{}",
        catalog.log()
    );
    let log = catalog.log();
    let status = catalog.wait(Duration::from_secs(30)).expect("exits");
    assert!(status.success(), "{status}\n{log}");
}

/// A container's `micros serve` is PID 1, for which the kernel has no default action on
/// SIGTERM: unless the process handles it, a pod deleted while its stores open waits for
/// the kubelet's SIGKILL. `trap '' TERM` before `exec` reproduces that here (an ignored
/// signal stays ignored across exec until a handler is installed).
#[test]
fn sigterm_during_start_up_stops_at_once() {
    // A "PostgreSQL" that accepts connections and never answers: start-up waits on it.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let store = format!("postgres://micros@{}", silent.local_addr().unwrap());
    let mut serve = Command::new("sh")
        .args(["-c", "trap '' TERM; exec \"$0\" serve catalog", MICROS])
        .env("MICROS__SERVER__PORT", "0")
        .env("MICROS__STORE__URL", &store)
        .envs(test_auth_env("catalog"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start micros serve");
    let (_connection, _) = silent.accept().expect("start-up reaches the store");

    let pid = nix::unistd::Pid::from_raw(i32::try_from(serve.id()).unwrap());
    nix::sys::signal::kill(pid, Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = serve.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            serve.kill().unwrap();
            let output = serve.wait_with_output().unwrap();
            panic!(
                "SIGTERM during start-up was ignored; killed after 10s:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    assert!(status.success(), "{status}");
}
