//! The product-data tables of every shard database, as the lifecycle machinery sees them.
//! The column order is part of every fingerprint: append, never reorder.

use micros_platform::lifecycle::schema::{TableSpec, TenantSchema, int, text};

pub const DOCUMENTS: &str = "documents";
pub const DOCUMENT_VERSIONS: &str = "document_versions";

/// Documents, then their versions (parents before children). Both are owned by the app
/// installation that created the document, if any, so an uninstall removes a document
/// and its history together and a restore brings both back.
pub const SCHEMA: TenantSchema = TenantSchema {
    tables: &[
        TableSpec {
            name: DOCUMENTS,
            key: "document_id",
            columns: &[
                text("document_id"),
                text("product"),
                text("app_installation_id"),
                text("project_key"),
                int("issue_number"),
                text("title"),
                text("search_title"),
                text("status"),
                text("body"),
                int("version"),
                int("create_time"),
                int("update_time"),
            ],
            owner: Some("app_installation_id"),
            unique_across_sites: &[],
        },
        TableSpec {
            name: DOCUMENT_VERSIONS,
            key: "version_key",
            columns: &[
                text("version_key"),
                text("document_id"),
                text("app_installation_id"),
                int("version"),
                text("title"),
                text("status"),
                text("body"),
                int("create_time"),
            ],
            owner: Some("app_installation_id"),
            unique_across_sites: &[],
        },
    ],
};
