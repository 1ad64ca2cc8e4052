//! Product-data's SQL, all of it. A site's documents live in the shard database its
//! placement names; every statement runs on the site's [`LiveTenant`] there (handed out
//! for an active site alone) and binds its site, so a deleted site's documents are
//! unreachable and another site's document ID matches nothing. Writes go through the
//! tenant's [`TenantTx`], which logs each row's before-image for point-in-time restore.
//!
//! Versions: the `documents` row is the current state; `document_versions` keeps every
//! version, the current one included, written in the same transaction as the change.

use std::sync::Arc;

use micros_platform::{
    admission::SiteAdmission,
    error::parse_id,
    ids::{AppInstallationId, DocumentId, SiteId, UserId},
    lifecycle::{Lifecycle, LifecycleError, LiveTenant, TenantTx, Value},
    store::Backend,
};
use sqlx::{Row, any::AnyRow};

use crate::{
    domain::{
        self, Content, Document, DocumentChange, DocumentQuery, DocumentVersion, IssueKey,
        IssueStatus, NewDocument, Product,
    },
    error::ProductDataError,
    placement::Placements,
    schema::{DOCUMENT_VERSIONS, DOCUMENTS},
};

/// How many times a create retries after a concurrent create took the issue number it
/// chose (PostgreSQL; SQLite runs writes one at a time).
const ISSUE_NUMBER_ATTEMPTS: usize = 5;

/// The columns [`document_from_row`] reads but `body`, which each query selects itself.
const DOCUMENT_COLUMNS: &str = "document_id, site_id, product, app_installation_id, project_key,
    issue_number, title, status, version, create_time, update_time";

#[derive(Clone)]
pub struct DocumentStore {
    shards: Vec<Lifecycle>,
    placements: Arc<Placements>,
    admission: SiteAdmission,
}

/// What an insert ran into.
enum Inserted {
    Created(Document),
    /// A unique index refused the row: the document ID, or the issue number it chose.
    Clashed {
        issue_number: Option<i64>,
    },
}

impl DocumentStore {
    pub fn new(
        shards: Vec<Lifecycle>,
        placements: Arc<Placements>,
        admission: SiteAdmission,
    ) -> Self {
        Self {
            shards,
            placements,
            admission,
        }
    }

    async fn shard(&self, site_id: SiteId) -> Result<&Lifecycle, ProductDataError> {
        let shard = self.placements.shard_of(site_id).await?;
        Ok(&self.shards[shard])
    }

    /// The site's handle for a create, registering the site in its shard if this service
    /// has never seen it; a deleted or purged site stays refused.
    pub async fn register(&self, site_id: SiteId) -> Result<LiveTenant, ProductDataError> {
        let shard = self.shard(site_id).await?;
        Ok(self.admission.admit(shard, site_id).await?)
    }

    /// The site's handle for a read or a change of an existing document: `None` when the
    /// catalog has the site active but it has no document yet. A deleted site is
    /// SITE_DELETED, here or in the catalog.
    pub async fn reader(&self, site_id: SiteId) -> Result<Option<LiveTenant>, ProductDataError> {
        let shard = self.shard(site_id).await?;
        Ok(self.admission.read(shard, site_id).await?)
    }

    /// Creates the document at version 1; the same document again (same ID and content)
    /// returns it as it is now.
    pub async fn create(
        &self,
        tenant: &LiveTenant,
        new: &NewDocument,
    ) -> Result<Document, ProductDataError> {
        if new.id_chosen_by_caller && self.taken_in_another_shard(tenant, new.document_id).await? {
            return Err(ProductDataError::DocumentIdTaken {
                document_id: new.document_id,
            });
        }
        for _ in 0..ISSUE_NUMBER_ATTEMPTS {
            let issue_number = match self.insert(tenant, new).await? {
                Inserted::Created(document) => return Ok(document),
                Inserted::Clashed { issue_number } => issue_number,
            };
            if let Some(existing) = self.find(tenant, new.document_id).await? {
                let first = self.first_version(tenant, new.document_id).await?;
                return if first.is_some_and(|first| new.matches(&existing, &first)) {
                    Ok(existing)
                } else {
                    Err(ProductDataError::DocumentIdTaken {
                        document_id: new.document_id,
                    })
                };
            }
            let raced = match (&new.project_key, issue_number) {
                (Some(project_key), Some(number)) => {
                    self.issue_number_taken(tenant, project_key, number).await?
                }
                _ => false,
            };
            if !raced {
                return Err(ProductDataError::DocumentIdTaken {
                    document_id: new.document_id,
                });
            }
        }
        Err(ProductDataError::IssueNumberContention {
            project_key: new.project_key.clone().unwrap_or_default(),
        })
    }

