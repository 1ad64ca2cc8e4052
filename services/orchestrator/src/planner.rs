//! Planning: every input resolved through the catalog to what it is, wrong kinds and
//! unmet preconditions listed as errors, the blast radius totalled from every service.
//! Nothing changes while planning.

use std::collections::{BTreeMap, BTreeSet};

use micros_platform::{
    error::{InvalidArgument, parse_id},
    ids::{AppInstallationId, OperationId, PlanId, SiteId},
    input,
    lifecycle::Target,
};
use micros_proto::{
    catalog::v1::{InputKind, ResolvedInput, SiteState},
    lifecycle::v1::{TargetOutcome, TenantState},
    orchestrator::v1::{self as pb, ExpectedKind},
};

use crate::{
    error::OrchestratorError,
    fleet::Fleet,
    model::{PlanKind, PlanState, RestoreSource},
    settings::OrchestratorSettings,
    store::{Blast, OrchestratorStore, PlanBody, PlanRecord, PlannedError, PlannedTarget},
};

pub struct Planner<'a> {
    pub fleet: &'a Fleet,
    pub settings: &'a OrchestratorSettings,
    pub store: &'a OrchestratorStore,
    pub now: i64,
}

fn error(input: &str, reason: &str, message: String) -> PlannedError {
    PlannedError {
        input: input.to_owned(),
        reason: reason.to_owned(),
        message,
    }
}

fn describe_input(resolved: &ResolvedInput) -> String {
    if resolved.site_name.is_empty() {
        resolved.site_id.clone()
    } else {
        format!("{} ({})", resolved.site_name, resolved.site_url)
    }
}

