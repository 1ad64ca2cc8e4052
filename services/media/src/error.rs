//! Everything media can refuse, and how each maps to a gRPC status.

use micros_platform::{
    error::{PlatformError, Problem},
    ids::{MediaId, SiteId},
    lifecycle::LifecycleError,
};
use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Invalid input, credentials and storage, as the platform says.
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// The tenant lifecycle's refusals (a deleted or unknown site, a purge on hold…).
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error("attachment {media_id} does not exist on site {site_id}")]
    AttachmentNotFound { site_id: SiteId, media_id: MediaId },
    #[error("media ID {media_id} is already taken by other content")]
    MediaIdTaken { media_id: MediaId },
    /// Refused before any byte is stored. INVALID_ARGUMENT, not RESOURCE_EXHAUSTED: the
    /// request can never succeed, and clients retry RESOURCE_EXHAUSTED.
    #[error("an upload of {declared} bytes is above the limit of {max} bytes")]
    UploadTooLarge { declared: u64, max: u64 },
    #[error("chunk {index} holds {size} bytes; a chunk may hold at most {max}")]
    ChunkTooLarge { index: u64, size: usize, max: usize },
    #[error("the upload declared {declared} bytes but sent {received} or more")]
    SizeMismatch { declared: u64, received: u64 },
    #[error(
        "chunk {index} at offset {offset} has CRC32C {actual:08x}, not the declared {declared:08x}"
    )]
    ChunkChecksumMismatch {
        index: u64,
        offset: u64,
        declared: u32,
        actual: u32,
    },
    #[error("the content has SHA-256 {actual}, not the declared {declared}")]
    ContentChecksumMismatch { declared: String, actual: String },
    #[error("the upload stream failed: {0}")]
    UploadInterrupted(tonic::Status),
    #[error("the bytes of attachment {media_id} are missing from the object store")]
    BlobMissing { media_id: MediaId },
    #[error("the stored bytes of attachment {media_id} do not match its size and SHA-256")]
    BlobDamaged { media_id: MediaId },
    #[error("object store: {0}")]
    BlobStore(#[from] object_store::Error),
}

micros_platform::platform_errors!(MediaError::Platform);

impl Problem for MediaError {
    fn code(&self) -> Code {
        match self {
            Self::Platform(inner) => inner.code(),
            Self::Lifecycle(inner) => inner.code(),
            Self::AttachmentNotFound { .. } => Code::NotFound,
            Self::MediaIdTaken { .. } => Code::AlreadyExists,
            Self::UploadTooLarge { .. }
            | Self::ChunkTooLarge { .. }
            | Self::SizeMismatch { .. } => Code::InvalidArgument,
            Self::ChunkChecksumMismatch { .. }
            | Self::ContentChecksumMismatch { .. }
            | Self::BlobMissing { .. }
            | Self::BlobDamaged { .. } => Code::DataLoss,
            Self::UploadInterrupted(status) => status.code(),
            Self::BlobStore(_) => Code::Internal,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Platform(inner) => inner.reason(),
            Self::Lifecycle(inner) => inner.reason(),
            Self::AttachmentNotFound { .. } => "ATTACHMENT_NOT_FOUND",
            Self::MediaIdTaken { .. } => "MEDIA_ID_TAKEN",
            Self::UploadTooLarge { .. } => "UPLOAD_TOO_LARGE",
            Self::ChunkTooLarge { .. } => "CHUNK_TOO_LARGE",
            Self::SizeMismatch { .. } => "UPLOAD_SIZE_MISMATCH",
            Self::ChunkChecksumMismatch { .. } => "CHUNK_CHECKSUM_MISMATCH",
            Self::ContentChecksumMismatch { .. } => "CONTENT_CHECKSUM_MISMATCH",
            Self::UploadInterrupted(_) => "UPLOAD_INTERRUPTED",
            Self::BlobMissing { .. } => "BLOB_MISSING",
            Self::BlobDamaged { .. } => "BLOB_DAMAGED",
            Self::BlobStore(_) => "BLOB_STORE_FAILURE",
        }
    }

    fn domain(&self) -> &'static str {
        match self {
            Self::Platform(inner) => inner.domain(),
            Self::Lifecycle(inner) => inner.domain(),
            _ => "micros.media",
        }
    }

    fn metadata(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Platform(inner) => inner.metadata(),
            Self::Lifecycle(inner) => inner.metadata(),
            Self::AttachmentNotFound { site_id, media_id } => vec![
                ("site_id", site_id.to_string()),
                ("media_id", media_id.to_string()),
            ],
            Self::MediaIdTaken { media_id }
            | Self::BlobMissing { media_id }
            | Self::BlobDamaged { media_id } => vec![("media_id", media_id.to_string())],
            Self::UploadTooLarge { declared, max } => vec![
                ("size_bytes", declared.to_string()),
                ("max_bytes", max.to_string()),
            ],
            Self::ChunkTooLarge { index, size, max } => vec![
                ("chunk", index.to_string()),
                ("size_bytes", size.to_string()),
                ("max_bytes", max.to_string()),
            ],
            Self::SizeMismatch { declared, received } => vec![
                ("declared_bytes", declared.to_string()),
                ("received_bytes", received.to_string()),
            ],
            Self::ChunkChecksumMismatch {
                index,
                offset,
                declared,
                actual,
            } => vec![
                ("chunk", index.to_string()),
                ("offset", offset.to_string()),
                ("declared_crc32c", format!("{declared:08x}")),
                ("actual_crc32c", format!("{actual:08x}")),
            ],
            Self::ContentChecksumMismatch { declared, actual } => vec![
                ("declared_sha256", declared.clone()),
                ("actual_sha256", actual.clone()),
            ],
            Self::UploadInterrupted(_) | Self::BlobStore(_) => Vec::new(),
        }
    }
}

micros_platform::status_from_problem!(MediaError);
