//! The lifecycle's vocabulary, independent of gRPC.

use serde::{Deserialize, Serialize};

use crate::ids::{AppInstallationId, OperationId, SiteId};

/// What a lifecycle call acts on: typed, never a bare string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Target {
    /// A whole tenant.
    Site(SiteId),
    /// One app installation on a site and the rows it owns.
    AppInstallation {
        site_id: SiteId,
        app_installation_id: AppInstallationId,
    },
}

impl Target {
    pub fn site_id(&self) -> SiteId {
        match self {
            Target::Site(site_id) | Target::AppInstallation { site_id, .. } => *site_id,
        }
    }

    /// `site_…` or `site_…:app_…`: how set-based SQL matches rows to targets.
    pub fn key(&self) -> String {
        match self {
            Target::Site(site_id) => site_id.to_string(),
            Target::AppInstallation {
                site_id,
                app_installation_id,
            } => format!("{site_id}:{app_installation_id}"),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TenantState {
    Active,
    Deleted,
    /// Claimed by a purge under way; restore and hold are refused.
    Purging,
    Purged,
    /// This database holds nothing for the site.
    Absent,
}

impl TenantState {
    pub fn parse(text: &str) -> Option<TenantState> {
        match text {
            "active" => Some(TenantState::Active),
            "deleted" => Some(TenantState::Deleted),
            "purging" => Some(TenantState::Purging),
            "purged" => Some(TenantState::Purged),
            _ => None,
        }
    }

    /// The registry's spelling; `Absent` has no registry row, so it has none.
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            TenantState::Active => Some("active"),
            TenantState::Deleted => Some("deleted"),
            TenantState::Purging => Some("purging"),
            TenantState::Purged => Some("purged"),
            TenantState::Absent => None,
        }
    }

    /// Whether a site in this state may be the target of `action`. The one table of what
    /// each state permits; rules that also depend on the deleting operation (a restore
    /// undoes only its own operation's deletions) are checked by the action on top.
    pub fn allows(self, action: Action) -> bool {
        use Action::*;
        use TenantState::*;
        match (self, action) {
            (Active | Absent, SoftDelete | Restore | SetHold | Copy) => true,
            (Deleted | Purging | Purged, Copy) => false,
            (Deleted, SoftDelete | Restore | SetHold | Purge) => true,
            (Purging, Purge) => true,
            (Purged | Absent, Purge) => true,
            (Active, Purge) => false,
            (Purging | Purged, SoftDelete | Restore | SetHold) => false,
        }
    }
}

/// What a lifecycle call does; with the targets, it is what idempotency compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    SoftDelete,
    Restore,
    Purge,
    SetHold,
    /// A scratch copy of sites (drills on copies).
    Copy,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::SoftDelete => "soft_delete",
            Action::Restore => "restore",
            Action::Purge => "purge",
            Action::SetHold => "set_hold",
            Action::Copy => "copy",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCount {
    pub table: String,
    pub live: i64,
    pub deleted: i64,
}

/// What a call did, or would do, to one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetOutcome {
    pub target: Target,
    pub state: TenantState,
    pub counts: Vec<TableCount>,
    /// Order-independent digest of the target's rows not deleted at row level.
    pub fingerprint: String,
    pub delete_time: Option<i64>,
    pub expire_time: Option<i64>,
    pub hold: bool,
    /// Data rows this call changed for the target.
    pub rows_affected: i64,
    /// For a scratch copy, the site it was copied from.
    #[serde(default)]
    pub origin: Option<SiteId>,
    /// For a soft-deleted site target, the operation that deleted it: a restore of
    /// another operation cannot bring it back.
    #[serde(default)]
    pub deleted_by: Option<String>,
}

/// Who asked for a destructive call, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Justification {
    pub principal: String,
    pub reason: String,
    pub ticket: String,
}

/// What a restore returns targets to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreSource {
    /// Undo what this operation deleted.
    Operation(OperationId),
    /// Each target's state at this instant (unix microseconds).
    PointInTime(i64),
}

/// A destructive lifecycle call.
#[derive(Debug, Clone)]
pub struct LifecycleRequest {
    pub targets: Vec<Target>,
    pub operation_id: OperationId,
    pub justification: Justification,
    pub validate_only: bool,
    /// The orchestrator's lease token for the targets' sites (its executor's fencing
    /// token), if the call comes from an orchestrator executor: a call whose token is
    /// older than one already seen for any of its sites is refused.
    pub lease_token: Option<i64>,
    /// Tells apart two calls of one operation over the same targets (see the proto's
    /// `call_key`); empty for the usual single call.
    pub call_key: String,
    /// The operation's grant, verified (see [`crate::auth::grant`]): without one, a soft
    /// delete stays within the free rate.
    pub grant: Option<crate::auth::Grant>,
}
