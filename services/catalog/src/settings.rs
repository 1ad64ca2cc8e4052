//! The catalog's own settings (`[service]` in its config, `MICROS__SERVICE__…`).

use serde::{Deserialize, Serialize};

use micros_platform::config::Validate;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogSettings {
    /// Regions a site may be created in.
    pub regions: Vec<String>,
}

impl Default for CatalogSettings {
    fn default() -> Self {
        Self {
            regions: ["us-east", "eu-west", "ap-southeast"]
                .map(str::to_owned)
                .to_vec(),
        }
    }
}

impl Validate for CatalogSettings {
    fn validate(&self) -> Result<(), String> {
        if self.regions.is_empty() {
            return Err("regions: at least one region is required".to_owned());
        }
        Ok(())
    }
}
