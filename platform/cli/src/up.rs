//! `micros up`: every service as a supervised child process of this one, on 127.0.0.1,
//! with SQLite under a data directory, or on a PostgreSQL server (`--store-url`).
//!
//! Children start in dependency order, each told where its dependencies listen; each
//! reports readiness by writing its bound addresses (gRPC, metrics) to a file. A child that dies is
//! restarted on the same port (a few times, with backoff). Ctrl-C or SIGTERM sends
//! SIGTERM to every child, waits for their drain, and exits 0.

use std::{
    collections::BTreeMap,
    io::Write as _,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use micros_platform::{
    auth::{Issuer, Role},
    service::ServiceEntry,
};
use nix::{sys::signal::Signal, unistd::Pid};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, BufReader},
    process::{Child, Command},
    signal::unix::{SignalKind, signal},
};

use crate::{registry, token::KeyRing};

#[derive(clap::Args)]
pub struct UpArgs {
    /// The first service's port; the others follow in order. 0 picks free ports.
    /// Metrics ports move with them: each keeps its descriptor's distance from the gRPC
    /// port (51051 for the catalog's 50051).
    #[arg(long, default_value_t = 50051)]
    base_port: u16,
    /// A TOML config file every service reads (service-specific keys under [service]
    /// apply to each service, so keep it to shared sections).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where every service stores: `postgres://user@host:port` (a database per service
    /// database, created if missing) or `sqlite://<dir>`; SQLite under
    /// `<data-dir>/data` when unset.
    #[arg(long, env = "MICROS__STORE__URL")]
    store_url: Option<String>,
}

/// How long a child may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a child may take to drain after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Restarts allowed within [`RESTART_WINDOW`] before `micros up` gives up.
const MAX_RESTARTS: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(60);

struct Running {
    entry: ServiceEntry,
    addr: String,
    metrics_addr: String,
    child: Child,
    restarts: Vec<Instant>,
}

/// How every child is started: the executable, where it stores, its secret, and any
/// extra environment (the replay benchmark's database prefix and log filter).
pub struct Launch {
    exe: PathBuf,
    data_dir: PathBuf,
    store_url: String,
    config: Option<PathBuf>,
    keys: KeyRing,
    env: Vec<(String, String)>,
}

impl Launch {
    /// Children of this executable storing at `store_url` (`postgres://…` or
    /// `sqlite://…`; SQLite under `<data_dir>/data` when `None`), with the data
    /// directory's keys (created on first use).
    pub fn new(
        data_dir: &Path,
        store_url: Option<String>,
        config: Option<PathBuf>,
        env: Vec<(String, String)>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir.join("run"))
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let names: Vec<&str> = registry::in_start_order()?
            .iter()
            .map(|entry| entry.descriptor.name)
            .collect();
        let keys = KeyRing::load_or_create(data_dir, &names)?;
        let store_url = match store_url.filter(|url| !url.is_empty()) {
            Some(url) if url.starts_with("postgres://") || url.starts_with("sqlite://") => url,
            Some(url) => bail!("--store-url `{url}` must start with postgres:// or sqlite://"),
            None => format!("sqlite://{}", data_dir.join("data").display()),
        };
        Ok(Self {
            exe: std::env::current_exe().context("cannot find the micros executable")?,
            data_dir: data_dir.to_owned(),
            store_url,
            config,
            keys,
            env,
        })
    }

    /// A bearer token for `principal` with `roles`, as the services started by this
    /// launch accept it.
    pub fn token(&self, principal: &str, roles: &[Role], ttl: Duration) -> anyhow::Result<String> {
        Ok(Issuer::new(&self.keys.issuer, "micros").issue(principal, roles, ttl)?)
    }
}

/// Every service running as a child of this process, for a caller that drives them
/// itself (the replay benchmark) rather than supervising them.
pub struct Children {
    running: Vec<Running>,
}

impl Children {
    /// Starts every service in dependency order on free ports; on failure the ones
    /// already started are stopped.
    pub async fn start(launch: &Launch) -> anyhow::Result<Self> {
        let mut running: Vec<Running> = Vec::new();
        for entry in registry::in_start_order()? {
            match start(launch, entry, (0, 0), &running).await {
                Ok(service) => running.push(service),
                Err(error) => {
                    stop_all(&mut running).await;
                    return Err(error);
                }
            }
        }
        Ok(Self { running })
    }

    /// `http://host:port` of a running service.
    pub fn url(&self, name: &str) -> anyhow::Result<String> {
        self.find(name)
            .map(|service| format!("http://{}", service.addr))
    }

    /// The process ID of a running service, for its CPU time.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.find(name).ok().and_then(|service| service.child.id())
    }

    fn find(&self, name: &str) -> anyhow::Result<&Running> {
        self.running
            .iter()
            .find(|service| service.entry.descriptor.name == name)
            .with_context(|| format!("{name} is not running"))
    }

    /// SIGTERM to every child, dependents first; waits for each to drain.
    pub async fn stop(mut self) {
        stop_all(&mut self.running).await;
    }
}

