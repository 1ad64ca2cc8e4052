//! Operator holds: a reasoned hold set or cleared on a site in every service, each of
//! which audits it with the reason and ticket; the orchestrator keeps who asked, for
//! `ListSiteHolds`. A hold in any service stops the reaper and any purge plan.

use micros_platform::{
    error::{InvalidArgument, parse_id},
    ids::{OperationId, SiteId},
    lifecycle::Target,
};
use micros_proto::catalog::v1::{InputKind, ResolveRequest};

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
    let site_id = resolve_site(fleet, &request.site).await?;
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

/// The site an operator named by ID or URL, as the catalog knows it.
async fn resolve_site(fleet: &Fleet, site: &str) -> Result<SiteId, OrchestratorError> {
    if site.is_empty() {
        return Err(InvalidArgument::missing("site").into());
    }
    let resolved = fleet
        .catalog()
        .resolve(ResolveRequest {
            inputs: vec![site.to_owned()],
        })
        .await
        .map_err(|status| OrchestratorError::Downstream {
            service: "catalog".to_owned(),
            status,
        })?
        .into_inner()
        .results
        .into_iter()
        .next()
        .ok_or_else(|| InvalidArgument::missing("site"))?;
    if !matches!(resolved.kind(), InputKind::Site | InputKind::SiteUrl) || !resolved.found {
        return Err(InvalidArgument::field(
            "site",
            "NOT_A_KNOWN_SITE",
            site,
            format!("is not a site the catalog knows: {}", resolved.problem),
        )
        .into());
    }
    Ok(parse_id("site_id", &resolved.site_id)?)
}
