//! Lifecycle benchmark: the `TenantLifecycle` RPCs over real gRPC against the row-level
//! floor, a raw SQL `UPDATE` of the same rows' deletion columns, on SQLite and (when
//! `MICROS_TEST_POSTGRES_URL` is set) PostgreSQL.
//!
//! `cargo bench -p micros-platform --bench lifecycle` (sizes: `MICROS_BENCH_SITES`,
//! default 1000, and `MICROS_BENCH_ROWS` per site, default 1000). Prints, per backend:
//! (a) soft delete + restore of every site vs the raw UPDATE of all their rows; (b) the
//! same for app-installation targets owning those rows; (c) Describe fingerprints of all
//! sites cold (reading every row) vs a raw SELECT streaming and hashing the same rows'
//! same columns (target: at most 1.5x), each with the growth of the process's peak
//! resident memory while it ran; then Describe again, from the per-site cache.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::TryStreamExt;
use micros_platform::{
    auth::Role,
    client::{self, ServiceChannel},
    clock,
    config::{ClientConfig, LifecycleConfig, ServerConfig},
    ids::{AppInstallationId, OperationId, SiteId},
    lifecycle::{
        Lifecycle, NoHooks,
        grpc::LifecycleService,
        schema::{ColumnKind, TableSpec, TenantSchema, int, text},
    },
    server::ServerBuilder,
    store::{Backend, Migrations, Store},
    testing::{self, TestStore},
};
use micros_proto::lifecycle::v1::{
    AppInstallationTarget, DescribeRequest, Justification, RestoreRequest, SiteTarget,
    SoftDeleteRequest, Target, restore_request::Source, target::Kind,
    tenant_lifecycle_client::TenantLifecycleClient,
};
use secrecy::SecretString;
use sqlx::Row;

const SCHEMA: TenantSchema = TenantSchema {
    tables: &[
        TableSpec {
            name: "notes",
            key: "note_id",
            columns: &[text("note_id"), text("app_id"), text("title"), int("size")],
            owner: Some("app_id"),
            unique_across_sites: &[],
        },
        TableSpec {
            name: "tags",
            key: "tag_id",
            columns: &[text("tag_id"), text("note_id"), text("label")],
            owner: None,
            unique_across_sites: &[],
        },
    ],
};

fn env_size(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

struct Figures {
    backend: Backend,
    rows: usize,
    site_rpc: Duration,
    app_rpc: Duration,
    raw_update: Duration,
    describe_rpc: Duration,
    describe_peak: Option<u64>,
    describe_cached: Duration,
    raw_select: Duration,
    raw_peak: Option<u64>,
}

#[tokio::main]
async fn main() {
    let sites = env_size("MICROS_BENCH_SITES", 1000);
    let rows = env_size("MICROS_BENCH_ROWS", 1000);
    let mut all = Vec::new();
    for backend in testing::backends() {
        eprintln!("{backend:?}: loading {sites} sites x {rows} rows …");
        all.push(run(backend, sites, rows).await);
    }
    println!();
    println!(
        "lifecycle benchmark: {sites} sites x {rows} rows (`cargo bench -p micros-platform --bench lifecycle`)"
    );
    println!(
        "{:<10} {:>12} {:>14} {:>10} {:>14} {:>10} {:>15} {:>12} {:>10} {:>12}",
        "backend",
        "raw UPDATE",
        "site RPCs",
        "floor/rpc",
        "app RPCs",
        "rpc/floor",
        "describe cold",
        "raw SELECT",
        "cold/raw",
        "cached"
    );
    for figures in &all {
        let ms = |duration: Duration| format!("{:.0} ms", duration.as_secs_f64() * 1000.0);
        let mib = |peak: Option<u64>| {
            peak.map_or_else(
                || "unknown".to_owned(),
                |bytes| format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20)),
            )
        };
        println!(
            "{:<10} {:>12} {:>14} {:>9.1}x {:>14} {:>9.2}x {:>15} {:>12} {:>9.2}x {:>12}",
            format!("{:?}", figures.backend),
            ms(figures.raw_update),
            ms(figures.site_rpc),
            figures.raw_update.as_secs_f64() / figures.site_rpc.as_secs_f64(),
            ms(figures.app_rpc),
            figures.app_rpc.as_secs_f64() / figures.raw_update.as_secs_f64(),
            ms(figures.describe_rpc),
            ms(figures.raw_select),
            figures.describe_rpc.as_secs_f64() / figures.raw_select.as_secs_f64(),
            ms(figures.describe_cached),
        );
        println!(
            "{:<10} rows: {}; site RPCs = SoftDelete + Restore of every site (no data row touched); \
             app RPCs = the same for one app installation per site owning all its rows; \
             describe cold = Describe reading every row (target cold/raw <= 1.5x), \
             raw SELECT = the same rows and columns streamed and hashed, cached = Describe again \
             (rows unchanged); peak memory growth: describe cold {}, raw SELECT {}",
            "",
            figures.rows,
            mib(figures.describe_peak),
            mib(figures.raw_peak),
        );
    }
}

