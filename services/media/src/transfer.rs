//! Bytes in and out: an upload streams verified chunks into a staged blob, a download
//! streams a blob back in chunks while checking it against its recorded size and SHA-256.
//! Neither holds more than a few parts of an attachment in memory.

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt, stream::BoxStream};
use micros_platform::ids::{MediaId, SiteId};
use object_store::WriteMultipart;
use sha2::{Digest, Sha256};

use crate::{
    blobs::{BlobStore, PARTS_IN_FLIGHT},
    domain::{NewUpload, Part, Piece, crc32c, sha256_hex},
    error::MediaError,
    store::MediaStore,
};

/// A blob written for an upload whose row is not committed yet, with its marker in
/// `blob_uploads`. Unless [`StagedBlob::settle`]d after the row commits, it removes what
/// it wrote and its marker: awaited through [`StagedBlob::discard`], or in the background
/// when the call is dropped mid-way (a client that hangs up, a deadline).
pub struct StagedBlob {
    key: String,
    blobs: BlobStore,
    store: MediaStore,
    state: Staged,
}

enum Staged {
    Writing(WriteMultipart),
    /// Complete in the object store (or failed to complete); no row refers to it yet.
    Stored,
    /// Its row is committed, or it was cleaned up.
    Settled,
}

impl StagedBlob {
    /// Marks the key as an upload in progress, then starts writing it.
    pub async fn start(
        blobs: &BlobStore,
        store: &MediaStore,
        site_id: SiteId,
        media_id: MediaId,
    ) -> Result<Self, MediaError> {
        let key = BlobStore::new_key(site_id, media_id);
        store.mark_upload(site_id, &key).await?;
        match blobs.start(&key).await {
            Ok(write) => Ok(Self {
                key,
                blobs: blobs.clone(),
                store: store.clone(),
                state: Staged::Writing(write),
            }),
            Err(error) => {
                if let Err(cleanup) = store.unmark_upload(&key).await {
                    tracing::warn!(%cleanup, key, "could not drop an upload marker");
                }
                Err(error.into())
            }
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Appends `data`, waiting while too many parts are in flight.
    async fn write(&mut self, data: Bytes) -> Result<(), MediaError> {
        if let Staged::Writing(write) = &mut self.state {
            write.wait_for_capacity(PARTS_IN_FLIGHT).await?;
            write.put(data);
        }
        Ok(())
    }

    /// Completes the object; only then is anything visible under its key.
    pub async fn finish(&mut self) -> Result<(), MediaError> {
        if let Staged::Writing(write) = std::mem::replace(&mut self.state, Staged::Stored) {
            write.finish().await?;
        }
        Ok(())
    }

    /// The row referring to the blob is committed: keep it.
    pub fn settle(mut self) {
        self.state = Staged::Settled;
    }

    /// Removes what was written, and the marker.
    pub async fn discard(mut self) {
        let state = std::mem::replace(&mut self.state, Staged::Settled);
        clean_up(&self.blobs, &self.store, &self.key, state).await;
    }
}

impl Drop for StagedBlob {
    fn drop(&mut self) {
        let state = std::mem::replace(&mut self.state, Staged::Settled);
        if matches!(state, Staged::Settled) {
            return;
        }
        let (blobs, store, key) = (self.blobs.clone(), self.store.clone(), self.key.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { clean_up(&blobs, &store, &key, state).await });
            }
            Err(_) => tracing::warn!(key, "an interrupted upload could not be cleaned up"),
        }
    }
}

/// Best effort: a failure is logged, and what is left stays marked or unreferenced,
/// so the site's purge still finds it.
async fn clean_up(blobs: &BlobStore, store: &MediaStore, key: &str, state: Staged) {
    let removed = match state {
        Staged::Settled => return,
        Staged::Writing(write) => write.abort().await.map_err(MediaError::from),
        Staged::Stored => match store.blob_in_use(key).await {
            // The row committed after all (the call was dropped while committing).
            Ok(true) => return,
            Ok(false) => blobs.delete(key).await.map_err(MediaError::from),
            Err(error) => Err(error),
        },
    };
    if let Err(error) = removed {
        tracing::warn!(%error, key, "could not remove the bytes of a failed upload");
        return;
    }
    if let Err(error) = store.unmark_upload(key).await {
        tracing::warn!(%error, key, "could not drop an upload marker");
    }
}

