//! Holds: a held site is never purged, whatever its expiry.

use sqlx::AnyConnection;

use super::{
    Lifecycle, LifecycleError,
    call::{apps_of, sites_of},
    describe::describe,
    model::{Action, LifecycleRequest, TargetOutcome},
    registry::{self, Registry},
};
use crate::error::InvalidArgument;

impl Lifecycle {
    pub(crate) async fn apply_hold(
        &self,
        connection: &mut AnyConnection,
        registry: &Registry,
        request: &LifecycleRequest,
        hold: bool,
    ) -> Result<Vec<TargetOutcome>, LifecycleError> {
        if !apps_of(&request.targets).is_empty() {
            return Err(InvalidArgument::field(
                "targets",
                "HOLD_NEEDS_SITES",
                "app_installation",
                "a hold applies to whole sites",
            )
            .into());
        }
        let sites = sites_of(&request.targets);
        for site_id in &sites {
            registry::check(
                *site_id,
                registry::state_in(registry, *site_id),
                Action::SetHold,
            )?;
        }
        registry::set_hold(self.store(), connection, &sites, hold, self.now()).await?;
        let registry_now = registry::load(self.store(), connection, &sites).await?;
        describe(self, connection, &request.targets, &registry_now).await
    }
}
