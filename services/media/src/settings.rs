//! Media's own settings (`[service]` in its config, `MICROS__SERVICE__…`): where bytes
//! are stored and how large uploads and their chunks may be.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use micros_platform::config::Validate;

use crate::blobs::UPLOAD_PARTS_BYTES;

const MIB: u64 = 1024 * 1024;

/// The largest chunk a setting may allow: a chunk travels in one gRPC message, and the
/// server decodes messages of at most 4 MiB.
const CHUNK_CEILING: u32 = 3 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaSettings {
    /// Where bytes are stored: `local` (a directory, the default) or `s3`.
    pub object_store: ObjectStoreKind,
    /// The directory of the `local` store. Unset, it is `media-blobs` inside the data
    /// directory of a `sqlite://<dir>` store URL; with any other store URL it must be set.
    pub blob_dir: Option<PathBuf>,
    /// The bucket of the `s3` store.
    pub s3: S3Settings,
    /// The largest attachment, in bytes: a larger declared size is refused before any
    /// byte is stored.
    pub max_upload_bytes: u64,
    /// The largest chunk of an upload, in bytes.
    pub max_chunk_bytes: u32,
    /// The size of the chunks a download is sent in, in bytes.
    pub download_chunk_bytes: u32,
    /// Uploads whose bytes are buffered at once; each holds up to
    /// [`UPLOAD_PARTS_BYTES`] and a chunk. A further upload waits for a slot, its bytes
    /// held back by the client's flow-control window.
    pub uploads_in_flight: u32,
    /// The container's memory limit in bytes (0: unknown). In Kubernetes the Deployment
    /// passes it from the pod spec (downward API); start-up then refuses an upload
    /// budget that does not fit in half of it, instead of being OOM-killed under load.
    pub memory_limit_bytes: u64,
}

impl MediaSettings {
    /// The most memory uploads buffer at once.
    pub fn upload_memory_bytes(&self) -> u64 {
        u64::from(self.uploads_in_flight)
            .saturating_mul(UPLOAD_PARTS_BYTES.saturating_add(u64::from(self.max_chunk_bytes)))
    }
}

