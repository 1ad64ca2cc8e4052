//! Media's tenant-owned table, as the lifecycle machinery sees it.

use micros_platform::lifecycle::schema::{TableSpec, TenantSchema, int, text};

pub const ATTACHMENTS: &str = "attachments";

pub const SCHEMA: TenantSchema = TenantSchema {
    tables: &[TableSpec {
        name: ATTACHMENTS,
        key: "media_id",
        columns: &[
            text("media_id"),
            text("app_installation_id"),
            text("file_name"),
            text("content_type"),
            int("size_bytes"),
            text("sha256"),
            text("blob_key"),
            int("create_time"),
            text("created_by"),
        ],
        owner: Some("app_installation_id"),
        unique_across_sites: &[],
    }],
};