impl Planner<'_> {
    /// A plan the orchestrator makes on its own schedule (purges past retention,
    /// restore drills) over sites it listed a moment ago: a site that changed since is
    /// left out instead of failing the plan, and policy needs no second principal. `None`
    /// when nothing is left to do.
    pub async fn scheduled(
        &self,
        principal: &str,
        kind: PlanKind,
        sites: Vec<String>,
        reason: &str,
    ) -> Result<Option<PlanRecord>, OrchestratorError> {
        let mut plan = self
            .plan(
                principal,
                pb::CreatePlanRequest {
                    kind: kind.to_proto() as i32,
                    inputs: sites,
                    reason: reason.to_owned(),
                    ..Default::default()
                },
            )
            .await?;
        if plan.body.targets.is_empty() {
            return Ok(None);
        }
        plan.body.errors.clear();
        plan.requires_approval = false;
        plan.fingerprint = fingerprint(plan.kind, None, &plan.body);
        Ok(Some(plan))
    }

    pub async fn plan(
        &self,
        principal: &str,
        request: pb::CreatePlanRequest,
    ) -> Result<PlanRecord, OrchestratorError> {
        let kind =
            PlanKind::from_proto(request.kind()).ok_or_else(|| InvalidArgument::missing("kind"))?;
        micros_platform::input::check_text("reason", &request.reason, true)?;
        micros_platform::input::check_text("ticket", &request.ticket, false)?;
        if !request.canary.is_empty() && !kind.rehearses() {
            return Err(InvalidArgument::field(
                "canary",
                "CANARY_UNEXPECTED",
                request.canary.len().to_string(),
                "only deletions and uninstalls have a canary to rehearse",
            )
            .into());
        }
        let undo_operation_id: Option<OperationId> = if request.undo_operation_id.is_empty() {
            None
        } else {
            Some(parse_id("undo_operation_id", &request.undo_operation_id)?)
        };
        let point_in_time = request
            .point_in_time
            .map(|at| micros_platform::error::parse_timestamp("point_in_time", at))
            .transpose()?;
        let restore_source = match (kind, undo_operation_id, point_in_time) {
            (PlanKind::RestoreSites, Some(undo), None) => Some(RestoreSource::Undo(undo)),
            (PlanKind::RestoreSites, None, Some(at)) => Some(RestoreSource::PointInTime(at)),
            (PlanKind::RestoreSites, _, _) => {
                return Err(InvalidArgument::field(
                    "undo_operation_id",
                    "RESTORE_SOURCE_REQUIRED",
                    "",
                    "a restore plan names exactly one of undo_operation_id and point_in_time",
                )
                .into());
            }
            (_, None, None) => None,
            _ => {
                return Err(InvalidArgument::field(
                    "undo_operation_id",
                    "RESTORE_SOURCE_UNEXPECTED",
                    request.undo_operation_id.clone(),
                    "only restore plans take a restore source",
                )
                .into());
            }
        };

        // Taken exactly as sent: a blank or whitespace-padded input is refused naming
        // it, never trimmed or dropped (see `micros_platform::input`).
        if !request.inputs.is_empty() {
            input::check_list("inputs", &request.inputs)?;
        }
        if !request.canary.is_empty() {
            input::check_list("canary", &request.canary)?;
        }
        let mut inputs: Vec<String> = request.inputs.clone();
        let from_operation = inputs.is_empty();
        if from_operation && let Some(RestoreSource::Undo(undo)) = restore_source {
            // An operation this orchestrator never ran is not found, not an empty list.
            self.store.operation(undo).await?;
            let undone = self.store.targets(undo).await?;
            if !undone.is_empty()
                && undone
                    .iter()
                    .all(|target| target.app_installation_id.is_some())
            {
                return Err(InvalidArgument::field(
                    "undo_operation_id",
                    "UNDO_OF_UNINSTALL",
                    undo.to_string(),
                    "uninstalled app installations, and a restore by operation brings back \
                     sites; restore the sites to a point in time before it instead",
                )
                .into());
            }
            inputs = undone
                .into_iter()
                .filter(|target| target.app_installation_id.is_none())
                .map(|target| target.site_id.to_string())
                .collect();
        }
        if inputs.is_empty() {
            return Err(InvalidArgument::missing("inputs").into());
        }
        input::check_count("inputs", inputs.len(), input::MAX_INPUTS)?;

        let resolved = self.resolve(&inputs).await?;

        let mut body = PlanBody {
            drill_real_sites: kind == PlanKind::RestoreDrill && request.drill_real_sites,
            ..PlanBody::default()
        };
        let mut seen = BTreeSet::new();
        // Each target once, by the input that named it first: an ID and its site URL
        // are two inputs but one target, and a service refuses a call naming it twice.
        let mut named: BTreeMap<String, &str> = BTreeMap::new();
        // Restores of an operation: targets the catalog has active already, settled
        // once every service has described them.
        let mut active_in_catalog = BTreeSet::new();
        for result in &resolved {
            if !seen.insert(result.input.clone()) {
                body.errors.push(error(
                    &result.input,
                    "DUPLICATE_INPUT",
                    "the input is listed twice".to_owned(),
                ));
                continue;
            }
            match self.classify(kind, &request, result) {
                Ok(target) => {
                    let key = target.key();
                    if let Some(first) = named.get(&key) {
                        body.errors.push(error(
                            &result.input,
                            "DUPLICATE_TARGET",
                            format!("names {key}, which input `{first}` names already"),
                        ));
                        continue;
                    }
                    named.insert(key, &result.input);
                    if kind == PlanKind::RestoreSites && result.site_state() == SiteState::Active {
                        active_in_catalog.insert(target.site_id);
                    }
                    body.targets.push(target);
                }
                Err(problem) => body.errors.push(problem),
            }
        }
        if !request.canary.is_empty() {
            put_canary_first(&mut body, &request.canary);
        }
        if request.expected_count > 0
            && usize::try_from(request.expected_count).ok() != Some(body.targets.len())
        {
            body.errors.push(error(
                "",
                "COUNT_MISMATCH",
                format!(
                    "expected {} targets, {} resolved",
                    request.expected_count,
                    body.targets.len()
                ),
            ));
        }
        let sites: BTreeSet<SiteId> = body.targets.iter().map(|target| target.site_id).collect();
        if request.max_sites > 0
            && sites.len() > usize::try_from(request.max_sites).unwrap_or(usize::MAX)
        {
            body.errors.push(error(
                "",
                "MAX_SITES_EXCEEDED",
                format!(
                    "the plan touches {} sites, more than max_sites {}",
                    sites.len(),
                    request.max_sites
                ),
            ));
        }
        self.drop_busy(&mut body).await?;
        let mut described = self.describe(kind, &body.targets).await?;
        if let Some(undo) = restore_source.and_then(RestoreSource::undo) {
            settle_restore(
                &mut body,
                &mut described,
                &active_in_catalog,
                from_operation,
                undo,
            );
        }
        if kind == PlanKind::PurgeSites {
            self.drop_unpurgeable(&mut body, &described);
        }
        body.blast = blast_radius(&body.targets, &described);

        let plan_id = PlanId::new();
        let fingerprint = fingerprint(kind, restore_source, &body);
        Ok(PlanRecord {
            plan_id,
            kind,
            state: PlanState::Pending,
            fingerprint,
            requested_by: principal.to_owned(),
            approved_by: None,
            requires_approval: kind.needs_approval(
                matches!(restore_source, Some(RestoreSource::PointInTime(_))),
                !body.drill_real_sites,
            ) && sites.len() > self.settings.approval_threshold_sites as usize,
            reason: request.reason.clone(),
            ticket: request.ticket.clone(),
            restore_source,
            body,
            create_time: self.now,
            expire_time: self.now
                + i64::try_from(self.settings.plan_ttl.as_micros()).unwrap_or(i64::MAX),
            operation_id: None,
        })
    }

    /// What one resolved input is for this plan, or why it does not belong in it.
    fn classify(
        &self,
        kind: PlanKind,
        request: &pb::CreatePlanRequest,
        result: &ResolvedInput,
    ) -> Result<PlannedTarget, PlannedError> {
        let input = result.input.as_str();
        let actual = result.kind();
        let expected = match request.expected_kind() {
            ExpectedKind::Unspecified if kind.targets_apps() => ExpectedKind::AppInstallation,
            ExpectedKind::Unspecified => ExpectedKind::Site,
            other => other,
        };
        let is_site = matches!(actual, InputKind::Site | InputKind::SiteUrl);
        let is_app = actual == InputKind::AppInstallation;
        if matches!(actual, InputKind::Malformed | InputKind::OtherId) {
            return Err(error(input, "UNRESOLVED_INPUT", result.problem.clone()));
        }
        let wrong_kind = |what: &str, wanted: &str| {
            error(
                input,
                "WRONG_KIND",
                format!("{input} is {what}, but this plan takes {wanted}"),
            )
        };
        if kind.targets_apps() && !is_app {
            return Err(wrong_kind(
                &format!("a site: {}", describe_input(result)),
                "app installations (app_…)",
            ));
        }
        if !kind.targets_apps() && !is_site {
            return Err(wrong_kind(
                "an app installation",
                "sites (site_… or site URLs)",
            ));
        }
        if (expected == ExpectedKind::Site) != is_site {
            return Err(wrong_kind(
                if is_site {
                    "a site"
                } else {
                    "an app installation"
                },
                if expected == ExpectedKind::Site {
                    "sites (expected_kind)"
                } else {
                    "app installations (expected_kind)"
                },
            ));
        }
        if !result.found {
            return Err(error(input, "NOT_FOUND", result.problem.clone()));
        }
        let state = result.site_state();
        let needs = |wanted: SiteState, what: &str| {
            if state == wanted {
                Ok(())
            } else {
                Err(error(
                    input,
                    "WRONG_STATE",
                    format!(
                        "{} is {}; this plan needs it {what}",
                        describe_input(result),
                        state.as_str_name()
                    ),
                ))
            }
        };
        match (kind, request.undo_operation_id.is_empty()) {
            (PlanKind::UninstallApp, _) => {
                needs(SiteState::Active, "active")?;
                if !result.app_installed {
                    return Err(error(
                        input,
                        "NOT_INSTALLED",
                        "the app installation is already uninstalled".to_owned(),
                    ));
                }
                if !request.app_key.is_empty() && request.app_key != result.app_key {
                    return Err(error(
                        input,
                        "WRONG_APP",
                        format!(
                            "{input} is an installation of `{}`, not `{}`",
                            result.app_key, request.app_key
                        ),
                    ));
                }
            }
            (PlanKind::DeleteSites | PlanKind::RestoreDrill, _) => {
                needs(SiteState::Active, "active")?
            }
            // Active in the catalog is settled once every service has described the
            // site: a site a halted restore left split still needs this one.
            (PlanKind::RestoreSites, false) if state == SiteState::Active => {}
            (PlanKind::RestoreSites, false) | (PlanKind::PurgeSites, _) => {
                needs(SiteState::Deleted, "deleted")?
            }
            (PlanKind::RestoreSites, true) => {
                needs(SiteState::Active, "active (a point-in-time restore)")?
            }
        }
        let site_id: SiteId = parse_id("site_id", &result.site_id)
            .map_err(|problem| error(input, "UNRESOLVED_INPUT", problem.to_string()))?;
        let app_installation_id: Option<AppInstallationId> = if is_app {
            Some(
                parse_id("app_installation_id", &result.app_installation_id)
                    .map_err(|problem| error(input, "UNRESOLVED_INPUT", problem.to_string()))?,
            )
        } else {
            None
        };
        Ok(PlannedTarget {
            input: input.to_owned(),
            site_id,
            site_name: result.site_name.clone(),
            site_url: result.site_url.clone(),
            app_installation_id,
            app_key: result.app_key.clone(),
            products: result.active_products.clone(),
            app_installations: i64::from(result.app_installations),
        })
    }

    /// Moves targets whose site another operation holds to the plan's errors: applying
    /// would be refused (`SITES_BUSY`) until that operation ends.
    async fn drop_busy(&self, body: &mut PlanBody) -> Result<(), OrchestratorError> {
        let sites: Vec<SiteId> = body.targets.iter().map(|target| target.site_id).collect();
        let leases = self.store.leases(&sites).await?;
        if leases.is_empty() {
            return Ok(());
        }
        let (busy, free): (Vec<PlannedTarget>, Vec<PlannedTarget>) = body
            .targets
            .drain(..)
            .partition(|target| leases.contains_key(&target.site_id));
        body.targets = free;
        for target in busy {
            let holder = leases[&target.site_id];
            body.errors.push(error(
                &target.input,
                "SITE_BUSY",
                format!(
                    "{} is held by operation {holder} until it ends",
                    target.site_id
                ),
            ));
        }
        Ok(())
    }

    /// What the catalog says each input is, in input order: one Resolve call per
    /// [`OrchestratorSettings::plan_batch`] inputs, [`BATCHES_IN_FLIGHT`] at a time.
    async fn resolve(&self, inputs: &[String]) -> Result<Vec<ResolvedInput>, OrchestratorError> {
        let batches: Vec<&[String]> = batches(inputs, self.settings.plan_batch).collect();
        let mut resolved = Vec::with_capacity(inputs.len());
        for in_flight in batches.chunks(BATCHES_IN_FLIGHT) {
            let answers = futures::future::try_join_all(
                in_flight.iter().map(|batch| self.resolve_batch(batch)),
            )
            .await?;
            resolved.extend(answers.into_iter().flatten());
        }
        Ok(resolved)
    }

    async fn resolve_batch(
        &self,
        inputs: &[String],
    ) -> Result<Vec<ResolvedInput>, OrchestratorError> {
        self.fleet.resolve(inputs).await
    }

    /// Every service's view of the targets, per service in target order: one Describe
    /// call per service per [`OrchestratorSettings::plan_batch`] targets,
    /// [`BATCHES_IN_FLIGHT`] batches at a time.
    async fn describe(
        &self,
        kind: PlanKind,
        targets: &[PlannedTarget],
    ) -> Result<BTreeMap<String, Vec<TargetOutcome>>, OrchestratorError> {
        let targets = lifecycle_targets(kind, targets);
        let batches: Vec<&[Target]> = batches(&targets, self.settings.plan_batch).collect();
        let mut described = Vec::with_capacity(batches.len());
        for in_flight in batches.chunks(BATCHES_IN_FLIGHT) {
            described.extend(
                futures::future::try_join_all(
                    in_flight
                        .iter()
                        .map(|batch| self.fleet.describe_everywhere(batch)),
                )
                .await?,
            );
        }
        Ok(join_batches(described))
    }

    /// A purge plan leaves out, as errors, sites that some service holds or that have not
    /// expired in every service: applying would only halt on them.
    fn drop_unpurgeable(
        &self,
        body: &mut PlanBody,
        described: &BTreeMap<String, Vec<TargetOutcome>>,
    ) {
        let mut problems: Vec<Option<PlannedError>> = vec![None; body.targets.len()];
        for (service, outcomes) in described {
            for ((target, outcome), problem) in
                body.targets.iter().zip(outcomes).zip(problems.iter_mut())
            {
                if problem.is_some() {
                    continue;
                }
                let expire = outcome
                    .expire_time
                    .and_then(micros_platform::store::from_timestamp);
                if outcome.hold {
                    *problem = Some(error(
                        &target.input,
                        "ON_HOLD",
                        format!("{} is on hold in {service}", target.site_id),
                    ));
                } else if let Some(expire) = expire.filter(|expire| *expire > self.now) {
                    *problem = Some(error(
                        &target.input,
                        "NOT_EXPIRED",
                        format!(
                            "{} expires in {service} at {}; purging is refused before then",
                            target.site_id,
                            micros_platform::store::rfc3339(expire)
                        ),
                    ));
                }
            }
        }
        let mut kept = Vec::with_capacity(body.targets.len());
        for (target, problem) in body.targets.drain(..).zip(problems) {
            match problem {
                Some(problem) => body.errors.push(problem),
                None => kept.push(target),
            }
        }
        body.targets = kept;
    }
}

