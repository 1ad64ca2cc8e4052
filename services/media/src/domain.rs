//! What an attachment is, and the rules its metadata follows.

use bytes::Bytes;
use micros_platform::{
    error::InvalidArgument,
    ids::{AppInstallationId, MediaId, SiteId},
};
use sha2::{Digest, Sha256};

/// The longest file name, in bytes.
const MAX_FILE_NAME_BYTES: usize = 255;
/// The longest content type, in bytes.
const MAX_CONTENT_TYPE_BYTES: usize = 255;
/// The content type of an upload that names none.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// CRC32C (Castagnoli): the checksum of every chunk, both ways.
const CASTAGNOLI: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

pub fn crc32c(data: &[u8]) -> u32 {
    CASTAGNOLI.checksum(data)
}

/// Lowercase hex of a finished SHA-256.
pub fn sha256_hex(hasher: Sha256) -> String {
    format!("{:x}", hasher.finalize())
}

/// An attachment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub media_id: MediaId,
    pub site_id: SiteId,
    pub app_installation_id: Option<AppInstallationId>,
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: u64,
    /// Lowercase hex.
    pub sha256: String,
    /// Where its bytes are in the object store.
    pub blob_key: String,
    pub create_time: i64,
    pub created_by: String,
}

/// An upload's metadata, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUpload {
    pub site_id: SiteId,
    pub media_id: MediaId,
    pub app_installation_id: Option<AppInstallationId>,
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: u64,
    /// Lowercase hex.
    pub sha256: String,
}

impl NewUpload {
    /// Whether `existing` is what this upload would store (a retried upload).
    pub fn matches(&self, existing: &Attachment) -> bool {
        existing.site_id == self.site_id
            && existing.app_installation_id == self.app_installation_id
            && existing.file_name == self.file_name
            && existing.content_type == self.content_type
            && existing.size_bytes == self.size_bytes
            && existing.sha256 == self.sha256
    }
}

/// One chunk of an upload, as received.
#[derive(Debug, Clone)]
pub struct Part {
    pub data: Bytes,
    /// The sender's CRC32C of `data`.
    pub crc32c: Option<u32>,
}

/// One chunk of a download.
#[derive(Debug, Clone)]
pub struct Piece {
    pub offset: u64,
    pub data: Bytes,
}

pub fn file_name(value: &str) -> Result<String, InvalidArgument> {
    if value.is_empty() {
        return Err(InvalidArgument::missing("file_name"));
    }
    if value.len() > MAX_FILE_NAME_BYTES || value.chars().any(char::is_control) {
        return Err(InvalidArgument::field(
            "file_name",
            "INVALID_FILE_NAME",
            value,
            format!("must be at most {MAX_FILE_NAME_BYTES} bytes without control characters"),
        ));
    }
    Ok(value.to_owned())
}

/// `type/subtype` with optional parameters; empty is [`DEFAULT_CONTENT_TYPE`].
pub fn content_type(value: &str) -> Result<String, InvalidArgument> {
    if value.is_empty() {
        return Ok(DEFAULT_CONTENT_TYPE.to_owned());
    }
    let essence = value.split(';').next().unwrap_or_default().trim();
    let token = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let valid = value.len() <= MAX_CONTENT_TYPE_BYTES
        && !value.chars().any(char::is_control)
        && essence
            .split_once('/')
            .is_some_and(|(kind, subtype)| token(kind) && token(subtype));
    if !valid {
        return Err(InvalidArgument::field(
            "content_type",
            "INVALID_CONTENT_TYPE",
            value,
            "must be a media type like `image/png`",
        ));
    }
    Ok(value.to_owned())
}

/// 64 hex digits, returned lowercase.
pub fn sha256(value: &str) -> Result<String, InvalidArgument> {
    if value.is_empty() {
        return Err(InvalidArgument::missing("sha256"));
    }
    if value.len() != 64 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(InvalidArgument::field(
            "sha256",
            "INVALID_SHA256",
            value,
            "must be the 64 hex digits of a SHA-256",
        ));
    }
    Ok(value.to_ascii_lowercase())
}

/// A declared size: not negative.
pub fn size_bytes(value: i64) -> Result<u64, InvalidArgument> {
    u64::try_from(value).map_err(|_| {
        InvalidArgument::field(
            "size_bytes",
            "INVALID_SIZE",
            value.to_string(),
            "must not be negative",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_is_castagnoli() {
        // The check value of CRC-32C.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn sha256_of_nothing() {
        assert_eq!(
            sha256_hex(Sha256::new()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn metadata_rules() {
        assert_eq!(file_name("report.pdf").unwrap(), "report.pdf");
        assert!(file_name("").is_err());
        assert!(file_name("a\nb").is_err());
        assert!(file_name(&"x".repeat(256)).is_err());
        assert_eq!(content_type("").unwrap(), DEFAULT_CONTENT_TYPE);
        assert_eq!(
            content_type("text/plain; charset=UTF-8").unwrap(),
            "text/plain; charset=UTF-8"
        );
        assert!(content_type("png").is_err());
        assert!(content_type("image/").is_err());
        assert_eq!(sha256(&"AB".repeat(32)).unwrap(), "ab".repeat(32));
        assert!(sha256("abc").is_err());
        assert!(sha256(&"zz".repeat(32)).is_err());
        assert!(size_bytes(-1).is_err());
        assert_eq!(size_bytes(0).unwrap(), 0);
    }
}
