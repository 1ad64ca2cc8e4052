//! SQL storage on SQLite (embedded default: one file per database under a directory)
//! or PostgreSQL (one database per service database on a server), chosen by URL.
//!
//! Queries go through sqlx's `Any` driver so a service writes its SQL once: IDs are TEXT,
//! times BIGINT unix microseconds, `$1` placeholders. DDL differs per backend, so each
//! service keeps `migrations/sqlite` and `migrations/postgres`; they run at open.

use std::{
    path::Path,
    sync::Once,
    time::{SystemTime, UNIX_EPOCH},
};

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::ExposeSecret;
use sqlx::{AnyPool, Executor, any::AnyPoolOptions, error::ErrorKind, migrate::Migrator};
use tonic::Code;

use crate::{config::StoreConfig, error::Problem};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// A query yielding one column, `value`, with the elements of the JSON array of
    /// strings bound at `param`: a call with any number of targets binds one parameter
    /// and runs one statement.
    pub fn json_strings(self, param: &str) -> String {
        match self {
            Backend::Sqlite => format!("SELECT value FROM json_each({param})"),
            Backend::Postgres => {
                format!("SELECT jsonb_array_elements_text({param}::jsonb) AS value")
            }
        }
    }

    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// A service's migrations, one directory per backend (`sqlx::migrate!`).
pub struct Migrations {
    pub sqlite: Migrator,
    pub postgres: Migrator,
}

