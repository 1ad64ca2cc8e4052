//! Media's S3 path against a real S3-protocol server (`s3s-fs`), configured as a cluster
//! configures it (`object_store = "s3"`, an endpoint, the AWS key variables): an upload
//! becomes one object in the bucket holding exactly its bytes and downloads back intact,
//! a refused upload leaves nothing in the bucket, and many parallel uploads stay within
//! the container's memory.

mod support;

use micros_media::Media;
use micros_platform::{
    auth::Role,
    ids::SiteId,
    service::MicrosService,
    testing::{S3Server, ServiceProcess},
};
use micros_proto::{
    catalog::v1::{CreateSiteRequest, catalog_service_client::CatalogServiceClient},
    media::v1::{
        Chunk, DownloadRequest, UploadMetadata, UploadRequest,
        media_service_client::MediaServiceClient, upload_request::Part,
    },
};
use sha2::Digest;
use tonic::Code;
use tonic_types::StatusExt;

const MICROS: &str = env!("CARGO_BIN_EXE_micros");
const BUCKET: &str = "micros-media";
const ACCESS_KEY: &str = "micros-test";
const SECRET_KEY: &str = "micros-test-secret-key";
const CASTAGNOLI: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
/// Parallel uploads in the memory test: unbounded, media peaked at 172 MiB with them.
const UPLOADS: usize = 32;

/// A catalog process for media to ask about sites (media takes a site's first data only
/// for a site the catalog has active).
fn catalog() -> ServiceProcess {
    ServiceProcess::start(
        MICROS.as_ref(),
        "catalog",
        &[("MICROS__SERVICE__PRODUCT_DATA_SHARDS", "4")],
    )
    .expect("the catalog starts")
}

/// A new site in the catalog at `catalog_url`.
async fn site(catalog_url: &str) -> SiteId {
    let host = SiteId::new().uuid().simple().to_string();
    let site = CatalogServiceClient::new(support::connect(catalog_url, "admin", &[Role::Admin]))
        .create_site(CreateSiteRequest {
            name: format!("S3 site {}", &host[20..]),
            url: format!("https://s{host}.example.com"),
            region: "eu-west".to_owned(),
            site_id: String::new(),
        })
        .await
        .expect("create a site")
        .into_inner();
    SiteId::parse(&site.site_id).expect("a site ID")
}

/// The messages of an upload of `data` whose metadata declares `sha256`.
fn upload(site_id: SiteId, data: &[u8], sha256: String) -> Vec<UploadRequest> {
    let metadata = UploadMetadata {
        site_id: site_id.to_string(),
        file_name: "scan.pdf".to_owned(),
        content_type: "application/pdf".to_owned(),
        size_bytes: i64::try_from(data.len()).unwrap(),
        sha256,
        ..Default::default()
    };
    let mut messages = vec![UploadRequest {
        part: Some(Part::Metadata(metadata)),
    }];
    messages.extend(data.chunks(1 << 20).map(|piece| UploadRequest {
        part: Some(Part::Chunk(Chunk {
            data: piece.to_vec(),
            crc32c: Some(CASTAGNOLI.checksum(piece)),
        })),
    }));
    messages
}

