//! `micros bench replay`: the April 2022 incident, replayed from outside.
//!
//! Every service runs as a child process of this one (as `micros up` runs them), on
//! SQLite files in a scratch directory or on databases `bench_<random>_…` of a
//! PostgreSQL server, dropped afterwards. Everything is driven through gRPC with bearer
//! tokens, as an operator would: sites are provisioned through the orchestrator and
//! filled through each service's domain API; then the orchestrator plans the deletion of
//! every site, a second principal approves it, it is applied in waves, and the operation
//! is restored and verified through the orchestrator. The same-run floors are measured
//! afterwards on the same databases (see [`super::floors`]).

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use futures::{StreamExt, TryStreamExt};
use micros_platform::{
    auth::Role,
    client::{self, ServiceChannel},
    config::{ClientConfig, StoreConfig},
    store::postgres_url,
};
use micros_proto::{
    identity::v1::{
        AddMemberRequest, CreateGroupRequest, CreateUserRequest,
        identity_service_client::IdentityServiceClient,
    },
    media::v1::{
        Chunk, UploadMetadata, UploadRequest, media_service_client::MediaServiceClient,
        upload_request::Part,
    },
    orchestrator::v1::{self as pb, orchestrator_service_client::OrchestratorServiceClient},
    productdata::v1::{
        CreateDocumentRequest, NewIssue, Page, create_document_request::Content,
        product_data_service_client::ProductDataServiceClient,
    },
};
use secrecy::SecretString;
use sha2::Digest;
use sqlx::Executor;

use super::floors::{self, Floors};
use crate::up::{Children, Launch};

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum BackendArg {
    Sqlite,
    Postgres,
}

#[derive(clap::Args, Clone)]
pub struct ReplayArgs {
    /// Where every service stores.
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: BackendArg,
    /// The PostgreSQL server for `--backend postgres` (databases `bench_<random>_…` are
    /// created on it and dropped at the end).
    #[arg(
        long,
        env = "MICROS_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    postgres_url: String,
    /// Sites deleted and restored (the incident: 883).
    #[arg(long, default_value_t = 883)]
    sites: usize,
    /// Products per site (jira, confluence).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    products: u8,
    /// Apps installed per site.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=4))]
    apps: u8,
    /// Users per site, besides its admin.
    #[arg(long, default_value_t = 20)]
    users: usize,
    /// Groups per site.
    #[arg(long, default_value_t = 5)]
    groups: usize,
    /// Members per group (users taken in turn).
    #[arg(long, default_value_t = 4)]
    members: usize,
    /// Documents per site.
    #[arg(long, default_value_t = 100)]
    documents: usize,
    /// Of the documents, the percentage owned by the site's apps.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(0..=100))]
    app_owned_percent: u8,
    /// Attachments per site.
    #[arg(long, default_value_t = 10)]
    attachments: usize,
    /// Sites seeded at once.
    #[arg(long, default_value_t = 24)]
    concurrency: usize,
    /// Connections per service database (`store.max_connections`). PostgreSQL's 100
    /// connections are shared by everything on the host; ten databases of 8 would
    /// leave little for anyone else.
    #[arg(long, default_value_t = 4)]
    pool_size: u32,
    /// Where SQLite files, blobs and run files go; a temporary directory by default,
    /// removed at the end.
    #[arg(long)]
    scratch_dir: Option<PathBuf>,
    /// Leave the PostgreSQL databases in place (for a look afterwards).
    #[arg(long)]
    keep_databases: bool,
}

const PRODUCTS: [&str; 2] = ["jira", "confluence"];
const APPS: [&str; 4] = ["insight", "tempo", "drawio", "gliffy"];
const OPERATOR: &str = "bench-operator";
const APPROVER: &str = "bench-approver";

type Orchestrator = OrchestratorServiceClient<ServiceChannel>;

pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let scratch = tempfile::Builder::new().prefix("micros-bench-").tempdir()?;
    let data_dir = args
        .scratch_dir
        .clone()
        .unwrap_or_else(|| scratch.path().to_owned());
    let prefix = format!("bench_{}_", random_suffix());
    let store_url = match args.backend {
        BackendArg::Sqlite => format!("sqlite://{}", data_dir.join("data").display()),
        BackendArg::Postgres => args.postgres_url.clone(),
    };
    let launch = Launch::new(
        &data_dir,
        Some(store_url.clone()),
        None,
        vec![
            ("MICROS__STORE__DATABASE_PREFIX".to_owned(), prefix.clone()),
            (
                "MICROS__TELEMETRY__LOG_FILTER".to_owned(),
                "warn,sqlx=error".to_owned(),
            ),
            (
                "MICROS__STORE__MAX_CONNECTIONS".to_owned(),
                args.pool_size.to_string(),
            ),
        ],
    )?;
    let store = StoreConfig {
        url: store_url,
        password: SecretString::from(""),
        database_prefix: prefix.clone(),
        ..StoreConfig::default()
    };
    eprintln!(
        "micros bench replay: starting every service on {:?} (databases {prefix}*) …",
        args.backend
    );
    let outcome = match Children::start(&launch).await {
        Ok(children) => {
            let outcome = replay(&args, &launch, &children, &store, &prefix).await;
            children.stop().await;
            outcome
        }
        Err(error) => Err(error),
    };
    if args.backend == BackendArg::Postgres && !args.keep_databases {
        drop_databases(&args.postgres_url, &prefix).await?;
    }
    drop(scratch);
    outcome
}

/// Eight hex digits, so that runs never share databases.
fn random_suffix() -> String {
    use rand::Rng;
    format!("{:08x}", rand::rng().random::<u32>())
}

