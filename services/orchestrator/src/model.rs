//! The orchestrator's states, each changed in one place.

use micros_platform::ids::OperationId;
use micros_proto::{lifecycle::v1::restore_request::Source, orchestrator::v1 as pb};

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$variant_doc:meta])* $variant:ident = $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($(#[$variant_doc])* $variant),* }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)* _ => None }
            }
        }
    };
}

text_enum!(
    /// What a plan does.
    PlanKind {
        UninstallApp = "uninstall_app",
        DeleteSites = "delete_sites",
        RestoreSites = "restore_sites",
        PurgeSites = "purge_sites",
        RestoreDrill = "restore_drill",
    }
);

text_enum!(
    PlanState {
        Pending = "pending",
        Approved = "approved",
        Applied = "applied",
    }
);

text_enum!(
    /// An operation's state; it changes only through [`OperationState::can_become`].
    OperationState {
        Running = "running",
        Paused = "paused",
        Halted = "halted",
        Aborting = "aborting",
        Aborted = "aborted",
        Succeeded = "succeeded",
    }
);

text_enum!(
    /// How far the rollback rehearsal of a deletion's canary has come.
    RehearsalState {
        /// Restoring the canary through the operation's own undo path.
        Restoring = "restoring",
        /// Restored and verified against the fingerprints recorded at deletion; next,
        /// deleting it again.
        Restored = "restored",
        /// Deleted again and verified: the next wave may start.
        Done = "done",
    }
);

text_enum!(
    /// A target's step. A wave's targets become `in_flight` durably before the first
    /// service call that changes them, so a resumed or aborted operation knows what may
    /// have been changed even when no answer was recorded.
    TargetStatus {
        Pending = "pending",
        /// A drill on copies: its scratch site is named; copying it in every service.
        Copying = "copying",
        /// A drill on copies: copied everywhere; the copy is drilled like a site.
        Copied = "copied",
        InFlight = "in_flight",
        Deleted = "deleted",
        CatalogRestored = "catalog_restored",
        Restored = "restored",
        Verified = "verified",
        Reverted = "reverted",
        /// A drill on copies: the copy drilled and purged everywhere.
        Discarded = "discarded",
    }
);

impl OperationState {
    /// The transitions an operator or the executor may make.
    pub fn can_become(self, next: OperationState) -> bool {
        use OperationState::*;
        matches!(
            (self, next),
            (Running, Paused | Halted | Aborting | Succeeded)
                | (Paused | Halted, Running | Aborting)
                | (Aborting, Aborted | Halted)
        )
    }

    pub fn is_final(self) -> bool {
        matches!(self, OperationState::Aborted | OperationState::Succeeded)
    }

    pub fn to_proto(self) -> pb::OperationState {
        match self {
            OperationState::Running => pb::OperationState::Running,
            OperationState::Paused => pb::OperationState::Paused,
            OperationState::Halted => pb::OperationState::Halted,
            OperationState::Aborting => pb::OperationState::Aborting,
            OperationState::Aborted => pb::OperationState::Aborted,
            OperationState::Succeeded => pb::OperationState::Succeeded,
        }
    }
}

impl PlanKind {
    pub fn from_proto(kind: pb::PlanKind) -> Option<PlanKind> {
        match kind {
            pb::PlanKind::UninstallApp => Some(PlanKind::UninstallApp),
            pb::PlanKind::DeleteSites => Some(PlanKind::DeleteSites),
            pb::PlanKind::RestoreSites => Some(PlanKind::RestoreSites),
            pb::PlanKind::PurgeSites => Some(PlanKind::PurgeSites),
            pb::PlanKind::RestoreDrill => Some(PlanKind::RestoreDrill),
            pb::PlanKind::Unspecified => None,
        }
    }

    pub fn to_proto(self) -> pb::PlanKind {
        match self {
            PlanKind::UninstallApp => pb::PlanKind::UninstallApp,
            PlanKind::DeleteSites => pb::PlanKind::DeleteSites,
            PlanKind::RestoreSites => pb::PlanKind::RestoreSites,
            PlanKind::PurgeSites => pb::PlanKind::PurgeSites,
            PlanKind::RestoreDrill => pb::PlanKind::RestoreDrill,
        }
    }

