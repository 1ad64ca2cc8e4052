//! Operator commands: clients of the orchestrator API (`micros plan`, `approve`, `apply`,
//! `watch`, `pause`/`resume`/`abort`, `restore`, `report`, `site get`, `contacts find`).
//!
//! Exit codes scripts can rely on: 0 done; 1 other failure; 2 usage; 3 refused (a plan
//! with errors, a failed precondition, an operation that halted or was aborted);
//! 4 not found; 5 unauthenticated or not permitted; 6 a service unavailable. With
//! `--output json` a failure is also a JSON object on stderr ([`error_json`]).
//!
//! Watching survives an orchestrator restart: the operation goes on in the orchestrator
//! (its state is durable), so `watch` reconnects with backoff for `--reconnect-for` and
//! follows it to the end.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use micros_platform::{
    auth::Role,
    client::{self, ServiceChannel},
    config::ClientConfig,
    metrics::code_name,
};
use micros_proto::orchestrator::v1::{
    self as pb, orchestrator_service_client::OrchestratorServiceClient,
};
use secrecy::SecretString;
use serde_json::json;
use tonic::Code;
use tonic_types::StatusExt;

/// A failure with the exit code it maps to, and what `--output json` reports of it.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
    /// The gRPC status code's name (`FAILED_PRECONDITION`); for a refusal made here, the
    /// code a service would have answered.
    pub status: &'static str,
    /// The `ErrorInfo` reason (`PLAN_FINGERPRINT_MISMATCH`), or this command's own.
    pub reason: String,
    pub metadata: BTreeMap<String, String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

pub const REFUSED: u8 = 3;

fn refused_with<const N: usize>(
    reason: &str,
    message: String,
    metadata: [(&str, String); N],
) -> anyhow::Error {
    Failure {
        code: REFUSED,
        message,
        status: code_name(Code::FailedPrecondition),
        reason: reason.to_owned(),
        metadata: metadata
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect(),
    }
    .into()
}

/// A failure as `--output json` prints it: `{"error": {"code", "exit_code", "reason",
/// "message", "metadata"}}`; an error this command made itself (a file it cannot read)
/// is `UNKNOWN` with reason `CLIENT_ERROR`.
pub fn error_json(error: &anyhow::Error) -> serde_json::Value {
    match error.downcast_ref::<Failure>() {
        Some(failure) => json!({"error": {
            "code": failure.status,
            "exit_code": failure.code,
            "reason": failure.reason,
            "message": failure.message,
            "metadata": failure.metadata,
        }}),
        None => json!({"error": {
            "code": code_name(Code::Unknown),
            "exit_code": 1,
            "reason": "CLIENT_ERROR",
            "message": format!("{error:#}"),
            "metadata": {},
        }}),
    }
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
        // The connection broke mid-call (the server died): tonic says Unknown with the
        // transport's error as the source, where a server's own answer has none.
        Code::Unknown if std::error::Error::source(&status).is_some() => 6,
        _ => 1,
    };
    let mut message = format!("{:?}: {}", status.code(), status.message());
    let (reason, metadata) = match status.get_details_error_info() {
        Some(info) => (info.reason, info.metadata.into_iter().collect()),
        None => (String::new(), BTreeMap::new()),
    };
    if !reason.is_empty() {
        message.push_str(&format!(" [{reason}]"));
    }
    for (key, value) in &metadata {
        message.push_str(&format!(" {key}={value}"));
    }
    Failure {
        code,
        message,
        status: code_name(status.code()),
        reason,
        metadata,
    }
    .into()
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
    /// Bearer token; without one, a short-lived token is minted with the issuer key
    /// (`MICROS_ISSUER_SIGNING_KEY`, else the `micros up` data directory's).
    #[arg(long, env = "MICROS_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// The `micros up` data directory: its databases, run files and the keys that sign
    /// development tokens (`up`, `token` and every command without `--token`).
    #[arg(long, default_value = ".micros", global = true)]
    data_dir: PathBuf,
    /// The principal of a minted token (approvals need a second one).
    #[arg(long, default_value = "dev", global = true)]
    principal: String,
    /// `text` for people, `json` for scripts.
    #[arg(long, value_enum, default_value = "text", global = true)]
    output: Output,
    /// How long `watch` (and `apply --watch`) keeps reconnecting to an orchestrator it
    /// lost (a restart) before it gives up with exit code 6.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration, global = true)]
    reconnect_for: Duration,
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
    /// A file with one ID or URL per line (`-` reads standard input); each line's
    /// surrounding whitespace is removed, blank lines and `#` comments are skipped. (The
    /// API itself never trims: inputs given as arguments are sent as they are.)
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
    /// Deletions and uninstalls: an input that forms the canary, whose rollback is
    /// rehearsed before any other target is touched (repeat for several; default: the
    /// first targets).
    #[arg(long)]
    canary: Vec<String>,
    /// Restore drills: drill the sites themselves (each is unavailable for the seconds
    /// its wave takes) instead of scratch copies of them.
    #[arg(long)]
    real_sites: bool,
}

