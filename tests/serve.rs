//! `micros serve` as a process: a config typo stops start-up naming the key, and
//! SIGTERM reports NOT_SERVING, drains and exits 0.

use std::{process::Command, time::Duration};

use micros_platform::testing::{ServiceProcess, TEST_TOKEN_SECRET};
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
        .env("MICROS__AUTH__TOKEN_SECRET", TEST_TOKEN_SECRET)
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
fn missing_secret_is_a_start_up_error() {
    let output = Command::new(MICROS)
        .args(["serve", "catalog"])
        .env_remove("MICROS__AUTH__TOKEN_SECRET")
        .output()
        .expect("run micros serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("auth.token_secret"), "{stderr}");
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
