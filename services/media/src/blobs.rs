//! The object store that holds attachment bytes, through the `object_store` crate: a
//! local directory by default, S3 when configured.
//!
//! Keys are `<site_id>/<media_id>/<upload>`: every upload writes an object of its own
//! (the last segment is new each time), so no two attachment rows ever share a blob, a
//! failed or concurrent upload can only remove what it wrote itself, and everything a
//! site owns lies under its own prefix.

use std::{path::PathBuf, sync::Arc};

use bytes::Bytes;
use futures::{TryStreamExt, stream::BoxStream};
use micros_platform::{
    config::sqlite_dir,
    ids::{MediaId, SiteId},
};
use object_store::{
    ObjectStore, ObjectStoreExt, WriteMultipart, aws::AmazonS3Builder, local::LocalFileSystem,
    path::Path,
};

use crate::settings::{MediaSettings, ObjectStoreKind};

/// Parts of a multipart upload: S3's minimum part size, so memory per upload stays at
/// a few parts whatever the attachment's size.
const PART_BYTES: usize = 5 * 1024 * 1024;
/// Parts written concurrently per upload; the upload waits for one to finish beyond it.
pub const PARTS_IN_FLIGHT: usize = 2;
/// What one upload holds in memory at most, besides the chunk being received: the parts
/// in flight and the one being filled.
pub const UPLOAD_PARTS_BYTES: u64 = (PART_BYTES * (PARTS_IN_FLIGHT + 1)) as u64;
/// The local store's directory inside a `sqlite://` data directory.
const LOCAL_DIR_NAME: &str = "media-blobs";

#[derive(Debug, Clone)]
pub struct BlobStore {
    objects: Arc<dyn ObjectStore>,
}

impl BlobStore {
    /// The store the settings select; `store_url` locates the default local directory.
    pub fn open(settings: &MediaSettings, store_url: &str) -> anyhow::Result<Self> {
        let objects: Arc<dyn ObjectStore> = match settings.object_store {
            ObjectStoreKind::Local => {
                let dir = local_dir(settings, store_url)?;
                std::fs::create_dir_all(&dir).map_err(|error| {
                    anyhow::anyhow!(
                        "cannot create the blob directory {}: {error}",
                        dir.display()
                    )
                })?;
                Arc::new(LocalFileSystem::new_with_prefix(&dir)?.with_automatic_cleanup(true))
            }
            ObjectStoreKind::S3 => {
                let s3 = &settings.s3;
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(&s3.bucket)
                    .with_allow_http(s3.allow_http);
                if !s3.region.is_empty() {
                    builder = builder.with_region(&s3.region);
                }
                if !s3.endpoint.is_empty() {
                    builder = builder.with_endpoint(&s3.endpoint);
                }
                Arc::new(builder.build()?)
            }
        };
        Ok(Self { objects })
    }

    /// What the store is, for the start-up log (`LocalFileSystem(file:///…)`, `AmazonS3(bucket)`).
    pub fn describe(&self) -> String {
        self.objects.to_string()
    }

    /// A key no other upload uses.
    pub fn new_key(site_id: SiteId, media_id: MediaId) -> String {
        format!("{site_id}/{media_id}/{}", uuid::Uuid::now_v7().simple())
    }

    /// Starts writing the object `key`; nothing is visible under it until it finishes.
    pub async fn start(&self, key: &str) -> object_store::Result<WriteMultipart> {
        let upload = self.objects.put_multipart(&Path::from(key)).await?;
        Ok(WriteMultipart::new_with_chunk_size(upload, PART_BYTES))
    }

    /// The object's bytes as they are read.
    pub async fn read(
        &self,
        key: &str,
    ) -> object_store::Result<BoxStream<'static, object_store::Result<Bytes>>> {
        Ok(self.objects.get(&Path::from(key)).await?.into_stream())
    }

    /// Deletes the object; one already gone is not an error.
    pub async fn delete(&self, key: &str) -> object_store::Result<()> {
        match self.objects.delete(&Path::from(key)).await {
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            other => other,
        }
    }

    /// Copies the object at `from` to `to` (a scratch copy's blob), overwriting `to`.
    pub async fn copy(&self, from: &str, to: &str) -> object_store::Result<()> {
        self.objects.copy(&Path::from(from), &Path::from(to)).await
    }

    /// The keys of every object under the site's prefix.
    pub async fn site_keys(&self, site_id: SiteId) -> object_store::Result<Vec<String>> {
        self.objects
            .list(Some(&Path::from(site_id.to_string())))
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
    }
}

fn local_dir(settings: &MediaSettings, store_url: &str) -> anyhow::Result<PathBuf> {
    if let Some(dir) = &settings.blob_dir {
        return Ok(dir.clone());
    }
    sqlite_dir(store_url)
        .map(|data| data.join(LOCAL_DIR_NAME))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "service.blob_dir must be set (MICROS__SERVICE__BLOB_DIR) when store.url is not \
                 sqlite://, or service.object_store set to s3"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::S3Settings;

    #[test]
    fn the_local_directory_follows_the_sqlite_data_directory() {
        let settings = MediaSettings::default();
        assert_eq!(
            local_dir(&settings, "sqlite://.micros/data").unwrap(),
            PathBuf::from(".micros/data/media-blobs")
        );
        let error = local_dir(&settings, "postgres://db:5432").unwrap_err();
        assert!(error.to_string().contains("service.blob_dir"), "{error}");
        let chosen = MediaSettings {
            blob_dir: Some(PathBuf::from("/var/lib/blobs")),
            ..MediaSettings::default()
        };
        assert_eq!(
            local_dir(&chosen, "postgres://db:5432").unwrap(),
            PathBuf::from("/var/lib/blobs")
        );
    }

    #[test]
    fn an_s3_store_is_built_from_its_settings_without_a_call() {
        let settings = MediaSettings {
            object_store: ObjectStoreKind::S3,
            s3: S3Settings {
                bucket: "micros-media".to_owned(),
                region: "eu-west-1".to_owned(),
                endpoint: "http://127.0.0.1:9000".to_owned(),
                allow_http: true,
            },
            ..MediaSettings::default()
        };
        let store = BlobStore::open(&settings, "postgres://db:5432").unwrap();
        assert!(
            store.describe().contains("micros-media"),
            "{}",
            store.describe()
        );
    }
}