impl Connection {
    pub fn output(&self) -> Output {
        self.output
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn principal(&self) -> &str {
        &self.principal
    }

    fn token(&self) -> anyhow::Result<SecretString> {
        if let Some(token) = &self.token {
            return Ok(SecretString::from(token.clone()));
        }
        let roles = [Role::Viewer, Role::Admin, Role::Operator, Role::Approver];
        let token = crate::token::issuer(&self.data_dir)?.issue(
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

    /// Prints `message` as JSON (see [`crate::json`]) or as `text` for people.
    fn print<M: prost::Message + prost::Name>(
        &self,
        message: &M,
        text: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        match self.output {
            Output::Json => say!(
                "{}",
                serde_json::to_string_pretty(&crate::json::message(message)?)?
            ),
            Output::Text => say!("{}", text()),
        }
        Ok(())
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
    if !plan.already_active.is_empty() {
        text.push_str(&format!(
            "already active, left out: {}\n",
            plan.already_active.join(", ")
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
    if plan.errors.is_empty() && !plan.targets.is_empty() {
        text.push_str(&format!(
            "apply with: micros apply {} --fingerprint {}",
            plan.plan_id, plan.fingerprint
        ));
    }
    text
}

/// What the canary's rollback rehearsal has come to, for the live line and the summary.
fn rehearsal_text(operation: &pb::Operation) -> Option<String> {
    let rehearsal = operation.rehearsal.as_ref()?;
    Some(match rehearsal.state() {
        pb::RehearsalState::Restoring => "rehearsing the canary's rollback: restoring".to_owned(),
        pb::RehearsalState::Restored => {
            "rehearsing the canary's rollback: restored and verified, deleting again".to_owned()
        }
        pb::RehearsalState::Done => format!(
            "rollback rehearsed on the canary ({} targets) in {:.2} s",
            rehearsal.canary_targets, rehearsal.seconds
        ),
        pb::RehearsalState::Pending | pb::RehearsalState::Unspecified => return None,
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
    if let Some(rehearsal) = rehearsal_text(operation) {
        text.push_str(&format!("\n{rehearsal}"));
    }
    if !operation.halt_reason.is_empty() {
        text.push_str(&format!("\nhalted: {}", operation.halt_reason));
    }
    text
}

/// The orchestrator's ETA, once it means something: while the operation runs, some
/// targets are done and some are left (before the first target is done it is 0, not an
/// estimate).
fn known_eta(operation: &pb::Operation) -> Option<f64> {
    let running = operation.state() == pb::OperationState::Running;
    let done = operation.targets_done;
    (running && done > 0 && done < operation.targets_total).then_some(operation.eta_seconds)
}

fn state_name(operation: &pb::Operation) -> String {
    operation
        .state()
        .as_str_name()
        .trim_start_matches("OPERATION_STATE_")
        .to_lowercase()
}

/// The live line of `watch`: `12/40 targets (30%), running, wave 2/5, eta 1m 4s`.
fn live_line(operation: &pb::Operation) -> String {
    let mut line = format!(
        "{}/{} targets ({:.0}%), {}, wave {}/{}",
        operation.targets_done,
        operation.targets_total,
        operation.percent_done,
        state_name(operation),
        operation.wave,
        operation.waves
    );
    if let Some(eta) = known_eta(operation) {
        let eta = Duration::from_secs(eta.max(0.0).round() as u64);
        line.push_str(&format!(", eta {}", humantime::format_duration(eta)));
    }
    if let Some(rehearsal) = rehearsal_text(operation) {
        line.push_str(&format!("; {rehearsal}"));
    }
    line
}

/// The exit status an operation's final state maps to.
fn finished(operation: &pb::Operation) -> anyhow::Result<()> {
    match operation.state() {
        pb::OperationState::Succeeded
        | pb::OperationState::Running
        | pb::OperationState::Paused => Ok(()),
        state => Err(refused_with(
            &format!("OPERATION_{}", state_name(operation).to_uppercase()),
            format!(
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
            ),
            [
                ("operation_id", operation.operation_id.clone()),
                ("halt_reason", operation.halt_reason.clone()),
            ],
        )),
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
        canary: args.canary,
        drill_real_sites: args.real_sites,
    };
    let plan = connection
        .client()?
        .create_plan(request)
        .await
        .map_err(from_status)?
        .into_inner();
    connection.print(&plan, || plan_text(&plan))?;
    refuse_errors(&plan)
}

/// A plan with errors cannot be applied: refused naming its first bad input.
fn refuse_errors(plan: &pb::Plan) -> anyhow::Result<()> {
    match plan.errors.first() {
        Some(first) => Err(refused_with(
            "PLAN_HAS_ERRORS",
            format!(
                "the plan has {} errors and cannot be applied; first bad input `{}`: {} ({})",
                plan.errors.len(),
                first.input,
                first.message,
                first.reason
            ),
            [
                ("plan_id", plan.plan_id.clone()),
                ("errors", plan.errors.len().to_string()),
                ("first_input", first.input.clone()),
                ("first_reason", first.reason.clone()),
            ],
        )),
        None => Ok(()),
    }
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
    connection.print(&plan, || {
        format!("plan {} approved by {}", plan.plan_id, plan.approved_by)
    })
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
        // The ID first: if this terminal goes away, the operation goes on and can be
        // followed again with `micros watch`.
        match connection.output {
            Output::Json => say!("{}", crate::json::message(&operation)?),
            Output::Text => say!(
                "operation {id} started; follow it again with: micros watch {id}",
                id = operation.operation_id
            ),
        }
        return watch(connection, operation.operation_id).await;
    }
    connection.print(&operation, || operation_text(&operation))?;
    Ok(())
}

/// Streams progress; a bar on a terminal in text mode, one JSON object per update in
/// JSON mode. A lost connection (the orchestrator restarting) is retried with backoff
/// for `--reconnect-for`; the operation's final state gives the exit code.
pub async fn watch(connection: &Connection, operation_id: String) -> anyhow::Result<()> {
    let mut client = connection.client()?;
    let bar = (connection.output == Output::Text).then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{bar:30}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    });
    let mut last = None;
    let mut lost: Option<(Instant, Duration)> = None;
    loop {
        let followed = follow(
            &mut client,
            &operation_id,
            bar.as_ref(),
            &mut last,
            &mut lost,
        )
        .await;
        match followed {
            Ok(()) => break,
            Err(status) if connection_lost(&status) => {
                let (since, backoff) = *lost.get_or_insert((Instant::now(), RECONNECT_FIRST));
                if since.elapsed() >= connection.reconnect_for {
                    if let Some(bar) = &bar {
                        bar.abandon();
                    }
                    return Err(Failure {
                        code: 6,
                        message: format!(
                            "lost the orchestrator ({}) and could not reconnect within {}; \
                             operation {operation_id} goes on: micros watch {operation_id}",
                            status.message(),
                            humantime::format_duration(connection.reconnect_for)
                        ),
                        status: code_name(Code::Unavailable),
                        reason: "ORCHESTRATOR_UNREACHABLE".to_owned(),
                        metadata: BTreeMap::from([
                            ("operation_id".to_owned(), operation_id.clone()),
                            ("last_error".to_owned(), status.message().to_owned()),
                        ]),
                    }
                    .into());
                }
                let notice = format!(
                    "micros: lost the orchestrator ({}); reconnecting in {}",
                    status.message(),
                    humantime::format_duration(backoff)
                );
                match &bar {
                    Some(bar) => bar.suspend(|| eprintln!("{notice}")),
                    None => eprintln!(
                        "{}",
                        json!({"reconnecting": {
                            "operation_id": operation_id,
                            "last_error": status.message(),
                            "retry_in_ms": backoff.as_millis(),
                        }})
                    ),
                }
                tokio::time::sleep(backoff).await;
                lost = Some((since, (backoff * 2).min(RECONNECT_MAX)));
            }
            Err(status) => return Err(from_status(status)),
        }
    }
    let last = last.context("the orchestrator sent no progress")?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
        say!("{}", operation_text(&last));
    }
    finished(&last)
}

const RECONNECT_FIRST: Duration = Duration::from_millis(200);
const WATCH_DEADLINE: Duration = Duration::from_secs(24 * 3600);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// Follows one stream of updates until it ends; any update clears `lost`.
async fn follow(
    client: &mut OrchestratorServiceClient<ServiceChannel>,
    operation_id: &str,
    bar: Option<&ProgressBar>,
    last: &mut Option<pb::Operation>,
    lost: &mut Option<(Instant, Duration)>,
) -> Result<(), tonic::Status> {
    let mut request = tonic::Request::new(pb::WatchOperationRequest {
        operation_id: operation_id.to_owned(),
    });
    // A restore may take longer than any single call's deadline.
    request.set_timeout(WATCH_DEADLINE);
    let mut stream = client.watch_operation(request).await?.into_inner();
    while let Some(update) = stream.message().await? {
        *lost = None;
        match bar {
            Some(bar) => {
                bar.set_length(u64::try_from(update.targets_total).unwrap_or_default());
                bar.set_position(u64::try_from(update.targets_done).unwrap_or_default());
                bar.set_message(live_line(&update));
            }
            None => say!(
                "{}",
                crate::json::message(&update)
                    .map_err(|error| tonic::Status::internal(format!("{error:#}")))?
            ),
        }
        *last = Some(update);
    }
    Ok(())
}

/// Whether a failed watch lost the connection (the orchestrator went away or restarts)
/// rather than being refused: transport failures reach the client as UNAVAILABLE, or as
/// an HTTP/2 error tonic reports as UNKNOWN or INTERNAL ("h2 protocol error").
fn connection_lost(status: &tonic::Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded | Code::Unknown => true,
        Code::Internal => status.message().starts_with("h2 protocol error"),
        _ => false,
    }
}

/// What `pause`, `resume` and `abort` ask of an operation.
#[derive(Clone, Copy)]
pub enum Control {
    Pause,
    Resume,
    Abort,
}

pub async fn control(
    connection: &Connection,
    action: Control,
    operation_id: String,
    reason: String,
) -> anyhow::Result<()> {
    let mut client = connection.client()?;
    let request = pb::OperationControlRequest {
        operation_id,
        reason,
    };
    let operation = match action {
        Control::Pause => client.pause_operation(request).await,
        Control::Resume => client.resume_operation(request).await,
        Control::Abort => client.abort_operation(request).await,
    }
    .map_err(from_status)?
    .into_inner();
    connection.print(&operation, || operation_text(&operation))?;
    Ok(())
}

/// Plans the restore of everything an operation deleted, applies it and watches it:
/// undoing a deletion needs no approval, whatever its size.
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
    if !plan.errors.is_empty() {
        connection.print(&plan, || plan_text(&plan))?;
        return refuse_errors(&plan);
    }
    if connection.output == Output::Text {
        say!("{}", plan_text(&plan));
    }
    if plan.targets.is_empty() {
        return connection.print(&plan, || {
            "nothing to restore: every site of the operation is active already".to_owned()
        });
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
    connection.print(&report, || report.markdown.clone())
}

pub async fn site(connection: &Connection, site: String) -> anyhow::Result<()> {
    let summary = connection
        .client()?
        .get_site(pb::GetSiteRequest { site })
        .await
        .map_err(from_status)?
        .into_inner();
    let state = summary.state().as_str_name();
    connection.print(&summary, || {
        let services: Vec<String> = summary
            .services
            .iter()
            .map(|service| match service.error.as_str() {
                "" => format!(
                    "{} {}{}",
                    service.service,
                    service
                        .state()
                        .as_str_name()
                        .trim_start_matches("TENANT_STATE_")
                        .to_lowercase(),
                    if service.hold { " (held)" } else { "" }
                ),
                error => format!("{} unreachable ({error})", service.service),
            })
            .collect();
        format!(
            "{} {} ({}): {}; products: {}; apps: {}\n  {}{}",
            summary.name,
            summary.url,
            summary.site_id,
            state,
            summary.active_products.join(", "),
            summary.app_installations,
            services.join(", "),
            if summary.split {
                "\n  SPLIT: the services disagree on this site's state or hold"
            } else {
                ""
            }
        )
    })
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
    connection.print(&found, || {
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
    })
}

/// Sets or clears a hold on a site in every service.
pub async fn hold(
    connection: &Connection,
    site: String,
    hold: bool,
    reason: String,
    ticket: String,
) -> anyhow::Result<()> {
    let record = connection
        .client()?
        .set_site_hold(pb::SetSiteHoldRequest {
            site,
            hold,
            reason,
            ticket,
        })
        .await
        .map_err(from_status)?
        .into_inner();
    connection.print(&record, || hold_text(&record))
}

/// The holds set through the orchestrator, newest first.
pub async fn holds(connection: &Connection) -> anyhow::Result<()> {
    let mut client = connection.client()?;
    let mut holds = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_site_holds(pb::ListSiteHoldsRequest {
                page_size: 1000,
                page_token,
            })
            .await
            .map_err(from_status)?
            .into_inner();
        holds.extend(page.holds);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let list = pb::ListSiteHoldsResponse {
        holds,
        next_page_token: String::new(),
    };
    connection.print(&list, || {
        if list.holds.is_empty() {
            return "no site is held".to_owned();
        }
        list.holds
            .iter()
            .map(hold_text)
            .collect::<Vec<_>>()
            .join("\n")
    })
}

fn hold_text(record: &pb::SiteHold) -> String {
    format!(
        "{} {} by {} at {}: {}{}",
        record.site_id,
        if record.held { "held" } else { "released" },
        record.principal,
        record.update_time.map(rfc3339).unwrap_or_default(),
        record.reason,
        if record.ticket.is_empty() {
            String::new()
        } else {
            format!(" ({})", record.ticket)
        }
    )
}

fn rfc3339(at: prost_types::Timestamp) -> String {
    micros_platform::store::from_timestamp(at)
        .map(micros_platform::store::rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operation(done: i32, total: i32, state: pb::OperationState) -> pb::Operation {
        pb::Operation {
            operation_id: "op_1".to_owned(),
            state: state as i32,
            targets_total: total,
            targets_done: done,
            wave: 2,
            waves: 5,
            percent_done: f64::from(done) * 100.0 / f64::from(total),
            eta_seconds: if done == 0 { 0.0 } else { 64.0 },
            ..Default::default()
        }
    }

    #[test]
    fn the_live_line_shows_percent_and_an_eta_only_once_known() {
        let starting = operation(0, 40, pb::OperationState::Running);
        assert_eq!(live_line(&starting), "0/40 targets (0%), running, wave 2/5");
        let going = operation(12, 40, pb::OperationState::Running);
        assert_eq!(
            live_line(&going),
            "12/40 targets (30%), running, wave 2/5, eta 1m 4s"
        );
        let halted = operation(12, 40, pb::OperationState::Halted);
        assert_eq!(known_eta(&halted), None);
    }

    #[test]
    fn transport_failures_are_reconnected_and_refusals_are_not() {
        assert!(connection_lost(&tonic::Status::unknown(
            "h2 protocol error: error reading a body from connection"
        )));
        assert!(connection_lost(&tonic::Status::unavailable(
            "tcp connect error"
        )));
        assert!(!connection_lost(&tonic::Status::not_found("no operation")));
        assert!(!connection_lost(&tonic::Status::internal("database")));
    }

    #[test]
    fn json_errors_carry_code_reason_and_metadata() {
        let error = refused_with(
            "PLAN_HAS_ERRORS",
            "the plan has 1 error".to_owned(),
            [("plan_id", "pln_1".to_owned())],
        );
        assert_eq!(
            error_json(&error),
            json!({"error": {
                "code": "FAILED_PRECONDITION", "exit_code": 3, "reason": "PLAN_HAS_ERRORS",
                "message": "the plan has 1 error", "metadata": {"plan_id": "pln_1"},
            }})
        );
        let local = error_json(&anyhow::anyhow!("cannot read ids.txt"));
        assert_eq!(local["error"]["reason"], "CLIENT_ERROR");
        assert_eq!(local["error"]["exit_code"], 1);
    }
}
