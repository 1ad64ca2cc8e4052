//! Test harness: a fresh database per test on each configured backend, and real
//! services on 127.0.0.1:0 reached over gRPC.
//!
//! SQLite always runs; PostgreSQL too when `MICROS_TEST_POSTGRES_URL` names a server
//! (`postgres://postgres@127.0.0.1:5432`). Each test's databases are dropped afterwards.

mod keys;
pub mod lifecycle_contract;
mod process;
mod s3;

use std::{sync::Arc, time::Duration};

pub use keys::{SUITE, peer_token, test_auth, test_auth_env, test_grant, test_key, test_token};
pub use process::{REQUIRE_GRPCURL_ENV, ServiceProcess, grpcurl, run_grpcurl};
pub use s3::{REQUIRE_S3S_ENV, S3Server};
use secrecy::SecretString;
use sqlx::{Executor, any::AnyPoolOptions};
use tonic::{Code, Status};
use tonic_types::{ErrorInfo, StatusExt};

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
    /// Who asked, and why: what an auditor reads.
    pub principal: String,
    pub reason: String,
    pub ticket: String,
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
    /// What lives as long as this service (the catalog it asks, see [`Self::keep`]).
    companions: Vec<Box<dyn std::any::Any + Send + Sync>>,
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
        companions: Vec::new(),
    }
}

/// Starts `S` with `settings`, asking a catalog `C` of its own (started with
/// `catalog_settings`, alive as long as `S`): a service that takes data only for sites the
/// catalog has (see [`crate::admission`]); its sites come from [`TestService::catalog_site`].
pub async fn spawn_with_catalog<S: MicrosService, C: MicrosService>(
    backend: Backend,
    settings: S::Settings,
    catalog_settings: C::Settings,
) -> TestService<S> {
    let catalog = spawn::<C>(backend, catalog_settings).await;
    let mut service = spawn_asking::<S>(backend, settings, catalog.server.url()).await;
    service.keep(catalog);
    service
}

/// Starts `S` with `settings`, asking the catalog at `catalog_url` (which may be down).
pub async fn spawn_asking<S: MicrosService>(
    backend: Backend,
    settings: S::Settings,
    catalog_url: String,
) -> TestService<S> {
    spawn_with::<S>(backend, settings, TestClock::new(), |config| {
        config.clients = catalog_clients(catalog_url);
    })
    .await
}

/// Asserts `status` has `code` and an ErrorInfo with `reason`, and returns the ErrorInfo
/// (for its metadata).
#[track_caller]
pub fn refused(status: &Status, code: Code, reason: &str) -> ErrorInfo {
    assert_eq!(status.code(), code, "{status:?}");
    let info = status
        .get_details_error_info()
        .expect("an ErrorInfo detail");
    assert_eq!(info.reason, reason, "{status:?}");
    info
}

/// Asserts `status` refuses an ID of the wrong kind (INVALID_ARGUMENT, WRONG_ID_KIND) and
/// returns the kinds it names: (expected, actual).
#[track_caller]
pub fn wrong_kind(status: &Status) -> (String, String) {
    let info = refused(status, Code::InvalidArgument, "WRONG_ID_KIND");
    (
        info.metadata["expected_kind"].clone(),
        info.metadata["actual_kind"].clone(),
    )
}

/// `clients.catalog` pointing at `url`: for a service that asks the catalog (see
/// [`crate::admission`]).
pub fn catalog_clients(url: String) -> std::collections::BTreeMap<String, ClientConfig> {
    std::collections::BTreeMap::from([(
        "catalog".to_owned(),
        ClientConfig {
            url,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
        },
    )])
}

/// A URL on 127.0.0.1 where nothing listens (a port bound, then released): a catalog
/// that is down.
pub fn unreachable_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = listener.local_addr().expect("its address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
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
                "SELECT audit_time, action, targets, outcome, call_key, principal, reason, ticket
                 FROM lifecycle_audit
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
                    principal: row.get("principal"),
                    reason: row.get("reason"),
                    ticket: row.get("ticket"),
                });
            }
            pool.close().await;
        }
        // Across shard databases, in the order the service applied them.
        entries.sort_by_key(|entry| entry.audit_time);
        entries
    }

    /// Keeps `companion` (another service this one calls) running as long as this one.
    pub fn keep(&mut self, companion: impl std::any::Any + Send + Sync) {
        self.companions.push(Box::new(companion));
    }

    /// Creates a site in the catalog this service asks (`clients.catalog`), as an
    /// admin, and returns its ID: a site this service may take data for.
    pub async fn catalog_site(&self) -> crate::ids::SiteId {
        use micros_proto::catalog::v1::{
            CreateSiteRequest, catalog_service_client::CatalogServiceClient,
        };
        let catalog = self
            .config
            .clients
            .get("catalog")
            .expect("clients.catalog is configured");
        let token = SecretString::from(test_token("test-admin", &[Role::Admin]));
        let channel = client::connect("catalog", catalog, Some(&token)).expect("a catalog channel");
        let host = uuid::Uuid::now_v7().simple().to_string();
        let site = CatalogServiceClient::new(channel)
            .create_site(CreateSiteRequest {
                name: format!("Test site {}", &host[20..]),
                url: format!("https://t{host}.example.com"),
                region: "eu-west".to_owned(),
                site_id: String::new(),
            })
            .await
            .expect("create a site in the catalog")
            .into_inner();
        crate::ids::SiteId::parse(&site.site_id).expect("a site ID")
    }

    /// Soft-deletes `site_id` in the catalog this service asks (`clients.catalog`), as
    /// the orchestrator does.
    pub async fn delete_catalog_site(&self, site_id: crate::ids::SiteId) {
        use micros_proto::lifecycle::v1::{
            Justification, SiteTarget, SoftDeleteRequest, Target, target::Kind,
            tenant_lifecycle_client::TenantLifecycleClient,
        };
        let catalog = self
            .config
            .clients
            .get("catalog")
            .expect("clients.catalog is configured");
        let token = SecretString::from(test_token("test-lifecycle", &[Role::Lifecycle]));
        let channel = client::connect("catalog", catalog, Some(&token)).expect("a catalog channel");
        TenantLifecycleClient::new(channel)
            .soft_delete(SoftDeleteRequest {
                targets: vec![Target {
                    kind: Some(Kind::Site(SiteTarget {
                        site_id: site_id.to_string(),
                    })),
                }],
                operation_id: crate::ids::OperationId::new().to_string(),
                justification: Some(Justification {
                    reason: "test".to_owned(),
                    ticket: "TEST-1".to_owned(),
                }),
                ..SoftDeleteRequest::default()
            })
            .await
            .expect("soft-delete the site in the catalog");
    }

    /// Drains the server, then drops the databases.
    pub async fn stop(self) {
        self.server.shutdown().await.expect("clean shutdown");
    }
}