    /// Whether the operation rehearses its rollback on the canary before the next wave
    /// (the incident review's "tested rollback plan"): deletions and uninstalls.
    pub fn rehearses(self) -> bool {
        matches!(self, PlanKind::DeleteSites | PlanKind::UninstallApp)
    }

    /// Whether a plan above the threshold needs a second principal's approval: what
    /// takes data away or overwrites it does (deletions, uninstalls, purges, drills of
    /// real sites, point-in-time restores); undoing a deletion brings every row back as
    /// it was, so it runs at once, as an incident needs, and a drill on scratch copies
    /// never touches a customer.
    pub fn needs_approval(self, to_a_point_in_time: bool, drill_on_copies: bool) -> bool {
        match self {
            PlanKind::RestoreSites => to_a_point_in_time,
            PlanKind::RestoreDrill => !drill_on_copies,
            _ => true,
        }
    }

    /// Whether aborting undoes what was done (deletions), rather than finishing the
    /// steps under way and stopping (restores and purges: undoing a restore would take
    /// customer sites down again, and a purge cannot be undone).
    pub fn abort_undoes(self) -> bool {
        matches!(
            self,
            PlanKind::DeleteSites | PlanKind::UninstallApp | PlanKind::RestoreDrill
        )
    }

    /// The status a target ends in when the operation has done everything to it.
    pub fn done(self, on_copies: bool) -> TargetStatus {
        match (self, on_copies) {
            (PlanKind::RestoreDrill, true) => TargetStatus::Discarded,
            (PlanKind::RestoreDrill, false) => TargetStatus::Reverted,
            _ => TargetStatus::Verified,
        }
    }

    /// Whether the plan's targets are app installations rather than sites.
    pub fn targets_apps(self) -> bool {
        self == PlanKind::UninstallApp
    }
}

impl PlanState {
    pub fn to_proto(self) -> pb::PlanState {
        match self {
            PlanState::Pending => pb::PlanState::Pending,
            PlanState::Approved => pb::PlanState::Approved,
            PlanState::Applied => pb::PlanState::Applied,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_declared_transitions() {
        use OperationState::*;
        assert!(Running.can_become(Paused));
        assert!(Paused.can_become(Running));
        assert!(Halted.can_become(Aborting));
        assert!(!Succeeded.can_become(Running));
        assert!(!Aborted.can_become(Running));
        assert!(!Paused.can_become(Succeeded));
        assert_eq!(OperationState::parse("halted"), Some(Halted));
    }
}

/// Where a restore takes its sites back from: what one operation deleted, or their
/// state at a point in time (unix microseconds). Only restore plans have one, and never
/// both: the type holds what the planner checked once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreSource {
    Undo(OperationId),
    PointInTime(i64),
}

impl RestoreSource {
    pub fn undo(self) -> Option<OperationId> {
        match self {
            Self::Undo(operation_id) => Some(operation_id),
            Self::PointInTime(_) => None,
        }
    }

    pub fn point_in_time(self) -> Option<i64> {
        match self {
            Self::Undo(_) => None,
            Self::PointInTime(at) => Some(at),
        }
    }

    /// The source stored as its two columns; `None` when both are empty, `Err` when
    /// both are set.
    pub fn from_columns(
        undo: Option<OperationId>,
        point_in_time: Option<i64>,
    ) -> Result<Option<Self>, &'static str> {
        match (undo, point_in_time) {
            (None, None) => Ok(None),
            (Some(operation_id), None) => Ok(Some(Self::Undo(operation_id))),
            (None, Some(at)) => Ok(Some(Self::PointInTime(at))),
            (Some(_), Some(_)) => Err("a restore source names both an operation and a time"),
        }
    }

    /// As the services' `Restore` takes it.
    pub fn to_proto(self) -> Source {
        match self {
            Self::Undo(operation_id) => Source::UndoOperationId(operation_id.to_string()),
            Self::PointInTime(at) => Source::PointInTime(micros_platform::store::timestamp(at)),
        }
    }
}
