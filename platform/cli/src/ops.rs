//! Operator commands: clients of the orchestrator API (`micros plan`, `approve`, `apply`,
//! `watch`, `pause`/`resume`/`abort`, `restore`, `report`, `site get`, `contacts find`).
//!
//! Exit codes scripts can rely on: 0 done; 1 other failure; 2 usage; 3 refused (a plan
//! with errors, a failed precondition, an operation that halted or was aborted);
//! 4 not found; 5 unauthenticated or not permitted; 6 a service unavailable.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use micros_platform::{
    auth::{Authenticator, Role},
    client::{self, ServiceChannel},
    config::ClientConfig,
};
use micros_proto::orchestrator::v1::{
    self as pb, orchestrator_service_client::OrchestratorServiceClient,
};
use secrecy::SecretString;
use serde_json::json;
use tonic::Code;
use tonic_types::StatusExt;

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

pub const REFUSED: u8 = 3;

fn refused(message: String) -> anyhow::Error {
    Failure {
        code: REFUSED,
        message,
    }
    .into()
}

/// A gRPC refusal as an operator reads it, with the exit code its code maps to.
fn from_status(status: tonic::Status) -> anyhow::Error {
    let code = match status.code() {
        Code::FailedPrecondition
        | Code::InvalidArgument
        | Code::AlreadyExists
        | Code::Aborted
        | Code::OutOfRange => REFUSED,
        Code::NotFound => 4,
        Code::Unauthenticated | Code::PermissionDenied => 5,
        Code::Unavailable | Code::DeadlineExceeded => 6,
        _ => 1,
    };
    let mut message = format!("{:?}: {}", status.code(), status.message());
    if let Some(info) = status.get_details_error_info() {
        message.push_str(&format!(" [{}]", info.reason));
        let mut metadata: Vec<_> = info.metadata.into_iter().collect();
        metadata.sort();
        for (key, value) in metadata {
            message.push_str(&format!(" {key}={value}"));
        }
    }
    Failure { code, message }.into()
}

#[derive(clap::Args)]
pub struct Connection {
    /// The orchestrator's address.
    #[arg(
        long,
        env = "MICROS_ORCHESTRATOR",
        default_value = "http://127.0.0.1:50056",
        global = true
    )]
    orchestrator: String,
    /// Bearer token; without one, a development token is minted from the `micros up`
    /// data directory's secret.
    #[arg(long, env = "MICROS_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// The `micros up` data directory (for development tokens).
    #[arg(long, default_value = ".micros", global = true)]
    data_dir: PathBuf,
    /// The principal of a minted development token (approvals need a second one).
    #[arg(long, default_value = "dev", global = true)]
    principal: String,
    /// `text` for people, `json` for scripts.
    #[arg(long, value_enum, default_value = "text", global = true)]
    output: Output,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Kind {
    UninstallApp,
    DeleteSites,
    RestoreSites,
    PurgeSites,
    RestoreDrill,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Expect {
    Site,
    App,
}

#[derive(clap::Args)]
pub struct PlanArgs {
    /// What to do.
    #[arg(value_enum)]
    kind: Kind,
    /// IDs or site URLs (or use --input-file).
    inputs: Vec<String>,
    /// A file with one ID or URL per line (`-` reads standard input); blank lines and
    /// `#` comments are skipped.
    #[arg(long)]
    input_file: Option<PathBuf>,
    /// What the inputs must be; anything else is a plan error.
    #[arg(long, value_enum)]
    expect_kind: Option<Expect>,
    /// The plan has an error unless exactly this many targets resolve.
    #[arg(long)]
    expect_count: Option<i32>,
    /// The plan has an error if it touches more sites.
    #[arg(long)]
    max_sites: Option<i32>,
    /// Why (recorded in every service's audit log).
    #[arg(long)]
    reason: String,
    #[arg(long, default_value = "")]
    ticket: String,
    /// Restore plans: the deleting operation to undo.
    #[arg(long)]
    undo: Option<String>,
    /// Restore plans: the point in time (RFC 3339) to return the sites to.
    #[arg(long, value_parser = humantime::parse_rfc3339_weak)]
    at: Option<std::time::SystemTime>,
    /// Uninstall plans: the app the installations must be of.
    #[arg(long, default_value = "")]
    app_key: String,
}

impl Connection {
    fn token(&self) -> anyhow::Result<SecretString> {
        if let Some(token) = &self.token {
            return Ok(SecretString::from(token.clone()));
        }
        let secret = crate::token::read_secret(&self.data_dir)?;
        let roles = [Role::Viewer, Role::Admin, Role::Operator, Role::Approver];
        let token = Authenticator::from_secret(&secret, "micros").issue(
            &self.principal,
            &roles,
            Duration::from_secs(3600),
        )?;
        Ok(SecretString::from(token))
    }

    fn client(&self) -> anyhow::Result<OrchestratorServiceClient<ServiceChannel>> {
        let channel = client::connect(
            "orchestrator",
            &ClientConfig {
                url: self.orchestrator.clone(),
                timeout: Duration::from_secs(300),
                connect_timeout: Duration::from_secs(5),
            },
            Some(&self.token()?),
        )?;
        Ok(OrchestratorServiceClient::new(channel)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20))
    }

    fn print(&self, value: serde_json::Value, text: impl FnOnce() -> String) {
        match self.output {
            Output::Json => println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            ),
            Output::Text => println!("{}", text()),
        }
    }
}