/// Streams `parts` into `staged`, checking each chunk's size and CRC32C as it arrives,
/// cutting the stream off at the first byte beyond the declared size, then checking the
/// total size and the SHA-256 of the whole content.
pub async fn receive(
    staged: &mut StagedBlob,
    mut parts: impl Stream<Item = Result<Part, MediaError>> + Unpin,
    upload: &NewUpload,
    max_chunk_bytes: usize,
) -> Result<(), MediaError> {
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    let mut index: u64 = 0;
    while let Some(part) = parts.next().await {
        let part = part?;
        let size = part.data.len();
        if size > max_chunk_bytes {
            return Err(MediaError::ChunkTooLarge {
                index,
                size,
                max: max_chunk_bytes,
            });
        }
        let total = received.saturating_add(size as u64);
        if total > upload.size_bytes {
            return Err(MediaError::SizeMismatch {
                declared: upload.size_bytes,
                received: total,
            });
        }
        let declared = part.crc32c.ok_or_else(|| {
            micros_platform::error::InvalidArgument::missing(format!("chunk {index}: crc32c"))
        })?;
        let actual = crc32c(&part.data);
        if actual != declared {
            return Err(MediaError::ChunkChecksumMismatch {
                index,
                offset: received,
                declared,
                actual,
            });
        }
        hasher.update(&part.data);
        staged.write(part.data).await?;
        received = total;
        index += 1;
    }
    if received != upload.size_bytes {
        return Err(MediaError::SizeMismatch {
            declared: upload.size_bytes,
            received,
        });
    }
    let actual = sha256_hex(hasher);
    if actual != upload.sha256 {
        return Err(MediaError::ContentChecksumMismatch {
            declared: upload.sha256.clone(),
            actual,
        });
    }
    Ok(())
}

/// The blob's bytes re-cut into pieces of `chunk_bytes`; ends with `BlobDamaged` instead
/// of completing when they do not add up to `size_bytes` with SHA-256 `sha256`.
pub fn pieces(
    media_id: MediaId,
    source: BoxStream<'static, object_store::Result<Bytes>>,
    size_bytes: u64,
    sha256: String,
    chunk_bytes: usize,
) -> BoxStream<'static, Result<Piece, MediaError>> {
    let reader = Reader {
        media_id,
        source,
        buffer: BytesMut::new(),
        offset: 0,
        hasher: Sha256::new(),
        size_bytes,
        sha256,
        chunk_bytes,
        source_done: false,
        finished: false,
    };
    futures::stream::unfold(reader, Reader::next_piece).boxed()
}

struct Reader {
    media_id: MediaId,
    source: BoxStream<'static, object_store::Result<Bytes>>,
    buffer: BytesMut,
    offset: u64,
    hasher: Sha256,
    size_bytes: u64,
    sha256: String,
    chunk_bytes: usize,
    source_done: bool,
    finished: bool,
}

impl Reader {
    async fn next_piece(mut self) -> Option<(Result<Piece, MediaError>, Self)> {
        if self.finished {
            return None;
        }
        while !self.source_done && self.buffer.len() < self.chunk_bytes {
            match self.source.next().await {
                Some(Ok(bytes)) => self.buffer.extend_from_slice(&bytes),
                Some(Err(error)) => return self.fail(error.into()),
                None => self.source_done = true,
            }
        }
        if self.buffer.is_empty() {
            self.finished = true;
            let actual = sha256_hex(std::mem::take(&mut self.hasher));
            if self.offset != self.size_bytes || actual != self.sha256 {
                return self.damaged();
            }
            return None;
        }
        let data = self
            .buffer
            .split_to(self.chunk_bytes.min(self.buffer.len()))
            .freeze();
        self.hasher.update(&data);
        let piece = Piece {
            offset: self.offset,
            data,
        };
        self.offset += piece.data.len() as u64;
        if self.offset > self.size_bytes {
            return self.damaged();
        }
        Some((Ok(piece), self))
    }

    fn damaged(self) -> Option<(Result<Piece, MediaError>, Self)> {
        let media_id = self.media_id;
        self.fail(MediaError::BlobDamaged { media_id })
    }

    fn fail(mut self, error: MediaError) -> Option<(Result<Piece, MediaError>, Self)> {
        self.finished = true;
        Some((Err(error), self))
    }
}
