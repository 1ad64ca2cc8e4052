//! `micros token` and the keys behind it.
//!
//! `micros up` keeps one Ed25519 key per signer under `<data-dir>/keys/` (owner-only
//! files, made on first use): `issuer.key` signs operators' tokens, `<service>.key` is
//! that service's own. Each child gets its own private key and everyone's public keys.
//! `micros token` signs with the issuer key from there, or from
//! `MICROS_ISSUER_SIGNING_KEY` (a cluster's issuer key, which no service holds).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, bail};
use micros_platform::auth::{ISSUER_KID, Issuer, ORCHESTRATOR, Role, ServiceSigner, SigningKey};
use secrecy::{ExposeSecret, SecretString};

/// Names the issuer's private key instead of `<data-dir>/keys/issuer.key`.
pub const ISSUER_KEY_ENV: &str = "MICROS_ISSUER_SIGNING_KEY";

#[derive(clap::Args)]
pub struct TokenArgs {
    /// A role to grant; repeat for several (viewer, admin, operator, approver; lifecycle
    /// only with --service orchestrator).
    #[arg(long = "role", default_value = "viewer")]
    roles: Vec<Role>,
    /// How long the token is valid, e.g. 8h or 30d.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    ttl: Duration,
    /// Sign as this service with its key from the data directory (for debugging
    /// service-to-service calls with grpcurl, e.g. `--service orchestrator --role
    /// lifecycle --audience catalog`); the principal is then `service:<name>`.
    #[arg(long)]
    service: Option<String>,
    /// The service the token is for (with --service; repeat for several).
    #[arg(long = "audience", requires = "service")]
    audiences: Vec<String>,
    /// Print a new key pair (private, then public) for a deployment, and sign nothing.
    #[arg(long, conflicts_with_all = ["service", "audiences"])]
    new_key: bool,
}

/// Signs a token for `principal` (or as `--service`) with the keys under `data_dir`.
pub fn run(data_dir: &Path, principal: &str, args: TokenArgs) -> anyhow::Result<()> {
    if args.new_key {
        let key = SigningKey::generate();
        say!("private {}", key.encode().expose_secret());
        say!("public  {}", key.public().encode());
        return Ok(());
    }
    let token = match &args.service {
        Some(service) => {
            if args.audiences.is_empty() {
                bail!("--service needs --audience: the service the token is for");
            }
            if args.roles.contains(&Role::Lifecycle) && service != ORCHESTRATOR {
                bail!(
                    "only the orchestrator's key may sign the lifecycle role; {service}'s \
                     would be refused by every service"
                );
            }
            let key = read_key(data_dir, service)?;
            let audiences: Vec<&str> = args.audiences.iter().map(String::as_str).collect();
            ServiceSigner::new(service, &args.roles, &key, args.ttl).token_for(&audiences)?
        }
        None => {
            if args.roles.contains(&Role::Lifecycle) {
                bail!(
                    "the issuer key cannot sign the lifecycle role (every service would refuse \
                     the token); sign as the orchestrator: --service orchestrator --role \
                     lifecycle --audience <service>"
                );
            }
            issuer(data_dir)?.issue(principal, &args.roles, args.ttl)?
        }
    };
    say!("{token}");
    Ok(())
}

/// The issuer of operators' tokens: `MICROS_ISSUER_SIGNING_KEY`, else the data
/// directory's key.
pub fn issuer(data_dir: &Path) -> anyhow::Result<Issuer> {
    let key = match std::env::var(ISSUER_KEY_ENV) {
        Ok(text) if !text.is_empty() => SigningKey::decode(&SecretString::from(text))
            .map_err(|error| anyhow::anyhow!("{ISSUER_KEY_ENV} {error}"))?,
        _ => read_key(data_dir, ISSUER_KID)?,
    };
    Ok(Issuer::new(&key, "micros"))
}

fn key_path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("keys").join(format!("{name}.key"))
}

fn read_key(data_dir: &Path, name: &str) -> anyhow::Result<SigningKey> {
    let path = key_path(data_dir, name);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {}: run `micros up` first{}",
            path.display(),
            if name == ISSUER_KID {
                format!(", or set {ISSUER_KEY_ENV}")
            } else {
                String::new()
            }
        )
    })?;
    SigningKey::decode(&SecretString::from(text))
        .map_err(|error| anyhow::anyhow!("{}: the key {error}", path.display()))
}

/// The issuer's and every service's keys, made (random, owner-only) where missing.
pub struct KeyRing {
    pub issuer: SigningKey,
    pub services: BTreeMap<String, SigningKey>,
}

impl KeyRing {
    pub fn load_or_create(data_dir: &Path, services: &[&str]) -> anyhow::Result<Self> {
        let dir = data_dir.join("keys");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let issuer = load_or_create_key(data_dir, ISSUER_KID)?;
        let services = services
            .iter()
            .map(|name| Ok(((*name).to_owned(), load_or_create_key(data_dir, name)?)))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { issuer, services })
    }

    /// The `MICROS__AUTH__…` variables of `service`: its own private key, the issuer's
    /// public key and every service's public key.
    pub fn env(&self, service: &str) -> Vec<(String, String)> {
        let mut env = vec![(
            "MICROS__AUTH__ISSUER_KEY".to_owned(),
            self.issuer.public().encode(),
        )];
        if let Some(key) = self.services.get(service) {
            env.push((
                "MICROS__AUTH__SIGNING_KEY".to_owned(),
                key.encode().expose_secret().to_owned(),
            ));
        }
        for (name, key) in &self.services {
            env.push((service_key_env(name), key.public().encode()));
        }
        env
    }
}

/// The variable that gives a service the public key of `name`.
pub fn service_key_env(name: &str) -> String {
    format!(
        "MICROS__AUTH__SERVICE_KEYS__{}",
        name.to_uppercase().replace('-', "_")
    )
}

fn load_or_create_key(data_dir: &Path, name: &str) -> anyhow::Result<SigningKey> {
    let path = key_path(data_dir, name);
    if path.exists() {
        return read_key(data_dir, name);
    }
    let key = SigningKey::generate();
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    std::io::Write::write_all(&mut file, key.encode().expose_secret().as_bytes())?;
    Ok(key)
}
