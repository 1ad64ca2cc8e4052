//! `micros`: one binary, many roles. `micros up` runs the whole suite on this machine,
//! `micros serve <service>` runs one service (what a container runs), `micros token`
//! mints a bearer token for development, `micros render` writes the Kubernetes manifests,
//! and the operator commands (`plan`, `approve`, `apply`, `watch`, `restore`, `report`, …)
//! are clients of the orchestrator.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use micros_platform::service::{RunOptions, ServiceEntry};

#[macro_use]
mod out;
mod bench;
mod json;
mod ops;
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
    #[command(flatten)]
    connection: ops::Connection,
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
    /// Print a bearer token signed with the issuer key of a `micros up` data directory
    /// (or a service's key, or a new key pair).
    Token(token::TokenArgs),
    /// List the services this binary can run.
    Services,
    /// Write the Kubernetes manifests (kustomize base and kind overlay) from the
    /// service descriptors.
    Render(render::RenderArgs),
    /// Plan a bulk operation: every input resolved to what it is, errors and the blast
    /// radius shown; nothing changes.
    Plan(ops::PlanArgs),
    /// Approve another principal's plan (the approver role).
    Approve {
        plan_id: String,
        #[arg(long)]
        fingerprint: String,
    },
    /// Run exactly the plan reviewed, in waves.
    Apply {
        plan_id: String,
        #[arg(long)]
        fingerprint: String,
        /// Follow its progress until it ends.
        #[arg(long)]
        watch: bool,
    },
    /// Follow an operation's progress until it ends.
    Watch { operation_id: String },
    /// Pause an operation after its current step.
    Pause {
        operation_id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Resume a paused or halted operation.
    Resume {
        operation_id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Stop an operation and undo what it already did.
    Abort {
        operation_id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Restore every site an operation deleted, with their IDs, verified.
    Restore {
        #[arg(long)]
        operation: String,
        #[arg(long)]
        reason: String,
        #[arg(long, default_value = "")]
        ticket: String,
    },
    /// The incident report of an operation.
    Report { operation_id: String },
    /// Sites, by ID or URL.
    Site {
        #[command(subcommand)]
        command: SiteCommand,
    },
    /// The escrowed contacts: find a customer's sites by email, whatever their state.
    Contacts {
        #[command(subcommand)]
        command: ContactsCommand,
    },
    /// Benchmarks that drive the suite from outside and print figures.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// Legal holds: a held site is never purged, in any service.
    Hold {
        #[command(subcommand)]
        command: HoldCommand,
    },
}

#[derive(Subcommand)]
enum HoldCommand {
    /// Hold a site (by ID or URL) in every service.
    Set {
        site: String,
        #[arg(long)]
        reason: String,
        #[arg(long, default_value = "")]
        ticket: String,
    },
    /// Release a site's hold in every service; it can be purged once expired.
    Clear {
        site: String,
        #[arg(long)]
        reason: String,
        #[arg(long, default_value = "")]
        ticket: String,
    },
    /// The sites held, newest first.
    List,
}

#[derive(Subcommand)]
enum SiteCommand {
    /// What a site is and what state it is in.
    Get { site: String },
}

#[derive(Subcommand)]
enum ContactsCommand {
    /// Every site that has this email as a contact.
    Find { email: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let output = cli.connection.output();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("micros: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Up(args) => up::run(cli.connection.data_dir(), args).await,
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
                options.sources.defaults = registry::deployed_config(&entry.descriptor)?
                    .into_iter()
                    .map(|(key, value)| (key.to_owned(), value))
                    .collect();
                (entry.run)(options).await
            }
            Command::Token(args) => {
                token::run(cli.connection.data_dir(), cli.connection.principal(), args)
            }
            Command::Render(args) => render::run(args),
            Command::Plan(args) => ops::plan(&cli.connection, args).await,
            Command::Approve {
                plan_id,
                fingerprint,
            } => ops::approve(&cli.connection, plan_id, fingerprint).await,
            Command::Apply {
                plan_id,
                fingerprint,
                watch,
            } => ops::apply(&cli.connection, plan_id, fingerprint, watch).await,
            Command::Watch { operation_id } => ops::watch(&cli.connection, operation_id).await,
            Command::Pause {
                operation_id,
                reason,
            } => ops::control(&cli.connection, ops::Control::Pause, operation_id, reason).await,
            Command::Resume {
                operation_id,
                reason,
            } => ops::control(&cli.connection, ops::Control::Resume, operation_id, reason).await,
            Command::Abort {
                operation_id,
                reason,
            } => ops::control(&cli.connection, ops::Control::Abort, operation_id, reason).await,
            Command::Restore {
                operation,
                reason,
                ticket,
            } => ops::restore(&cli.connection, operation, reason, ticket).await,
            Command::Report { operation_id } => ops::report(&cli.connection, operation_id).await,
            Command::Site {
                command: SiteCommand::Get { site },
            } => ops::site(&cli.connection, site).await,
            Command::Contacts {
                command: ContactsCommand::Find { email },
            } => ops::contacts(&cli.connection, email).await,
            Command::Bench { command } => bench::run(command).await,
            Command::Hold { command } => match command {
                HoldCommand::Set {
                    site,
                    reason,
                    ticket,
                } => ops::hold(&cli.connection, site, true, reason, ticket).await,
                HoldCommand::Clear {
                    site,
                    reason,
                    ticket,
                } => ops::hold(&cli.connection, site, false, reason, ticket).await,
                HoldCommand::List => ops::holds(&cli.connection).await,
            },
            Command::Services => {
                for ServiceEntry { descriptor, .. } in registry::all() {
                    say!(
                        "{:<14} port {:<6} metrics {:<6} databases {}",
                        descriptor.name,
                        descriptor.port,
                        descriptor.metrics_port,
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
            match output {
                ops::Output::Json => eprintln!("{}", ops::error_json(&error)),
                ops::Output::Text => eprintln!("micros: {error:#}"),
            }
            match error.downcast_ref::<ops::Failure>() {
                Some(failure) => ExitCode::from(failure.code),
                None => ExitCode::FAILURE,
            }
        }
    }
}
