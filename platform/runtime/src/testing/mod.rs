//! Test harness: a fresh database per test on each configured backend, and real
//! services on 127.0.0.1:0 reached over gRPC.
//!
//! SQLite always runs; PostgreSQL too when `MICROS_TEST_POSTGRES_URL` names a server
//! (`postgres://postgres@127.0.0.1:5432`). Each test's databases are dropped afterwards.

mod keys;
mod process;
mod s3;

use std::{sync::Arc, time::Duration};

pub use keys::{SUITE, peer_token, test_auth, test_auth_env, test_grant, test_key, test_token};
pub use process::{REQUIRE_GRPCURL_ENV, ServiceProcess, grpcurl, run_grpcurl};
pub use s3::{REQUIRE_S3S_ENV, S3Server};
use secrecy::SecretString;
use sqlx::{Executor, any::AnyPoolOptions};

use crate::{
    auth::Role,
    client::{self, ServiceChannel},
    clock::TestClock,
    config::{ClientConfig, Config, StoreConfig, Validate},
    server::RunningServer,
    service::{MicrosService, ServiceContext},
    store::{Backend, postgres_url},
};

/// Names the PostgreSQL server the tests also run on.
pub const POSTGRES_URL_ENV: &str = "MICROS_TEST_POSTGRES_URL";

/// The backends every database test runs on.
pub fn backends() -> Vec<Backend> {
    let mut backends = vec![Backend::Sqlite];
    if postgres_server().is_some() {
        backends.push(Backend::Postgres);
    }
    backends
}

fn postgres_server() -> Option<String> {
    std::env::var(POSTGRES_URL_ENV)
        .ok()
        .filter(|url| !url.is_empty())
}

/// Store config pointing at databases no other test uses; dropped with this value.
pub struct TestStore {
    pub config: StoreConfig,
    backend: Backend,
    _dir: tempfile::TempDir,
}

impl TestStore {
    pub fn new(backend: Backend) -> Self {
        crate::telemetry::init_for_tests();
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let prefix = format!(
            "micros_t{}_",
            &uuid::Uuid::now_v7().simple().to_string()[20..]
        );
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().display()),
            Backend::Postgres => postgres_server().unwrap_or_else(|| {
                panic!("{POSTGRES_URL_ENV} must name a PostgreSQL server for PostgreSQL tests")
            }),
        };
        Self {
            config: StoreConfig {
                url,
                password: SecretString::from(""),
                database_prefix: prefix,
                // Small pools: a suite test runs six services (nine databases), several
                // tests run at once, and PostgreSQL admits 100 connections.
                max_connections: 4,
                acquire_timeout: Duration::from_secs(30),
            },
            backend,
            _dir: dir,
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if self.backend != Backend::Postgres {
            return;
        }
        let server = self.config.url.clone();
        let prefix = self.config.database_prefix.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread
        // with a runtime of its own.
        let dropping = prefix.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build a runtime");
            runtime.block_on(drop_databases(&server, &dropping))
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!("could not drop test databases {prefix}*: {error}");
        }
    }
}

async fn drop_databases(server: &str, prefix: &str) -> Result<(), sqlx::Error> {
    sqlx::any::install_default_drivers();
    let admin = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&postgres_url(server, "postgres"))
        .await?;
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE starts_with(datname, $1)")
            .bind(prefix)
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

/// One lifecycle audit record, as [`TestService::audit`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Unix µs by the service's clock.
    pub audit_time: i64,
    pub database: String,
    pub action: String,
    pub targets: Vec<String>,
    pub outcome: String,
    /// Which call of the operation it was (empty for the usual single call).
    pub call_key: String,
}

/// A service of type `S` serving on 127.0.0.1:0 with a fresh store.
pub struct TestService<S: MicrosService> {
    pub server: RunningServer,
    pub config: Config<S::Settings>,
    /// The service's clock; advance it to let retention pass.
    pub clock: TestClock,
    _store: TestStore,
}

