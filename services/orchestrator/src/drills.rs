//! Scheduled restore drills: every `drill_interval`, a random sample of `drill_sample`
//! active sites is drilled on scratch copies (copied, deleted, restored, verified and
//! purged in waves, the customers' sites only read), as an ordinary operation anyone can
//! watch and report on. A slow or failing restore path thus shows in the metrics (the
//! last drill's duration and outcome) and in `micros report` long before an incident
//! needs it. Drills on copies need no approval; one scheduled drill runs at a time.

use micros_platform::{clock::SharedClock, store::unix_micros};
use rand::seq::IndexedRandom;

use crate::{
    error::OrchestratorError,
    executor::Executor,
    fleet::Fleet,
    model::PlanKind,
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
        // A site deleted since the listing is left out: the others are drilled.
        let Some(plan) = planner
            .scheduled(
                DRILLER,
                PlanKind::RestoreDrill,
                sample,
                "scheduled restore drill",
            )
            .await?
        else {
            return Ok(None);
        };
        let count = plan.body.targets.len();
        self.store.insert_plan(&plan).await?;
        self.executor.start(&plan, now).await?;
        Ok(Some(count))
    }

    /// Every active customer site, from the catalog.
    async fn active_sites(&self) -> Result<Vec<String>, OrchestratorError> {
        Ok(self
            .fleet
            .sites(false)
            .await?
            .into_iter()
            .map(|site| site.site_id)
            .collect())
    }
}
