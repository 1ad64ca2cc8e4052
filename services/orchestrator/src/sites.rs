//! What the orchestrator says of one site: the catalog's record, and the site's state in
//! every service, so a site left deleted in one service and active in another (a
//! halted operation, a service restored from backup) shows as split instead of hiding
//! behind the catalog's answer.

use micros_platform::{error::parse_id, ids::SiteId, lifecycle::Target};
use micros_proto::{lifecycle::v1::TenantState, orchestrator::v1 as pb};

use crate::{error::OrchestratorError, fleet::Fleet};

/// The summary of `site` (an ID or a URL): found through the catalog, then described
/// by every service.
pub async fn summary(fleet: &Fleet, site: &str) -> Result<pb::SiteSummary, OrchestratorError> {
    let resolved = fleet.resolve_site(site).await?;
    let site_id: SiteId = parse_id("site_id", &resolved.site_id)?;
    let details = fleet.site_record(&resolved.site_id).await?;
    let services = service_states(fleet, site_id).await;
    let split = {
        let mut answers = services
            .iter()
            .filter(|service| {
                service.state != TenantState::Absent as i32 && service.error.is_empty()
            })
            .map(|service| (service.state, service.hold));
        let first = answers.next();
        answers.any(|answer| Some(answer) != first)
    };
    Ok(pb::SiteSummary {
        state: resolved.site_state,
        site_id: resolved.site_id,
        name: resolved.site_name,
        url: resolved.site_url,
        active_products: resolved.active_products,
        app_installations: resolved.app_installations,
        delete_time: details.delete_time,
        expire_time: details.expire_time,
        services,
        split,
    })
}

/// The site's state in each service, described in parallel; a service that cannot
/// answer says so in its entry instead of failing the whole summary.
async fn service_states(fleet: &Fleet, site_id: SiteId) -> Vec<pb::ServiceSiteState> {
    let target = [Target::Site(site_id)];
    let calls = fleet.services().iter().map(|service| {
        let target = &target;
        async move {
            let answer = fleet.describe(service, target).await;
            match answer.map(|outcomes| outcomes.into_iter().next()) {
                Ok(Some(outcome)) => pb::ServiceSiteState {
                    service: service.clone(),
                    state: outcome.state,
                    live_rows: outcome.counts.iter().map(|count| count.live).sum(),
                    deleted_rows: outcome.counts.iter().map(|count| count.deleted).sum(),
                    error: String::new(),
                    hold: outcome.hold,
                },
                Ok(None) => pb::ServiceSiteState {
                    service: service.clone(),
                    error: "answered no outcome".to_owned(),
                    ..Default::default()
                },
                Err(status) => pb::ServiceSiteState {
                    service: service.clone(),
                    error: format!("{:?}: {}", status.code(), status.message()),
                    ..Default::default()
                },
            }
        }
    });
    futures::future::join_all(calls).await
}
