//! `micros`: one binary, many roles. `micros up` runs the whole suite on this machine,
//! `micros serve <service>` runs one service (what a container runs), `micros token`
//! mints a bearer token for development, `micros render` writes the Kubernetes manifests.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use micros_platform::service::{RunOptions, ServiceEntry};

mod registry;
mod render;
mod token;
mod up;

#[derive(Parser)]
#[command(
    name = "micros",
    version,
    about = "Micros: safe tenant lifecycle for a multi-tenant platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every service on 127.0.0.1 with SQLite under a data directory, supervised.
    Up(up::UpArgs),
    /// Run one service in the foreground until SIGTERM or Ctrl-C.
    Serve {
        /// The service to run.
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(registry::names()))]
        service: String,
        /// A TOML config file, read after the defaults and before MICROS__… variables.
        #[arg(long, env = "MICROS_CONFIG")]
        config: Option<PathBuf>,
        /// Write the bound address to this file once the service is ready.
        #[arg(long, hide = true)]
        ready_file: Option<PathBuf>,
    },
    /// Print a bearer token signed with the secret of a `micros up` data directory.
    Token(token::TokenArgs),
    /// List the services this binary can run.
    Services,
    /// Write the Kubernetes manifests (kustomize base and kind overlay) from the
    /// service descriptors.
    Render(render::RenderArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("micros: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Up(args) => up::run(args).await,
            Command::Serve {
                service,
                config,
                ready_file,
            } => {
                let entry = registry::find(&service)?;
                let mut options = RunOptions {
                    ready_file,
                    ..RunOptions::default()
                };
                options.sources.file = config;
                (entry.run)(options).await
            }
            Command::Token(args) => token::run(args),
            Command::Render(args) => render::run(args),
            Command::Services => {
                for ServiceEntry { descriptor, .. } in registry::all() {
                    println!(
                        "{:<14} port {:<6} databases {}",
                        descriptor.name,
                        descriptor.port,
                        descriptor.databases.join(", ")
                    );
                }
                Ok(())
            }
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("micros: {error:#}");
            ExitCode::FAILURE
        }
    }
}
