//! What a service declares about its tenant-owned tables; the machinery derives every
//! lifecycle statement (deletion markers, change log, restore, purge, fingerprint) from it.
//!
//! Every tenant-owned table has, besides its declared columns, `site_id TEXT NOT NULL`,
//! `deleted_by TEXT` (the operation or user action that deleted the row at row level) and
//! `deleted_at BIGINT`. Keys are one TEXT column, unique in the table, never updated.

use crate::store::Backend;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Text,
    Int,
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: ColumnKind,
}

/// A TEXT column.
pub const fn text(name: &'static str) -> Column {
    Column {
        name,
        kind: ColumnKind::Text,
    }
}

/// A BIGINT column (integers, times in unix microseconds, booleans as 0/1).
pub const fn int(name: &'static str) -> Column {
    Column {
        name,
        kind: ColumnKind::Int,
    }
}

/// One tenant-owned table.
#[derive(Debug, Clone, Copy)]
pub struct TableSpec {
    pub name: &'static str,
    /// The key column: listed in `columns`, or `site_id` for a table with one row per
    /// site (the catalog's site record).
    pub key: &'static str,
    /// Data columns, in a fixed order (it is part of the fingerprint).
    pub columns: &'static [Column],
    /// The column naming the app installation (`app_…`) that owns a row, for tables whose
    /// rows an app uninstall removes.
    pub owner: Option<&'static str>,
    /// Text columns unique across all sites (a site's URL): a scratch copy prefixes them
    /// with its site ID, so it never collides with its origin.
    pub unique_across_sites: &'static [&'static str],
}

/// A service's tenant-owned tables, parents before children: restore inserts in this
/// order and purge deletes in the reverse.
#[derive(Debug, Clone, Copy)]
pub struct TenantSchema {
    pub tables: &'static [TableSpec],
}

/// Columns every tenant-owned table has besides its declared ones.
pub const SITE_COLUMN: &str = "site_id";
pub const DELETED_BY_COLUMN: &str = "deleted_by";
pub const DELETED_AT_COLUMN: &str = "deleted_at";

impl TenantSchema {
    /// Checks the declaration itself; the tables' presence is checked against the database
    /// when the lifecycle opens.
    pub fn check(&self) -> Result<(), String> {
        let safe = |name: &str| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        for table in self.tables {
            if !safe(table.name) {
                return Err(format!(
                    "table name `{}` is not a plain identifier",
                    table.name
                ));
            }
            for column in table.columns {
                if !safe(column.name) {
                    return Err(format!(
                        "{}.{} is not a plain identifier",
                        table.name, column.name
                    ));
                }
                if [SITE_COLUMN, DELETED_BY_COLUMN, DELETED_AT_COLUMN].contains(&column.name) {
                    return Err(format!(
                        "{}.{} is implicit in every tenant-owned table; do not declare it",
                        table.name, column.name
                    ));
                }
            }
            let declared = |name: &str| table.columns.iter().any(|column| column.name == name);
            if !declared(table.key) && table.key != SITE_COLUMN {
                return Err(format!(
                    "{}: key {} is not among its columns",
                    table.name, table.key
                ));
            }
            if let Some(owner) = table.owner
                && !declared(owner)
            {
                return Err(format!(
                    "{}: owner {owner} is not among its columns",
                    table.name
                ));
            }
        }
        Ok(())
    }
}

impl TableSpec {
    /// Every column of the table, implicit ones included, in fingerprint order.
    pub fn all_columns(&self) -> Vec<Column> {
        let mut all = vec![text(SITE_COLUMN)];
        all.extend_from_slice(self.columns);
        all.push(text(DELETED_BY_COLUMN));
        all.push(int(DELETED_AT_COLUMN));
        all
    }

    /// `a, b, c` of every column.
    pub fn column_list(&self) -> String {
        self.all_columns()
            .iter()
            .map(|column| column.name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// An expression giving the row as JSON text (the change log's before-image).
    pub fn json_row(&self, backend: Backend) -> String {
        let pairs = self
            .all_columns()
            .iter()
            .map(|column| format!("'{0}', {0}", column.name))
            .collect::<Vec<_>>()
            .join(", ");
        match backend {
            Backend::Sqlite => format!("json_object({pairs})"),
            Backend::Postgres => format!("json_build_object({pairs})::text"),
        }
    }

    /// Expressions reading each column back out of a JSON image in `image`.
    pub fn columns_from_json(&self, backend: Backend, image: &str) -> String {
        self.all_columns()
            .iter()
            .map(|column| match (backend, column.kind) {
                (Backend::Sqlite, _) => format!("json_extract({image}, '$.{}')", column.name),
                (Backend::Postgres, ColumnKind::Text) => {
                    format!("({image}::jsonb ->> '{}')", column.name)
                }
                (Backend::Postgres, ColumnKind::Int) => {
                    format!("({image}::jsonb ->> '{}')::bigint", column.name)
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: TableSpec = TableSpec {
        name: "notes",
        key: "note_id",
        columns: &[text("note_id"), text("app_id"), int("size")],
        owner: Some("app_id"),
        unique_across_sites: &[],
    };

    const NO_KEY: TableSpec = TableSpec {
        key: "missing",
        ..GOOD
    };
    const IMPLICIT: TableSpec = TableSpec {
        columns: &[text("note_id"), text("site_id")],
        owner: None,
        unique_across_sites: &[],
        ..GOOD
    };
    const INJECTED: TableSpec = TableSpec {
        name: "notes; DROP TABLE x",
        ..GOOD
    };

    #[test]
    fn declarations_are_checked() {
        assert!(TenantSchema { tables: &[GOOD] }.check().is_ok());
        let no_key = TenantSchema { tables: &[NO_KEY] }.check().unwrap_err();
        assert!(no_key.contains("missing"), "{no_key}");
        let implicit = TenantSchema {
            tables: &[IMPLICIT],
        }
        .check()
        .unwrap_err();
        assert!(implicit.contains("implicit"), "{implicit}");
        assert!(
            TenantSchema {
                tables: &[INJECTED]
            }
            .check()
            .is_err()
        );
    }

    #[test]
    fn json_round_trip_expressions_cover_every_column() {
        assert_eq!(
            GOOD.column_list(),
            "site_id, note_id, app_id, size, deleted_by, deleted_at"
        );
        assert!(
            GOOD.json_row(Backend::Sqlite)
                .starts_with("json_object('site_id', site_id")
        );
        assert!(
            GOOD.columns_from_json(Backend::Postgres, "i")
                .contains("(i::jsonb ->> 'size')::bigint")
        );
    }
}
