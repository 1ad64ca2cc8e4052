//! Identity's own settings (`[service]` in its config, `MICROS__SERVICE__…`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use micros_platform::config::Validate;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentitySettings {
    /// Products grants and product access may name; anything else is UNKNOWN_PRODUCT.
    pub products: Vec<String>,
    /// How long a purged site's escrowed contacts are kept after the purge, so support
    /// can still reach a customer who notices late; 400 days by default.
    #[serde(with = "humantime_serde")]
    pub escrow_retention: Duration,
    /// How often escrowed contacts past their retention are looked for and removed.
    #[serde(with = "humantime_serde")]
    pub escrow_prune_interval: Duration,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            products: ["jira", "confluence"].map(str::to_owned).to_vec(),
            escrow_retention: Duration::from_secs(400 * 24 * 3600),
            escrow_prune_interval: Duration::from_secs(3600),
        }
    }
}

impl Validate for IdentitySettings {
    fn validate(&self) -> Result<(), String> {
        if self.products.is_empty() {
            return Err("products: at least one product is required".to_owned());
        }
        let plain = |product: &String| {
            !product.is_empty()
                && product
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if let Some(bad) = self.products.iter().find(|product| !plain(product)) {
            return Err(format!(
                "products: `{bad}` must be lower-case letters, digits and hyphens"
            ));
        }
        if self.escrow_retention.is_zero() {
            return Err(
                "escrow_retention: must be longer than 0s (support reaches a deleted site's \
                 admins through it)"
                    .to_owned(),
            );
        }
        if self.escrow_prune_interval.is_zero() {
            return Err("escrow_prune_interval: must be longer than 0s".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        let defaults = IdentitySettings::default();
        assert!(defaults.validate().is_ok());
        assert_eq!(defaults.escrow_retention.as_secs(), 400 * 24 * 3600);
        let shouting = IdentitySettings {
            products: vec!["Jira".to_owned()],
            ..IdentitySettings::default()
        };
        assert!(shouting.validate().unwrap_err().contains("`Jira`"));
        let never = IdentitySettings {
            escrow_prune_interval: Duration::ZERO,
            ..IdentitySettings::default()
        };
        assert!(
            never
                .validate()
                .unwrap_err()
                .starts_with("escrow_prune_interval")
        );
        let forgetful = IdentitySettings {
            escrow_retention: Duration::ZERO,
            ..IdentitySettings::default()
        };
        assert!(
            forgetful
                .validate()
                .unwrap_err()
                .starts_with("escrow_retention")
        );
    }
}
