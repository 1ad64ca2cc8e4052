//! Product-data's own settings (`[service]` in its config, `MICROS__SERVICE__…`).

use serde::{Deserialize, Serialize};

use micros_platform::config::Validate;

/// The most shard databases one instance opens.
const MAX_SHARDS: u16 = 256;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProductDataSettings {
    /// How many shard databases (`product_data_0` …) documents are spread over. Must
    /// equal the catalog's `product_data_shards`, which places each site on one of them;
    /// calls for a site are refused (SHARD_COUNT_MISMATCH) while the two disagree. Both
    /// come from this service's descriptor through `micros render`, `micros serve` and
    /// `micros up`; there is no default here (0 is refused).
    pub shards: u16,
}

impl Validate for ProductDataSettings {
    fn validate(&self) -> Result<(), String> {
        if self.shards == 0 {
            return Err(
                "shards: must be set (MICROS__SERVICE__SHARDS); `micros serve` takes \
                 it from this service's descriptor"
                    .to_owned(),
            );
        }
        if self.shards > MAX_SHARDS {
            return Err(format!("shards: must be between 1 and {MAX_SHARDS}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shard_count_must_be_set() {
        let unset = ProductDataSettings::default().validate().unwrap_err();
        assert!(unset.contains("MICROS__SERVICE__SHARDS"), "{unset}");
        assert!(ProductDataSettings { shards: 4 }.validate().is_ok());
        let many = ProductDataSettings { shards: 257 };
        assert!(many.validate().unwrap_err().starts_with("shards"));
    }
}