/// Builds [`Migrations`] from `migrations/sqlite` and `migrations/postgres` of the
/// calling crate.
#[macro_export]
macro_rules! migrations {
    () => {
        $crate::store::Migrations {
            sqlite: ::sqlx::migrate!("./migrations/sqlite"),
            postgres: ::sqlx::migrate!("./migrations/postgres"),
        }
    };
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store URL `{0}` is neither sqlite:// nor postgres://")]
    UnsupportedUrl(String),
    #[error("cannot prepare the data directory {dir}: {source}")]
    DataDir {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open database {database}: {source}")]
    Open {
        database: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("migrations of database {database} failed: {source}")]
    Migrate {
        database: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A write hit a unique key: the row `key` of `table` (or one sharing its unique
    /// columns) exists already. Each service turns it into its own `…_TAKEN` refusal.
    #[error("{table} {key} already exists")]
    Conflict { table: String, key: String },
    /// A stored value this build cannot read back (an unknown state name, bad JSON).
    #[error("{table} holds a value this build cannot read: {message}")]
    Corrupt {
        table: &'static str,
        message: String,
    },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// A failed write: a unique violation becomes [`StoreError::Conflict`] on `table`
    /// naming `key`, anything else stays a database error. The one place that reads a
    /// driver's error for this.
    pub fn from_write(error: sqlx::Error, table: &str, key: impl FnOnce() -> String) -> StoreError {
        match &error {
            sqlx::Error::Database(db) if db.kind() == ErrorKind::UniqueViolation => {
                StoreError::Conflict {
                    table: table.to_owned(),
                    key: key(),
                }
            }
            _ => StoreError::Database(error),
        }
    }
}

impl Problem for StoreError {
    fn code(&self) -> Code {
        match self {
            StoreError::Conflict { .. } => Code::AlreadyExists,
            StoreError::Database(sqlx::Error::PoolTimedOut) => Code::Unavailable,
            _ => Code::Internal,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            StoreError::Conflict { .. } => "ALREADY_EXISTS",
            StoreError::Database(sqlx::Error::PoolTimedOut) => "STORE_BUSY",
            _ => "STORE_FAILURE",
        }
    }

    fn domain(&self) -> &'static str {
        "micros.store"
    }

    fn metadata(&self) -> Vec<(&'static str, String)> {
        match self {
            StoreError::Conflict { table, key } => {
                vec![("table", table.clone()), ("key", key.clone())]
            }
            _ => Vec::new(),
        }
    }
}

crate::status_from_problem!(StoreError);

/// One open, migrated database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    database: String,
}

static DRIVERS: Once = Once::new();

impl Store {
    /// Opens (creating if needed) database `<prefix><name>` and runs its migrations.
    pub async fn open(
        config: &StoreConfig,
        name: &str,
        migrations: &Migrations,
    ) -> Result<Store, StoreError> {
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let backend = Backend::of_url(&config.url)
            .ok_or_else(|| StoreError::UnsupportedUrl(config.url.clone()))?;
        let database = format!("{}{}", config.database_prefix, name);
        if backend == Backend::Postgres {
            let server = with_password(&config.url, config.password.expose_secret());
            ensure_postgres_database(&server, &database).await?;
        }
        let url = database_url(config, name)?;
        let mut options = AnyPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout);
        if backend == Backend::Sqlite {
            options = options.after_connect(|connection, _| {
                Box::pin(async move {
                    connection.execute("PRAGMA journal_mode = WAL").await?;
                    connection.execute("PRAGMA synchronous = NORMAL").await?;
                    Ok(())
                })
            });
        }
        let pool = options
            .connect(&url)
            .await
            .map_err(|source| StoreError::Open {
                database: database.clone(),
                source,
            })?;
        let (mut lifecycle, service) = match backend {
            Backend::Sqlite => (
                sqlx::migrate!("./migrations/lifecycle/sqlite"),
                &migrations.sqlite,
            ),
            Backend::Postgres => (
                sqlx::migrate!("./migrations/lifecycle/postgres"),
                &migrations.postgres,
            ),
        };
        // The platform's tables keep their own history so that each service numbers its
        // migrations from 1 without colliding with them.
        lifecycle.dangerous_set_table_name("_micros_lifecycle_migrations");
        for migrator in [&lifecycle, service] {
            migrator
                .run(&pool)
                .await
                .map_err(|source| StoreError::Migrate {
                    database: database.clone(),
                    source,
                })?;
        }
        Ok(Store {
            pool,
            backend,
            database,
        })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    /// A transaction that writes. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so that a read-then-write transaction waits for other writers
    /// instead of failing when it upgrades.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// See [`Backend::json_strings`].
    pub fn json_strings(&self, param: &str) -> String {
        self.backend.json_strings(param)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The connection URL of database `name` (prefixed) under `config`: its file for SQLite
/// (the directory is created), its database on the server for PostgreSQL, with
/// `store.password` escaped into it.
pub fn database_url(config: &StoreConfig, name: &str) -> Result<String, StoreError> {
    let database = format!("{}{}", config.database_prefix, name);
    match Backend::of_url(&config.url) {
        Some(Backend::Sqlite) => sqlite_url(&config.url, &database),
        Some(Backend::Postgres) => Ok(postgres_url(
            &with_password(&config.url, config.password.expose_secret()),
            &database,
        )),
        None => Err(StoreError::UnsupportedUrl(config.url.clone())),
    }
}

fn sqlite_url(base: &str, database: &str) -> Result<String, StoreError> {
    let dir = base.trim_start_matches("sqlite://");
    std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
        dir: dir.to_owned(),
        source,
    })?;
    let file = Path::new(dir).join(format!("{database}.db"));
    Ok(format!("sqlite://{}?mode=rwc", file.display()))
}

/// `postgres://user@host:port[/anything][?params]` with the path set to `/database`.
pub fn postgres_url(server: &str, database: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server, None),
    };
    let scheme_end = base.find("://").map_or(0, |index| index + 3);
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |index| scheme_end + index);
    let mut url = format!("{}/{}", &base[..authority_end], database);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// `postgres://user@host…` with `password` percent-encoded into its user information
/// (the driver decodes it), so that no character of a password can change where the URL
/// points. An empty password leaves the URL as it is.
pub fn with_password(server: &str, password: &str) -> String {
    if password.is_empty() {
        return server.to_owned();
    }
    let (scheme, rest) = server.split_once("://").unwrap_or(("", server));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (user, host) = authority.rsplit_once('@').unwrap_or(("", authority));
    let password = utf8_percent_encode(password, NON_ALPHANUMERIC);
    format!("{scheme}://{user}:{password}@{host}{tail}")
}

