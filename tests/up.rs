//! `micros up` as a newcomer runs it: every service starts, the printed grpcurl and
//! metrics commands work exactly as printed, and SIGTERM stops everything with exit 0;
//! with a PostgreSQL store URL, every service stores there.

use std::{
    io::{BufRead, BufReader, Lines},
    process::{Child, ChildStdout, Command, Stdio},
    time::Duration,
};

use micros_platform::{
    service::MicrosService,
    store::{Backend, postgres_url},
    testing::{POSTGRES_URL_ENV, TestStore, grpcurl},
};
use nix::{sys::signal::Signal, unistd::Pid};

/// `micros up` on free ports in `data_dir`, and its banner (read up to the last `Try:`
/// line); the output stays open, since `micros up` may still write to it.
fn start_up(
    data_dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (Child, Vec<String>, Lines<BufReader<ChildStdout>>) {
    let mut up = Command::new(env!("CARGO_BIN_EXE_micros"))
        .args(["up", "--base-port", "0", "--data-dir"])
        .arg(data_dir)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start micros up");
    let mut banner = Vec::new();
    let mut stdout = BufReader::new(up.stdout.take().unwrap()).lines();
    for line in stdout.by_ref() {
        let line = line.unwrap();
        let done = line.contains("ListSites");
        banner.push(line);
        if done {
            break;
        }
    }
    (up, banner, stdout)
}

/// SIGTERM, then the exit status within 30 s.
fn stop_up(mut up: Child) -> std::process::ExitStatus {
    nix::sys::signal::kill(Pid::from_raw(up.id() as i32), Signal::SIGTERM).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = up.try_wait().unwrap() {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "micros up did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn up_prints_working_grpcurl_commands_and_stops_cleanly() {
    let Some(grpcurl) = grpcurl() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (up, banner, stdout) = start_up(dir.path(), &[]);
    let commands: Vec<&String> = banner
        .iter()
        .filter(|line| line.trim_start().starts_with("grpcurl "))
        .collect();
    assert_eq!(commands.len(), 3, "banner:\n{}", banner.join("\n"));

    let grpcurl_dir = grpcurl.parent().unwrap().to_owned();
    let path = format!(
        "{}:{}",
        grpcurl_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut outputs = Vec::new();
    for command in commands {
        let output = Command::new("sh")
            .args(["-c", command.trim()])
            .env("PATH", &path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{command}\n{text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        outputs.push(text);
    }
    assert!(
        outputs[0].contains("micros.catalog.v1.CatalogService"),
        "{}",
        outputs[0]
    );
    let created: serde_json::Value = serde_json::from_str(&outputs[1]).unwrap();
    let site_id = created["siteId"].as_str().unwrap();
    assert!(
        outputs[2].contains(site_id),
        "the created site is listed: {}",
        outputs[2]
    );

    // The printed metrics command shows the calls just made.
    let scrape: Vec<&String> = banner
        .iter()
        .filter(|line| line.trim_start().starts_with("curl "))
        .collect();
    assert_eq!(scrape.len(), 1, "banner:\n{}", banner.join("\n"));
    let output = Command::new("sh")
        .args(["-c", scrape[0].trim()])
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}\n{metrics}", scrape[0]);
    assert!(
        metrics.lines().any(|line| line.starts_with(
            "rpc_server_call_duration_seconds_count{rpc_method=\"CreateSite\",rpc_response_status_code=\"OK\""
        ) && line.ends_with(" 1")),
        "{metrics}"
    );

    let status = stop_up(up);
    assert!(status.success(), "{status}");
    drop(stdout);

    let ready = std::fs::read_to_string(dir.path().join("run/catalog.addr")).unwrap();
    let addresses: Vec<&str> = ready.lines().collect();
    assert_eq!(addresses.len(), 2, "gRPC and metrics addresses: {ready}");
    for addr in addresses {
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "the catalog child stopped with micros up ({addr} still answers)"
        );
    }
}

/// `MICROS__STORE__URL` (or `--store-url`) puts every service on the PostgreSQL server:
/// `micros up` no longer overrides it with SQLite.
#[test]
fn up_stores_every_service_in_postgresql_when_the_store_url_names_it() {
    if std::env::var(POSTGRES_URL_ENV).is_err() {
        eprintln!("skipped: {POSTGRES_URL_ENV} names no PostgreSQL server");
        return;
    }
    let store = TestStore::new(Backend::Postgres);
    let dir = tempfile::tempdir().unwrap();
    let (up, banner, stdout) = start_up(
        dir.path(),
        &[
            ("MICROS__STORE__URL", store.config.url.as_str()),
            (
                "MICROS__STORE__DATABASE_PREFIX",
                store.config.database_prefix.as_str(),
            ),
        ],
    );
    assert!(
        banner[0].contains("Store: PostgreSQL at"),
        "banner:\n{}",
        banner.join("\n")
    );

    let mut expected: Vec<String> = [
        micros_catalog::Catalog::DESCRIPTOR,
        micros_identity::Identity::DESCRIPTOR,
        micros_license::License::DESCRIPTOR,
        micros_media::Media::DESCRIPTOR,
        micros_product_data::ProductData::DESCRIPTOR,
        micros_orchestrator::Orchestrator::DESCRIPTOR,
    ]
    .iter()
    .flat_map(|descriptor| descriptor.database_names())
    .map(|database| format!("{}{database}", store.config.database_prefix))
    .collect();
    expected.sort();
    let mut created = postgres_databases(&store.config.url, &store.config.database_prefix);
    created.sort();
    assert_eq!(created, expected);
    assert!(
        !dir.path().join("data").exists(),
        "no SQLite files next to a PostgreSQL store"
    );

    let status = stop_up(up);
    assert!(status.success(), "{status}");
    drop(stdout);
}

fn postgres_databases(server: &str, prefix: &str) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let admin = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&postgres_url(server, "postgres"))
            .await
            .unwrap();
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT datname::text FROM pg_database WHERE starts_with(datname, $1)",
        )
        .bind(prefix.to_owned())
        .fetch_all(&admin)
        .await
        .unwrap();
        admin.close().await;
        names
    })
}