/// Runs every service with SQLite files, signing keys (`keys/`) and run files under
/// `data_dir` (the global `--data-dir`).
pub async fn run(data_dir: &Path, args: UpArgs) -> anyhow::Result<()> {
    let launch = Launch::new(data_dir, args.store_url, args.config, Vec::new())?;

    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;

    let mut running: Vec<Running> = Vec::new();
    for (index, entry) in registry::in_start_order()?.into_iter().enumerate() {
        let port = if args.base_port == 0 {
            0
        } else {
            args.base_port
                .checked_add(u16::try_from(index)?)
                .context("--base-port leaves no room for every service")?
        };
        let metrics_port = metrics_port(&entry, port)?;
        let started = tokio::select! {
            started = start(&launch, entry, (port, metrics_port), &running) => started,
            _ = terminate.recv() => Err(anyhow::anyhow!("SIGTERM during start-up")),
            _ = interrupt.recv() => Err(anyhow::anyhow!("interrupted during start-up")),
        };
        match started {
            Ok(service) => running.push(service),
            Err(error) => {
                stop_all(&mut running).await;
                return Err(error);
            }
        }
    }

    print_banner(&launch, &running)?;

    let outcome = supervise(&launch, &mut running, &mut terminate, &mut interrupt).await;
    eprintln!("micros up: stopping {} services", running.len());
    stop_all(&mut running).await;
    outcome
}

async fn supervise(
    launch: &Launch,
    running: &mut [Running],
    terminate: &mut tokio::signal::unix::Signal,
    interrupt: &mut tokio::signal::unix::Signal,
) -> anyhow::Result<()> {
    loop {
        let exited = first_exit(running);
        tokio::select! {
            _ = terminate.recv() => return Ok(()),
            _ = interrupt.recv() => return Ok(()),
            (index, status) = exited => {
                let service = &mut running[index];
                let name = service.entry.descriptor.name;
                eprintln!("micros up: {name} exited ({status}); restarting");
                let now = Instant::now();
                service.restarts.retain(|at| now.duration_since(*at) < RESTART_WINDOW);
                if service.restarts.len() >= MAX_RESTARTS {
                    bail!("{name} exited {MAX_RESTARTS} times within {RESTART_WINDOW:?}; giving up");
                }
                tokio::time::sleep(Duration::from_millis(250 << service.restarts.len())).await;
                let ports = (port_of(&service.addr)?, port_of(&service.metrics_addr)?);
                let entry = service.entry;
                let mut restarts = std::mem::take(&mut service.restarts);
                restarts.push(now);
                let (before, after) = running.split_at_mut(index);
                let mut restarted = start(launch, entry, ports, before).await?;
                restarted.restarts = restarts;
                after[0] = restarted;
            }
        }
    }
}

fn port_of(addr: &str) -> anyhow::Result<u16> {
    addr.rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .context("a child reported an address without a port")
}

/// The metrics port of a service whose gRPC port is `port`: as far from it as in the
/// descriptor, or free (0) when the gRPC port is.
fn metrics_port(entry: &ServiceEntry, port: u16) -> anyhow::Result<u16> {
    if port == 0 {
        return Ok(0);
    }
    let descriptor = entry.descriptor;
    let shifted = i32::from(port) + i32::from(descriptor.metrics_port) - i32::from(descriptor.port);
    u16::try_from(shifted).with_context(|| {
        format!(
            "{}'s metrics port would be {shifted}: choose another --base-port",
            descriptor.name
        )
    })
}

/// Waits for the first child to exit and says which, with its exit status.
async fn first_exit(running: &mut [Running]) -> (usize, String) {
    if running.is_empty() {
        return std::future::pending().await;
    }
    let waits = running
        .iter_mut()
        .map(|service| Box::pin(service.child.wait()));
    let (status, index, _) = futures::future::select_all(waits).await;
    (
        index,
        status.map_or_else(|error| error.to_string(), |status| status.to_string()),
    )
}