/// Batches a plan resolves or describes at once, so that a service answering one batch
/// is not left idle while the orchestrator reads the other's answer.
const BATCHES_IN_FLIGHT: usize = 2;

/// `items` in consecutive batches of `size` (at least one item each), in order.
fn batches<T>(items: &[T], size: u32) -> std::slice::Chunks<'_, T> {
    items.chunks(usize::try_from(size).unwrap_or(usize::MAX).max(1))
}

/// Each service's outcomes of consecutive batches, joined back into target order.
fn join_batches(
    described: Vec<BTreeMap<String, Vec<TargetOutcome>>>,
) -> BTreeMap<String, Vec<TargetOutcome>> {
    let mut joined: BTreeMap<String, Vec<TargetOutcome>> = BTreeMap::new();
    for batch in described {
        for (service, outcomes) in batch {
            joined.entry(service).or_default().extend(outcomes);
        }
    }
    joined
}

/// Live rows the plan's targets hold in every service (`described` is in target order).
fn blast_radius(
    targets: &[PlannedTarget],
    described: &BTreeMap<String, Vec<TargetOutcome>>,
) -> Blast {
    let sites: BTreeSet<SiteId> = targets.iter().map(|target| target.site_id).collect();
    let mut blast = Blast {
        sites: i64::try_from(sites.len()).unwrap_or(i64::MAX),
        // An uninstall takes down its installations; a site plan, every app on its sites.
        app_installations: targets
            .iter()
            .map(|target| match target.app_installation_id {
                Some(_) => 1,
                None => target.app_installations,
            })
            .sum(),
        ..Blast::default()
    };
    for outcomes in described.values() {
        for count in outcomes
            .iter()
            .take(targets.len())
            .flat_map(|outcome| &outcome.counts)
        {
            blast.rows += count.live;
            match count.table.as_str() {
                "users" => blast.users += count.live,
                "documents" => blast.documents += count.live,
                "attachments" => blast.attachments += count.live,
                _ => {}
            }
        }
    }
    blast
}

