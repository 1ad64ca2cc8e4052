//! Typed configuration: defaults in code, then an optional TOML file, then `MICROS__…`
//! environment variables (`MICROS__SERVER__PORT=50051`), then [`Validate`].
//!
//! Every struct denies unknown fields, so a typo (`MICROS__SERVR__PORT`) stops start-up
//! with a message naming the key instead of being silently ignored.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use secrecy::SecretString;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// The environment variable prefix; nested keys are separated by `__`.
pub const ENV_PREFIX: &str = "MICROS";
/// Names a TOML file to read after the defaults.
pub const CONFIG_FILE_ENV: &str = "MICROS_CONFIG";

/// A service's whole configuration: the runtime sections every service shares, and the
/// service's own section under `service`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config<S> {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub lifecycle: LifecycleConfig,
    /// Other services this one calls, by name (`clients.catalog.url`).
    #[serde(default)]
    pub clients: BTreeMap<String, ClientConfig>,
    #[serde(default)]
    pub service: S,
}

impl<S: Default> Default for Config<S> {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            telemetry: TelemetryConfig::default(),
            auth: AuthConfig::default(),
            store: StoreConfig::default(),
            lifecycle: LifecycleConfig::default(),
            clients: BTreeMap::new(),
            service: S::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub host: IpAddr,
    /// 0 picks a free port (tests).
    pub port: u16,
    /// Upper bound for any call; a shorter `grpc-timeout` from the client wins.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Calls in flight at once; beyond it calls are shed with RESOURCE_EXHAUSTED.
    pub concurrency_limit: usize,
    /// After SIGTERM, how long health reports NOT_SERVING before the listener closes,
    /// so that load balancers stop sending new calls first.
    #[serde(with = "humantime_serde")]
    pub shutdown_delay: Duration,
    /// How long in-flight calls may take to finish once the listener has closed.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            request_timeout: Duration::from_secs(30),
            concurrency_limit: 256,
            shutdown_delay: Duration::ZERO,
            drain_timeout: Duration::from_secs(25),
        }
    }
}

impl ServerConfig {
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// What is logged to stderr, in `tracing_subscriber::EnvFilter` syntax; `RUST_LOG`
    /// overrides it.
    pub log_filter: String,
    pub log_format: LogFormat,
    /// What is exported over OTLP, in the same syntax, independent of the log filter:
    /// the per-call spans of the server and client layers (target `otel::tracing`, level
    /// TRACE) are exported whatever the logs show.
    pub trace_filter: String,
    /// Where Prometheus scrapes `/metrics` (on `server.host`); the service's descriptor
    /// sets it, 0 picks a free port.
    pub metrics_port: u16,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_filter: "info,sqlx=warn".to_owned(),
            log_format: LogFormat::Text,
            trace_filter: "info,otel::tracing=trace,sqlx=warn".to_owned(),
            metrics_port: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

/// Keys, one line of base64url each (see [`crate::auth::keys`]); `micros up` and `micros
/// render` generate and wire them, `micros token` prints a pair.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// This service's name: its own tokens speak for `service:<name>` and it accepts
    /// only tokens addressed to it. Set from the service's descriptor.
    pub service: String,
    /// The `iss` claim operators' tokens must carry.
    pub issuer: String,
    /// The issuer's public key, which verifies operators' tokens. Required.
    pub issuer_key: String,
    /// This service's private key: signs the short-lived tokens it presents to the
    /// services it calls (and the orchestrator's grants). Required for a service that
    /// calls others.
    #[serde(serialize_with = "serialize_secret")]
    pub signing_key: SecretString,
    /// Public keys of the services whose calls this one accepts, by name
    /// (`MICROS__AUTH__SERVICE_KEYS__ORCHESTRATOR`). Only the orchestrator's may carry the
    /// `lifecycle` role or sign grants.
    pub service_keys: BTreeMap<String, String>,
    /// How long this service's own tokens live; each is renewed at half its life.
    #[serde(with = "humantime_serde")]
    pub service_token_ttl: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            service: String::new(),
            issuer: "micros".to_owned(),
            issuer_key: String::new(),
            signing_key: SecretString::from(""),
            service_keys: BTreeMap::new(),
            service_token_ttl: Duration::from_secs(300),
        }
    }
}

/// The keys of an [`AuthConfig`], decoded.
#[derive(Debug)]
pub struct AuthKeys {
    pub issuer: crate::auth::PublicKey,
    pub services: BTreeMap<String, crate::auth::PublicKey>,
    pub signing: Option<crate::auth::SigningKey>,
}