fn read_inputs(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

fn plan_json(plan: &pb::Plan) -> serde_json::Value {
    json!({
        "plan_id": plan.plan_id,
        "kind": plan.kind().as_str_name(),
        "fingerprint": plan.fingerprint,
        "state": plan.state().as_str_name(),
        "requires_approval": plan.requires_approval,
        "requested_by": plan.requested_by,
        "approved_by": plan.approved_by,
        "operation_id": plan.operation_id,
        "targets": plan.targets.iter().map(|target| json!({
            "input": target.input, "site_id": target.site_id, "site_name": target.site_name,
            "site_url": target.site_url, "app_installation_id": target.app_installation_id,
            "app_key": target.app_key, "products": target.products,
        })).collect::<Vec<_>>(),
        "errors": plan.errors.iter().map(|error| json!({
            "input": error.input, "reason": error.reason, "message": error.message,
        })).collect::<Vec<_>>(),
        "blast_radius": plan.blast_radius.as_ref().map(|blast| json!({
            "sites": blast.sites, "app_installations": blast.app_installations, "users": blast.users,
            "documents": blast.documents, "attachments": blast.attachments, "rows": blast.rows,
        })),
    })
}

fn plan_text(plan: &pb::Plan) -> String {
    let mut text = format!(
        "plan {} ({}) fingerprint {}\n",
        plan.plan_id,
        plan.kind()
            .as_str_name()
            .trim_start_matches("PLAN_KIND_")
            .to_lowercase(),
        plan.fingerprint
    );
    for target in &plan.targets {
        let what = if target.app_installation_id.is_empty() {
            format!("site {}", target.site_id)
        } else {
            format!(
                "app installation {} ({}) on site {}",
                target.app_installation_id, target.app_key, target.site_id
            )
        };
        text.push_str(&format!(
            "  {what}: {} {}\n",
            target.site_name, target.site_url
        ));
    }
    if let Some(blast) = &plan.blast_radius {
        text.push_str(&format!(
            "blast radius: {} sites, {} app installations, {} users, {} documents, {} attachments, {} rows\n",
            blast.sites, blast.app_installations, blast.users, blast.documents, blast.attachments, blast.rows
        ));
    }
    for error in &plan.errors {
        text.push_str(&format!(
            "  ERROR {} {}: {}\n",
            error.reason, error.input, error.message
        ));
    }
    if plan.requires_approval {
        text.push_str(&format!(
            "needs approval by another principal: micros approve {} --fingerprint {}\n",
            plan.plan_id, plan.fingerprint
        ));
    }
    if plan.errors.is_empty() {
        text.push_str(&format!(
            "apply with: micros apply {} --fingerprint {}",
            plan.plan_id, plan.fingerprint
        ));
    }
    text
}

fn operation_json(operation: &pb::Operation) -> serde_json::Value {
    json!({
        "operation_id": operation.operation_id, "plan_id": operation.plan_id,
        "state": operation.state().as_str_name(), "targets_total": operation.targets_total,
        "targets_done": operation.targets_done, "targets_failed": operation.targets_failed,
        "percent_done": operation.percent_done, "eta_seconds": operation.eta_seconds,
        "wave": operation.wave, "waves": operation.waves, "halt_reason": operation.halt_reason,
        "failures": operation.failures,
        "steps": operation.steps.iter().map(|step| json!({"step": step.step, "done": step.done, "total": step.total})).collect::<Vec<_>>(),
    })
}

fn operation_text(operation: &pb::Operation) -> String {
    let mut text = format!(
        "operation {} {}: {}/{} targets ({:.0}%), wave {}/{}",
        operation.operation_id,
        operation
            .state()
            .as_str_name()
            .trim_start_matches("OPERATION_STATE_")
            .to_lowercase(),
        operation.targets_done,
        operation.targets_total,
        operation.percent_done,
        operation.wave,
        operation.waves
    );
    if !operation.halt_reason.is_empty() {
        text.push_str(&format!("\nhalted: {}", operation.halt_reason));
    }
    text
}

/// The exit status an operation's final state maps to.
fn finished(operation: &pb::Operation) -> anyhow::Result<()> {
    match operation.state() {
        pb::OperationState::Succeeded
        | pb::OperationState::Running
        | pb::OperationState::Paused => Ok(()),
        state => Err(refused(format!(
            "operation {} is {}{}",
            operation.operation_id,
            state
                .as_str_name()
                .trim_start_matches("OPERATION_STATE_")
                .to_lowercase(),
            if operation.halt_reason.is_empty() {
                String::new()
            } else {
                format!(": {}", operation.halt_reason)
            }
        ))),
    }
}

pub async fn plan(connection: &Connection, args: PlanArgs) -> anyhow::Result<()> {
    let mut inputs = args.inputs;
    if let Some(file) = &args.input_file {
        inputs.extend(read_inputs(file)?);
    }
    let request = pb::CreatePlanRequest {
        kind: match args.kind {
            Kind::UninstallApp => pb::PlanKind::UninstallApp,
            Kind::DeleteSites => pb::PlanKind::DeleteSites,
            Kind::RestoreSites => pb::PlanKind::RestoreSites,
            Kind::PurgeSites => pb::PlanKind::PurgeSites,
            Kind::RestoreDrill => pb::PlanKind::RestoreDrill,
        } as i32,
        inputs,
        expected_kind: match args.expect_kind {
            None => pb::ExpectedKind::Unspecified,
            Some(Expect::Site) => pb::ExpectedKind::Site,
            Some(Expect::App) => pb::ExpectedKind::AppInstallation,
        } as i32,
        expected_count: args.expect_count.unwrap_or_default(),
        max_sites: args.max_sites.unwrap_or_default(),
        reason: args.reason,
        ticket: args.ticket,
        undo_operation_id: args.undo.unwrap_or_default(),
        point_in_time: args.at.map(Into::into),
        app_key: args.app_key,
    };
    let plan = connection
        .client()?
        .create_plan(request)
        .await
        .map_err(from_status)?
        .into_inner();
    connection.print(plan_json(&plan), || plan_text(&plan));
    if let Some(first) = plan.errors.first() {
        return Err(refused(format!(
            "the plan has {} errors and cannot be applied; first bad input `{}`: {} ({})",
            plan.errors.len(),
            first.input,
            first.message,
            first.reason
        )));
    }
    Ok(())
}

pub async fn approve(
    connection: &Connection,
    plan_id: String,
    fingerprint: String,
) -> anyhow::Result<()> {
    let plan = connection
        .client()?
        .approve_plan(pb::ApprovePlanRequest {
            plan_id,
            fingerprint,
        })
        .await
        .map_err(from_status)?
        .into_inner();
    connection.print(plan_json(&plan), || {
        format!("plan {} approved by {}", plan.plan_id, plan.approved_by)
    });
    Ok(())
}

pub async fn apply(
    connection: &Connection,
    plan_id: String,
    fingerprint: String,
    watch_it: bool,
) -> anyhow::Result<()> {
    let operation = connection
        .client()?
        .apply_plan(pb::ApplyPlanRequest {
            plan_id,
            fingerprint,
        })
        .await
        .map_err(from_status)?
        .into_inner();
    if watch_it {
        return watch(connection, operation.operation_id).await;
    }
    connection.print(operation_json(&operation), || operation_text(&operation));
    Ok(())
}

/// Streams progress; a bar on a terminal in text mode, one JSON object per update in
/// JSON mode.
pub async fn watch(connection: &Connection, operation_id: String) -> anyhow::Result<()> {
    let mut stream = connection
        .client()?
        .watch_operation(pb::WatchOperationRequest { operation_id })
        .await
        .map_err(from_status)?
        .into_inner();
    let bar = (connection.output == Output::Text).then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {pos}/{len} targets, eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    });
    let mut last = None;
    while let Some(update) = stream.message().await.map_err(from_status)? {
        match &bar {
            Some(bar) => {
                bar.set_length(u64::try_from(update.targets_total).unwrap_or_default());
                bar.set_position(u64::try_from(update.targets_done).unwrap_or_default());
                bar.set_message(format!(
                    "{} wave {}/{}",
                    update
                        .state()
                        .as_str_name()
                        .trim_start_matches("OPERATION_STATE_")
                        .to_lowercase(),
                    update.wave,
                    update.waves
                ));
            }
            None => println!(
                "{}",
                serde_json::to_string(&operation_json(&update)).unwrap_or_default()
            ),
        }
        last = Some(update);
    }
    let last = last.context("the orchestrator sent no progress")?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
        println!("{}", operation_text(&last));
    }
    finished(&last)
}