async fn start(
    launch: &Launch,
    entry: ServiceEntry,
    (port, metrics_port): (u16, u16),
    started: &[Running],
) -> anyhow::Result<Running> {
    let name = entry.descriptor.name;
    let ready_file = launch.data_dir.join("run").join(format!("{name}.addr"));
    let _ = std::fs::remove_file(&ready_file);

    let mut command = Command::new(&launch.exe);
    command
        .arg("serve")
        .arg(name)
        .arg("--ready-file")
        .arg(&ready_file)
        .env("MICROS__SERVER__PORT", port.to_string())
        .env("MICROS__TELEMETRY__METRICS_PORT", metrics_port.to_string())
        .env("MICROS__STORE__URL", &launch.store_url)
        .envs(launch.keys.env(name))
        .envs(launch.env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(config) = &launch.config {
        command.arg("--config").arg(config);
    }
    // Media keeps attachment bytes in a directory, beside the SQLite files by default;
    // a PostgreSQL store has no directory, so it gets one in the data directory.
    if name == "media" && !launch.store_url.starts_with("sqlite://") {
        command.env("MICROS__SERVICE__BLOB_DIR", launch.data_dir.join("blobs"));
    }
    for dependency in entry.descriptor.depends_on {
        let addr = started
            .iter()
            .find(|service| service.entry.descriptor.name == *dependency)
            .map(|service| service.addr.clone())
            .with_context(|| format!("{name} depends on {dependency}, which is not running"))?;
        command.env(
            format!(
                "MICROS__CLIENTS__{}__URL",
                dependency.to_uppercase().replace('-', "_")
            ),
            format!("http://{addr}"),
        );
    }

    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(forward(name, stdout));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(forward(name, stderr));
    }

    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(ready) = std::fs::read_to_string(&ready_file)
            && let Some((addr, metrics_addr)) = ready.split_once('\n')
        {
            return Ok(Running {
                entry,
                addr: addr.to_owned(),
                metrics_addr: metrics_addr.trim().to_owned(),
                child,
                restarts: Vec::new(),
            });
        }
        if let Some(status) = child.try_wait()? {
            bail!("{name} exited before it was ready ({status}); its log is above");
        }
        if Instant::now() > deadline {
            let _ = child.kill().await;
            bail!("{name} was not ready within {READY_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn forward(name: &'static str, stream: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let _ = writeln!(std::io::stderr(), "{name:>12} | {line}");
    }
}

/// SIGTERM to every child, newest first (dependents before their dependencies).
async fn stop_all(running: &mut Vec<Running>) {
    while let Some(mut service) = running.pop() {
        let name = service.entry.descriptor.name;
        if let Some(pid) = service.child.id() {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        match tokio::time::timeout(STOP_TIMEOUT, service.child.wait()).await {
            Ok(Ok(status)) if status.success() => {}
            Ok(Ok(status)) => eprintln!("micros up: {name} stopped with {status}"),
            Ok(Err(error)) => eprintln!("micros up: waiting for {name} failed: {error}"),
            Err(_) => {
                eprintln!("micros up: {name} did not stop within {STOP_TIMEOUT:?}; killing it");
                let _ = service.child.kill().await;
            }
        }
    }
}

fn print_banner(launch: &Launch, running: &[Running]) -> anyhow::Result<()> {
    let roles = [Role::Viewer, Role::Admin, Role::Operator, Role::Approver];
    let token = launch.token("dev", &roles, Duration::from_secs(30 * 24 * 3600))?;
    let addresses: BTreeMap<&str, &str> = running
        .iter()
        .map(|service| (service.entry.descriptor.name, service.addr.as_str()))
        .collect();
    let orchestrator = addresses
        .get("orchestrator")
        .copied()
        .unwrap_or("127.0.0.1:50056");
    let demo = format!("demo-{}", demo_suffix());
    let services: String = running
        .iter()
        .map(|service| {
            format!(
                "  {:<14} {:<21} metrics http://{}/metrics\n",
                service.entry.descriptor.name, service.addr, service.metrics_addr
            )
        })
        .collect();
    let catalog_metrics = running
        .iter()
        .find(|service| service.entry.descriptor.name == "catalog")
        .map_or("127.0.0.1:51051", |service| service.metrics_addr.as_str());
    let bearer = format!("-H 'authorization: Bearer {token}'");
    let provision = format!(
        r#"'{{"name": "Demo", "url": "{demo}.example.com", "region": "us-east", "products": ["jira"], "admin": {{"email": "admin@{demo}.example.com", "kind": "admin"}}, "apps": ["insight"]}}'"#
    );
    let site = format!(r#"'{{"site": "https://{demo}.example.com"}}'"#);
    let banner = format!(
        "Micros is up. Store: {store}. Ctrl-C stops every service.\n\n\
         {services}\n\
         Development token (principal dev; roles viewer, admin, operator, approver; 30 days):\n\
         \x20 export MICROS_TOKEN={token}\n\n\
         Metrics (Prometheus text; calls by method and status, lifecycle counters):\n\
         \x20 curl -s http://{catalog_metrics}/metrics | grep -E '^(rpc_server|micros_)'\n\n\
         Try (a site in every service, then what the orchestrator says of it):\n\
         \x20 grpcurl -plaintext {orchestrator} list\n\
         \x20 grpcurl -plaintext {bearer} -d {provision} {orchestrator} micros.orchestrator.v1.OrchestratorService/ProvisionSite\n\
         \x20 grpcurl -plaintext {bearer} -d {site} {orchestrator} micros.orchestrator.v1.OrchestratorService/GetSite\n\n",
        store = store_description(&launch.store_url),
    );
    // A closed stdout (the reader went away) must not take the services down with it.
    let _ = std::io::stdout().write_all(banner.as_bytes());
    Ok(())
}

/// The store as the banner shows it: the server or directory, never a password.
fn store_description(url: &str) -> String {
    match url.strip_prefix("postgres://") {
        Some(rest) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("PostgreSQL at {host}")
        }
        None => format!(
            "SQLite under {}",
            url.strip_prefix("sqlite://").unwrap_or(url)
        ),
    }
}

/// Six hex digits, so the printed example creates a site whose URL is new each run.
fn demo_suffix() -> String {
    use rand::Rng;
    format!("{:06x}", rand::rng().random_range(0..0x0100_0000u32))
}