/// Creates the database on the server if it does not exist yet.
async fn ensure_postgres_database(server: &str, database: &str) -> Result<(), StoreError> {
    let open_error = |source| StoreError::Open {
        database: database.to_owned(),
        source,
    };
    let admin = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&postgres_url(server, "postgres"))
        .await
        .map_err(open_error)?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(database)
        .fetch_optional(&admin)
        .await
        .map_err(open_error)?;
    if exists.is_none() {
        let create = format!("CREATE DATABASE \"{}\"", database.replace('"', ""));
        if let Err(error) = admin.execute(sqlx::AssertSqlSafe(create)).await {
            // Another process may have created it between the check and the create.
            let duplicate = matches!(&error, sqlx::Error::Database(db) if db.code().as_deref() == Some("42P04"));
            if !duplicate {
                return Err(open_error(error));
            }
        }
    }
    admin.close().await;
    Ok(())
}

/// A JSON array of strings, bound as one parameter (see [`Backend::json_strings`]).
pub fn json_list(items: impl IntoIterator<Item = String>) -> String {
    serde_json::Value::Array(items.into_iter().map(serde_json::Value::String).collect()).to_string()
}

/// Unix microseconds: how every table stores time.
pub fn unix_micros(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_micros()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

/// The inverse of [`unix_micros`].
pub fn from_unix_micros(micros: i64) -> SystemTime {
    let magnitude = std::time::Duration::from_micros(micros.unsigned_abs());
    if micros >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// A stored time as RFC 3339 with microseconds, for messages and error metadata.
pub fn rfc3339(micros: i64) -> String {
    humantime::format_rfc3339_micros(from_unix_micros(micros)).to_string()
}

/// A protobuf timestamp as a stored time; `None` when it is out of `SystemTime`'s range.
pub fn from_timestamp(at: prost_types::Timestamp) -> Option<i64> {
    SystemTime::try_from(at).ok().map(unix_micros)
}

/// A protobuf timestamp for a stored time.
pub fn timestamp(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: i32::try_from(micros.rem_euclid(1_000_000) * 1000).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_url_replaces_the_database() {
        assert_eq!(
            postgres_url("postgres://postgres@127.0.0.1:5432", "micros_catalog"),
            "postgres://postgres@127.0.0.1:5432/micros_catalog"
        );
        assert_eq!(
            postgres_url("postgres://u:p@db:5432/other?sslmode=disable", "x"),
            "postgres://u:p@db:5432/x?sslmode=disable"
        );
    }

    #[test]
    fn a_password_with_any_character_stays_in_the_user_information() {
        let password = "p@ss/w:rd?#%&=+ é";
        for server in [
            "postgres://micros@postgres:5432",
            "postgres://micros@postgres:5432/other?sslmode=disable",
        ] {
            let url = postgres_url(&with_password(server, password), "micros_catalog");
            let parsed = url::Url::parse(&url).unwrap();
            assert_eq!(parsed.host_str(), Some("postgres"), "{url}");
            assert_eq!(parsed.port(), Some(5432), "{url}");
            assert_eq!(parsed.username(), "micros", "{url}");
            assert_eq!(parsed.path(), "/micros_catalog", "{url}");
            let decoded = percent_encoding::percent_decode_str(parsed.password().unwrap())
                .decode_utf8()
                .unwrap();
            assert_eq!(decoded, password, "{url}");
        }
        assert_eq!(
            with_password("postgres://micros@db:5432", ""),
            "postgres://micros@db:5432"
        );
    }

    #[test]
    fn micros_round_trip() {
        let now = SystemTime::now();
        let micros = unix_micros(now);
        assert_eq!(unix_micros(from_unix_micros(micros)), micros);
        assert_eq!(
            timestamp(1_500_000),
            prost_types::Timestamp {
                seconds: 1,
                nanos: 500_000_000
            }
        );
        assert_eq!(
            timestamp(-1),
            prost_types::Timestamp {
                seconds: -1,
                nanos: 999_999_000
            }
        );
    }
}
