//! The purge reaper: on a timer, finds soft-deleted sites whose retention has passed and
//! purges them through an ordinary purge plan and operation (waves, verification, audit),
//! never touching a site held in any service, leased by another operation, or deleted by
//! an operation that was asked to abort. Retention is policy, so these plans need no
//! approval; everything else about them is visible like any operator's plan.

use micros_platform::{
    clock::SharedClock,
    ids::SiteId,
    store::{from_timestamp, unix_micros},
};
use micros_proto::catalog::v1::SiteState;

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

/// The principal the reaper's plans are made by.
pub const REAPER: &str = "service:orchestrator-reaper";

pub struct Reaper {
    pub fleet: Fleet,
    pub store: OrchestratorStore,
    pub executor: Executor,
    pub settings: OrchestratorSettings,
    pub clock: SharedClock,
}

impl Reaper {
    /// Runs every `settings.reaper_interval` (never when it is zero), first at start-up.
    pub fn spawn(self) {
        let interval = self.settings.reaper_interval;
        schedule::every(self, interval, First::AtOnce, |reaper| async move {
            match reaper.run_once().await {
                Ok(Some(count)) => tracing::info!(sites = count, "purge reaper started a purge"),
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "purge reaper could not run"),
            }
        });
    }

    /// Purges what has expired; the number of sites, if it started an operation.
    pub async fn run_once(&self) -> Result<Option<usize>, OrchestratorError> {
        if self.store.purge_running().await? {
            return Ok(None);
        }
        let now = unix_micros(self.clock.now());
        let expired = self.expired_sites(now).await?;
        if expired.is_empty() {
            return Ok(None);
        }
        // A site another operation holds is that operation's to finish; a site whose
        // deleting operation was asked to abort must come back, not go.
        let leased = self.store.leases(&expired).await?;
        let aborted = self.store.deleted_by_aborted_operations(&expired).await?;
        let inputs: Vec<String> = expired
            .iter()
            .filter(|site| !leased.contains_key(site) && !aborted.contains(site))
            .map(ToString::to_string)
            .collect();
        if inputs.is_empty() {
            return Ok(None);
        }
        let planner = Planner {
            fleet: &self.fleet,
            settings: &self.settings,
            store: &self.store,
            now,
        };
        // A site restored, purged, held or leased since the listing (or held or not yet
        // expired in some service) is left out.
        let Some(plan) = planner
            .scheduled(REAPER, PlanKind::PurgeSites, inputs, "retention expired")
            .await?
        else {
            return Ok(None);
        };
        let count = plan.body.targets.len();
        self.store.insert_plan(&plan).await?;
        self.executor.start(&plan, now).await?;
        Ok(Some(count))
    }

    /// Soft-deleted sites whose expire time has passed, from the catalog.
    async fn expired_sites(&self, now: i64) -> Result<Vec<SiteId>, OrchestratorError> {
        let mut expired = Vec::new();
        for site in self.fleet.sites(true).await? {
            let due = site
                .expire_time
                .and_then(from_timestamp)
                .is_some_and(|at| at <= now);
            if site.state() == SiteState::Deleted && due {
                expired.push(micros_platform::error::parse_id("site_id", &site.site_id)?);
            }
        }
        Ok(expired)
    }
}
