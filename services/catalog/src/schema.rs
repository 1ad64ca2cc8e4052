//! The catalog's tenant-owned tables, as the lifecycle machinery sees them.

use micros_platform::lifecycle::schema::{TableSpec, TenantSchema, int, text};

pub const SITES: &str = "sites";
pub const SITE_PRODUCTS: &str = "site_products";
pub const APP_INSTALLATIONS: &str = "app_installations";

pub const SCHEMA: TenantSchema = TenantSchema {
    tables: &[
        TableSpec {
            name: SITES,
            key: "site_id",
            columns: &[
                text("name"),
                text("url"),
                text("region"),
                int("shard"),
                int("create_time"),
            ],
            owner: None,
            unique_across_sites: &["url"],
        },
        TableSpec {
            name: SITE_PRODUCTS,
            key: "site_product_id",
            columns: &[
                text("site_product_id"),
                text("product"),
                text("state"),
                int("update_time"),
            ],
            owner: None,
            unique_across_sites: &[],
        },
        TableSpec {
            name: APP_INSTALLATIONS,
            key: "app_installation_id",
            columns: &[
                text("app_installation_id"),
                text("app_key"),
                int("install_time"),
            ],
            owner: Some("app_installation_id"),
            unique_across_sites: &[],
        },
    ],
};