async fn replay(
    args: &ReplayArgs,
    launch: &Launch,
    children: &Children,
    store: &StoreConfig,
    run_name: &str,
) -> anyhow::Result<()> {
    let ttl = Duration::from_secs(8 * 3600);
    let operator_token =
        launch.token(OPERATOR, &[Role::Viewer, Role::Admin, Role::Operator], ttl)?;
    let approver_token = launch.token(APPROVER, &[Role::Viewer, Role::Approver], ttl)?;
    let clients = Clients {
        orchestrator: orchestrator(&children.url("orchestrator")?, &operator_token)?,
        identity: IdentityServiceClient::new(channel(
            "identity",
            &children.url("identity")?,
            &operator_token,
        )?),
        documents: ProductDataServiceClient::new(channel(
            "product-data",
            &children.url("product-data")?,
            &operator_token,
        )?),
        media: MediaServiceClient::new(channel("media", &children.url("media")?, &operator_token)?),
    };
    let mut approver = orchestrator(&children.url("orchestrator")?, &approver_token)?;
    let cpu = CpuMeter::new(children);
    let watcher = Watcher::connect(args).await;
    let mut phases: Vec<(&str, Duration)> = Vec::new();

    // Seed.
    eprintln!(
        "seeding {} sites through gRPC ({} at once) …",
        args.sites, args.concurrency
    );
    let started = Instant::now();
    let done = Arc::new(AtomicUsize::new(0));
    let sites: Vec<String> = futures::stream::iter(0..args.sites)
        .map(|index| {
            let clients = clients.clone();
            let done = done.clone();
            async move {
                let site = seed_site(&clients, args, run_name, index).await?;
                let done = done.fetch_add(1, Ordering::Relaxed) + 1;
                if done.is_multiple_of((args.sites / 10).max(1)) {
                    eprintln!("  {done} sites seeded");
                }
                anyhow::Ok(site)
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .try_collect()
        .await?;
    phases.push(("seed", started.elapsed()));
    let cpu_seed = cpu.sample();

    // Delete: plan, approval by a second principal, apply.
    let mut operator = clients.orchestrator.clone();
    eprintln!("deleting {} sites through the orchestrator …", sites.len());
    let sampler = watcher.sample(&store.database_prefix);
    let started = Instant::now();
    let plan = operator
        .create_plan(pb::CreatePlanRequest {
            kind: pb::PlanKind::DeleteSites as i32,
            inputs: sites.clone(),
            expected_kind: pb::ExpectedKind::Site as i32,
            expected_count: i32::try_from(sites.len())?,
            reason: "the April 2022 replay".to_owned(),
            ticket: "BENCH-1".to_owned(),
            ..Default::default()
        })
        .await
        .context("planning the deletion")?
        .into_inner();
    phases.push(("plan", started.elapsed()));
    if let Some(error) = plan.errors.first() {
        bail!(
            "the deletion plan has {} errors; first: {} {}",
            plan.errors.len(),
            error.input,
            error.message
        );
    }
    let started = Instant::now();
    if plan.requires_approval {
        approver
            .approve_plan(pb::ApprovePlanRequest {
                plan_id: plan.plan_id.clone(),
                fingerprint: plan.fingerprint.clone(),
            })
            .await
            .context("approving the deletion as a second principal")?;
    }
    phases.push(("approve", started.elapsed()));
    let cpu_before_delete = cpu.sample();
    let started = Instant::now();
    let deleting = operator
        .apply_plan(pb::ApplyPlanRequest {
            plan_id: plan.plan_id.clone(),
            fingerprint: plan.fingerprint.clone(),
        })
        .await
        .context("applying the deletion")?
        .into_inner();
    let deleted = finish(&mut operator, &deleting.operation_id).await?;
    let delete_time = started.elapsed();
    phases.push(("delete (apply)", delete_time));
    let cpu_delete = cpu.sample();
    let delete_statements = sampler.stop().await;
    ensure!(
        deleted.state() == pb::OperationState::Succeeded,
        "the deletion ended {:?}: {}",
        deleted.state(),
        deleted.halt_reason
    );

    // Restore and verify.
    eprintln!("restoring {} …", deleting.operation_id);
    let sampler = watcher.sample(&store.database_prefix);
    let started = Instant::now();
    let restore_plan = operator
        .create_plan(pb::CreatePlanRequest {
            kind: pb::PlanKind::RestoreSites as i32,
            undo_operation_id: deleting.operation_id.clone(),
            reason: "the April 2022 replay: undo".to_owned(),
            ticket: "BENCH-1".to_owned(),
            ..Default::default()
        })
        .await
        .context("planning the restore")?
        .into_inner();
    ensure!(
        restore_plan.errors.is_empty(),
        "the restore plan has errors: {:?}",
        restore_plan.errors.first()
    );
    let restore_plan_time = started.elapsed();
    let restoring = operator
        .apply_plan(pb::ApplyPlanRequest {
            plan_id: restore_plan.plan_id.clone(),
            fingerprint: restore_plan.fingerprint.clone(),
        })
        .await
        .context("applying the restore")?
        .into_inner();
    let restored = finish(&mut operator, &restoring.operation_id).await?;
    let restore_time = started.elapsed();
    phases.push(("restore (plan + apply)", restore_time));
    let cpu_restore = cpu.sample();
    let restore_statements = sampler.stop().await;
    ensure!(
        restored.state() == pb::OperationState::Succeeded,
        "the restore ended {:?}: {}",
        restored.state(),
        restored.halt_reason
    );
    let started = Instant::now();
    let report = operator
        .get_report(pb::GetReportRequest {
            operation_id: restoring.operation_id.clone(),
        })
        .await?
        .into_inner();
    let verified = report.sites.iter().filter(|site| site.verified).count();
    let verify_time = started.elapsed();
    phases.push(("verify (report)", verify_time));
    ensure!(
        verified == sites.len() && report.sites.len() == sites.len(),
        "the restore verified {verified} of {} sites (report lists {})",
        sites.len(),
        report.sites.len()
    );
    let first = operator
        .get_site(pb::GetSiteRequest {
            site: sites[0].clone(),
        })
        .await?
        .into_inner();
    ensure!(
        first.state() == micros_proto::catalog::v1::SiteState::Active,
        "{} is {:?} after the restore",
        sites[0],
        first.state()
    );
    let delete_report = operator
        .get_report(pb::GetReportRequest {
            operation_id: deleting.operation_id.clone(),
        })
        .await?
        .into_inner();

    // Floors on the same databases, services idle.
    eprintln!("measuring the floors on the same databases …");
    let databases = floors::open(store, &sites).await?;
    let floors = floors::measure(&databases).await?;
    floors::close(databases).await;

    print_figures(&Figures {
        args,
        sites: sites.len(),
        phases: &phases,
        deleted: &deleted,
        restored: &restored,
        delete_report: &delete_report,
        restore_report: &report,
        delete_time,
        restore_plan_time,
        restore_time,
        verify_time,
        floors,
        cpu: [cpu_seed, cpu_before_delete, cpu_delete, cpu_restore],
        statements: [delete_statements, restore_statements],
    });
    println!(
        "verified: {verified} of {} sites restored and verified through the orchestrator",
        sites.len()
    );
    Ok(())
}

#[derive(Clone)]
struct Clients {
    orchestrator: Orchestrator,
    identity: IdentityServiceClient<ServiceChannel>,
    documents: ProductDataServiceClient<ServiceChannel>,
    media: MediaServiceClient<ServiceChannel>,
}

fn channel(name: &str, url: &str, token: &str) -> anyhow::Result<ServiceChannel> {
    Ok(client::connect(
        name,
        &ClientConfig {
            url: url.to_owned(),
            timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(5),
        },
        Some(&SecretString::from(token.to_owned())),
    )?)
}

fn orchestrator(url: &str, token: &str) -> anyhow::Result<Orchestrator> {
    Ok(
        OrchestratorServiceClient::new(channel("orchestrator", url, token)?)
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20),
    )
}

/// Provisions site `index` of the run and fills it in every service; its ID.
async fn seed_site(
    clients: &Clients,
    args: &ReplayArgs,
    run_name: &str,
    index: usize,
) -> anyhow::Result<String> {
    let mut orchestrator = clients.orchestrator.clone();
    let mut identity = clients.identity.clone();
    let mut documents = clients.documents.clone();
    let mut media = clients.media.clone();
    // Unique per run (its database prefix), so that runs on one server never collide.
    let name = format!("{}{index:05}", run_name.replace('_', "-"));
    let products: Vec<String> = PRODUCTS[..usize::from(args.products)]
        .iter()
        .map(|product| (*product).to_owned())
        .collect();
    let provisioned = orchestrator
        .provision_site(pb::ProvisionSiteRequest {
            name: format!("Replay {index}"),
            url: format!("{name}.example.net"),
            region: "eu-west".to_owned(),
            products: products.clone(),
            admin: Some(pb::Contact {
                email: format!("admin@{name}.example"),
                name: String::new(),
                kind: "admin".to_owned(),
            }),
            contacts: Vec::new(),
            apps: APPS[..usize::from(args.apps)]
                .iter()
                .map(|app| (*app).to_owned())
                .collect(),
            // Chosen here, so that provisioning is idempotent if anything repeats it.
            site_id: micros_platform::ids::SiteId::new().to_string(),
            seats: 50,
        })
        .await
        .with_context(|| format!("provisioning {name}"))?
        .into_inner();
    let site_id = provisioned.site_id;
    let apps = provisioned.app_installation_ids;

    let mut users = Vec::with_capacity(args.users);
    for user in 0..args.users {
        users.push(
            identity
                .create_user(CreateUserRequest {
                    site_id: site_id.clone(),
                    email: format!("user{user}@{name}.example"),
                    display_name: format!("User {user}"),
                    site_admin: false,
                    user_id: String::new(),
                })
                .await
                .with_context(|| format!("creating a user of {name}"))?
                .into_inner()
                .user_id,
        );
    }
    let mut member = 0;
    for group in 0..args.groups {
        let group_id = identity
            .create_group(CreateGroupRequest {
                site_id: site_id.clone(),
                name: format!("group {group}"),
                group_id: String::new(),
            })
            .await
            .with_context(|| format!("creating a group of {name}"))?
            .into_inner()
            .group_id;
        for _ in 0..args.members.min(users.len()) {
            identity
                .add_member(AddMemberRequest {
                    site_id: site_id.clone(),
                    group_id: group_id.clone(),
                    user_id: users[member % users.len()].clone(),
                })
                .await
                .with_context(|| format!("adding a member to a group of {name}"))?;
            member += 1;
        }
    }

    let app_owned = args.documents * usize::from(args.app_owned_percent) / 100;
    for document in 0..args.documents {
        let app_installation_id = if document < app_owned && !apps.is_empty() {
            apps[document % apps.len()].clone()
        } else {
            String::new()
        };
        let content = match PRODUCTS[document % products.len()] {
            "jira" => Content::Issue(NewIssue {
                project_key: "REPLAY".to_owned(),
                summary: format!("Issue {document} of {name}"),
                status: 0,
            }),
            _ => Content::Page(Page {
                title: format!("Page {document} of {name}"),
                body: format!("The body of page {document}: restored with its ID.\n").repeat(4),
            }),
        };
        documents
            .create_document(CreateDocumentRequest {
                site_id: site_id.clone(),
                document_id: String::new(),
                app_installation_id,
                content: Some(content),
            })
            .await
            .with_context(|| format!("creating a document of {name}"))?;
    }

    for attachment in 0..args.attachments {
        let data = format!("attachment {attachment} of {name}\n")
            .repeat(16)
            .into_bytes();
        media
            .upload(futures::stream::iter(vec![
                UploadRequest {
                    part: Some(Part::Metadata(UploadMetadata {
                        site_id: site_id.clone(),
                        file_name: format!("notes-{attachment}.txt"),
                        content_type: "text/plain".to_owned(),
                        size_bytes: i64::try_from(data.len())?,
                        sha256: format!("{:x}", sha2::Sha256::digest(&data)),
                        ..Default::default()
                    })),
                },
                UploadRequest {
                    part: Some(Part::Chunk(Chunk {
                        crc32c: Some(crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(&data)),
                        data,
                    })),
                },
            ]))
            .await
            .with_context(|| format!("uploading an attachment of {name}"))?;
    }
    Ok(site_id)
}

/// Follows an operation until it stops moving.
async fn finish(client: &mut Orchestrator, operation_id: &str) -> anyhow::Result<pb::Operation> {
    let moving = |operation: &pb::Operation| {
        matches!(
            operation.state(),
            pb::OperationState::Running | pb::OperationState::Aborting
        )
    };
    if let Ok(stream) = client
        .watch_operation(pb::WatchOperationRequest {
            operation_id: operation_id.to_owned(),
        })
        .await
    {
        let mut stream = stream.into_inner();
        while let Ok(Some(operation)) = stream.message().await {
            if !moving(&operation) {
                return Ok(operation);
            }
        }
    }
    loop {
        let operation = client
            .get_operation(pb::GetOperationRequest {
                operation_id: operation_id.to_owned(),
            })
            .await?
            .into_inner();
        if !moving(&operation) {
            return Ok(operation);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// CPU seconds used so far by each service process and by the PostgreSQL server.
#[derive(Debug, Clone, Default)]
struct CpuSample {
    services: BTreeMap<&'static str, f64>,
    postgres: f64,
}

struct CpuMeter {
    pids: Vec<(&'static str, u32)>,
}

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

impl CpuMeter {
    fn new(children: &Children) -> Self {
        let pids = crate::registry::all()
            .iter()
            .filter_map(|entry| {
                let name = entry.descriptor.name;
                children.pid(name).map(|pid| (name, pid))
            })
            .collect();
        Self { pids }
    }

    fn sample(&self) -> CpuSample {
        let services = self
            .pids
            .iter()
            .map(|(name, pid)| {
                let seconds = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|stat| cpu_ticks(&stat))
                    .map_or(0.0, |ticks| ticks as f64 / TICKS_PER_SECOND);
                (*name, seconds)
            })
            .collect();
        let postgres = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
            .filter(|stat| stat.contains("(postgres)"))
            .filter_map(|stat| cpu_ticks(&stat))
            .sum::<u64>() as f64
            / TICKS_PER_SECOND;
        CpuSample { services, postgres }
    }
}

/// utime + stime of a `/proc/<pid>/stat` line.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of the line; the first two (pid, comm) are before `after_name`.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// A connection to the PostgreSQL server, taken before the services fill its
/// connection slots, for sampling what it runs.
struct Watcher {
    pool: Option<sqlx::AnyPool>,
}

impl Watcher {
    async fn connect(args: &ReplayArgs) -> Self {
        if args.backend != BackendArg::Postgres {
            return Self { pool: None };
        }
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .connect(&postgres_url(&args.postgres_url, "postgres"))
            .await;
        match pool {
            Ok(pool) => Self { pool: Some(pool) },
            Err(error) => {
                eprintln!("not sampling PostgreSQL's statements: {error}");
                Self { pool: None }
            }
        }
    }

    /// Samples the statements running in the benchmark's databases until stopped.
    fn sample(&self, prefix: &str) -> Sampler {
        let Some(pool) = self.pool.clone() else {
            return Sampler { running: None };
        };
        let stop = Arc::new(AtomicBool::new(false));
        let pattern = format!("{prefix}%");
        let stopping = stop.clone();
        let task = tokio::spawn(async move {
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            while !stopping.load(Ordering::Relaxed) {
                let queries: Vec<String> = sqlx::query_scalar(
                    "SELECT query FROM pg_stat_activity
                     WHERE state = 'active' AND datname::text LIKE $1 AND pid <> pg_backend_pid()",
                )
                .bind(pattern.clone())
                .fetch_all(&pool)
                .await
                .unwrap_or_default();
                for query in queries {
                    let shape: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
                    let shape: String = shape.chars().take(110).collect();
                    *seen.entry(shape).or_default() += 1;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            seen
        });
        Sampler {
            running: Some((stop, task)),
        }
    }
}

/// Counts of each statement seen, by its first characters.
type SamplerTask = tokio::task::JoinHandle<BTreeMap<String, usize>>;

/// The statements PostgreSQL ran for the benchmark's databases during a phase, sampled
/// every 10 ms, to say where the phase's time goes.
struct Sampler {
    running: Option<(Arc<AtomicBool>, SamplerTask)>,
}

impl Sampler {
    /// The statements seen, most often first.
    async fn stop(self) -> Vec<(String, usize)> {
        let Some((stop, task)) = self.running else {
            return Vec::new();
        };
        stop.store(true, Ordering::Relaxed);
        let mut seen: Vec<(String, usize)> = task.await.unwrap_or_default().into_iter().collect();
        seen.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
        seen
    }
}

async fn drop_databases(server: &str, prefix: &str) -> anyhow::Result<()> {
    sqlx::any::install_default_drivers();
    let admin = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&postgres_url(server, "postgres"))
        .await?;
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE starts_with(datname, $1)")
            .bind(prefix.to_owned())
            .fetch_all(&admin)
            .await?;
    for name in names {
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .await?;
    }
    admin.close().await;
    Ok(())
}

struct Figures<'a> {
    args: &'a ReplayArgs,
    sites: usize,
    phases: &'a [(&'a str, Duration)],
    deleted: &'a pb::Operation,
    restored: &'a pb::Operation,
    delete_report: &'a pb::Report,
    restore_report: &'a pb::Report,
    delete_time: Duration,
    restore_plan_time: Duration,
    restore_time: Duration,
    verify_time: Duration,
    floors: Floors,
    /// After seeding, before the delete's apply, after it, after the restore.
    cpu: [CpuSample; 4],
    /// Statements seen during the delete and the restore (PostgreSQL).
    statements: [Vec<(String, usize)>; 2],
}

fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

fn print_figures(figures: &Figures<'_>) {
    let args = figures.args;
    println!();
    println!(
        "April 2022 replay on {:?}: {} sites, each with {} products, {} apps, {} users, {} groups x {} members, {} documents ({}% app-owned), {} attachments",
        figures.args.backend,
        figures.sites,
        args.products,
        args.apps,
        args.users,
        args.groups,
        args.members,
        args.documents,
        args.app_owned_percent,
        args.attachments
    );
    println!(
        "machine: {} CPUs, release={}",
        std::thread::available_parallelism().map_or(0, usize::from),
        !cfg!(debug_assertions)
    );
    println!();
    println!("{:<26} {:>10}", "phase", "wall");
    for (phase, duration) in figures.phases {
        println!("{phase:<26} {:>10}", seconds(*duration));
    }
    println!(
        "{:<26} {:>10}  (restore plan {} + apply until verified {})",
        "restore + verify",
        seconds(figures.restore_time + figures.verify_time),
        seconds(figures.restore_plan_time),
        seconds(figures.restore_time - figures.restore_plan_time),
    );
    println!(
        "delete: {} waves, rehearsal {:.2} s; restore: {} waves",
        figures.deleted.waves,
        figures
            .deleted
            .rehearsal
            .as_ref()
            .map_or(0.0, |rehearsal| rehearsal.seconds),
        figures.restored.waves
    );

    println!();
    println!(
        "per service (sum of the orchestrator's step timings; services run concurrently within a wave):"
    );
    println!(
        "{:<14} {:<18} {:>7} {:>10} {:>10}",
        "service", "action", "calls", "seconds", "rows"
    );
    for report in [figures.delete_report, figures.restore_report] {
        let mut steps: BTreeMap<(String, String), (usize, f64, i64)> = BTreeMap::new();
        for step in &report.steps {
            let entry = steps
                .entry((step.service.clone(), step.action.clone()))
                .or_default();
            entry.0 += 1;
            entry.1 += step.seconds;
            entry.2 += step.rows_affected;
        }
        for ((service, action), (calls, total, rows)) in steps {
            println!("{service:<14} {action:<18} {calls:>7} {total:>9.2}s {rows:>10}");
        }
    }

    let [seeded, before_delete, after_delete, after_restore] = &figures.cpu;
    println!();
    println!("CPU seconds (process times; PostgreSQL: every `postgres` process on this host):");
    println!(
        "{:<14} {:>10} {:>10} {:>10}",
        "process", "seed", "delete", "restore"
    );
    let empty = CpuSample::default();
    for name in after_restore.services.keys() {
        let at = |sample: &CpuSample| sample.services.get(name).copied().unwrap_or(0.0);
        println!(
            "{name:<14} {:>10.2} {:>10.2} {:>10.2}",
            at(seeded) - at(&empty),
            at(after_delete) - at(before_delete),
            at(after_restore) - at(after_delete)
        );
    }
    if figures.args.backend == BackendArg::Postgres {
        println!(
            "{:<14} {:>10} {:>10.2} {:>10.2}",
            "postgres",
            "",
            after_delete.postgres - before_delete.postgres,
            after_restore.postgres - after_delete.postgres
        );
    }
    for (phase, statements) in ["delete", "restore"].iter().zip(&figures.statements) {
        if statements.is_empty() {
            continue;
        }
        let total: usize = statements.iter().map(|(_, count)| count).sum();
        println!();
        println!(
            "PostgreSQL statements active during the {phase} ({total} samples), most seen first:"
        );
        for (statement, count) in statements.iter().take(6) {
            println!("  {count:>5}  {statement}");
        }
    }

    let floors = figures.floors;
    println!();
    println!(
        "same-run floors on the same databases ({} registry rows, {} tenant rows):",
        floors.registry_rows, floors.rows
    );
    println!(
        "  registry flip of every site and back   {:>10}",
        seconds(floors.flip)
    );
    println!(
        "  per-site fingerprint scan of every row {:>10}",
        seconds(floors.scan)
    );
    println!(
        "  tombstone floor (flip + scan)          {:>10}",
        seconds(floors.tombstone())
    );
    println!(
        "  naive rewrite of every row and back    {:>10}",
        seconds(floors.rewrite)
    );
    let floor = floors.tombstone().as_secs_f64();
    let restore = (figures.restore_time + figures.verify_time).as_secs_f64();
    let delete = figures.delete_time.as_secs_f64();
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!();
    println!("ratios against the targets of issue 11:");
    println!(
        "  restore + verify / tombstone floor  {:>6.2}x  (target <= 3x: {})",
        restore / floor,
        verdict(restore <= 3.0 * floor)
    );
    println!(
        "  restore + verify                    {:>7.2} s (target <= 5 s on PostgreSQL: {})",
        restore,
        verdict(restore <= 5.0)
    );
    println!(
        "  delete / tombstone floor            {:>6.2}x  (target <= 3x: {})",
        delete / floor,
        verdict(delete <= 3.0 * floor)
    );
    println!(
        "  restore + verify / naive rewrite    {:>6.2}x  (below 1: faster than rewriting rows)",
        restore / floors.rewrite.as_secs_f64()
    );
}