    /// Whether a shard other than the tenant's holds a document with this ID. Each shard's
    /// primary key keeps IDs unique within it; this keeps a caller-chosen ID from naming
    /// documents of two sites in different shards. It reads no other site's data, only
    /// whether the ID is taken, so it is the one query that does not bind a site.
    async fn taken_in_another_shard(
        &self,
        tenant: &LiveTenant,
        document_id: DocumentId,
    ) -> Result<bool, ProductDataError> {
        let own = self.placements.shard_of(tenant.site_id()).await?;
        for (index, shard) in self.shards.iter().enumerate() {
            if index == own {
                continue;
            }
            let taken: Option<String> =
                sqlx::query_scalar("SELECT document_id FROM documents WHERE document_id = $1")
                    .bind(document_id.to_string())
                    .fetch_optional(shard.store().pool())
                    .await?;
            if taken.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn insert(
        &self,
        tenant: &LiveTenant,
        new: &NewDocument,
    ) -> Result<Inserted, ProductDataError> {
        let mut tx = tenant.begin().await?;
        let now = tx.now();
        let issue_key = match &new.project_key {
            Some(project_key) => Some(IssueKey {
                project_key: project_key.clone(),
                number: next_issue_number(&mut tx, project_key).await?,
            }),
            None => None,
        };
        let content = &new.content;
        let inserted = tx
            .insert(
                DOCUMENTS,
                &[
                    ("document_id", Value::from(new.document_id.to_string())),
                    ("product", Value::from(content.product().as_str())),
                    (
                        "app_installation_id",
                        Value::from(new.app_installation_id.map(|app| app.to_string())),
                    ),
                    (
                        "project_key",
                        Value::from(issue_key.as_ref().map(|key| key.project_key.clone())),
                    ),
                    (
                        "issue_number",
                        Value::from(issue_key.as_ref().map_or(0, |key| key.number)),
                    ),
                    ("title", Value::from(content.title())),
                    ("search_title", Value::from(domain::fold(content.title()))),
                    (
                        "status",
                        Value::from(content.status().map(IssueStatus::as_str)),
                    ),
                    ("body", Value::from(content.body())),
                    ("version", Value::from(1_i64)),
                    ("create_time", Value::from(now)),
                    ("update_time", Value::from(now)),
                ],
            )
            .await;
        match inserted {
            Ok(()) => {}
            Err(error) if error.conflict().is_some() => {
                return Ok(Inserted::Clashed {
                    issue_number: issue_key.map(|key| key.number),
                });
            }
            Err(error) => return Err(error.into()),
        }
        insert_version(
            &mut tx,
            new.document_id,
            new.app_installation_id,
            1,
            content,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Inserted::Created(Document {
            document_id: new.document_id,
            site_id: tenant.site_id(),
            app_installation_id: new.app_installation_id,
            issue_key,
            content: content.clone(),
            version: 1,
            create_time: now,
            update_time: now,
        }))
    }

    /// One document of the tenant, not trashed; DOCUMENT_NOT_FOUND otherwise.
    pub async fn get(
        &self,
        tenant: &LiveTenant,
        document_id: DocumentId,
    ) -> Result<Document, ProductDataError> {
        self.find(tenant, document_id)
            .await?
            .ok_or(ProductDataError::DocumentNotFound {
                site_id: tenant.site_id(),
                document_id,
            })
    }

    async fn find(
        &self,
        tenant: &LiveTenant,
        document_id: DocumentId,
    ) -> Result<Option<Document>, ProductDataError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DOCUMENT_COLUMNS}, body FROM documents
             WHERE site_id = $1 AND document_id = $2 AND deleted_by IS NULL"
        )))
        .bind(tenant.site_key())
        .bind(document_id.to_string())
        .fetch_optional(tenant.pool())
        .await?;
        row.as_ref().map(document_from_row).transpose()
    }

    async fn first_version(
        &self,
        tenant: &LiveTenant,
        document_id: DocumentId,
    ) -> Result<Option<Content>, ProductDataError> {
        let row = sqlx::query(
            "SELECT d.product, v.title, v.status, v.body FROM document_versions v
             JOIN documents d ON d.document_id = v.document_id AND d.site_id = v.site_id
             WHERE v.site_id = $1 AND v.document_id = $2 AND v.version = 1",
        )
        .bind(tenant.site_key())
        .bind(document_id.to_string())
        .fetch_optional(tenant.pool())
        .await?;
        row.map(|row| {
            let product: String = row.try_get("product")?;
            content_from_row(&row, &product)
        })
        .transpose()
    }

    async fn issue_number_taken(
        &self,
        tenant: &LiveTenant,
        project_key: &str,
        number: i64,
    ) -> Result<bool, ProductDataError> {
        let taken: Option<i64> = sqlx::query_scalar(
            "SELECT issue_number FROM documents
             WHERE site_id = $1 AND product = 'jira' AND project_key = $2 AND issue_number = $3",
        )
        .bind(tenant.site_key())
        .bind(project_key.to_owned())
        .bind(number)
        .fetch_optional(tenant.pool())
        .await?;
        Ok(taken.is_some())
    }

    /// The tenant's documents matching `query` after `after`, in ID (creation) order.
    pub async fn list(
        &self,
        tenant: &LiveTenant,
        query: &DocumentQuery,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Document>, ProductDataError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DOCUMENT_COLUMNS}, CASE WHEN $5 = 1 THEN body END AS body FROM documents
             WHERE site_id = $1 AND deleted_by IS NULL AND document_id > $2
               AND ($3 = '' OR product = $3)
               AND ($4 = '' OR search_title LIKE $4 ESCAPE '\\')
             ORDER BY document_id LIMIT $6"
        )))
        .bind(tenant.site_key())
        .bind(after.unwrap_or("").to_owned())
        .bind(query.product.map_or("", Product::as_str))
        .bind(
            query
                .title_contains
                .as_deref()
                .map(domain::contains_pattern)
                .unwrap_or_default(),
        )
        .bind(i64::from(query.with_bodies))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(tenant.pool())
        .await?;
        rows.iter().map(document_from_row).collect()
    }

    /// Applies `change` in one transaction: the current row is read and locked, checked
    /// against `expected_version`, updated at the next version, and that version is
    /// added to the history. A change that changes nothing writes nothing.
    pub async fn update(
        &self,
        tenant: &LiveTenant,
        document_id: DocumentId,
        expected_version: Option<i64>,
        change: &DocumentChange,
    ) -> Result<Document, ProductDataError> {
        let mut tx = tenant.begin().await?;
        let current =
            self.locked(&mut tx, document_id)
                .await?
                .ok_or(ProductDataError::DocumentNotFound {
                    site_id: tenant.site_id(),
                    document_id,
                })?;
        if let Some(expected) = expected_version
            && expected != current.version
        {
            return Err(ProductDataError::VersionMismatch {
                document_id,
                expected,
                actual: current.version,
            });
        }
        let Some(content) = current.content.apply(document_id, change)? else {
            return Ok(current);
        };
        let now = tx.now();
        let version = current.version + 1;
        tx.update(
            DOCUMENTS,
            &document_id.to_string(),
            &[
                ("title", Value::from(content.title())),
                ("search_title", Value::from(domain::fold(content.title()))),
                (
                    "status",
                    Value::from(content.status().map(IssueStatus::as_str)),
                ),
                ("body", Value::from(content.body())),
                ("version", Value::from(version)),
                ("update_time", Value::from(now)),
            ],
        )
        .await?;
        insert_version(
            &mut tx,
            document_id,
            current.app_installation_id,
            version,
            &content,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Document {
            content,
            version,
            update_time: now,
            ..current
        })
    }

    /// Reads a document inside `tx`, locking its row on PostgreSQL so that two updates
    /// cannot both take the next version (SQLite's write transactions are serial anyway).
    async fn locked(
        &self,
        tx: &mut TenantTx,
        document_id: DocumentId,
    ) -> Result<Option<Document>, ProductDataError> {
        let lock = match self.shards[0].store().backend() {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        let site_key = tx.site_id().to_string();
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DOCUMENT_COLUMNS}, body FROM documents
             WHERE site_id = $1 AND document_id = $2 AND deleted_by IS NULL{lock}"
        )))
        .bind(site_key)
        .bind(document_id.to_string())
        .fetch_optional(tx.connection())
        .await?;
        row.as_ref().map(document_from_row).transpose()
    }

    /// Moves the document to the trash, marked as deleted by `user_id`; returns when.
    pub async fn trash(
        &self,
        tenant: &LiveTenant,
        document_id: DocumentId,
        user_id: UserId,
    ) -> Result<i64, ProductDataError> {
        let mut tx = tenant.begin().await?;
        let now = tx.now();
        let trashed = tx
            .trash(DOCUMENTS, &document_id.to_string(), &user_id.to_string())
            .await?;
        if trashed == 0 {
            return Err(ProductDataError::DocumentNotFound {
                site_id: tenant.site_id(),
                document_id,
            });
        }
        tx.commit().await?;
        Ok(now)
    }

    /// The versions of `document` after version `after`, oldest first.
    pub async fn versions(
        &self,
        tenant: &LiveTenant,
        document: &Document,
        after: i64,
        limit: usize,
        with_bodies: bool,
    ) -> Result<Vec<DocumentVersion>, ProductDataError> {
        let rows = sqlx::query(
            "SELECT version, title, status, CASE WHEN $4 = 1 THEN body END AS body, create_time
             FROM document_versions
             WHERE site_id = $1 AND document_id = $2 AND deleted_by IS NULL AND version > $3
             ORDER BY version LIMIT $5",
        )
        .bind(tenant.site_key())
        .bind(document.document_id.to_string())
        .bind(after)
        .bind(i64::from(with_bodies))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(tenant.pool())
        .await?;
        let product = document.content.product().as_str();
        rows.iter()
            .map(|row| {
                Ok(DocumentVersion {
                    version: row.try_get("version")?,
                    content: content_from_row(row, product)?,
                    create_time: row.try_get("create_time")?,
                })
            })
            .collect()
    }
}