impl AuthConfig {
    /// Decodes every key, naming the one that is wrong. Service names are spelled as
    /// the descriptors spell them (`product-data`), whatever the environment allowed.
    pub fn keys(&self) -> Result<AuthKeys, ConfigError> {
        use crate::auth::{PublicKey, SigningKey};
        use secrecy::ExposeSecret;
        let issuer = PublicKey::decode(&self.issuer_key).map_err(|error| ConfigError::Invalid {
            key: "auth.issuer_key",
            message: format!(
                "{error} (MICROS__AUTH__ISSUER_KEY: the issuer's public key; `micros up` \
                 generates one, `micros token --new-key` prints a pair)"
            ),
        })?;
        let services = self
            .service_keys
            .iter()
            .map(|(name, key)| {
                let name = name.replace('_', "-");
                PublicKey::decode(key)
                    .map(|key| (name.clone(), key))
                    .map_err(|error| ConfigError::Invalid {
                        key: "auth.service_keys",
                        message: format!("the key of `{name}` {error}"),
                    })
            })
            .collect::<Result<_, _>>()?;
        let signing = if self.signing_key.expose_secret().is_empty() {
            None
        } else {
            Some(
                SigningKey::decode(&self.signing_key).map_err(|error| ConfigError::Invalid {
                    key: "auth.signing_key",
                    message: error.to_string(),
                })?,
            )
        };
        Ok(AuthKeys {
            issuer,
            services,
            signing,
        })
    }
}

/// Defaults are serialized as the first config layer; a secret is written as it is so
/// that a default survives the round trip (defaults hold no real secret).
fn serialize_secret<S: serde::Serializer>(
    secret: &SecretString,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use secrecy::ExposeSecret;
    serializer.serialize_str(secret.expose_secret())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://<directory>` (one file per database in it) or
    /// `postgres://user@host:port` (one database per service database on that server).
    pub url: String,
    /// The PostgreSQL password, kept out of `url` so that it may hold any character
    /// (`@`, `/`, `%` …): the store escapes it into the URL it connects with. In
    /// Kubernetes it comes from a Secret (`MICROS__STORE__PASSWORD`).
    #[serde(serialize_with = "serialize_secret")]
    pub password: SecretString,
    /// Database names are `<prefix><name>`, e.g. `micros_catalog`.
    pub database_prefix: String,
    pub max_connections: u32,
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://.micros/data".to_owned(),
            password: SecretString::from(""),
            database_prefix: "micros_".to_owned(),
            max_connections: 8,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// Soft-delete retention and history.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleConfig {
    /// How long soft-deleted data stays restorable before it may be purged, and how long
    /// change-log history (point-in-time restore) is kept.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Rows deleted per statement when purging.
    pub purge_batch_size: u32,
    /// How often change-log history past retention is pruned.
    #[serde(with = "humantime_serde")]
    pub prune_interval: Duration,
    /// Targets (sites, app installations) that may be soft-deleted per rolling hour in
    /// this database without a grant; anything larger needs an approved operation.
    pub free_deletions_per_hour: u32,
}

/// The shortest retention accepted: zero would make every soft delete a purge at the
/// reaper's next pass.
pub const MIN_RETENTION: Duration = Duration::from_secs(3600);

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(30 * 24 * 3600),
            purge_batch_size: 5000,
            prune_interval: Duration::from_secs(3600),
            free_deletions_per_hour: 5,
        }
    }
}

/// Where to reach another service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// `http://host:port`; in Kubernetes the Service's DNS name.
    pub url: String,
    #[serde(default = "default_client_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
}

fn default_client_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(3)
}

/// Checks that only the whole configuration can make (ranges, cross-field rules).
pub trait Validate {
    fn validate(&self) -> Result<(), String>;
}

/// No service-specific settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoSettings {}

impl Validate for NoSettings {
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid configuration: {key}: {message}")]
    Invalid { key: &'static str, message: String },
    #[error("invalid configuration: service: {0}")]
    Service(String),
}

/// Where configuration comes from, beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// A TOML file; when absent, `MICROS_CONFIG` may name one.
    pub file: Option<PathBuf>,
    /// Explicit `MICROS__…` variables; `None` reads the process environment.
    pub env: Option<BTreeMap<String, String>>,
    /// `MICROS__…` values over the code defaults and under the file and the environment:
    /// the deployment facts `micros serve` takes from the service descriptors.
    pub defaults: BTreeMap<String, String>,
}

