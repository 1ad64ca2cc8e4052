//! The incident communication for an operation: what happened, who is affected, the
//! restore timeline, % restored, expected data loss, confidence, and how customers reach
//! support.

use std::{collections::BTreeMap, fmt::Write as _};

use micros_platform::{
    ids::SiteId,
    store::{rfc3339, timestamp},
};
use micros_proto::{catalog::v1::SiteState, orchestrator::v1 as pb};

use crate::{
    error::OrchestratorError,
    fleet::Fleet,
    model::{PlanKind, RehearsalState, RestoreSource, TargetStatus},
    store::{OperationRecord, StepRecord, TargetRecord},
};

/// Admin contacts per site, from identity's escrow when it is reachable.
pub type Contacts = BTreeMap<String, Vec<String>>;

/// What a report is built from.
pub struct Facts<'a> {
    pub operation: &'a OperationRecord,
    pub targets: &'a [TargetRecord],
    pub steps: &'a [StepRecord],
    /// For a restore, the targets of the operation it undid (when each site went down).
    pub undone: &'a [TargetRecord],
    pub contacts: &'a Contacts,
    pub now: i64,
}

/// Each site's outage window: (went down, verified back).
fn outage(facts: &Facts<'_>, target: &TargetRecord) -> (Option<i64>, Option<i64>) {
    let deleted_in = |records: &[TargetRecord], site: SiteId| {
        records
            .iter()
            .find(|record| record.site_id == site && record.app_installation_id.is_none())
            .and_then(|record| record.changed_time)
    };
    match facts.operation.kind {
        PlanKind::RestoreSites => (deleted_in(facts.undone, target.site_id), target.done_time),
        PlanKind::DeleteSites | PlanKind::UninstallApp => (
            target.changed_time,
            (target.status == TargetStatus::Reverted)
                .then_some(target.done_time)
                .flatten(),
        ),
        PlanKind::RestoreDrill => (target.changed_time, target.done_time),
        PlanKind::PurgeSites => (None, None),
    }
}

fn wave_step(step: &StepRecord) -> pb::WaveStep {
    let start = step.start_time.unwrap_or(step.step_time);
    pb::WaveStep {
        wave: i32::try_from(step.wave + 1).unwrap_or(i32::MAX),
        service: step.service.clone(),
        action: step.action.clone(),
        start_time: Some(timestamp(start)),
        end_time: Some(timestamp(step.step_time)),
        seconds: (step.step_time - start).max(0) as f64 / 1e6,
        targets: i32::try_from(step.targets).unwrap_or(i32::MAX),
        rows_affected: step.rows_affected,
    }
}

