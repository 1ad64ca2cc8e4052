//! Media's SQL, all of it. Domain reads and writes go through a site's [`LiveTenant`];
//! the upload markers and the purge's reference check read the tables directly, since
//! they concern blobs, not a live site's data.

use std::collections::HashSet;

use micros_platform::{
    error::parse_id,
    ids::{MediaId, SiteId},
    lifecycle::{Lifecycle, LiveTenant, Value},
    store::{Backend, Store},
};
use sqlx::{Row, any::AnyRow};

use crate::{domain::Attachment, error::MediaError, schema::ATTACHMENTS};

const COLUMNS: &str = "site_id, media_id, app_installation_id, file_name, content_type, \
                       size_bytes, sha256, blob_key, create_time, created_by";

#[derive(Debug, Clone)]
pub struct MediaStore {
    lifecycle: Lifecycle,
}

impl MediaStore {
    pub fn new(lifecycle: Lifecycle) -> Self {
        Self { lifecycle }
    }

    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// The attachment unless a user deleted it.
    pub async fn attachment(
        &self,
        tenant: &LiveTenant,
        media_id: MediaId,
    ) -> Result<Option<Attachment>, MediaError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM attachments
             WHERE site_id = $1 AND media_id = $2 AND deleted_by IS NULL"
        )))
        .bind(tenant.site_key())
        .bind(media_id.to_string())
        .fetch_optional(tenant.pool())
        .await?;
        row.as_ref().map(attachment_from_row).transpose()
    }

    /// The attachment with `media_id` on the site, deleted or not, and whether it is live.
    pub async fn attachment_any_state(
        &self,
        tenant: &LiveTenant,
        media_id: MediaId,
    ) -> Result<Option<(Attachment, bool)>, MediaError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS}, deleted_by FROM attachments WHERE site_id = $1 AND media_id = $2"
        )))
        .bind(tenant.site_key())
        .bind(media_id.to_string())
        .fetch_optional(tenant.pool())
        .await?;
        row.as_ref()
            .map(|row| {
                let deleted_by: Option<String> = row.try_get("deleted_by")?;
                Ok((attachment_from_row(row)?, deleted_by.is_none()))
            })
            .transpose()
    }

    /// Live attachments after `after` in media ID (creation) order.
    pub async fn attachments(
        &self,
        tenant: &LiveTenant,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Attachment>, MediaError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM attachments
             WHERE site_id = $1 AND media_id > $2 AND deleted_by IS NULL
             ORDER BY media_id LIMIT $3"
        )))
        .bind(tenant.site_key())
        .bind(after.unwrap_or("").to_owned())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(tenant.pool())
        .await?;
        rows.iter().map(attachment_from_row).collect()
    }

    /// Records that `blob_key` is being written for the site, before its first byte.
    pub async fn mark_upload(&self, site_id: SiteId, blob_key: &str) -> Result<(), MediaError> {
        sqlx::query("INSERT INTO blob_uploads (blob_key, site_id, start_time) VALUES ($1, $2, $3)")
            .bind(blob_key.to_owned())
            .bind(site_id.to_string())
            .bind(self.lifecycle.now())
            .execute(self.lifecycle.store().pool())
            .await?;
        Ok(())
    }

    /// Forgets the marker of an upload that stored nothing.
    pub async fn unmark_upload(&self, blob_key: &str) -> Result<(), MediaError> {
        sqlx::query("DELETE FROM blob_uploads WHERE blob_key = $1")
            .bind(blob_key.to_owned())
            .execute(self.lifecycle.store().pool())
            .await?;
        Ok(())
    }

    /// Whether any attachment row, deleted or not, refers to `blob_key`.
    pub async fn blob_in_use(&self, blob_key: &str) -> Result<bool, MediaError> {
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM attachments WHERE blob_key = $1")
            .bind(blob_key.to_owned())
            .fetch_one(self.lifecycle.store().pool())
            .await?;
        Ok(rows > 0)
    }

    /// Commits the row of an upload whose bytes are stored and verified, and drops its
    /// upload marker in the same transaction. A taken media ID is `MediaIdTaken`.
    pub async fn insert(
        &self,
        tenant: &LiveTenant,
        attachment: &Attachment,
    ) -> Result<(), MediaError> {
        let mut tx = tenant.begin().await?;
        let inserted = tx
            .insert(
                ATTACHMENTS,
                &[
                    ("media_id", Value::from(attachment.media_id.to_string())),
                    (
                        "app_installation_id",
                        Value::from(attachment.app_installation_id.map(|id| id.to_string())),
                    ),
                    ("file_name", Value::from(attachment.file_name.as_str())),
                    (
                        "content_type",
                        Value::from(attachment.content_type.as_str()),
                    ),
                    (
                        "size_bytes",
                        Value::from(size_column(attachment.size_bytes)),
                    ),
                    ("sha256", Value::from(attachment.sha256.as_str())),
                    ("blob_key", Value::from(attachment.blob_key.as_str())),
                    ("create_time", Value::from(attachment.create_time)),
                    ("created_by", Value::from(attachment.created_by.as_str())),
                ],
            )
            .await;
        match inserted {
            Ok(()) => {}
            Err(error) if error.conflict().is_some() => {
                return Err(MediaError::MediaIdTaken {
                    media_id: attachment.media_id,
                });
            }
            Err(other) => return Err(other.into()),
        }
        sqlx::query("DELETE FROM blob_uploads WHERE blob_key = $1")
            .bind(attachment.blob_key.clone())
            .execute(tx.connection())
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A user's delete, marked with `marker`; false when there is no live attachment.
    pub async fn trash(
        &self,
        tenant: &LiveTenant,
        media_id: MediaId,
        marker: &str,
    ) -> Result<bool, MediaError> {
        let mut tx = tenant.begin().await?;
        let marked = tx.trash(ATTACHMENTS, &media_id.to_string(), marker).await?;
        tx.commit().await?;
        Ok(marked > 0)
    }
}

