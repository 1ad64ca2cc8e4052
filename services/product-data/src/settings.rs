//! Product-data's own settings (`[service]` in its config, `MICROS__SERVICE__…`).

use serde::{Deserialize, Serialize};

use micros_platform::config::Validate;

/// The most shard databases one instance opens.
const MAX_SHARDS: u16 = 256;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProductDataSettings {
    /// How many shard databases (`product_data_0` …) documents are spread over. Must
    /// equal the catalog's `product_data_shards`, which places each site on one of them;
    /// calls for a site are refused (SHARD_COUNT_MISMATCH) while the two disagree.
    pub shards: u16,
}

impl Default for ProductDataSettings {
    fn default() -> Self {
        Self { shards: 4 }
    }
}

impl Validate for ProductDataSettings {
    fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_SHARDS).contains(&self.shards) {
            return Err(format!("shards: must be between 1 and {MAX_SHARDS}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zero_shards_is_refused() {
        assert!(ProductDataSettings::default().validate().is_ok());
        let none = ProductDataSettings { shards: 0 };
        assert!(none.validate().unwrap_err().starts_with("shards"));
    }
}
