//! What the media tests share: a service whose blobs are in a temporary directory,
//! uploads and downloads as a client does them, and the files of the blob directory.

#![allow(dead_code)] // Each test file uses its own part of these helpers.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use micros_catalog::{Catalog, CatalogSettings};
use micros_media::{Media, MediaSettings};
use micros_platform::{
    auth::Role,
    client::ServiceChannel,
    ids::SiteId,
    store::Backend,
    testing::{self, TestService},
};
use micros_proto::media::v1::{
    Attachment, Chunk, DownloadRequest, UploadMetadata, UploadRequest,
    media_service_client::MediaServiceClient, upload_request::Part,
};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use tonic::Status;

pub type Client = MediaServiceClient<ServiceChannel>;

pub const KIB: usize = 1024;
pub const MIB: usize = 1024 * KIB;

const CASTAGNOLI: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

pub fn crc32c(data: &[u8]) -> u32 {
    CASTAGNOLI.checksum(data)
}

pub fn sha256(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

/// A media service whose local object store is `blob_dir`.
pub struct Harness {
    pub service: TestService<Media>,
    pub client: Client,
    pub blob_dir: TempDir,
}

/// The service with default limits and a client holding an admin token.
pub async fn spawn(backend: Backend) -> Harness {
    spawn_with(backend, MediaSettings::default()).await
}

/// The service with `settings`, its blobs in a fresh temporary directory, asking a
/// catalog of its own (sites come from [`Harness::site`]).
pub async fn spawn_with(backend: Backend, settings: MediaSettings) -> Harness {
    let blob_dir = tempfile::tempdir().expect("a temporary blob directory");
    let service = testing::spawn_with_catalog::<Media, Catalog>(
        backend,
        blobs_in(&blob_dir, settings),
        CatalogSettings {
            product_data_shards: 4,
            ..CatalogSettings::default()
        },
    )
    .await;
    Harness::new(service, blob_dir)
}

/// The service with `settings`, asking the catalog at `catalog_url` (which may be down).
pub async fn spawn_asking(
    backend: Backend,
    settings: MediaSettings,
    catalog_url: String,
) -> Harness {
    let blob_dir = tempfile::tempdir().expect("a temporary blob directory");
    let service =
        testing::spawn_asking::<Media>(backend, blobs_in(&blob_dir, settings), catalog_url).await;
    Harness::new(service, blob_dir)
}

fn blobs_in(blob_dir: &TempDir, settings: MediaSettings) -> MediaSettings {
    MediaSettings {
        blob_dir: Some(blob_dir.path().to_owned()),
        ..settings
    }
}

impl Harness {
    fn new(service: TestService<Media>, blob_dir: TempDir) -> Self {
        let client = MediaServiceClient::new(service.channel(&[Role::Admin]));
        Self {
            service,
            client,
            blob_dir,
        }
    }
}

impl Harness {
    /// A site the catalog has active: one media may take attachments for.
    pub async fn site(&self) -> SiteId {
        self.service.catalog_site().await
    }

    /// Every file under the blob directory (staging files of unfinished uploads included).
    pub fn blob_files(&self) -> Vec<PathBuf> {
        files_under(self.blob_dir.path())
    }

    /// The files of one site's blobs.
    pub fn site_files(&self, site_id: SiteId) -> Vec<PathBuf> {
        files_under(&self.blob_dir.path().join(site_id.to_string()))
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Deterministic bytes that differ with `seed`.
pub fn content(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// The metadata of an upload of `data` named `name`.
pub fn metadata(site_id: SiteId, name: &str, data: &[u8]) -> UploadMetadata {
    UploadMetadata {
        site_id: site_id.to_string(),
        media_id: String::new(),
        file_name: name.to_owned(),
        content_type: "application/pdf".to_owned(),
        size_bytes: i64::try_from(data.len()).unwrap(),
        sha256: sha256(data),
        app_installation_id: String::new(),
    }
}

/// A chunk with its correct CRC32C.
pub fn chunk(data: &[u8]) -> UploadRequest {
    UploadRequest {
        part: Some(Part::Chunk(Chunk {
            data: data.to_vec(),
            crc32c: Some(crc32c(data)),
        })),
    }
}

/// The messages of an upload: `metadata`, then `data` in chunks of `chunk_size`.
pub fn messages(metadata: UploadMetadata, data: &[u8], chunk_size: usize) -> Vec<UploadRequest> {
    let mut messages = vec![UploadRequest {
        part: Some(Part::Metadata(metadata)),
    }];
    messages.extend(data.chunks(chunk_size).map(chunk));
    messages
}

pub async fn send(client: &mut Client, messages: Vec<UploadRequest>) -> Result<Attachment, Status> {
    client
        .upload(futures::stream::iter(messages))
        .await
        .map(tonic::Response::into_inner)
}

/// Uploads `data` in 256 KiB chunks.
pub async fn upload(client: &mut Client, site_id: SiteId, name: &str, data: &[u8]) -> Attachment {
    send(
        client,
        messages(metadata(site_id, name, data), data, 256 * KIB),
    )
    .await
    .unwrap_or_else(|status| panic!("upload of {name} refused: {status:?}"))
}

/// Downloads an attachment, checking every chunk's CRC32C and offset on the way.
pub async fn download(
    client: &mut Client,
    site_id: SiteId,
    media_id: &str,
) -> Result<(Attachment, Vec<u8>), Status> {
    let mut chunks = client
        .download(DownloadRequest {
            site_id: site_id.to_string(),
            media_id: media_id.to_owned(),
        })
        .await?
        .into_inner();
    let header = chunks
        .next()
        .await
        .expect("a first message")?
        .attachment
        .expect("the attachment in the first message");
    let mut data = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        assert!(chunk.attachment.is_none(), "only the first message has it");
        assert_eq!(
            chunk.offset,
            i64::try_from(data.len()).unwrap(),
            "contiguous"
        );
        assert_eq!(chunk.crc32c, crc32c(&chunk.data), "chunk checksum");
        data.extend_from_slice(&chunk.data);
    }
    Ok((header, data))
}