/// The next number of an issue in `project_key` on the transaction's site: one past the
/// highest ever given, trashed issues included.
async fn next_issue_number(tx: &mut TenantTx, project_key: &str) -> Result<i64, ProductDataError> {
    let site_key = tx.site_id().to_string();
    let highest: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(issue_number) FROM documents
         WHERE site_id = $1 AND product = 'jira' AND project_key = $2",
    )
    .bind(site_key)
    .bind(project_key.to_owned())
    .fetch_one(tx.connection())
    .await?;
    Ok(highest.unwrap_or(0) + 1)
}

async fn insert_version(
    tx: &mut TenantTx,
    document_id: DocumentId,
    app_installation_id: Option<AppInstallationId>,
    version: i64,
    content: &Content,
    now: i64,
) -> Result<(), ProductDataError> {
    tx.insert(
        DOCUMENT_VERSIONS,
        &[
            (
                "version_key",
                Value::from(format!("{document_id}:{version}")),
            ),
            ("document_id", Value::from(document_id.to_string())),
            (
                "app_installation_id",
                Value::from(app_installation_id.map(|app| app.to_string())),
            ),
            ("version", Value::from(version)),
            ("title", Value::from(content.title())),
            (
                "status",
                Value::from(content.status().map(IssueStatus::as_str)),
            ),
            ("body", Value::from(content.body())),
            ("create_time", Value::from(now)),
        ],
    )
    .await?;
    Ok(())
}