#[test]
fn media_stores_attachments_in_an_s3_bucket() {
    let Some(s3) = S3Server::start(BUCKET, ACCESS_KEY, SECRET_KEY) else {
        return;
    };
    let endpoint = s3.endpoint();
    let catalog = catalog();
    let catalog_url = format!("http://{}", catalog.addr());
    let media = ServiceProcess::start(
        MICROS.as_ref(),
        "media",
        &[
            ("MICROS__CLIENTS__CATALOG__URL", &catalog_url),
            ("MICROS__SERVICE__OBJECT_STORE", "s3"),
            ("MICROS__SERVICE__S3__BUCKET", BUCKET),
            ("MICROS__SERVICE__S3__ENDPOINT", &endpoint),
            ("MICROS__SERVICE__S3__ALLOW_HTTP", "true"),
            ("MICROS__SERVICE__S3__REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ],
    )
    .expect("media starts on the S3 store");
    let url = format!("http://{}", media.addr());
    // Three multipart parts of 5 MiB and a short last one.
    let data: Vec<u8> = (0..16 * 1024 * 1024 + 4321u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let site_id = site(&catalog_url).await;
        let mut client =
            MediaServiceClient::new(support::connect(&url, "uploader", &[Role::Admin]))
                .max_decoding_message_size(8 << 20);
        let sha256 = format!("{:x}", sha2::Sha256::digest(&data));
        let attachment = client
            .upload(tokio_stream::iter(upload(site_id, &data, sha256)))
            .await
            .unwrap_or_else(|status| panic!("upload refused: {status:?}\n{}", media.log()))
            .into_inner();

        let keys = s3.keys(BUCKET);
        let prefix = format!("{site_id}/{}/", attachment.media_id);
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert!(keys[0].starts_with(&prefix), "{keys:?}");
        let stored = std::fs::read(s3.bucket_dir(BUCKET).join(&keys[0])).unwrap();
        assert!(
            stored == data,
            "the object holds other bytes than were uploaded"
        );

        let mut chunks = client
            .download(DownloadRequest {
                site_id: site_id.to_string(),
                media_id: attachment.media_id.clone(),
            })
            .await
            .expect("download")
            .into_inner();
        let mut downloaded = Vec::new();
        while let Some(chunk) = chunks.message().await.expect("download chunk") {
            downloaded.extend_from_slice(&chunk.data);
        }
        assert!(downloaded == data, "the download differs from the upload");

        let wrong = format!("{:x}", sha2::Sha256::digest(b"something else"));
        let refused = client
            .upload(tokio_stream::iter(upload(site_id, &data, wrong)))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::DataLoss, "{refused:?}");
        assert_eq!(
            refused.get_details_error_info().unwrap().reason,
            "CONTENT_CHECKSUM_MISMATCH"
        );
        assert_eq!(
            s3.keys(BUCKET),
            keys,
            "a refused upload left an object behind"
        );
    });
}

/// Many uploads at once stay within the memory the container has: each one buffers a
/// few 5 MiB multipart parts, so without a bound parallel uploads grow past the pod's
/// limit and the kubelet's OOM kill ends every upload in it. Media runs with its
/// descriptor's limit, as the cluster passes it, and must peak below half of it.
#[test]
fn parallel_uploads_stay_within_the_memory_limit() {
    let Some(s3) = S3Server::start(BUCKET, ACCESS_KEY, SECRET_KEY) else {
        return;
    };
    let endpoint = s3.endpoint();
    let limit = u64::from(Media::DESCRIPTOR.resources.limits.memory_mib) << 20;
    let limit_setting = limit.to_string();
    let catalog = catalog();
    let catalog_url = format!("http://{}", catalog.addr());
    let media = ServiceProcess::start(
        MICROS.as_ref(),
        "media",
        &[
            ("MICROS__CLIENTS__CATALOG__URL", &catalog_url),
            ("MICROS__SERVICE__OBJECT_STORE", "s3"),
            ("MICROS__SERVICE__S3__BUCKET", BUCKET),
            ("MICROS__SERVICE__S3__ENDPOINT", &endpoint),
            ("MICROS__SERVICE__S3__ALLOW_HTTP", "true"),
            ("MICROS__SERVICE__S3__REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("MICROS__SERVICE__MEMORY_LIMIT_BYTES", &limit_setting),
        ],
    )
    .expect("media starts on the S3 store within its memory limit");
    let url = format!("http://{}", media.addr());
    let data: Vec<u8> = (0..12 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let sha256 = format!("{:x}", sha2::Sha256::digest(&data));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let started = std::time::Instant::now();
    runtime.block_on(async {
        let mut sites = Vec::with_capacity(UPLOADS);
        for _ in 0..UPLOADS {
            sites.push(site(&catalog_url).await);
        }
        let uploads: Vec<_> = sites
            .into_iter()
            .map(|site_id| {
                let mut client =
                    MediaServiceClient::new(support::connect(&url, "uploader", &[Role::Admin]));
                let messages = upload(site_id, &data, sha256.clone());
                tokio::spawn(async move { client.upload(tokio_stream::iter(messages)).await })
            })
            .collect();
        for upload in uploads {
            upload.await.unwrap().expect("every upload is stored");
        }
    });
    let peak = media.peak_memory().expect("/proc tells the peak");
    eprintln!(
        "{UPLOADS} uploads of 12 MiB in {:?}: media peaked at {} MiB",
        started.elapsed(),
        peak >> 20
    );
    assert_eq!(s3.keys(BUCKET).len(), UPLOADS);
    assert!(
        peak < limit / 2,
        "media peaked at {} MiB, over half its {} MiB limit",
        peak >> 20,
        limit >> 20
    );
}
