//! The catalog's own settings (`[service]` in its config, `MICROS__SERVICE__…`).

use serde::{Deserialize, Serialize};

use micros_platform::config::Validate;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogSettings {
    /// Regions a site may be created in.
    pub regions: Vec<String>,
    /// Products a site may have.
    pub products: Vec<String>,
    /// How many product-data shards sites are placed on: product-data's shard count,
    /// which `micros render`, `micros serve` and `micros up` take from its descriptor.
    /// No default of its own (0 is refused), so the two cannot drift apart.
    pub product_data_shards: u16,
}

impl Default for CatalogSettings {
    fn default() -> Self {
        Self {
            regions: ["us-east", "eu-west", "ap-southeast"]
                .map(str::to_owned)
                .to_vec(),
            products: ["jira", "confluence"].map(str::to_owned).to_vec(),
            product_data_shards: 0,
        }
    }
}

impl Validate for CatalogSettings {
    fn validate(&self) -> Result<(), String> {
        if self.regions.is_empty() {
            return Err("regions: at least one region is required".to_owned());
        }
        if self.products.is_empty() {
            return Err("products: at least one product is required".to_owned());
        }
        if self.product_data_shards == 0 {
            return Err(
                "product_data_shards: must be set (MICROS__SERVICE__PRODUCT_DATA_SHARDS) to \
                 product-data's shard count; `micros serve` takes it from product-data's \
                 descriptor"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_product_data_shard_count_must_be_set() {
        let unset = CatalogSettings::default().validate().unwrap_err();
        assert!(
            unset.contains("MICROS__SERVICE__PRODUCT_DATA_SHARDS"),
            "{unset}"
        );
        let set = CatalogSettings {
            product_data_shards: 4,
            ..CatalogSettings::default()
        };
        assert!(set.validate().is_ok());
    }
}
