//! The attachment operations, independent of gRPC: bytes go to the object store first,
//! and the row that makes them visible is committed only once they are verified, so a
//! refused or interrupted upload leaves neither a row nor a blob behind.

use std::sync::Arc;

use futures::{Stream, stream::BoxStream};
use micros_platform::{
    admission::SiteAdmission,
    ids::{MediaId, SiteId},
    lifecycle::LiveTenant,
};

use tokio::sync::Semaphore;

use crate::{
    blobs::BlobStore,
    domain::{Attachment, NewUpload, Part, Piece},
    error::MediaError,
    store::MediaStore,
    transfer::{self, StagedBlob},
};

/// Upload and download bounds, from the settings.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_upload_bytes: u64,
    pub max_chunk_bytes: usize,
    pub download_chunk_bytes: usize,
    pub uploads_in_flight: usize,
}

#[derive(Debug, Clone)]
pub struct Attachments {
    store: MediaStore,
    blobs: BlobStore,
    limits: Limits,
    admission: SiteAdmission,
    /// One permit per upload whose bytes may be buffered at once.
    upload_slots: Arc<Semaphore>,
}

impl Attachments {
    pub fn new(
        store: MediaStore,
        blobs: BlobStore,
        limits: Limits,
        admission: SiteAdmission,
    ) -> Self {
        Self {
            store,
            blobs,
            limits,
            admission,
            upload_slots: Arc::new(Semaphore::new(limits.uploads_in_flight)),
        }
    }

    /// The live site's handle; NOT_FOUND (SITE_DELETED, SITE_NOT_FOUND) otherwise.
    pub async fn tenant(&self, site_id: SiteId) -> Result<LiveTenant, MediaError> {
        Ok(self.store.lifecycle().live(site_id).await?)
    }

    /// Stores `parts` as the attachment `upload` describes, uploaded by `created_by`.
    pub async fn upload(
        &self,
        upload: NewUpload,
        created_by: &str,
        parts: impl Stream<Item = Result<Part, MediaError>> + Unpin,
    ) -> Result<Attachment, MediaError> {
        if upload.size_bytes > self.limits.max_upload_bytes {
            return Err(MediaError::UploadTooLarge {
                declared: upload.size_bytes,
                max: self.limits.max_upload_bytes,
            });
        }
        // The catalog confirms a site new here before any byte is staged.
        let tenant = self
            .admission
            .admit(self.store.lifecycle(), upload.site_id)
            .await?;
        if let Some(existing) = self.retried(&tenant, &upload).await? {
            return Ok(existing);
        }

        // Held until the row is written: the upload's parts are in memory until then.
        let _slot = self
            .upload_slots
            .acquire()
            .await
            .expect("the upload semaphore is never closed");
        let mut staged =
            StagedBlob::start(&self.blobs, &self.store, upload.site_id, upload.media_id).await?;
        let stored = async {
            transfer::receive(&mut staged, parts, &upload, self.limits.max_chunk_bytes).await?;
            staged.finish().await
        }
        .await;
        if let Err(error) = stored {
            staged.discard().await;
            return Err(error);
        }
        let attachment = Attachment {
            media_id: upload.media_id,
            site_id: upload.site_id,
            app_installation_id: upload.app_installation_id,
            file_name: upload.file_name.clone(),
            content_type: upload.content_type.clone(),
            size_bytes: upload.size_bytes,
            sha256: upload.sha256.clone(),
            blob_key: staged.key().to_owned(),
            create_time: self.store.lifecycle().now(),
            created_by: created_by.to_owned(),
        };
        match self.store.insert(&tenant, &attachment).await {
            Ok(()) => {
                staged.settle();
                tracing::info!(site_id = %attachment.site_id, media_id = %attachment.media_id, size_bytes = attachment.size_bytes, "attachment stored");
                Ok(attachment)
            }
            Err(error) => {
                staged.discard().await;
                match error {
                    // A concurrent upload with the same ID committed first.
                    MediaError::MediaIdTaken { .. } => {
                        self.retried(&tenant, &upload).await?.ok_or(error)
                    }
                    other => Err(other),
                }
            }
        }
    }

    /// The attachment a retried upload already stored; `MediaIdTaken` when the ID holds
    /// something else on this site.
    async fn retried(
        &self,
        tenant: &LiveTenant,
        upload: &NewUpload,
    ) -> Result<Option<Attachment>, MediaError> {
        match self
            .store
            .attachment_any_state(tenant, upload.media_id)
            .await?
        {
            None => Ok(None),
            Some((existing, true)) if upload.matches(&existing) => Ok(Some(existing)),
            Some(_) => Err(MediaError::MediaIdTaken {
                media_id: upload.media_id,
            }),
        }
    }

    pub async fn get(&self, site_id: SiteId, media_id: MediaId) -> Result<Attachment, MediaError> {
        let tenant = self.tenant(site_id).await?;
        self.store
            .attachment(&tenant, media_id)
            .await?
            .ok_or(MediaError::AttachmentNotFound { site_id, media_id })
    }

    /// The attachment and its bytes, in pieces checked against its size and SHA-256.
    pub async fn download(
        &self,
        site_id: SiteId,
        media_id: MediaId,
    ) -> Result<(Attachment, BoxStream<'static, Result<Piece, MediaError>>), MediaError> {
        let attachment = self.get(site_id, media_id).await?;
        let source = match self.blobs.read(&attachment.blob_key).await {
            Ok(source) => source,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(MediaError::BlobMissing { media_id });
            }
            Err(error) => return Err(error.into()),
        };
        let pieces = transfer::pieces(
            media_id,
            source,
            attachment.size_bytes,
            attachment.sha256.clone(),
            self.limits.download_chunk_bytes,
        );
        Ok((attachment, pieces))
    }

    /// Live attachments after the key `after`, at most `limit`; none for a site the
    /// catalog has active that has no attachment here yet.
    pub async fn list(
        &self,
        site_id: SiteId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Attachment>, MediaError> {
        match self.admission.read(self.store.lifecycle(), site_id).await? {
            Some(tenant) => self.store.attachments(&tenant, after, limit).await,
            None => Ok(Vec::new()),
        }
    }

    /// A user's delete, marked with the deleting principal so that no restore of an
    /// operation revives it. The bytes stay until the site is purged.
    pub async fn delete(
        &self,
        site_id: SiteId,
        media_id: MediaId,
        deleted_by: &str,
    ) -> Result<(), MediaError> {
        let tenant = self.tenant(site_id).await?;
        if self.store.trash(&tenant, media_id, deleted_by).await? {
            tracing::info!(%site_id, %media_id, deleted_by, "attachment deleted by a user");
            Ok(())
        } else {
            Err(MediaError::AttachmentNotFound { site_id, media_id })
        }
    }
}