/// What the purge's blob collection needs to know about a site, read without a live
/// handle: the site is purged, or its app installations' rows are.
#[derive(Debug, Clone)]
pub struct BlobReferences {
    store: Store,
}

impl BlobReferences {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The blob key of every attachment row the site has (live or deleted), read in the
    /// caller's transaction.
    pub async fn blob_keys(
        &self,
        connection: &mut sqlx::AnyConnection,
        site_id: SiteId,
    ) -> Result<Vec<String>, MediaError> {
        Ok(
            sqlx::query_scalar("SELECT blob_key FROM attachments WHERE site_id = $1")
                .bind(site_id.to_string())
                .fetch_all(&mut *connection)
                .await?,
        )
    }

    /// Whether the site's registry row says it is purged.
    pub async fn site_purged(&self, site_id: SiteId) -> Result<bool, MediaError> {
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM tenant_view WHERE site_id = $1")
                .bind(site_id.to_string())
                .fetch_optional(self.store.pool())
                .await?;
        Ok(state.as_deref() == Some("purged"))
    }

    /// Drops the markers of uploads that can never commit (their site is purged).
    pub async fn forget_uploads(&self, site_id: SiteId) -> Result<(), MediaError> {
        sqlx::query("DELETE FROM blob_uploads WHERE site_id = $1")
            .bind(site_id.to_string())
            .execute(self.store.pool())
            .await?;
        Ok(())
    }

    /// Every blob key of the site that must be kept, read in one statement (one
    /// snapshot, so an upload committing meanwhile is seen either as its marker or as its
    /// row): rows in any state, row images in the change log (a point-in-time restore
    /// can bring those rows back), and uploads in progress.
    pub async fn kept(&self, site_id: SiteId) -> Result<HashSet<String>, MediaError> {
        let logged_key = match self.store.backend() {
            Backend::Sqlite => "json_extract(before_image, '$.blob_key')",
            Backend::Postgres => "(before_image::jsonb ->> 'blob_key')",
        };
        let keys: Vec<Option<String>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT blob_key FROM attachments WHERE site_id = $1
             UNION SELECT {logged_key} FROM tenant_changes
                 WHERE site_id = $1 AND table_name = $2 AND before_image IS NOT NULL
             UNION SELECT blob_key FROM blob_uploads WHERE site_id = $1"
        )))
        .bind(site_id.to_string())
        .bind(ATTACHMENTS)
        .fetch_all(self.store.pool())
        .await?;
        Ok(keys.into_iter().flatten().collect())
    }
}

/// Sizes are at most the upload limit, which fits a BIGINT.
fn size_column(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

fn attachment_from_row(row: &AnyRow) -> Result<Attachment, MediaError> {
    let site_id: String = row.try_get("site_id")?;
    let media_id: String = row.try_get("media_id")?;
    let app_installation_id: Option<String> = row.try_get("app_installation_id")?;
    let size_bytes: i64 = row.try_get("size_bytes")?;
    Ok(Attachment {
        media_id: parse_id("media_id", &media_id)?,
        site_id: parse_id("site_id", &site_id)?,
        app_installation_id: app_installation_id
            .map(|id| parse_id("app_installation_id", &id))
            .transpose()?,
        file_name: row.try_get("file_name")?,
        content_type: row.try_get("content_type")?,
        size_bytes: u64::try_from(size_bytes).unwrap_or_default(),
        sha256: row.try_get("sha256")?,
        blob_key: row.try_get("blob_key")?,
        create_time: row.try_get("create_time")?,
        created_by: row.try_get("created_by")?,
    })
}
