//! Scratch copies: a site's slice in this service copied into a new scratch site, every
//! ID inside it renamed the way [`scratch::remap`] names it (the same in every service),
//! so a restore drill can delete, restore and verify the copy while the customer's site
//! stays untouched and available. A scratch site carries its origin in the registry, is
//! left out of listings, and can be purged at any time.

use std::collections::BTreeSet;

use sqlx::{AnyConnection, Row, any::AnyRow};

use super::{
    Lifecycle, LifecycleError,
    call::{request_digest, require_reason},
    describe::describe,
    digests,
    model::{Action, LifecycleRequest, TargetOutcome, TenantState},
    registry,
    schema::{ColumnKind, SITE_COLUMN, TableSpec},
    scratch,
    tenant::{Value, bind_as},
};
use crate::{error::InvalidArgument, ids::SiteId, store::json_list};

/// One site to copy and the scratch site to copy it into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SiteCopy {
    pub origin: SiteId,
    pub scratch: SiteId,
}

/// Which row of the origin a copied row is: (scratch site, origin key, scratch key).
type CopiedKey = (SiteId, String, String);

/// Bound values per INSERT statement, well under both backends' limits.
const BINDS_PER_STATEMENT: usize = 4000;

impl Lifecycle {
    /// Copies each origin's rows into its scratch site, in one transaction: the scratch
    /// sites are registered (active, with their origin), every row copied with its IDs
    /// renamed, the key of each copied row recorded, and the service's hook run (media
    /// copies the blobs). Answers the scratch sites as described afterwards.
    /// `request.targets` are the scratch sites, in the order of `copies`.
    pub async fn copy(
        &self,
        request: &LifecycleRequest,
        copies: &[SiteCopy],
    ) -> Result<Vec<TargetOutcome>, LifecycleError> {
        require_reason(request)?;
        validate(copies)?;
        let pairs: Vec<String> = copies
            .iter()
            .map(|copy| format!("{}>{}", copy.origin, copy.scratch))
            .collect();
        let digest = request_digest(Action::Copy, &pairs.join(","), &request.targets);
        let mut tx = self.store().begin_write().await?;
        if let Some(previous) = self
            .recorded(&mut tx, Action::Copy, &digest, request)
            .await?
        {
            return Ok(previous);
        }
        let origins: Vec<SiteId> = copies.iter().map(|copy| copy.origin).collect();
        let copied = async {
            // The origins are only read: share-locked, so lifecycle calls on them wait
            // but customers' writes do not, and fenced by nobody (a drill must not
            // stand in the way of an operation on the customer's site).
            let mut registry = registry::lock_shared(self.store(), &mut tx, &origins).await?;
            registry.extend(self.lock_for(&mut tx, request).await?);
            for copy in copies {
                match registry::state_in(&registry, copy.origin) {
                    TenantState::Active | TenantState::Absent => {}
                    _ => {
                        return Err(LifecycleError::NotActive {
                            site_id: copy.origin,
                        });
                    }
                }
                if registry::state_in(&registry, copy.scratch) != TenantState::Absent {
                    return Err(InvalidArgument::field(
                        "copies.scratch_site_id",
                        "SCRATCH_SITE_TAKEN",
                        copy.scratch.to_string(),
                        "is a site this service already holds; a scratch site must be new",
                    )
                    .into());
                }
            }
            registry::register_scratch(self.store(), &mut tx, copies, self.now()).await?;
            for table in self.schema().tables {
                self.copy_table(&mut tx, table, copies).await?;
            }
            let scratch_sites: Vec<SiteId> = copies.iter().map(|copy| copy.scratch).collect();
            digests::bump(self.store(), &mut tx, &scratch_sites).await?;
            self.inner
                .hooks
                .after_copy(&mut tx, copies)
                .await
                .map_err(LifecycleError::Refused)?;
            let registry_now = registry::load(self.store(), &mut tx, &scratch_sites).await?;
            describe(self, &mut tx, &request.targets, &registry_now).await
        }
        .await;
        let outcomes = match copied {
            Ok(outcomes) => outcomes,
            Err(error) => {
                drop(tx);
                self.audit_refusal(Action::Copy, request, &error).await;
                return Err(error);
            }
        };
        self.record(&mut tx, Action::Copy, &digest, request, &outcomes)
            .await?;
        crate::failpoint!("lifecycle::before_commit");
        tx.commit().await?;
        Ok(outcomes)
    }

