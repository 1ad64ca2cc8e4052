//! Media: attachments of a site, uploaded and downloaded as streams of checksummed
//! chunks. Metadata is a tenant-owned table on the platform's lifecycle machinery; bytes
//! are in an object store (a local directory by default, S3 when configured), deleted
//! only by a purge and only once no row, live or restorable, refers to them.

mod attachments;
mod blobs;
mod domain;
mod error;
mod grpc;
mod purge;
mod schema;
mod settings;
mod store;
mod transfer;

use std::sync::Arc;

use micros_platform::{
    admission::SiteAdmission,
    config::Config,
    lifecycle::{Lifecycle, grpc::LifecycleService},
    server::{Server, ServerBuilder},
    service::{MicrosService, ServiceContext, ServiceDescriptor, service_clients},
    store::Store,
};
use micros_proto::media::v1::media_service_server::MediaServiceServer;

pub use error::MediaError;
pub use schema::SCHEMA;
pub use settings::{MediaSettings, ObjectStoreKind, S3Settings};

/// The media service, as the platform runs it.
pub struct Media;

impl MicrosService for Media {
    type Settings = MediaSettings;

    const DESCRIPTOR: ServiceDescriptor = ServiceDescriptor {
        name: "media",
        port: 50054,
        metrics_port: 51054,
        databases: &["media"],
        depends_on: &["catalog"],
        bucket: Some("micros-media"),
        memory_limit_setting: Some("MICROS__SERVICE__MEMORY_LIMIT_BYTES"),
        ..ServiceDescriptor::BASE
    };

    async fn build(
        config: Config<MediaSettings>,
        context: ServiceContext,
    ) -> anyhow::Result<Server> {
        let settings = &config.service;
        let blobs = blobs::BlobStore::open(settings, &config.store.url)?;
        tracing::info!(
            store = blobs.describe(),
            "attachment bytes go to this object store"
        );
        let store = Store::open(&config.store, "media", &micros_platform::migrations!()).await?;
        let collector =
            purge::BlobCollector::new(store::BlobReferences::new(store.clone()), blobs.clone());
        let lifecycle = Lifecycle::open(
            store,
            SCHEMA,
            context.clock.clone(),
            config.lifecycle.clone(),
            Arc::new(collector),
        )
        .await?;
        lifecycle.spawn_pruner(config.lifecycle.prune_interval);
        let limits = attachments::Limits {
            max_upload_bytes: settings.max_upload_bytes,
            max_chunk_bytes: usize::try_from(settings.max_chunk_bytes)?,
            download_chunk_bytes: usize::try_from(settings.download_chunk_bytes)?,
            uploads_in_flight: usize::try_from(settings.uploads_in_flight)?,
        };
        let admission = SiteAdmission::connect(&service_clients(&Self::DESCRIPTOR, &config)?)?;
        let api = grpc::MediaApi::new(attachments::Attachments::new(
            store::MediaStore::new(lifecycle.clone()),
            blobs,
            limits,
            admission,
        ));
        Ok(ServerBuilder::new(&config.server, &config.auth)
            .add_service(MediaServiceServer::new(api))
            .add_service(LifecycleService::server(lifecycle))
            .bind()
            .await?)
    }
}
