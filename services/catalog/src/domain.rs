//! Sites as the catalog knows them, and the rules a new site must follow.

use micros_platform::{error::InvalidArgument, ids::SiteId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteState {
    Active,
    Deleted,
    Purged,
}

impl SiteState {
    pub fn parse(text: &str) -> Option<SiteState> {
        match text {
            "active" => Some(SiteState::Active),
            "deleted" => Some(SiteState::Deleted),
            "purged" => Some(SiteState::Purged),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub site_id: SiteId,
    pub name: String,
    pub url: SiteUrl,
    pub region: String,
    pub state: SiteState,
    pub create_time: i64,
    pub delete_time: Option<i64>,
    pub expire_time: Option<i64>,
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

/// Checks the region against the configured list.
pub fn region(input: &str, allowed: &[String]) -> Result<String, InvalidArgument> {
    if input.is_empty() {
        return Err(InvalidArgument::missing("region"));
    }
    if allowed.iter().any(|region| region == input) {
        Ok(input.to_owned())
    } else {
        Err(InvalidArgument::field(
            "region",
            "UNKNOWN_REGION",
            input,
            format!("must be one of {}", allowed.join(", ")),
        ))
    }
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
