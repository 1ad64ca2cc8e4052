//! Licenses as this service knows them, and the rules every field and change follows.

use micros_platform::{
    error::InvalidArgument,
    ids::{LicenseId, SiteId},
};

use crate::error::LicenseError;

/// Where a license is in its life. Active and suspended move freely between each
/// other; cancelled is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LicenseState {
    Active,
    Suspended,
    Cancelled,
}

impl LicenseState {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            LicenseState::Active => "active",
            LicenseState::Suspended => "suspended",
            LicenseState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<LicenseState> {
        match text {
            "active" => Some(LicenseState::Active),
            "suspended" => Some(LicenseState::Suspended),
            "cancelled" => Some(LicenseState::Cancelled),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct License {
    pub license_id: LicenseId,
    pub site_id: SiteId,
    pub product: String,
    pub seats: u32,
    pub state: LicenseState,
    pub create_time: i64,
    pub update_time: i64,
}

/// A validated request to create a license; new licenses are active.
#[derive(Debug, Clone)]
pub struct NewLicense {
    pub license_id: LicenseId,
    pub product: String,
    pub seats: u32,
}

impl NewLicense {
    /// Whether `existing` is what this request would have created: a retry, not a clash.
    pub fn matches(&self, existing: &License) -> bool {
        existing.license_id == self.license_id
            && existing.product == self.product
            && existing.seats == self.seats
    }
}

/// A validated update: `None` keeps the current value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LicenseChange {
    pub seats: Option<u32>,
    pub state: Option<LicenseState>,
}

impl License {
    /// The license after `change`, or `None` when it changes nothing (so a retried
    /// update, a cancel included, answers the same). A cancelled license refuses every
    /// real change: cancelled is final.
    pub fn apply(&self, change: LicenseChange) -> Result<Option<License>, LicenseError> {
        let seats = change.seats.unwrap_or(self.seats);
        let state = change.state.unwrap_or(self.state);
        if seats == self.seats && state == self.state {
            return Ok(None);
        }
        if self.state == LicenseState::Cancelled {
            return Err(LicenseError::LicenseCancelled {
                license_id: self.license_id,
            });
        }
        Ok(Some(License {
            seats,
            state,
            ..self.clone()
        }))
    }
}

/// Checks the product against the configured list.
pub fn product(input: &str, allowed: &[String]) -> Result<String, InvalidArgument> {
    if input.is_empty() {
        return Err(InvalidArgument::missing("product"));
    }
    if allowed.iter().any(|product| product == input) {
        Ok(input.to_owned())
    } else {
        Err(InvalidArgument::field(
            "product",
            "UNKNOWN_PRODUCT",
            input,
            format!("must be one of {}", allowed.join(", ")),
        ))
    }
}

/// Checks a seat count: at least 1, at most `max_seats`.
pub fn seats(requested: i32, max_seats: u32) -> Result<u32, InvalidArgument> {
    match u32::try_from(requested) {
        Ok(seats) if (1..=max_seats).contains(&seats) => Ok(seats),
        _ => Err(InvalidArgument::field(
            "seats",
            "INVALID_SEAT_COUNT",
            requested.to_string(),
            format!("must be between 1 and {max_seats}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn license(state: LicenseState) -> License {
        License {
            license_id: LicenseId::new(),
            site_id: SiteId::new(),
            product: "jira".to_owned(),
            seats: 10,
            state,
            create_time: 1,
            update_time: 1,
        }
    }

    #[test]
    fn seat_counts_are_bounded() {
        assert_eq!(seats(1, 100).unwrap(), 1);
        assert_eq!(seats(100, 100).unwrap(), 100);
        for bad in [0, -5, 101] {
            assert!(seats(bad, 100).is_err(), "{bad}");
        }
    }

    #[test]
    fn products_come_from_the_configured_list() {
        let allowed = ["jira".to_owned()];
        assert_eq!(product("jira", &allowed).unwrap(), "jira");
        assert!(product("Jira", &allowed).is_err());
        assert!(product("", &allowed).is_err());
    }

    #[test]
    fn active_and_suspended_move_freely_and_cancelled_is_final() {
        let active = license(LicenseState::Active);
        let suspend = LicenseChange {
            seats: None,
            state: Some(LicenseState::Suspended),
        };
        let suspended = active.apply(suspend).unwrap().unwrap();
        assert_eq!(
            (suspended.state, suspended.seats),
            (LicenseState::Suspended, 10)
        );
        let resume = LicenseChange {
            seats: Some(20),
            state: Some(LicenseState::Active),
        };
        let resumed = suspended.apply(resume).unwrap().unwrap();
        assert_eq!((resumed.state, resumed.seats), (LicenseState::Active, 20));
        assert_eq!(
            resumed
                .apply(LicenseChange {
                    seats: Some(20),
                    state: None
                })
                .unwrap(),
            None
        );

        let cancel = LicenseChange {
            seats: None,
            state: Some(LicenseState::Cancelled),
        };
        let cancelled = resumed.apply(cancel).unwrap().unwrap();
        assert_eq!(cancelled.apply(cancel).unwrap(), None, "a retried cancel");
        for change in [
            suspend,
            resume,
            LicenseChange {
                seats: Some(11),
                state: None,
            },
        ] {
            assert!(matches!(
                cancelled.apply(change),
                Err(LicenseError::LicenseCancelled { .. })
            ));
        }
    }
}