    /// Copies one table's rows of every origin, a bounded number of statements per
    /// table whatever the number of rows.
    async fn copy_table(
        &self,
        connection: &mut AnyConnection,
        table: &TableSpec,
        copies: &[SiteCopy],
    ) -> Result<(), LifecycleError> {
        let columns = table.all_columns();
        let origins = json_list(copies.iter().map(|copy| copy.origin.to_string()));
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM {} WHERE site_id IN ({})",
            table.column_list(),
            table.name,
            self.store().json_strings("$1")
        )))
        .bind(origins)
        .fetch_all(&mut *connection)
        .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut copied = Vec::with_capacity(rows.len());
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            let (values, key) = self.copied_row(table, row, copies)?;
            copied.push(values);
            keys.push(key);
        }
        let per_statement = (BINDS_PER_STATEMENT / columns.len()).max(1);
        for chunk in copied.chunks(per_statement) {
            let placeholders: Vec<String> = (0..chunk.len())
                .map(|row| {
                    let first = row * columns.len();
                    let marks: Vec<String> = (1..=columns.len())
                        .map(|column| format!("${}", first + column))
                        .collect();
                    format!("({})", marks.join(", "))
                })
                .collect();
            let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {} ({}) VALUES {}",
                table.name,
                table.column_list(),
                placeholders.join(", ")
            )));
            for values in chunk {
                for (value, column) in values.iter().zip(&columns) {
                    query = bind_as(query, value, column.kind);
                }
            }
            query.execute(&mut *connection).await?;
        }
        for chunk in keys.chunks(BINDS_PER_STATEMENT / 4) {
            let placeholders: Vec<String> = (0..chunk.len())
                .map(|row| {
                    let first = row * 4;
                    format!(
                        "(${}, ${}, ${}, ${})",
                        first + 1,
                        first + 2,
                        first + 3,
                        first + 4
                    )
                })
                .collect();
            let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO scratch_keys (site_id, table_name, origin_key, scratch_key) VALUES {}",
                placeholders.join(", ")
            )));
            for (scratch_site, origin_key, scratch_key) in chunk {
                query = query
                    .bind(scratch_site.to_string())
                    .bind(table.name)
                    .bind(origin_key.clone())
                    .bind(scratch_key.clone());
            }
            query.execute(&mut *connection).await?;
        }
        Ok(())
    }

    /// One row as its copy: IDs renamed, columns unique across sites marked with the
    /// scratch site; and (scratch site, origin key, scratch key).
    fn copied_row(
        &self,
        table: &TableSpec,
        row: &AnyRow,
        copies: &[SiteCopy],
    ) -> Result<(Vec<Value>, CopiedKey), LifecycleError> {
        let origin_text: String = row.try_get(SITE_COLUMN)?;
        let copy = copies
            .iter()
            .find(|copy| copy.origin.to_string() == origin_text)
            .ok_or_else(|| {
                LifecycleError::Misuse(format!("{} row of an uncopied site", table.name))
            })?;
        let mut values = Vec::new();
        let mut key = None;
        for (index, column) in table.all_columns().iter().enumerate() {
            let value = match column.kind {
                ColumnKind::Int => Value::from(row.try_get::<Option<i64>, _>(index)?),
                ColumnKind::Text => match row.try_get::<Option<String>, _>(index)? {
                    None => Value::Null,
                    Some(text) => {
                        let renamed = scratch::remap(copy.origin, copy.scratch, &text);
                        if column.name == table.key {
                            key = Some((copy.scratch, text, renamed.clone()));
                        }
                        if table.unique_across_sites.contains(&column.name) {
                            Value::Text(format!("{}:{renamed}", copy.scratch))
                        } else {
                            Value::Text(renamed)
                        }
                    }
                },
            };
            values.push(value);
        }
        let key = key.ok_or_else(|| {
            LifecycleError::Misuse(format!("{} row without its key {}", table.name, table.key))
        })?;
        Ok((values, key))
    }
}

fn validate(copies: &[SiteCopy]) -> Result<(), LifecycleError> {
    if copies.is_empty() {
        return Err(InvalidArgument::missing("copies").into());
    }
    if copies.len() > super::call::MAX_TARGETS {
        return Err(InvalidArgument::field(
            "copies",
            "TOO_MANY_TARGETS",
            copies.len().to_string(),
            format!("at most {} copies per call", super::call::MAX_TARGETS),
        )
        .into());
    }
    let mut seen = BTreeSet::new();
    for copy in copies {
        if copy.origin == copy.scratch {
            return Err(InvalidArgument::field(
                "copies",
                "SCRATCH_IS_ORIGIN",
                copy.origin.to_string(),
                "a site cannot be copied onto itself",
            )
            .into());
        }
        if !seen.insert(copy.origin) || !seen.insert(copy.scratch) {
            return Err(InvalidArgument::field(
                "copies",
                "DUPLICATE_TARGET",
                format!("{}>{}", copy.origin, copy.scratch),
                "names a site twice",
            )
            .into());
        }
    }
    Ok(())
}
