//! After a purge, the blobs nothing can bring back are deleted.
//!
//! A blob is kept while any row refers to it — live, deleted by a user, hidden by a
//! site's or an app's soft delete — or a change-log image does (a point-in-time restore
//! can bring that row back), and while its upload is in progress. Every other object
//! under the site's prefix goes: all of them once the site is purged, the purged app
//! installations' ones otherwise.

use micros_platform::{
    ids::SiteId,
    lifecycle::{LifecycleError, LifecycleHooks, Refusal, SiteCopy, scratch},
};
use tonic::Code;

use crate::{blobs::BlobStore, error::MediaError, store::BlobReferences};

pub struct BlobCollector {
    references: BlobReferences,
    blobs: BlobStore,
}

impl BlobCollector {
    pub fn new(references: BlobReferences, blobs: BlobStore) -> Self {
        Self { references, blobs }
    }

    /// Deletes the site's unreferenced blobs; returns how many.
    async fn collect(&self, site_id: SiteId) -> Result<usize, MediaError> {
        if self.references.site_purged(site_id).await? {
            self.references.forget_uploads(site_id).await?;
        }
        // Listed before the references are read: an object listed here either has its
        // upload marker or its committed row by then.
        let keys = self.blobs.site_keys(site_id).await?;
        let kept = self.references.kept(site_id).await?;
        let mut deleted = 0;
        for key in keys.iter().filter(|key| !kept.contains(*key)) {
            self.blobs.delete(key).await?;
            deleted += 1;
        }
        Ok(deleted)
    }
}

#[tonic::async_trait]
impl LifecycleHooks for BlobCollector {
    /// A scratch copy's attachment rows name their blobs under the scratch site (the
    /// copy renamed their keys): each origin blob is copied there, so the copy's
    /// downloads work and its purge deletes only its own objects.
    async fn after_copy(
        &self,
        connection: &mut sqlx::AnyConnection,
        copies: &[SiteCopy],
    ) -> Result<(), Refusal> {
        for copy in copies {
            let keys = self
                .references
                .blob_keys(connection, copy.origin)
                .await
                .map_err(|error| blob_copy_failed(copy, &error.to_string()))?;
            for key in keys {
                let copied = scratch::remap(copy.origin, copy.scratch, &key);
                self.blobs
                    .copy(&key, &copied)
                    .await
                    .map_err(|error| blob_copy_failed(copy, &error.to_string()))?;
            }
        }
        Ok(())
    }

    async fn after_purge(&self, sites: &[SiteId]) -> Result<(), LifecycleError> {
        let mut failed = Vec::new();
        for site_id in sites {
            match self.collect(*site_id).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(%site_id, deleted, "purged attachment blobs"),
                Err(error) => {
                    tracing::error!(%site_id, %error, "purging attachment blobs failed");
                    failed.push(site_id.to_string());
                }
            }
        }
        if failed.is_empty() {
            return Ok(());
        }
        Err(LifecycleError::Refused(Refusal {
            code: Code::Internal,
            reason: "BLOB_PURGE_FAILED",
            domain: "micros.media",
            message: format!(
                "the rows are purged but deleting the blobs of {} failed; purge again with a \
                 new operation ID to retry",
                failed.join(", ")
            ),
            metadata: vec![("site_ids", failed.join(","))],
        }))
    }
}

fn blob_copy_failed(copy: &SiteCopy, error: &str) -> Refusal {
    tracing::error!(origin = %copy.origin, scratch = %copy.scratch, error, "copying attachment blobs failed");
    Refusal {
        code: Code::Unavailable,
        reason: "BLOB_COPY_FAILED",
        domain: "micros.media",
        message: format!(
            "copying the attachment blobs of {} failed; nothing was copied, retry",
            copy.origin
        ),
        metadata: vec![
            ("site_id", copy.origin.to_string()),
            ("scratch_site_id", copy.scratch.to_string()),
        ],
    }
}
