//! Scheduled restore drills: every `drill_interval`, a random sample of `drill_sample`
//! active sites is drilled on scratch copies (copied, deleted, restored, verified and
//! purged in waves, the customers' sites only read), as an ordinary operation anyone can
//! watch and report on. A slow or failing restore path thus shows in the metrics (the
//! last drill's duration and outcome) and in `micros report` long before an incident
//! needs it. Drills on copies need no approval; one scheduled drill runs at a time.

use micros_platform::{clock::SharedClock, store::unix_micros};
use micros_proto::{
    catalog::v1::ListSitesRequest,
    orchestrator::v1::{CreatePlanRequest, PlanKind as ProtoPlanKind},
};
use rand::seq::IndexedRandom;

use crate::{
    error::OrchestratorError,
    executor::Executor,
    fleet::Fleet,
    planner::Planner,
    schedule::{self, First},
    settings::OrchestratorSettings,
    store::OrchestratorStore,
};

/// The principal scheduled drills are planned by.
pub const DRILLER: &str = "service:orchestrator-drills";

pub struct Drills {
    pub fleet: Fleet,
    pub store: OrchestratorStore,
    pub executor: Executor,
    pub settings: OrchestratorSettings,
    pub clock: SharedClock,
}

impl Drills {
    /// Runs every `settings.drill_interval` (never when it is zero); the first drill
    /// waits a whole interval.
    pub fn spawn(self) {
        let interval = self.settings.drill_interval;
        schedule::every(self, interval, First::AfterInterval, |drills| async move {
            match drills.run_once().await {
                Ok(Some(sites)) => tracing::info!(sites, "scheduled restore drill started"),
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "scheduled restore drill could not start"),
            }
        });
    }

    /// Starts a drill of a random sample of active sites; the number of sites, if it did.
    pub async fn run_once(&self) -> Result<Option<usize>, OrchestratorError> {
        if self.store.running_from(DRILLER).await? {
            return Ok(None);
        }
        let active = self.active_sites().await?;
        let sample: Vec<String> = active
            .choose_multiple(&mut rand::rng(), self.settings.drill_sample as usize)
            .cloned()
            .collect();
        if sample.is_empty() {
            return Ok(None);
        }
        let now = unix_micros(self.clock.now());
        let planner = Planner {
            fleet: &self.fleet,
            settings: &self.settings,
            store: &self.store,
            now,
        };
        let mut plan = planner
            .plan(
                DRILLER,
                CreatePlanRequest {
                    kind: ProtoPlanKind::RestoreDrill as i32,
                    inputs: sample,
                    reason: "scheduled restore drill".to_owned(),
                    ..Default::default()
                },
            )
            .await?;
        // A site deleted since the listing is a plan error: drill the others.
        plan.body.errors.clear();
        plan.fingerprint = crate::planner::fingerprint(plan.kind, None, None, &plan.body);
        if plan.body.targets.is_empty() {
            return Ok(None);
        }
        let count = plan.body.targets.len();
        self.store.insert_plan(&plan).await?;
        self.executor.start(&plan, now).await?;
        Ok(Some(count))
    }

    /// Every active customer site, from the catalog.
    async fn active_sites(&self) -> Result<Vec<String>, OrchestratorError> {
        let mut catalog = self.fleet.catalog();
        let mut sites = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = catalog
                .list_sites(ListSitesRequest {
                    page_size: 1000,
                    page_token: page_token.clone(),
                    show_deleted: false,
                })
                .await
                .map_err(|status| OrchestratorError::Downstream {
                    service: "catalog".to_owned(),
                    status,
                })?
                .into_inner();
            sites.extend(page.sites.into_iter().map(|site| site.site_id));
            if page.next_page_token.is_empty() {
                return Ok(sites);
            }
            page_token = page.next_page_token;
        }
    }
}
