//! Sites as the catalog knows them, and the rules a new site must follow.

use micros_platform::{
    error::InvalidArgument,
    ids::{AppInstallationId, SiteId},
    lifecycle::TenantState,
};

/// A site's record with its lifecycle state from the tenant registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub site_id: SiteId,
    pub name: String,
    pub url: SiteUrl,
    pub region: String,
    pub shard: i64,
    pub state: TenantState,
    pub create_time: i64,
    pub delete_time: Option<i64>,
    pub expire_time: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductState {
    Active,
    Suspended,
    Inactive,
}

impl ProductState {
    pub fn as_str(self) -> &'static str {
        match self {
            ProductState::Active => "active",
            ProductState::Suspended => "suspended",
            ProductState::Inactive => "inactive",
        }
    }

    pub fn parse(text: &str) -> Option<ProductState> {
        match text {
            "active" => Some(ProductState::Active),
            "suspended" => Some(ProductState::Suspended),
            "inactive" => Some(ProductState::Inactive),
            _ => None,
        }
    }
}

/// What can be done to a product on a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductAction {
    Activate,
    Deactivate,
    Suspend,
    Unsuspend,
}

impl ProductAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ProductAction::Activate => "activate",
            ProductAction::Deactivate => "deactivate",
            ProductAction::Suspend => "suspend",
            ProductAction::Unsuspend => "unsuspend",
        }
    }

    /// The state after the action, or `None` when the action does not apply to `from`
    /// (`None` = the product is not on the site). Reaching the state it is already in is
    /// allowed, so retries are harmless.
    pub fn next(self, from: Option<ProductState>) -> Option<ProductState> {
        use ProductState::{Active, Inactive, Suspended};
        match (self, from) {
            (ProductAction::Activate, None | Some(Inactive | Active)) => Some(Active),
            (ProductAction::Deactivate, Some(Active | Suspended | Inactive)) => Some(Inactive),
            (ProductAction::Suspend, Some(Active | Suspended)) => Some(Suspended),
            (ProductAction::Unsuspend, Some(Suspended | Active)) => Some(Active),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteProduct {
    pub site_id: SiteId,
    pub product: String,
    pub state: ProductState,
    pub update_time: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppInstallation {
    pub app_installation_id: AppInstallationId,
    pub site_id: SiteId,
    pub app_key: String,
    pub install_time: i64,
}

/// A site's URL in canonical form: `https://` and a lower-case DNS host name, no path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteUrl(String);

impl SiteUrl {
    /// Accepts `acme.example.com`, `https://Acme.example.com/` and the like.
    pub fn parse(field: &str, input: &str) -> Result<SiteUrl, InvalidArgument> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(InvalidArgument::missing(field));
        }
        let invalid = |message: &str| {
            InvalidArgument::field(field, "INVALID_SITE_URL", input, message.to_owned())
        };
        let lower = trimmed.to_ascii_lowercase();
        if lower.starts_with("http://") {
            return Err(invalid("sites are served over https"));
        }
        let host = lower.strip_prefix("https://").unwrap_or(&lower);
        let host = host.strip_suffix('/').unwrap_or(host);
        if host.len() > 253 {
            return Err(invalid("the host name is longer than 253 characters"));
        }
        let labels: Vec<&str> = host.split('.').collect();
        if labels.len() < 2 {
            return Err(invalid(
                "the host name needs at least two labels, like acme.example.com",
            ));
        }
        let valid_label = |label: &&str| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if !labels.iter().all(valid_label) {
            return Err(invalid(
                "must be a host name of letters, digits and hyphens, with no path or port",
            ));
        }
        Ok(SiteUrl(format!("https://{host}")))
    }

    /// Wraps a URL read back from the store, where it is already canonical.
    pub fn from_stored(url: String) -> SiteUrl {
        SiteUrl(url)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated request to create a site.
#[derive(Debug, Clone)]
pub struct NewSite {
    pub site_id: SiteId,
    pub name: String,
    pub url: SiteUrl,
    pub region: String,
    pub shard: i64,
}

/// The product-data shard of a site: stable, spread evenly by the ID's random bits.
pub fn shard_of(site_id: SiteId, shards: u16) -> i64 {
    let random = site_id.uuid().as_u128() & ((1u128 << 64) - 1);
    i64::try_from(random % u128::from(shards.max(1))).unwrap_or(0)
}

/// Checks a name against a configured list (products) or the key syntax (apps).
pub fn key_in(
    field: &str,
    input: &str,
    allowed: &[String],
    reason: &'static str,
) -> Result<String, InvalidArgument> {
    if input.is_empty() {
        return Err(InvalidArgument::missing(field));
    }
    if allowed.iter().any(|known| known == input) {
        Ok(input.to_owned())
    } else {
        Err(InvalidArgument::field(
            field,
            reason,
            input,
            format!("must be one of {}", allowed.join(", ")),
        ))
    }
}

/// An app key: lower-case letters, digits and hyphens, at most 64.
pub fn app_key(input: &str) -> Result<String, InvalidArgument> {
    if input.is_empty() {
        return Err(InvalidArgument::missing("app_key"));
    }
    let valid = input.len() <= 64
        && input
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(input.to_owned())
    } else {
        Err(InvalidArgument::field(
            "app_key",
            "INVALID_APP_KEY",
            input,
            "must be at most 64 lower-case letters, digits and hyphens",
        ))
    }
}

/// Checks a site's display name.
pub fn site_name(input: &str) -> Result<String, InvalidArgument> {
    let name = input.trim();
    if name.is_empty() {
        return Err(InvalidArgument::missing("name"));
    }
    if name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(InvalidArgument::field(
            "name",
            "INVALID_SITE_NAME",
            input,
            "must be at most 200 printable characters",
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_canonical() {
        for input in [
            "acme.example.com",
            "https://ACME.example.com/",
            " acme.example.com ",
        ] {
            assert_eq!(
                SiteUrl::parse("url", input).unwrap().as_str(),
                "https://acme.example.com"
            );
        }
    }

    #[test]
    fn product_transitions() {
        use ProductAction::*;
        use ProductState::*;
        assert_eq!(Activate.next(None), Some(Active));
        assert_eq!(Activate.next(Some(Active)), Some(Active));
        assert_eq!(Activate.next(Some(Suspended)), None, "unsuspend instead");
        assert_eq!(Suspend.next(None), None);
        assert_eq!(Suspend.next(Some(Active)), Some(Suspended));
        assert_eq!(Unsuspend.next(Some(Suspended)), Some(Active));
        assert_eq!(Deactivate.next(Some(Suspended)), Some(Inactive));
        assert_eq!(Deactivate.next(None), None);
    }

    #[test]
    fn shards_are_stable_and_in_range() {
        let site = SiteId::new();
        assert_eq!(shard_of(site, 4), shard_of(site, 4));
        assert!((0..4).contains(&shard_of(site, 4)));
        let spread: std::collections::HashSet<i64> =
            (0..64).map(|_| shard_of(SiteId::new(), 4)).collect();
        assert_eq!(spread.len(), 4, "64 sites land on every one of 4 shards");
    }

    #[test]
    fn bad_urls_are_refused() {
        for input in [
            "http://acme.example.com",
            "acme",
            "https://acme.example.com/path",
            "acme.example.com:8080",
            "-acme.example.com",
            "acme..example.com",
        ] {
            assert!(SiteUrl::parse("url", input).is_err(), "{input}");
        }
    }
}
