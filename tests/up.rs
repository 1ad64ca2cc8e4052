//! `micros up` as a newcomer runs it: every service starts, the printed grpcurl
//! commands work exactly as printed, and SIGTERM stops everything with exit 0.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use micros_platform::testing::grpcurl;
use nix::{sys::signal::Signal, unistd::Pid};

#[test]
fn up_prints_working_grpcurl_commands_and_stops_cleanly() {
    let Some(grpcurl) = grpcurl() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut up = Command::new(env!("CARGO_BIN_EXE_micros"))
        .args(["up", "--base-port", "0", "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start micros up");

    let mut banner = Vec::new();
    // Kept open until the end: `micros up` may still write to it.
    let mut stdout = BufReader::new(up.stdout.take().unwrap()).lines();
    for line in stdout.by_ref() {
        let line = line.unwrap();
        let done = line.contains("ListSites");
        banner.push(line);
        if done {
            break;
        }
    }
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

    nix::sys::signal::kill(Pid::from_raw(up.id() as i32), Signal::SIGTERM).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = up.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "micros up did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    drop(stdout);

    let addr = std::fs::read_to_string(dir.path().join("run/catalog.addr")).unwrap();
    assert!(
        std::net::TcpStream::connect(addr.trim()).is_err(),
        "the catalog child stopped with micros up"
    );
}