/// Starts `S` on `backend` with `settings` and a clock of its own.
pub async fn spawn<S: MicrosService>(backend: Backend, settings: S::Settings) -> TestService<S> {
    spawn_with::<S>(backend, settings, TestClock::new(), |_| {}).await
}

/// Starts `S` with `clock` (shared by services that must agree on time) after
/// `configure` has adjusted its config (clients, limits).
pub async fn spawn_with<S: MicrosService>(
    backend: Backend,
    settings: S::Settings,
    clock: TestClock,
    configure: impl FnOnce(&mut Config<S::Settings>),
) -> TestService<S> {
    let store = TestStore::new(backend);
    let mut config = S::default_config();
    config.server.port = 0;
    config.store = store.config.clone();
    config.auth = test_auth(S::DESCRIPTOR.name);
    config.service = settings;
    configure(&mut config);
    if let Err(error) = config.service.validate() {
        panic!(
            "{} settings are invalid (as `micros serve` would refuse them): {error}",
            S::DESCRIPTOR.name
        );
    }
    let context = ServiceContext {
        clock: Arc::new(clock.clone()),
    };
    let server = S::build(config.clone(), context)
        .await
        .unwrap_or_else(|error| panic!("{} failed to start: {error:#}", S::DESCRIPTOR.name));
    TestService {
        server: server.spawn(),
        config,
        clock,
        _store: store,
    }
}

impl<S: MicrosService> TestService<S> {
    /// A token for a principal named after its roles.
    pub fn token(&self, roles: &[Role]) -> String {
        let name = roles
            .iter()
            .map(|role| role.as_str())
            .collect::<Vec<_>>()
            .join("+");
        test_token(&format!("test-{name}"), roles)
    }

    /// A channel that presents a token with `roles`.
    pub fn channel(&self, roles: &[Role]) -> ServiceChannel {
        self.channel_with(Some(SecretString::from(self.token(roles))))
    }

    /// A channel that presents no token at all.
    pub fn anonymous_channel(&self) -> ServiceChannel {
        self.channel_with(None)
    }

    fn channel_with(&self, token: Option<SecretString>) -> ServiceChannel {
        client::connect(
            S::DESCRIPTOR.name,
            &ClientConfig {
                url: self.server.url(),
                timeout: Duration::from_secs(30),
                connect_timeout: Duration::from_secs(5),
            },
            token.as_ref(),
        )
        .expect("connect to the test service")
    }

    /// The lifecycle audit of `operation_id` in every database of the service, oldest
    /// first: what was applied or refused, to which targets.
    pub async fn audit(&self, operation_id: &str) -> Vec<AuditEntry> {
        use sqlx::Row;
        sqlx::any::install_default_drivers();
        let mut entries = Vec::new();
        for database in S::DESCRIPTOR.database_names() {
            let url =
                crate::store::database_url(&self.config.store, &database).expect("a database URL");
            let pool = AnyPoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await
                .expect("open the service database");
            let rows = sqlx::query(
                "SELECT audit_time, action, targets, outcome, call_key FROM lifecycle_audit
                 WHERE operation_id = $1 ORDER BY seq",
            )
            .bind(operation_id.to_owned())
            .fetch_all(&pool)
            .await
            .expect("read the lifecycle audit");
            for row in rows {
                let targets: String = row.get("targets");
                entries.push(AuditEntry {
                    audit_time: row.get("audit_time"),
                    database: database.clone(),
                    action: row.get("action"),
                    targets: serde_json::from_str(&targets).expect("targets as JSON"),
                    outcome: row.get("outcome"),
                    call_key: row.get("call_key"),
                });
            }
            pool.close().await;
        }
        // Across shard databases, in the order the service applied them.
        entries.sort_by_key(|entry| entry.audit_time);
        entries
    }

    /// Drains the server, then drops the databases.
    pub async fn stop(self) {
        self.server.shutdown().await.expect("clean shutdown");
    }
}