/// Loads `Config<S>` from `defaults`, the file, the environment, then validates it.
pub fn load<S>(defaults: Config<S>, sources: &Sources) -> Result<Config<S>, ConfigError>
where
    S: Serialize + DeserializeOwned + Default + Validate,
{
    let mut builder = config::Config::builder().add_source(config::Config::try_from(&defaults)?);
    if !sources.defaults.is_empty() {
        builder = builder
            .add_source(environment().source(Some(sources.defaults.clone().into_iter().collect())));
    }
    let file = sources
        .file
        .clone()
        .or_else(|| std::env::var_os(CONFIG_FILE_ENV).map(PathBuf::from));
    if let Some(file) = file {
        builder = builder.add_source(config::File::from(file.as_path()).required(true));
    }
    let mut environment = environment();
    if let Some(env) = &sources.env {
        environment = environment.source(Some(env.clone().into_iter().collect()));
    }
    let loaded: Config<S> = builder.add_source(environment).build()?.try_deserialize()?;
    loaded.validate()?;
    Ok(loaded)
}

/// `MICROS__SECTION__KEY` variables, values parsed as numbers and booleans where they
/// look like them.
fn environment() -> config::Environment {
    config::Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
}

impl<S: Validate> Config<S> {
    fn validate(&self) -> Result<(), ConfigError> {
        use secrecy::ExposeSecret;
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_owned(),
            })
        };
        if self.server.concurrency_limit == 0 {
            return invalid("server.concurrency_limit", "must be at least 1");
        }
        if self.server.request_timeout.is_zero() {
            return invalid("server.request_timeout", "must be longer than zero");
        }
        self.auth.keys()?;
        if self.auth.service_token_ttl < Duration::from_secs(60) {
            return invalid(
                "auth.service_token_ttl",
                "must be at least 1m (tokens are renewed at half their life)",
            );
        }
        if !(self.store.url.starts_with("sqlite://") || self.store.url.starts_with("postgres://")) {
            return invalid("store.url", "must start with sqlite:// or postgres://");
        }
        if self.telemetry.metrics_port != 0 && self.telemetry.metrics_port == self.server.port {
            return invalid(
                "telemetry.metrics_port",
                "must differ from server.port (metrics are plain HTTP on a port of their own)",
            );
        }
        if !self.store.password.expose_secret().is_empty() {
            if !self.store.url.starts_with("postgres://") {
                return invalid(
                    "store.password",
                    "only a postgres:// store takes a password",
                );
            }
            if url_has_password(&self.store.url) {
                return invalid(
                    "store.password",
                    "store.url has a password of its own; keep it in one place",
                );
            }
        }
        if self.lifecycle.retention < MIN_RETENTION {
            return invalid(
                "lifecycle.retention",
                "must be at least 1h: a soft-deleted site must stay restorable long enough \
                 for someone to notice, and the reaper purges it once retention has passed",
            );
        }
        if self.lifecycle.purge_batch_size == 0 {
            return invalid("lifecycle.purge_batch_size", "must be at least 1");
        }
        if self.lifecycle.prune_interval.is_zero() {
            return invalid("lifecycle.prune_interval", "must be longer than zero");
        }
        if self.store.max_connections == 0 {
            return invalid("store.max_connections", "must be at least 1");
        }
        for (name, client) in &self.clients {
            if !(client.url.starts_with("http://") || client.url.starts_with("https://")) {
                return Err(ConfigError::Invalid {
                    key: "clients",
                    message: format!("clients.{name}.url must start with http:// or https://"),
                });
            }
        }
        self.service.validate().map_err(ConfigError::Service)
    }
}

/// Whether `scheme://user:password@host…` carries a password.
fn url_has_password(url: &str) -> bool {
    let authority = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split(['/', '?'])
        .next()
        .unwrap_or_default();
    authority
        .rsplit_once('@')
        .is_some_and(|(user_info, _)| user_info.contains(':'))
}

