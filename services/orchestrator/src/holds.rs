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

/// How long a hold change keeps its site's slot if its process dies half-way.
const HOLD_CHANGE_TTL_MICROS: i64 = 120_000_000;

/// Sets or clears the hold in every service, catalog first; a service that refuses
/// (a purged site) or cannot be reached fails the call, and a retry is harmless. Changes
/// of one site take turns (a racing one is refused as `HOLD_CHANGE_IN_FLIGHT`), so the
/// services never end on different answers; a change runs to its end even when its
/// caller goes away.
pub async fn set(
    fleet: &Fleet,
    store: &OrchestratorStore,
    request: HoldRequest,
    now: i64,
) -> Result<HoldRecord, OrchestratorError> {
    micros_platform::input::check_text("reason", &request.reason, true)?;
    micros_platform::input::check_text("ticket", &request.ticket, false)?;
    let site_id: SiteId = parse_id("site_id", &fleet.resolve_site(&request.site).await?.site_id)?;
    let change = OperationId::new();
    store
        .begin_hold_change(site_id, change, now, now + HOLD_CHANGE_TTL_MICROS)
        .await?;
    let (fleet, store) = (fleet.clone(), store.clone());
    tokio::spawn(async move {
        let changed = apply(&fleet, &store, site_id, change, request, now).await;
        store.end_hold_change(site_id, change).await?;
        changed
    })
    .await
    .map_err(|error| OrchestratorError::Unexpected(format!("the hold change failed: {error}")))?
}

/// The change itself, holding the site's slot.
async fn apply(
    fleet: &Fleet,
    store: &OrchestratorStore,
    site_id: SiteId,
    change: OperationId,
    request: HoldRequest,
    now: i64,
) -> Result<HoldRecord, OrchestratorError> {
    let why = Why {
        reason: format!("{} (hold by {})", request.reason, request.principal),
        ticket: request.ticket.clone(),
    };
    for service in fleet.services() {
        fleet
            .set_hold(
                service,
                &[Target::Site(site_id)],
                change,
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