pub async fn control(
    connection: &Connection,
    action: &str,
    operation_id: String,
    reason: String,
) -> anyhow::Result<()> {
    let mut client = connection.client()?;
    let request = pb::OperationControlRequest {
        operation_id,
        reason,
    };
    let operation = match action {
        "pause" => client.pause_operation(request).await,
        "resume" => client.resume_operation(request).await,
        _ => client.abort_operation(request).await,
    }
    .map_err(from_status)?
    .into_inner();
    connection.print(operation_json(&operation), || operation_text(&operation));
    Ok(())
}

/// Plans the restore of everything an operation deleted, applies it when no approval is
/// needed (or `--yes` was given for an approved plan), and watches it.
pub async fn restore(
    connection: &Connection,
    operation_id: String,
    reason: String,
    ticket: String,
) -> anyhow::Result<()> {
    let mut client = connection.client()?;
    let plan = client
        .create_plan(pb::CreatePlanRequest {
            kind: pb::PlanKind::RestoreSites as i32,
            undo_operation_id: operation_id,
            reason,
            ticket,
            ..Default::default()
        })
        .await
        .map_err(from_status)?
        .into_inner();
    if connection.output == Output::Text {
        println!("{}", plan_text(&plan));
    }
    if let Some(first) = plan.errors.first() {
        return Err(refused(format!(
            "the restore plan has errors; first bad input `{}`: {}",
            first.input, first.message
        )));
    }
    if plan.requires_approval {
        return Err(refused(format!(
            "the restore touches {} sites and needs approval: micros approve {} --fingerprint {}, then micros apply",
            plan.targets.len(),
            plan.plan_id,
            plan.fingerprint
        )));
    }
    apply(connection, plan.plan_id, plan.fingerprint, true).await
}

