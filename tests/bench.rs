//! `micros bench replay` at a tiny size, end to end: every service started as a child
//! process, three sites seeded through gRPC, deleted through the orchestrator with a
//! second principal's approval, restored and verified, the floors measured. The figures
//! are not checked (speed is read from the benchmark, not asserted); that it runs and
//! verifies every site is.

use std::process::Command;

fn replay(backend: &str, extra: &[(&str, String)]) {
    let output = Command::new(env!("CARGO_BIN_EXE_micros"))
        .args([
            "bench",
            "replay",
            "--backend",
            backend,
            "--sites",
            "3",
            "--users",
            "3",
            "--groups",
            "2",
            "--members",
            "2",
            "--documents",
            "10",
            "--attachments",
            "2",
        ])
        .envs(extra.iter().map(|(key, value)| (*key, value.as_str())))
        .env_remove("RUST_LOG")
        .output()
        .expect("run micros bench replay");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "micros bench replay on {backend} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("verified: 3 of 3 sites restored and verified through the orchestrator"),
        "{stdout}"
    );
    for figure in [
        "restore + verify",
        "tombstone floor (flip + scan)",
        "naive rewrite of every row and back",
        "restore + verify / tombstone floor",
    ] {
        assert!(stdout.contains(figure), "no `{figure}` in:\n{stdout}");
    }
    // Every phase's rows were found by the floors: 3 sites in 5 services' registries.
    assert!(
        stdout.contains("same-run floors on the same databases (15 registry rows"),
        "{stdout}"
    );
}

#[test]
fn replay_deletes_restores_and_verifies_every_site_on_sqlite() {
    replay("sqlite", &[]);
}

#[test]
fn replay_deletes_restores_and_verifies_every_site_on_postgres() {
    let Some(url) = std::env::var("MICROS_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
    else {
        return;
    };
    replay("postgres", &[("MICROS_BENCH_POSTGRES_URL", url)]);
}