/// A restore of operation `undo`, settled once every service has described its targets
/// (`described`, in target order, loses the outcomes of the targets taken out):
/// * a site some service has deleted by another operation cannot come back through this
///   one: refused (`DELETED_BY_ANOTHER_OPERATION`, naming it);
/// * a site the catalog has active (`active_in_catalog`) and every service has active
///   has nothing to restore: left out (`already_active`) when the operation supplied
///   the inputs, refused (`WRONG_STATE`) when the operator named it;
/// * a site the catalog has active but some service still has deleted (split by a
///   halt) stays a target, so the restore mends it.
fn settle_restore(
    body: &mut PlanBody,
    described: &mut BTreeMap<String, Vec<TargetOutcome>>,
    active_in_catalog: &BTreeSet<SiteId>,
    from_operation: bool,
    undo: OperationId,
) {
    enum Verdict {
        Keep,
        AlreadyActive,
        Refused(PlannedError),
    }
    let undo = undo.to_string();
    let verdicts: Vec<Verdict> = body
        .targets
        .iter()
        .enumerate()
        .map(|(index, target)| {
            let outcomes: Vec<(&String, &TargetOutcome)> = described
                .iter()
                .filter_map(|(service, outcomes)| {
                    outcomes.get(index).map(|outcome| (service, outcome))
                })
                .collect();
            if let Some((service, other)) = outcomes.iter().find(|(_, outcome)| {
                outcome.state() == TenantState::Deleted
                    && !outcome.deleted_by.is_empty()
                    && outcome.deleted_by != undo
            }) {
                return Verdict::Refused(error(
                    &target.input,
                    "DELETED_BY_ANOTHER_OPERATION",
                    format!(
                        "{} was deleted in {service} by operation {}, not {undo}; restore that operation",
                        target.site_id, other.deleted_by
                    ),
                ));
            }
            let active_everywhere = outcomes.iter().all(|(_, outcome)| {
                matches!(outcome.state(), TenantState::Active | TenantState::Absent)
            });
            let nothing_to_restore =
                active_in_catalog.contains(&target.site_id) && active_everywhere;
            match (nothing_to_restore, from_operation) {
                (false, _) => Verdict::Keep,
                (true, true) => Verdict::AlreadyActive,
                (true, false) => Verdict::Refused(error(
                    &target.input,
                    "WRONG_STATE",
                    format!(
                        "{} is active in every service; this plan needs it deleted",
                        target.site_id
                    ),
                )),
            }
        })
        .collect();
    for outcomes in described.values_mut() {
        let mut index = 0;
        outcomes.retain(|_| {
            let keep = matches!(verdicts.get(index), Some(Verdict::Keep) | None);
            index += 1;
            keep
        });
    }
    let targets = std::mem::take(&mut body.targets);
    for (target, verdict) in targets.into_iter().zip(verdicts) {
        match verdict {
            Verdict::Keep => body.targets.push(target),
            Verdict::AlreadyActive => body.already_active.push(target.site_id),
            Verdict::Refused(problem) => body.errors.push(problem),
        }
    }
}

