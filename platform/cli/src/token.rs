//! `micros token`: a bearer token for local use, signed with the secret that
//! `micros up` keeps in its data directory (or `MICROS__AUTH__TOKEN_SECRET`).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use micros_platform::auth::{Authenticator, Role};
use secrecy::SecretString;

/// The file under the data directory that holds the development token secret.
const SECRET_FILE: &str = "dev-token-secret";

#[derive(clap::Args)]
pub struct TokenArgs {
    /// The `micros up` data directory whose secret signs the token.
    #[arg(long, default_value = ".micros")]
    data_dir: PathBuf,
    /// Who the token names.
    #[arg(long, default_value = "dev")]
    principal: String,
    /// A role to grant; repeat for several (viewer, admin, operator, approver, lifecycle).
    #[arg(long = "role", default_value = "viewer")]
    roles: Vec<Role>,
    /// How long the token is valid, e.g. 8h or 30d.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    ttl: Duration,
}

pub fn run(args: TokenArgs) -> anyhow::Result<()> {
    let secret = match std::env::var("MICROS__AUTH__TOKEN_SECRET") {
        Ok(secret) if !secret.is_empty() => SecretString::from(secret),
        _ => read_secret(&args.data_dir)?,
    };
    let token = Authenticator::from_secret(&secret, "micros").issue(
        &args.principal,
        &args.roles,
        args.ttl,
    )?;
    println!("{token}");
    Ok(())
}

pub fn read_secret(data_dir: &Path) -> anyhow::Result<SecretString> {
    let path = data_dir.join(SECRET_FILE);
    let secret = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {}: run `micros up` first, or set MICROS__AUTH__TOKEN_SECRET",
            path.display()
        )
    })?;
    Ok(SecretString::from(secret.trim().to_owned()))
}

/// The data directory's secret, created (random, owner-only) on first use.
pub fn load_or_create_secret(data_dir: &Path) -> anyhow::Result<SecretString> {
    let path = data_dir.join(SECRET_FILE);
    if path.exists() {
        return read_secret(data_dir);
    }
    use rand::Rng;
    let secret: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(48)
        .map(char::from)
        .collect();
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    std::io::Write::write_all(&mut file, secret.as_bytes())?;
    Ok(SecretString::from(secret))
}
