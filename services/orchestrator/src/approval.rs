//! What must hold before a plan is approved or applied, and where an operator's pause,
//! resume or abort takes an operation: plain rules, so the gRPC adapter only translates
//! and each rule is tested on its own.

use micros_platform::store::rfc3339;

use crate::{
    error::OrchestratorError,
    model::{OperationState, PlanState},
    store::{OperationRecord, PlanRecord},
};

/// The plan is the one the caller reviewed (same fingerprint) and has not expired; an
/// applied plan no longer expires (what it started is its operation's business).
pub fn check_quoted(
    plan: &PlanRecord,
    fingerprint: &str,
    now: i64,
) -> Result<(), OrchestratorError> {
    if fingerprint != plan.fingerprint {
        return Err(OrchestratorError::FingerprintMismatch {
            plan_id: plan.plan_id,
            actual: plan.fingerprint.clone(),
            given: fingerprint.to_owned(),
        });
    }
    if plan.state != PlanState::Applied && now > plan.expire_time {
        return Err(OrchestratorError::PlanExpired {
            plan_id: plan.plan_id,
            expire_time: rfc3339(plan.expire_time),
        });
    }
    Ok(())
}

/// `approver` may approve: someone other than its author (principal names are
/// canonical, see `Principal::check_name`, so one person has one name), and the plan
/// has no errors.
pub fn check_approval(plan: &PlanRecord, approver: &str) -> Result<(), OrchestratorError> {
    if plan.requested_by == approver {
        return Err(OrchestratorError::SelfApproval {
            plan_id: plan.plan_id,
            principal: approver.to_owned(),
        });
    }
    check_no_errors(plan)
}

/// The plan may be applied: no errors, and approved when it needed approval.
pub fn check_apply(plan: &PlanRecord, threshold_sites: u32) -> Result<(), OrchestratorError> {
    check_no_errors(plan)?;
    if plan.body.targets.is_empty() {
        return Err(OrchestratorError::PlanEmpty {
            plan_id: plan.plan_id,
        });
    }
    if plan.requires_approval && plan.approved_by.is_none() {
        return Err(OrchestratorError::ApprovalRequired {
            plan_id: plan.plan_id,
            sites: usize::try_from(plan.body.blast.sites).unwrap_or(usize::MAX),
            threshold: threshold_sites,
        });
    }
    Ok(())
}

fn check_no_errors(plan: &PlanRecord) -> Result<(), OrchestratorError> {
    match plan.body.errors.first() {
        Some(first) => Err(OrchestratorError::PlanHasErrors {
            plan_id: plan.plan_id,
            errors: plan.body.errors.len(),
            first: format!("{}: {} ({})", first.input, first.message, first.reason),
        }),
        None => Ok(()),
    }
}

/// Where an operator's `asked` (paused, running, aborting) takes `operation`: a resume
/// of an operation that was being aborted resumes its abort, never the work it undoes;
/// nobody but the executor declares success.
pub fn control_target(
    operation: &OperationRecord,
    asked: OperationState,
) -> Result<OperationState, OrchestratorError> {
    let to = if asked == OperationState::Running && operation.abort_requested {
        OperationState::Aborting
    } else {
        asked
    };
    if to == OperationState::Succeeded || !operation.state.can_become(to) {
        return Err(OrchestratorError::InvalidTransition {
            operation_id: operation.operation_id,
            from: operation.state.as_str(),
            to: to.as_str(),
        });
    }
    Ok(to)
}

#[cfg(test)]
mod tests {
    use micros_platform::ids::{OperationId, PlanId, SiteId};

    use super::*;
    use crate::{
        model::PlanKind,
        store::{PlanBody, PlannedError, PlannedTarget, Rehearsal},
    };

