//! Identity's tenant-owned tables, as the lifecycle machinery sees them. The column order
//! is part of every fingerprint: append, never reorder.
//!
//! The contact escrow (`escrow_sites`, `escrow_contacts`) is deliberately absent: a
//! site's soft delete, restore and purge must never touch it (see `escrow.rs`).

use micros_platform::lifecycle::schema::{TableSpec, TenantSchema, int, text};

pub const USERS: &str = "users";
pub const GROUPS: &str = "user_groups";
pub const MEMBERSHIPS: &str = "memberships";
pub const GRANTS: &str = "permission_grants";
pub const PRODUCT_ACCESS: &str = "product_access";

/// Parents before children: restore inserts in this order, purge deletes in reverse.
pub const SCHEMA: TenantSchema = TenantSchema {
    tables: &[
        TableSpec {
            name: USERS,
            key: "user_id",
            columns: &[
                text("user_id"),
                text("email"),
                text("display_name"),
                int("site_admin"),
                int("create_time"),
            ],
            owner: None,
            unique_across_sites: &[],
        },
        TableSpec {
            name: GROUPS,
            key: "group_id",
            columns: &[text("group_id"), text("name"), int("create_time")],
            owner: None,
            unique_across_sites: &[],
        },
        TableSpec {
            name: MEMBERSHIPS,
            key: "membership_key",
            columns: &[
                text("membership_key"),
                text("group_id"),
                text("user_id"),
                int("create_time"),
            ],
            owner: None,
            unique_across_sites: &[],
        },
        TableSpec {
            name: GRANTS,
            key: "grant_key",
            columns: &[
                text("grant_key"),
                text("subject_id"),
                text("product"),
                text("role"),
                text("app_installation_id"),
                int("create_time"),
            ],
            owner: Some("app_installation_id"),
            unique_across_sites: &[],
        },
        TableSpec {
            name: PRODUCT_ACCESS,
            key: "product_access_key",
            columns: &[
                text("product_access_key"),
                text("product"),
                int("enabled"),
                int("update_time"),
            ],
            owner: None,
            unique_across_sites: &[],
        },
    ],
};