pub async fn build(fleet: &Fleet, facts: &Facts<'_>) -> Result<pb::Report, OrchestratorError> {
    let Facts {
        operation,
        targets,
        steps,
        contacts,
        now,
        ..
    } = *facts;
    let site_ids: Vec<String> = targets
        .iter()
        .map(|target| target.site_id.to_string())
        .collect();
    let states: BTreeMap<String, SiteState> = if site_ids.is_empty() {
        BTreeMap::new()
    } else {
        fleet
            .resolve(&site_ids)
            .await?
            .into_iter()
            .map(|result| (result.input.clone(), result.site_state()))
            .collect()
    };
    let total = targets.len().max(1) as f64;
    let active = targets
        .iter()
        .filter(|target| states.get(&target.site_id.to_string()) == Some(&SiteState::Active))
        .count();
    let percent_restored = active as f64 * 100.0 / total;
    let finished = targets
        .iter()
        .filter(|target| target.status == operation.kind.done(operation.on_copies))
        .count();
    let confidence = finished as f64 / total;
    let problems = problems(operation, targets);
    let expected_data_loss = match (operation.kind, operation.restore_source) {
        (PlanKind::RestoreSites, Some(RestoreSource::PointInTime(at))) => format!(
            "changes made after {} ({:.0} minutes before the restore began)",
            rfc3339(at),
            (operation.create_time - at) as f64 / 60e6
        ),
        (PlanKind::RestoreSites, _) => {
            "none: the soft-deleted data was restored in full".to_owned()
        }
        (PlanKind::PurgeSites, _) => {
            "all data of the purged sites, by design (retention had passed)".to_owned()
        }
        _ => "none while the sites are within retention: they can be restored with their IDs"
            .to_owned(),
    };
    let title = match operation.kind {
        PlanKind::UninstallApp => format!("App uninstall from {} installations", targets.len()),
        PlanKind::DeleteSites => format!("Deletion of {} sites", targets.len()),
        PlanKind::RestoreSites => format!("Restore of {} sites", targets.len()),
        PlanKind::PurgeSites => format!("Purge of {} sites", targets.len()),
        PlanKind::RestoreDrill if operation.on_copies => format!(
            "Restore drill of {} sites, on scratch copies (the customers' sites untouched)",
            targets.len()
        ),
        PlanKind::RestoreDrill => format!("Restore drill of {} sites", targets.len()),
    };
    let sites: Vec<pb::AffectedSite> = targets
        .iter()
        .map(|target| {
            let (deleted_at, restored_at) = outage(facts, target);
            pb::AffectedSite {
                site_id: target.site_id.to_string(),
                site_name: target.site_name.clone(),
                site_url: target.site_url.clone(),
                state: states
                    .get(&target.site_id.to_string())
                    .map_or("unknown", |state| state.as_str_name())
                    .trim_start_matches("SITE_STATE_")
                    .to_lowercase(),
                verified: target.status == operation.kind.done(operation.on_copies),
                admin_contacts: contacts
                    .get(&target.site_id.to_string())
                    .cloned()
                    .unwrap_or_default(),
                deleted_at: deleted_at.map(timestamp),
                restored_at: restored_at.map(timestamp),
            }
        })
        .collect();
    let undone_operation_id = operation
        .restore_source
        .and_then(RestoreSource::undo)
        .map(|id| id.to_string())
        .unwrap_or_default();

    let mut markdown = String::new();
    let _ = writeln!(markdown, "# {title}\n");
    let _ = writeln!(
        markdown,
        "Operation `{}` (plan `{}`), state **{}**.\n",
        operation.operation_id,
        operation.plan_id,
        operation.state.as_str()
    );
    let _ = writeln!(markdown, "## What happened\n");
    if !undone_operation_id.is_empty() {
        let _ = writeln!(
            markdown,
            "This restore undoes operation `{undone_operation_id}`.\n"
        );
    }
    let _ = writeln!(
        markdown,
        "Requested by {} ({}), approved by {}, reason: {}{}.\n",
        operation.requested_by,
        rfc3339(operation.create_time),
        operation
            .approved_by
            .as_deref()
            .unwrap_or("nobody (below the approval threshold)"),
        operation.reason,
        if operation.ticket.is_empty() {
            String::new()
        } else {
            format!(", ticket {}", operation.ticket)
        },
    );
    let _ = writeln!(markdown, "## Impact\n");
    let _ = writeln!(markdown, "- Sites affected: {}", targets.len());
    let _ = writeln!(
        markdown,
        "- Restored (active now): {active} ({percent_restored:.1}%)"
    );
    let _ = writeln!(markdown, "- Expected data loss: {expected_data_loss}");
    let _ = writeln!(
        markdown,
        "- Confidence: {:.1}% of targets {}\n",
        confidence * 100.0,
        match operation.kind {
            PlanKind::RestoreSites | PlanKind::RestoreDrill =>
                "restored and verified against the fingerprints recorded at deletion",
            PlanKind::DeleteSites | PlanKind::UninstallApp =>
                "deleted in every service and verified",
            PlanKind::PurgeSites => "purged in every service",
        }
    );
    if !problems.is_empty() {
        let _ = writeln!(markdown, "## Problems\n");
        for problem in &problems {
            let _ = writeln!(markdown, "- {problem}");
        }
        let _ = writeln!(markdown);
    }
    if operation.kind.rehearses() {
        let _ = writeln!(markdown, "## Rollback rehearsal\n");
        let canary = targets.iter().filter(|target| target.wave == 0).count();
        let rehearsal = &operation.rehearsal;
        let _ = match (rehearsal.state, rehearsal.start_time, rehearsal.end_time) {
            (Some(RehearsalState::Done), Some(start), Some(end)) => writeln!(
                markdown,
                "The canary ({canary} targets) was restored through this operation's undo path, verified against the fingerprints recorded at its deletion in every service, and deleted again, in {:.2} s ({} → {}), before any other target was touched.\n",
                (end - start) as f64 / 1e6,
                rfc3339(start),
                rfc3339(end)
            ),
            (Some(state), Some(start), _) => writeln!(
                markdown,
                "The canary's rehearsal ({canary} targets) began {} and is {}.\n",
                rfc3339(start),
                state.as_str()
            ),
            _ => writeln!(
                markdown,
                "The canary ({canary} targets) is not rehearsed yet.\n"
            ),
        };
    }
    let _ = writeln!(markdown, "## Timeline\n");
    let _ = writeln!(
        markdown,
        "- {} operation started",
        rfc3339(operation.create_time)
    );
    for step in steps {
        let timing = wave_step(step);
        let _ = writeln!(
            markdown,
            "- wave {}: {} in {} ({} targets, {} rows; {} → {}, {:.2} s)",
            step.wave + 1,
            step.action,
            step.service,
            step.targets,
            step.rows_affected,
            rfc3339(step.start_time.unwrap_or(step.step_time)),
            rfc3339(step.step_time),
            timing.seconds
        );
    }
    match operation.finish_time {
        Some(finish) => {
            let _ = writeln!(
                markdown,
                "- {} operation finished ({:.1} s)\n",
                rfc3339(finish),
                (finish - operation.create_time) as f64 / 1e6
            );
        }
        None => {
            let _ = writeln!(
                markdown,
                "- {} still {}\n",
                rfc3339(now),
                operation.state.as_str()
            );
        }
    }
    let _ = writeln!(markdown, "## Customers and how they reach support\n");
    let _ = writeln!(
        markdown,
        "Every affected customer's admin contacts are kept outside their site, so support can reach them whatever the site's state:\n"
    );
    for site in &sites {
        let window = match (&site.deleted_at, &site.restored_at) {
            (Some(down), Some(back)) => format!(
                "; down {} → back {}",
                rfc3339(micros(down)),
                rfc3339(micros(back))
            ),
            (Some(down), None) => format!("; down since {}", rfc3339(micros(down))),
            _ => String::new(),
        };
        let _ = writeln!(
            markdown,
            "- {} {} ({}): {}{window}; contacts: {}",
            site.site_name,
            site.site_url,
            site.site_id,
            site.state,
            if site.admin_contacts.is_empty() {
                "none escrowed".to_owned()
            } else {
                site.admin_contacts.join(", ")
            }
        );
    }
    Ok(pb::Report {
        operation_id: operation.operation_id.to_string(),
        title,
        markdown,
        sites_affected: i32::try_from(targets.len()).unwrap_or(i32::MAX),
        percent_restored,
        expected_data_loss,
        confidence,
        sites,
        undone_operation_id,
        steps: steps.iter().map(wave_step).collect(),
        problems,
    })
}

/// The halt reason, then each distinct error the targets recorded with how many
/// targets it stopped, most frequent first: a report must not read as a success when a
/// service refused part of the operation.
fn problems(operation: &OperationRecord, targets: &[TargetRecord]) -> Vec<String> {
    let mut problems: Vec<String> = operation
        .halt_reason
        .iter()
        .map(|reason| format!("halted: {reason}"))
        .collect();
    let mut errors: BTreeMap<&str, usize> = BTreeMap::new();
    for error in targets.iter().filter_map(|target| target.error.as_deref()) {
        *errors.entry(error).or_default() += 1;
    }
    let mut errors: Vec<(&str, usize)> = errors.into_iter().collect();
    errors.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
    problems.extend(errors.into_iter().map(|(error, count)| {
        format!(
            "{count} target{}: {error}",
            if count == 1 { "" } else { "s" }
        )
    }));
    problems
}

fn micros(at: &prost_types::Timestamp) -> i64 {
    at.seconds * 1_000_000 + i64::from(at.nanos) / 1000
}