    fn plan() -> PlanRecord {
        PlanRecord {
            plan_id: PlanId::new(),
            kind: PlanKind::DeleteSites,
            state: PlanState::Pending,
            fingerprint: "f1".to_owned(),
            requested_by: "alice".to_owned(),
            approved_by: None,
            requires_approval: true,
            reason: String::new(),
            ticket: String::new(),
            restore_source: None,
            body: PlanBody {
                targets: vec![PlannedTarget {
                    input: "https://acme.example.net".to_owned(),
                    site_id: SiteId::new(),
                    site_name: "Acme".to_owned(),
                    site_url: "https://acme.example.net".to_owned(),
                    app_installation_id: None,
                    app_key: String::new(),
                    products: Vec::new(),
                    app_installations: 0,
                }],
                ..PlanBody::default()
            },
            create_time: 0,
            expire_time: 100,
            operation_id: None,
        }
    }

    fn operation(state: OperationState, abort_requested: bool) -> OperationRecord {
        OperationRecord {
            operation_id: OperationId::new(),
            plan_id: PlanId::new(),
            kind: PlanKind::DeleteSites,
            state,
            restore_source: None,
            requested_by: "alice".to_owned(),
            approved_by: None,
            reason: String::new(),
            ticket: String::new(),
            waves: 1,
            halt_reason: None,
            revert_operation_id: None,
            abort_requested,
            on_copies: false,
            rehearsal: Rehearsal::default(),
            create_time: 0,
            update_time: 0,
            finish_time: None,
        }
    }

    fn reason(result: Result<impl std::fmt::Debug, OrchestratorError>) -> &'static str {
        use micros_platform::error::Problem;
        result.unwrap_err().reason()
    }

    #[test]
    fn a_plan_is_acted_on_only_as_reviewed_and_before_it_expires() {
        let pending = plan();
        assert!(check_quoted(&pending, "f1", 100).is_ok());
        assert_eq!(
            reason(check_quoted(&pending, "f2", 0)),
            "PLAN_FINGERPRINT_MISMATCH"
        );
        assert_eq!(reason(check_quoted(&pending, "f1", 101)), "PLAN_EXPIRED");
        let applied = PlanRecord {
            state: PlanState::Applied,
            ..plan()
        };
        assert!(check_quoted(&applied, "f1", 101).is_ok());
    }

    #[test]
    fn only_another_principal_approves_and_never_a_plan_with_errors() {
        assert_eq!(reason(check_approval(&plan(), "alice")), "SELF_APPROVAL");
        assert!(check_approval(&plan(), "bob").is_ok());
        let broken = PlanRecord {
            body: PlanBody {
                errors: vec![PlannedError {
                    input: "app_1".to_owned(),
                    reason: "WRONG_KIND".to_owned(),
                    message: "an app installation".to_owned(),
                }],
                ..plan().body
            },
            ..plan()
        };
        assert_eq!(reason(check_approval(&broken, "bob")), "PLAN_HAS_ERRORS");
        assert_eq!(reason(check_apply(&broken, 5)), "PLAN_HAS_ERRORS");
    }

    #[test]
    fn a_plan_over_the_threshold_applies_only_once_approved() {
        assert_eq!(reason(check_apply(&plan(), 5)), "APPROVAL_REQUIRED");
        let approved = PlanRecord {
            approved_by: Some("bob".to_owned()),
            ..plan()
        };
        assert!(check_apply(&approved, 5).is_ok());
        let small = PlanRecord {
            requires_approval: false,
            ..plan()
        };
        assert!(check_apply(&small, 5).is_ok());
        let empty = PlanRecord {
            body: PlanBody::default(),
            ..small
        };
        assert_eq!(reason(check_apply(&empty, 5)), "PLAN_EMPTY");
    }

    #[test]
    fn operators_pause_resume_and_abort_but_never_declare_success() {
        use OperationState::*;
        let running = operation(Running, false);
        assert_eq!(control_target(&running, Paused).unwrap(), Paused);
        assert_eq!(control_target(&running, Aborting).unwrap(), Aborting);
        assert_eq!(
            reason(control_target(&running, Succeeded)),
            "INVALID_OPERATION_TRANSITION"
        );
        assert_eq!(
            control_target(&operation(Halted, false), Running).unwrap(),
            Running
        );
        assert_eq!(
            control_target(&operation(Halted, true), Running).unwrap(),
            Aborting,
            "a halted abort resumes aborting"
        );
        assert_eq!(
            reason(control_target(&operation(Succeeded, false), Aborting)),
            "INVALID_OPERATION_TRANSITION"
        );
    }
}