async fn run(backend: Backend, sites: usize, rows: usize) -> Figures {
    let test_store = TestStore::new(backend);
    let migrations = Migrations {
        sqlite: sqlx::migrate!("./tests/migrations/sqlite"),
        postgres: sqlx::migrate!("./tests/migrations/postgres"),
    };
    let store = Store::open(&test_store.config, "bench", &migrations)
        .await
        .expect("open the store");
    let site_ids: Vec<SiteId> = (0..sites).map(|_| SiteId::new()).collect();
    let app_ids: Vec<AppInstallationId> = (0..sites).map(|_| AppInstallationId::new()).collect();
    load(&store, &site_ids, &app_ids, rows).await;

    let lifecycle = Lifecycle::open(
        store.clone(),
        SCHEMA,
        clock::system(),
        // The bench measures the machinery at the incident's scale, with no orchestrator
        // to sign a grant: the guard still counts every deletion, but lets them through.
        LifecycleConfig {
            free_deletions_per_hour: u32::MAX,
            ..LifecycleConfig::default()
        },
        Arc::new(NoHooks),
    )
    .await
    .expect("open the lifecycle");
    let auth = testing::test_auth("catalog");
    let server = ServerBuilder::new(
        &ServerConfig {
            request_timeout: Duration::from_secs(1800),
            ..ServerConfig::default()
        },
        &auth,
    )
    .add_service(LifecycleService::server(lifecycle))
    .bind()
    .await
    .expect("bind")
    .spawn();
    let token = testing::test_token("bench-orchestrator", &[Role::Lifecycle]);
    let channel = client::connect(
        "bench",
        &ClientConfig {
            url: server.url(),
            timeout: Duration::from_secs(1800),
            connect_timeout: Duration::from_secs(5),
        },
        Some(&SecretString::from(token)),
    )
    .expect("channel");
    let mut client = TenantLifecycleClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);

    let site_targets: Vec<Target> = site_ids
        .iter()
        .map(|site_id| Target {
            kind: Some(Kind::Site(SiteTarget {
                site_id: site_id.to_string(),
            })),
        })
        .collect();
    let app_targets: Vec<Target> = site_ids
        .iter()
        .zip(&app_ids)
        .map(|(site_id, app_id)| Target {
            kind: Some(Kind::AppInstallation(AppInstallationTarget {
                site_id: site_id.to_string(),
                app_installation_id: app_id.to_string(),
            })),
        })
        .collect();

    let peak = PeakMemory::start();
    let started = Instant::now();
    let before = describe(&mut client, &site_targets).await;
    let describe_rpc = started.elapsed();
    let describe_peak = peak.growth();
    let describe_cached = {
        let started = Instant::now();
        let again = describe(&mut client, &site_targets).await;
        assert_eq!(again, before);
        started.elapsed()
    };
    let peak = PeakMemory::start();
    let raw_select = raw_hash_select(&store).await;
    let raw_peak = peak.growth();

    let site_rpc = delete_and_restore(&mut client, &site_targets).await;
    assert_eq!(
        describe(&mut client, &site_targets).await,
        before,
        "site round trip"
    );
    let app_rpc = delete_and_restore(&mut client, &app_targets).await;
    assert_eq!(
        describe(&mut client, &site_targets).await,
        before,
        "app round trip"
    );
    let raw_update = raw_update_round_trip(&store, &site_ids).await;

    server.shutdown().await.expect("shutdown");
    store.close().await;
    Figures {
        backend,
        rows: sites * rows,
        site_rpc,
        app_rpc,
        raw_update,
        describe_rpc,
        describe_peak,
        describe_cached,
        raw_select,
        raw_peak,
    }
}

/// The growth of the process's peak resident memory (Linux `VmHWM`, reset through
/// `/proc/self/clear_refs`) over a measured step; `None` where the kernel offers
/// neither.
struct PeakMemory {
    baseline: Option<u64>,
}

impl PeakMemory {
    fn start() -> Self {
        let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        Self {
            baseline: reset.then(peak_resident).flatten(),
        }
    }

    fn growth(&self) -> Option<u64> {
        Some(peak_resident()?.saturating_sub(self.baseline?))
    }
}

fn peak_resident() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