/// The data directory of a `sqlite://` store URL, for tools that put files beside it.
pub fn sqlite_dir(url: &str) -> Option<&Path> {
    url.strip_prefix("sqlite://").map(Path::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Sources {
        let mut all: BTreeMap<String, String> = [(
            "MICROS__AUTH__ISSUER_KEY".to_owned(),
            crate::auth::SigningKey::generate().public().encode(),
        )]
        .into();
        all.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Sources {
            env: Some(all),
            ..Sources::default()
        }
    }

    #[test]
    fn environment_overrides_defaults() {
        let config = load(
            Config::<NoSettings>::default(),
            &env(&[
                ("MICROS__SERVER__PORT", "50071"),
                ("MICROS__SERVER__REQUEST_TIMEOUT", "1500ms"),
                ("MICROS__CLIENTS__CATALOG__URL", "http://catalog:50051"),
            ]),
        )
        .unwrap();
        assert_eq!(config.server.port, 50071);
        assert_eq!(config.server.request_timeout, Duration::from_millis(1500));
        assert_eq!(config.clients["catalog"].url, "http://catalog:50051");
        assert_eq!(config.clients["catalog"].timeout, Duration::from_secs(10));
    }

    #[test]
    fn unknown_key_is_named() {
        let error = load(
            Config::<NoSettings>::default(),
            &env(&[("MICROS__SERVR__PORT", "1")]),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("servr"), "{error}");
    }

    #[test]
    fn unknown_nested_key_is_named() {
        let error = load(
            Config::<NoSettings>::default(),
            &env(&[("MICROS__SERVER__PROT", "1")]),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("prot"), "{error}");
    }

    #[test]
    fn invalid_value_is_refused() {
        let error = load(
            Config::<NoSettings>::default(),
            &env(&[("MICROS__SERVER__CONCURRENCY_LIMIT", "0")]),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("server.concurrency_limit"), "{error}");
    }

    #[test]
    fn retention_shorter_than_an_hour_is_refused() {
        for retention in ["0s", "59m"] {
            let error = load(
                Config::<NoSettings>::default(),
                &env(&[("MICROS__LIFECYCLE__RETENTION", retention)]),
            )
            .unwrap_err()
            .to_string();
            assert!(
                error.contains("lifecycle.retention"),
                "{retention}: {error}"
            );
        }
        let hour = load(
            Config::<NoSettings>::default(),
            &env(&[("MICROS__LIFECYCLE__RETENTION", "1h")]),
        )
        .unwrap();
        assert_eq!(hour.lifecycle.retention, MIN_RETENTION);
    }

    #[test]
    fn metrics_need_a_port_of_their_own() {
        let error = load(
            Config::<NoSettings>::default(),
            &env(&[
                ("MICROS__SERVER__PORT", "50051"),
                ("MICROS__TELEMETRY__METRICS_PORT", "50051"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("telemetry.metrics_port"), "{error}");
    }

    #[test]
    fn missing_issuer_key_is_refused() {
        let sources = Sources {
            env: Some(BTreeMap::new()),
            ..Sources::default()
        };
        let error = load(Config::<NoSettings>::default(), &sources)
            .unwrap_err()
            .to_string();
        assert!(error.contains("auth.issuer_key"), "{error}");
    }

    #[test]
    fn a_store_password_is_for_postgres_and_set_once() {
        let postgres = load(
            Config::<NoSettings>::default(),
            &env(&[
                ("MICROS__STORE__URL", "postgres://micros@db:5432"),
                ("MICROS__STORE__PASSWORD", "p@ss/w:rd"),
            ]),
        )
        .unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(postgres.store.password.expose_secret(), "p@ss/w:rd");
        for (url, expected) in [
            ("sqlite://.micros/data", "only a postgres:// store"),
            (
                "postgres://micros:other@db:5432",
                "has a password of its own",
            ),
        ] {
            let error = load(
                Config::<NoSettings>::default(),
                &env(&[
                    ("MICROS__STORE__URL", url),
                    ("MICROS__STORE__PASSWORD", "x"),
                ]),
            )
            .unwrap_err()
            .to_string();
            assert!(error.contains("store.password"), "{error}");
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn deployed_defaults_yield_to_the_file_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("micros.toml");
        std::fs::write(&file, "[server]\nconcurrency_limit = 7\n").unwrap();
        let mut sources = env(&[("MICROS__SERVER__PORT", "4321")]);
        sources.defaults = [
            ("MICROS__SERVER__PORT", "1111"),
            ("MICROS__SERVER__CONCURRENCY_LIMIT", "2222"),
            ("MICROS__SERVER__REQUEST_TIMEOUT", "3s"),
        ]
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .into();
        sources.file = Some(file);
        let config = load(Config::<NoSettings>::default(), &sources).unwrap();
        assert_eq!(config.server.port, 4321);
        assert_eq!(config.server.concurrency_limit, 7);
        assert_eq!(config.server.request_timeout, Duration::from_secs(3));
    }

    #[test]
    fn file_is_read_before_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("micros.toml");
        std::fs::write(&file, "[server]\nport = 1234\nconcurrency_limit = 7\n").unwrap();
        let mut sources = env(&[("MICROS__SERVER__PORT", "4321")]);
        sources.file = Some(file);
        let config = load(Config::<NoSettings>::default(), &sources).unwrap();
        assert_eq!(config.server.port, 4321);
        assert_eq!(config.server.concurrency_limit, 7);
    }
}