/// Moves the targets the plan names as its canary to the front, in the order named, and
/// records how many there are; a canary entry that is not a target of the plan is a
/// plan error (a typo must not silently make another site the canary).
fn put_canary_first(body: &mut PlanBody, canary: &[String]) {
    let mut first = Vec::with_capacity(canary.len());
    for named in canary {
        match body
            .targets
            .iter()
            .position(|target| target.input == *named)
        {
            Some(position) => first.push(body.targets.remove(position)),
            None => body.errors.push(error(
                named,
                "CANARY_NOT_IN_PLAN",
                format!("{named} is named as the canary but is not one of the plan's targets"),
            )),
        }
    }
    body.canary = first.len();
    first.append(&mut body.targets);
    body.targets = first;
}

/// The lifecycle targets of a plan's targets.
pub fn lifecycle_targets(kind: PlanKind, targets: &[PlannedTarget]) -> Vec<Target> {
    targets
        .iter()
        .map(
            |target| match (kind.targets_apps(), target.app_installation_id) {
                (true, Some(app_installation_id)) => Target::AppInstallation {
                    site_id: target.site_id,
                    app_installation_id,
                },
                _ => Target::Site(target.site_id),
            },
        )
        .collect()
}

/// A digest of exactly what the plan will do.
pub fn fingerprint(kind: PlanKind, source: Option<RestoreSource>, body: &PlanBody) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(kind.as_str().as_bytes());
    hasher.update(
        source
            .and_then(RestoreSource::undo)
            .map(|id| id.to_string())
            .unwrap_or_default()
            .as_bytes(),
    );
    hasher.update(
        &source
            .and_then(RestoreSource::point_in_time)
            .unwrap_or_default()
            .to_le_bytes(),
    );
    hasher.update(&(body.canary as u64).to_le_bytes());
    hasher.update(&[u8::from(body.drill_real_sites)]);
    for target in &body.targets {
        hasher.update(target.site_id.to_string().as_bytes());
        hasher.update(
            target
                .app_installation_id
                .map(|id| id.to_string())
                .unwrap_or_default()
                .as_bytes(),
        );
    }
    for site in &body.already_active {
        hasher
            .update(b"already active ")
            .update(site.to_string().as_bytes());
    }
    for problem in &body.errors {
        hasher
            .update(problem.input.as_bytes())
            .update(problem.reason.as_bytes());
    }
    hasher.finalize().to_hex()[..32].to_owned()
}