pub async fn report(connection: &Connection, operation_id: String) -> anyhow::Result<()> {
    let report = connection
        .client()?
        .get_report(pb::GetReportRequest { operation_id })
        .await
        .map_err(from_status)?
        .into_inner();
    connection.print(
        json!({
            "operation_id": report.operation_id, "title": report.title,
            "sites_affected": report.sites_affected, "percent_restored": report.percent_restored,
            "expected_data_loss": report.expected_data_loss, "confidence": report.confidence,
            "markdown": report.markdown,
        }),
        || report.markdown.clone(),
    );
    Ok(())
}

pub async fn site(connection: &Connection, site: String) -> anyhow::Result<()> {
    let summary = connection
        .client()?
        .get_site(pb::GetSiteRequest { site })
        .await
        .map_err(from_status)?
        .into_inner();
    connection.print(
        json!({
            "site_id": summary.site_id, "name": summary.name, "url": summary.url, "state": summary.state,
            "active_products": summary.active_products, "app_installations": summary.app_installations,
        }),
        || {
            format!(
                "{} {} ({}): {}; products: {}; apps: {}",
                summary.name,
                summary.url,
                summary.site_id,
                summary.state,
                summary.active_products.join(", "),
                summary.app_installations
            )
        },
    );
    Ok(())
}

pub async fn contacts(connection: &Connection, email: String) -> anyhow::Result<()> {
    let found = connection
        .client()?
        .find_sites_by_contact(pb::FindSitesByContactRequest {
            email: email.clone(),
        })
        .await
        .map_err(from_status)?
        .into_inner();
    connection.print(
        json!({"email": email, "sites": found.sites.iter().map(|site| json!({
            "site_id": site.site_id, "site_name": site.site_name, "site_url": site.site_url,
            "state": site.state, "contact_kinds": site.contact_kinds,
        })).collect::<Vec<_>>()}),
        || {
            if found.sites.is_empty() {
                return format!("no site has {email} as a contact");
            }
            found
                .sites
                .iter()
                .map(|site| {
                    format!(
                        "{} {} ({}): {}; {} contact",
                        site.site_name,
                        site.site_url,
                        site.site_id,
                        site.state,
                        site.contact_kinds.join("+")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        },
    );
    Ok(())
}