fn stored<T>(
    what: &str,
    text: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, ProductDataError> {
    parse(text).ok_or_else(|| {
        ProductDataError::Lifecycle(LifecycleError::Misuse(format!(
            "unknown {what} `{text}` stored"
        )))
    })
}

/// A version's content (`title`, `status`, `body`) for a document of `product`; a body
/// left out of the query reads as empty.
fn content_from_row(row: &AnyRow, product: &str) -> Result<Content, ProductDataError> {
    let title: String = row.try_get("title")?;
    Ok(match stored("product", product, Product::parse)? {
        Product::Jira => {
            let status: Option<String> = row.try_get("status")?;
            Content::Issue {
                summary: title,
                status: stored(
                    "issue status",
                    status.as_deref().unwrap_or(""),
                    IssueStatus::parse,
                )?,
            }
        }
        Product::Confluence => Content::Page {
            title,
            body: row
                .try_get::<Option<String>, _>("body")?
                .unwrap_or_default(),
        },
    })
}

fn document_from_row(row: &AnyRow) -> Result<Document, ProductDataError> {
    let document_id: String = row.try_get("document_id")?;
    let site_id: String = row.try_get("site_id")?;
    let product: String = row.try_get("product")?;
    let app_installation_id: Option<String> = row.try_get("app_installation_id")?;
    let project_key: Option<String> = row.try_get("project_key")?;
    Ok(Document {
        document_id: parse_id("document_id", &document_id)?,
        site_id: parse_id("site_id", &site_id)?,
        app_installation_id: app_installation_id
            .map(|app| parse_id("app_installation_id", &app))
            .transpose()?,
        issue_key: project_key
            .map(|project_key| -> Result<IssueKey, ProductDataError> {
                Ok(IssueKey {
                    project_key,
                    number: row.try_get("issue_number")?,
                })
            })
            .transpose()?,
        content: content_from_row(row, &product)?,
        version: row.try_get("version")?,
        create_time: row.try_get("create_time")?,
        update_time: row.try_get("update_time")?,
    })
}