async fn describe(
    client: &mut TenantLifecycleClient<ServiceChannel>,
    targets: &[Target],
) -> Vec<String> {
    client
        .describe(DescribeRequest {
            targets: targets.to_vec(),
        })
        .await
        .expect("describe")
        .into_inner()
        .outcomes
        .into_iter()
        .map(|outcome| outcome.fingerprint)
        .collect()
}

async fn delete_and_restore(
    client: &mut TenantLifecycleClient<ServiceChannel>,
    targets: &[Target],
) -> Duration {
    let justification = Some(Justification {
        reason: "benchmark".to_owned(),
        ticket: String::new(),
    });
    let operation = OperationId::new().to_string();
    let started = Instant::now();
    client
        .soft_delete(SoftDeleteRequest {
            targets: targets.to_vec(),
            operation_id: operation.clone(),
            justification: justification.clone(),
            validate_only: false,
            lease_token: 0,
            call_key: String::new(),
        })
        .await
        .expect("soft delete");
    client
        .restore(RestoreRequest {
            targets: targets.to_vec(),
            operation_id: OperationId::new().to_string(),
            source: Some(Source::UndoOperationId(operation)),
            justification,
            validate_only: false,
            lease_token: 0,
            call_key: String::new(),
        })
        .await
        .expect("restore");
    started.elapsed()
}

/// The row-level floor: mark every row of the sites deleted, then unmark them.
async fn raw_update_round_trip(store: &Store, site_ids: &[SiteId]) -> Duration {
    let list = serde_json::to_string(&site_ids.iter().map(ToString::to_string).collect::<Vec<_>>())
        .unwrap();
    let started = Instant::now();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE notes SET deleted_by = 'op_raw', deleted_at = 1 WHERE site_id IN ({})",
        store.json_strings("$1")
    )))
    .bind(list)
    .execute(store.pool())
    .await
    .expect("raw update");
    sqlx::query(
        "UPDATE notes SET deleted_by = NULL, deleted_at = NULL WHERE deleted_by = 'op_raw'",
    )
    .execute(store.pool())
    .await
    .expect("raw restore");
    started.elapsed()
}

/// The rows Describe reads, every column of every tenant-owned table, streamed and
/// hashed without the machinery: no registry, no cache, no per-site tallies.
async fn raw_hash_select(store: &Store) -> Duration {
    let started = Instant::now();
    let mut sum = 0u128;
    for table in SCHEMA.tables {
        let columns = table.all_columns();
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM {}",
            table.column_list(),
            table.name
        )))
        .fetch(store.pool());
        while let Some(row) = rows.try_next().await.expect("raw select") {
            let mut hasher = blake3::Hasher::new();
            for (index, column) in columns.iter().enumerate() {
                match column.kind {
                    ColumnKind::Text => {
                        let value: Option<&str> = row.try_get(index).expect("text");
                        hasher.update(value.unwrap_or_default().as_bytes());
                    }
                    ColumnKind::Int => {
                        let value: Option<i64> = row.try_get(index).expect("int");
                        hasher.update(&value.unwrap_or_default().to_le_bytes());
                    }
                }
            }
            sum = sum.wrapping_add(u128::from_le_bytes(
                hasher.finalize().as_bytes()[..16].try_into().unwrap(),
            ));
        }
    }
    std::hint::black_box(sum);
    started.elapsed()
}

/// Registers the sites and writes `rows` notes per site, all owned by the site's app.
async fn load(store: &Store, site_ids: &[SiteId], app_ids: &[AppInstallationId], rows: usize) {
    let generate = match store.backend() {
        Backend::Sqlite => {
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $3)
             INSERT INTO notes (site_id, note_id, app_id, title, size)
             SELECT $1, $1 || '-' || i, $2, 'Note ' || i, i FROM n"
        }
        Backend::Postgres => {
            "INSERT INTO notes (site_id, note_id, app_id, title, size)
             SELECT $1, $1 || '-' || i, $2, 'Note ' || i, i FROM generate_series(0, $3 - 1) AS i"
        }
    };
    let mut tx = store.pool().begin().await.expect("begin");
    for (site_id, app_id) in site_ids.iter().zip(app_ids) {
        sqlx::query("INSERT INTO tenants (site_id, state, create_time) VALUES ($1, 'active', 0)")
            .bind(site_id.to_string())
            .execute(&mut *tx)
            .await
            .expect("register");
        sqlx::query(generate)
            .bind(site_id.to_string())
            .bind(app_id.to_string())
            .bind(i64::try_from(rows).expect("rows"))
            .execute(&mut *tx)
            .await
            .expect("load rows");
    }
    tx.commit().await.expect("commit");
    if store.backend() == Backend::Postgres {
        sqlx::query("ANALYZE")
            .execute(store.pool())
            .await
            .expect("analyze");
    }
}
