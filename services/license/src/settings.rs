//! The license service's own settings (`[service]` in its config, `MICROS__SERVICE__…`).

use serde::{Deserialize, Serialize};

use micros_platform::config::Validate;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LicenseSettings {
    /// Products a license may be for; anything else is refused as UNKNOWN_PRODUCT.
    pub products: Vec<String>,
    /// The most seats one license may carry, so that a typo (an extra zero or three)
    /// cannot provision a license nobody meant to sell.
    pub max_seats: u32,
}

impl Default for LicenseSettings {
    fn default() -> Self {
        Self {
            products: ["jira", "confluence"].map(str::to_owned).to_vec(),
            max_seats: 50_000,
        }
    }
}

impl Validate for LicenseSettings {
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
        if self.max_seats == 0 || self.max_seats > i32::MAX as u32 {
            return Err(format!("max_seats: must be between 1 and {}", i32::MAX));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert!(LicenseSettings::default().validate().is_ok());
        let none = LicenseSettings {
            products: Vec::new(),
            ..LicenseSettings::default()
        };
        assert!(none.validate().unwrap_err().starts_with("products"));
        let shouting = LicenseSettings {
            products: vec!["Jira".to_owned()],
            ..LicenseSettings::default()
        };
        assert!(shouting.validate().unwrap_err().contains("`Jira`"));
        let zero = LicenseSettings {
            max_seats: 0,
            ..LicenseSettings::default()
        };
        assert!(zero.validate().unwrap_err().starts_with("max_seats"));
    }
}
