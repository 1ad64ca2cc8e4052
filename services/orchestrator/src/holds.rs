//! Operator holds: a reasoned hold set or cleared on a site in every service, each of
//! which audits it with the reason and ticket; the orchestrator keeps who asked, for
//! `ListSiteHolds`. A hold in any service stops the reaper and any purge plan.

use micros_platform::{
    error::parse_id,
    ids::{OperationId, SiteId},
    lifecycle::Target,
};

use crate::{
    error::OrchestratorError,
    fleet::{Fleet, Why},
    store::{HoldRecord, OrchestratorStore},
};

/// What an operator asks for.
pub struct HoldRequest {
    pub site: String,
    pub hold: bool,
    pub reason: String,
    pub ticket: String,
    pub principal: String,
}

/// Sets or clears the hold in every service, catalog first; a service that refuses
/// (a purged site) or cannot be reached fails the call, and a retry is harmless.
pub async fn set(
    fleet: &Fleet,
    store: &OrchestratorStore,
    request: HoldRequest,
    now: i64,
) -> Result<HoldRecord, OrchestratorError> {
    micros_platform::input::check_text("reason", &request.reason, true)?;
    micros_platform::input::check_text("ticket", &request.ticket, false)?;
    let site_id: SiteId = parse_id("site_id", &fleet.resolve_site(&request.site).await?.site_id)?;
    let why = Why {
        reason: format!("{} (hold by {})", request.reason, request.principal),
        ticket: request.ticket.clone(),
    };
    let operation = OperationId::new();
    for service in fleet.services() {
        fleet
            .set_hold(
                service,
                &[Target::Site(site_id)],
                operation,
                &why,
                request.hold,
            )
            .await
            .map_err(|status| OrchestratorError::Downstream {
                service: service.clone(),
                status,
            })?;
    }
    let record = HoldRecord {
        site_id,
        held: request.hold,
        reason: request.reason,
        ticket: request.ticket,
        principal: request.principal,
        update_time: now,
    };
    store.record_hold(&record).await?;
    tracing::info!(%site_id, held = record.held, principal = record.principal, "site hold changed in every service");
    Ok(record)
}