impl Default for MediaSettings {
    fn default() -> Self {
        Self {
            object_store: ObjectStoreKind::Local,
            blob_dir: None,
            s3: S3Settings::default(),
            max_upload_bytes: 256 * MIB,
            max_chunk_bytes: 1024 * 1024,
            download_chunk_bytes: 256 * 1024,
            uploads_in_flight: 4,
            memory_limit_bytes: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectStoreKind {
    /// Files under [`MediaSettings::blob_dir`].
    Local,
    /// An S3 bucket (AWS, or any S3-compatible server through `endpoint`).
    S3,
}

/// The `s3` store. Credentials are not settings: they come from the standard AWS
/// environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, a web
/// identity token or the instance's role), as every AWS tool reads them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Settings {
    /// Required with `object_store = "s3"`.
    pub bucket: String,
    /// Empty: `AWS_REGION`/`AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: String,
    /// Empty: AWS itself; otherwise an S3-compatible server (`http://minio:9000`).
    pub endpoint: String,
    /// Whether `endpoint` may be plain `http://`.
    pub allow_http: bool,
}

impl Validate for MediaSettings {
    fn validate(&self) -> Result<(), String> {
        if self.max_upload_bytes == 0 {
            return Err("max_upload_bytes: must be at least 1".to_owned());
        }
        if self.max_upload_bytes > i64::MAX as u64 {
            return Err(format!("max_upload_bytes: must be at most {}", i64::MAX));
        }
        for (key, value) in [
            ("max_chunk_bytes", self.max_chunk_bytes),
            ("download_chunk_bytes", self.download_chunk_bytes),
        ] {
            if value == 0 || value > CHUNK_CEILING {
                return Err(format!(
                    "{key}: must be between 1 and {CHUNK_CEILING} (a chunk is one gRPC message)"
                ));
            }
        }
        if self.uploads_in_flight == 0 {
            return Err("uploads_in_flight: must be at least 1".to_owned());
        }
        let budget = self.upload_memory_bytes();
        if self.memory_limit_bytes > 0 && budget > self.memory_limit_bytes / 2 {
            return Err(format!(
                "uploads_in_flight: {} uploads buffer up to {} MiB, more than half of the \
                 container's {} MiB memory limit (memory_limit_bytes); lower it or raise the \
                 limit",
                self.uploads_in_flight,
                budget >> 20,
                self.memory_limit_bytes >> 20
            ));
        }
        match self.object_store {
            ObjectStoreKind::Local => {
                if self
                    .blob_dir
                    .as_ref()
                    .is_some_and(|dir| dir.as_os_str().is_empty())
                {
                    return Err("blob_dir: must not be empty when set".to_owned());
                }
            }
            ObjectStoreKind::S3 => {
                if self.s3.bucket.trim().is_empty() {
                    return Err("s3.bucket: is required with object_store = \"s3\"".to_owned());
                }
                let endpoint = &self.s3.endpoint;
                let accepted = endpoint.is_empty()
                    || endpoint.starts_with("https://")
                    || (self.s3.allow_http && endpoint.starts_with("http://"));
                if !accepted {
                    return Err(
                        "s3.endpoint: must start with https:// (or http:// with s3.allow_http)"
                            .to_owned(),
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use micros_platform::config::{Config, Sources, load};

    use super::*;

    fn load_env(pairs: &[(&str, &str)]) -> Result<MediaSettings, String> {
        let mut env: BTreeMap<String, String> = [(
            "MICROS__AUTH__ISSUER_KEY".to_owned(),
            micros_platform::auth::SigningKey::generate()
                .public()
                .encode(),
        )]
        .into();
        env.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let sources = Sources {
            env: Some(env),
            ..Sources::default()
        };
        load(Config::<MediaSettings>::default(), &sources)
            .map(|config| config.service)
            .map_err(|error| error.to_string())
    }

    #[test]
    fn defaults_store_locally_with_the_documented_limits() {
        let settings = load_env(&[]).unwrap();
        assert_eq!(settings.object_store, ObjectStoreKind::Local);
        assert_eq!(settings.blob_dir, None);
        assert_eq!(settings.max_upload_bytes, 256 * MIB);
        assert_eq!(settings.max_chunk_bytes, 1024 * 1024);
        let chosen = load_env(&[
            ("MICROS__SERVICE__BLOB_DIR", "/var/lib/micros/blobs"),
            ("MICROS__SERVICE__MAX_UPLOAD_BYTES", "1048576"),
        ])
        .unwrap();
        assert_eq!(
            chosen.blob_dir,
            Some(PathBuf::from("/var/lib/micros/blobs"))
        );
        assert_eq!(chosen.max_upload_bytes, MIB);
    }

    #[test]
    fn s3_is_selected_and_configured_through_the_environment() {
        let settings = load_env(&[
            ("MICROS__SERVICE__OBJECT_STORE", "s3"),
            ("MICROS__SERVICE__S3__BUCKET", "micros-media"),
            ("MICROS__SERVICE__S3__REGION", "eu-west-1"),
            ("MICROS__SERVICE__S3__ENDPOINT", "http://minio:9000"),
            ("MICROS__SERVICE__S3__ALLOW_HTTP", "true"),
        ])
        .unwrap();
        assert_eq!(settings.object_store, ObjectStoreKind::S3);
        assert_eq!(settings.s3.bucket, "micros-media");
        assert_eq!(settings.s3.region, "eu-west-1");
        assert_eq!(settings.s3.endpoint, "http://minio:9000");
        assert!(settings.s3.allow_http);
    }

    #[test]
    fn the_upload_budget_must_fit_in_half_the_memory_limit() {
        let settings = load_env(&[("MICROS__SERVICE__MEMORY_LIMIT_BYTES", "268435456")]).unwrap();
        assert_eq!(settings.uploads_in_flight, 4);
        assert!(settings.upload_memory_bytes() <= 128 * MIB);
        let greedy = load_env(&[
            ("MICROS__SERVICE__MEMORY_LIMIT_BYTES", "268435456"),
            ("MICROS__SERVICE__UPLOADS_IN_FLIGHT", "16"),
        ])
        .unwrap_err();
        assert!(greedy.contains("uploads_in_flight"), "{greedy}");
        assert!(greedy.contains("256 MiB"), "{greedy}");
        let unknown_limit = load_env(&[("MICROS__SERVICE__UPLOADS_IN_FLIGHT", "16")]).unwrap();
        assert_eq!(unknown_limit.uploads_in_flight, 16);
        let none = load_env(&[("MICROS__SERVICE__UPLOADS_IN_FLIGHT", "0")]).unwrap_err();
        assert!(none.contains("uploads_in_flight"), "{none}");
    }

    #[test]
    fn bad_settings_are_refused_with_their_key() {
        let no_bucket = load_env(&[("MICROS__SERVICE__OBJECT_STORE", "s3")]).unwrap_err();
        assert!(no_bucket.contains("s3.bucket"), "{no_bucket}");
        let plain_http = load_env(&[
            ("MICROS__SERVICE__OBJECT_STORE", "s3"),
            ("MICROS__SERVICE__S3__BUCKET", "b"),
            ("MICROS__SERVICE__S3__ENDPOINT", "http://minio:9000"),
        ])
        .unwrap_err();
        assert!(plain_http.contains("s3.endpoint"), "{plain_http}");
        let typo = load_env(&[("MICROS__SERVICE__S3__BUKET", "b")]).unwrap_err();
        assert!(typo.contains("buket"), "{typo}");
        let unknown = load_env(&[("MICROS__SERVICE__OBJECT_STORE", "gcs")]).unwrap_err();
        assert!(unknown.contains("gcs"), "{unknown}");
        let huge_chunk = load_env(&[("MICROS__SERVICE__MAX_CHUNK_BYTES", "8388608")]).unwrap_err();
        assert!(huge_chunk.contains("max_chunk_bytes"), "{huge_chunk}");
    }
}