#[cfg(test)]
mod tests {
    use micros_platform::ids::SiteId;
    use micros_proto::lifecycle::v1::TargetOutcome;

    use super::*;

    #[test]
    fn the_incident_is_a_handful_of_batches_covering_every_input_once() {
        let inputs: Vec<usize> = (0..883).collect();
        let sizes: Vec<usize> = batches(&inputs, 250).map(<[usize]>::len).collect();
        assert_eq!(sizes, vec![250, 250, 250, 133]);
        assert_eq!(
            batches(&inputs, 250).flatten().copied().collect::<Vec<_>>(),
            inputs
        );
        assert_eq!(batches(&inputs, 10_000).count(), 1);
        assert_eq!(batches(&inputs[..0], 250).count(), 0);
    }

    #[test]
    fn batches_join_back_in_target_order_per_service() {
        let outcome = |site: &SiteId| TargetOutcome {
            fingerprint: site.to_string(),
            ..TargetOutcome::default()
        };
        let sites: Vec<SiteId> = (0..5).map(|_| SiteId::new()).collect();
        let described = batches(&sites, 2)
            .map(|batch| {
                ["catalog", "identity"]
                    .map(|service| (service.to_owned(), batch.iter().map(outcome).collect()))
                    .into_iter()
                    .collect()
            })
            .collect();
        let joined = join_batches(described);
        let expected: Vec<TargetOutcome> = sites.iter().map(outcome).collect();
        assert_eq!(joined.len(), 2);
        assert_eq!(joined["catalog"], expected);
        assert_eq!(joined["identity"], expected);
    }
}
