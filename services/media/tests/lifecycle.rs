//! Media's tenant lifecycle through `micros.lifecycle.v1.TenantLifecycle` over real gRPC,
//! as the orchestrator drives it, on every configured backend: the platform's lifecycle
//! contract on attachments, then what only media has: blob files that soft delete
//! keeps and purge removes, for a site and for an app installation, and nothing of a
//! neighbour's.

mod common;

use std::time::Duration;

use common::{
    Harness, KIB, MIB, content, download, messages, metadata, send, sha256, spawn, upload,
};
use micros_media::Media;
use micros_platform::{
    clock::Clock,
    ids::{AppInstallationId, MediaId, OperationId, SiteId},
    store::timestamp,
    testing::{
        self, TestService,
        lifecycle_contract::{self, Lifecycle, app_target, rows, site_target},
        refused,
    },
};
use micros_proto::{
    lifecycle::v1::restore_request::Source,
    media::v1::{
        Attachment, DeleteAttachmentRequest, GetAttachmentRequest, ListAttachmentsRequest,
    },
};
use tonic::{Code, Status};

const DAY: Duration = Duration::from_secs(24 * 3600);

fn get(site_id: SiteId, media_id: &str) -> GetAttachmentRequest {
    GetAttachmentRequest {
        site_id: site_id.to_string(),
        media_id: media_id.to_owned(),
    }
}

fn list(site_id: SiteId) -> ListAttachmentsRequest {
    ListAttachmentsRequest {
        site_id: site_id.to_string(),
        ..ListAttachmentsRequest::default()
    }
}

impl Harness {
    async fn delete_attachment(&mut self, site_id: SiteId, media_id: &str) {
        self.client
            .delete_attachment(DeleteAttachmentRequest {
                site_id: site_id.to_string(),
                media_id: media_id.to_owned(),
            })
            .await
            .unwrap();
    }

    /// A large and a small attachment, and one a user deleted; their IDs in that order.
    async fn three_attachments(&mut self, site_id: SiteId) -> [String; 3] {
        let big = upload(
            &mut self.client,
            site_id,
            "big.bin",
            &content(2 * MIB + 777, 10),
        )
        .await;
        let small = upload(
            &mut self.client,
            site_id,
            "small.bin",
            &content(40 * KIB, 11),
        )
        .await;
        let trashed = upload(
            &mut self.client,
            site_id,
            "trashed.bin",
            &content(5 * KIB, 12),
        )
        .await;
        self.delete_attachment(site_id, &trashed.media_id).await;
        [big.media_id, small.media_id, trashed.media_id]
    }
}

impl lifecycle_contract::Subject for Harness {
    type Service = Media;
    /// Every listed attachment with the SHA-256 of the bytes a download returns.
    type View = Vec<(Attachment, String)>;

    fn service(&self) -> &TestService<Media> {
        &self.service
    }

    async fn site(&mut self) -> SiteId {
        self.service.catalog_site().await
    }

    async fn seed(&mut self, site_id: SiteId) {
        self.three_attachments(site_id).await;
    }

    /// One attachment deleted, one added.
    async fn change(&mut self, site_id: SiteId) {
        let first = self.view(site_id).await.remove(0).0;
        self.delete_attachment(site_id, &first.media_id).await;
        upload(
            &mut self.client,
            site_id,
            "late.bin",
            &content(10 * KIB, 22),
        )
        .await;
    }

    async fn view(&mut self, site_id: SiteId) -> Vec<(Attachment, String)> {
        let listed = self
            .client
            .list_attachments(list(site_id))
            .await
            .unwrap()
            .into_inner()
            .attachments;
        let mut view = Vec::new();
        for attachment in listed {
            let (_, bytes) = download(&mut self.client, site_id, &attachment.media_id)
                .await
                .unwrap();
            view.push((attachment, sha256(&bytes)));
        }
        view
    }

    async fn refusals(&mut self, site_id: SiteId) -> Vec<Status> {
        let media_id = MediaId::new().to_string();
        vec![
            download(&mut self.client, site_id, &media_id)
                .await
                .unwrap_err(),
            self.client
                .get_attachment(get(site_id, &media_id))
                .await
                .unwrap_err(),
            self.client
                .list_attachments(list(site_id))
                .await
                .unwrap_err(),
            self.client
                .delete_attachment(DeleteAttachmentRequest {
                    site_id: site_id.to_string(),
                    media_id,
                })
                .await
                .unwrap_err(),
            send(
                &mut self.client,
                messages(metadata(site_id, "late.bin", b"late"), b"late", MIB),
            )
            .await
            .unwrap_err(),
        ]
    }

    /// An attachment uploaded by a new app installation.
    async fn seed_app(&mut self, site_id: SiteId) -> Option<String> {
        let app = AppInstallationId::new().to_string();
        let data = content(30 * KIB, 21);
        let mut request = metadata(site_id, "app.bin", &data);
        request.app_installation_id = app.clone();
        send(&mut self.client, messages(request, &data, 8 * KIB))
            .await
            .unwrap();
        Some(app)
    }
}

#[tokio::test]
async fn media_keeps_the_lifecycle_contract() {
    for backend in testing::backends() {
        let mut harness = spawn(backend).await;
        lifecycle_contract::check(&mut harness).await;
        harness.service.stop().await;
    }
}

#[tokio::test]
async fn soft_delete_keeps_the_blob_files_and_purge_removes_only_the_sites() {
    for backend in testing::backends() {
        let mut harness = spawn(backend).await;
        let mut lifecycle = Lifecycle::of(&harness.service);
        let (site, neighbour) = (harness.site().await, harness.site().await);
        harness.three_attachments(site).await;
        let neighbour_data = content(300 * KIB, 13);
        let neighbour_id = upload(&mut harness.client, neighbour, "n.bin", &neighbour_data)
            .await
            .media_id;
        let neighbour_files = harness.site_files(neighbour);
        assert_eq!(neighbour_files.len(), 1, "{backend:?}");
        assert_eq!(harness.site_files(site).len(), 3);

        lifecycle
            .soft_delete(site_target(site), OperationId::new())
            .await;
        assert_eq!(
            harness.site_files(site).len(),
            3,
            "soft delete keeps the bytes"
        );
        let status = lifecycle
            .try_purge(site_target(site), OperationId::new())
            .await
            .unwrap_err();
        refused(&status, Code::FailedPrecondition, "PURGE_BEFORE_EXPIRY");
        assert_eq!(harness.site_files(site).len(), 3);

        harness.service.clock.advance(31 * DAY);
        let purged = lifecycle.purge(site_target(site), OperationId::new()).await;
        assert_eq!(rows(&purged, "attachments"), (0, 0));
        assert_eq!(purged.rows_affected, 3);
        assert_eq!(
            harness.site_files(site),
            Vec::<std::path::PathBuf>::new(),
            "the purged site's blob files are gone"
        );
        assert!(!harness.blob_dir.path().join(site.to_string()).exists());
        assert_eq!(harness.site_files(neighbour), neighbour_files);
        let (_, bytes) = download(&mut harness.client, neighbour, &neighbour_id)
            .await
            .unwrap();
        assert!(bytes == neighbour_data);
        harness.service.stop().await;
    }
}

#[tokio::test]
async fn an_app_purge_deletes_only_blobs_no_row_can_bring_back() {
    for backend in testing::backends() {
        let mut harness = spawn(backend).await;
        let mut lifecycle = Lifecycle::of(&harness.service);
        let site = harness.site().await;
        let app = AppInstallationId::new();
        let clock = harness.service.clock.clone();

        let own = content(20 * KIB, 20);
        let own_id = upload(&mut harness.client, site, "own.bin", &own)
            .await
            .media_id;
        let app_data = content(30 * KIB, 21);
        let mut request = metadata(site, "app.bin", &app_data);
        request.app_installation_id = app.to_string();
        let app_id = send(&mut harness.client, messages(request, &app_data, 8 * KIB))
            .await
            .unwrap()
            .media_id;
        clock.advance(Duration::from_secs(60));
        let before_late = clock.now();
        clock.advance(Duration::from_secs(60));
        let late = content(10 * KIB, 22);
        let late_id = upload(&mut harness.client, site, "late.bin", &late)
            .await
            .media_id;
        let late_files = harness.site_files(site);
        assert_eq!(late_files.len(), 3, "{backend:?}");

        // Back to before `late`: its row goes, and only the change log remembers it.
        clock.advance(Duration::from_secs(60));
        lifecycle
            .restore(
                site_target(site),
                Source::PointInTime(timestamp(micros_platform::store::unix_micros(before_late))),
            )
            .await;
        let status = harness
            .client
            .get_attachment(get(site, &late_id))
            .await
            .unwrap_err();
        refused(&status, Code::NotFound, "ATTACHMENT_NOT_FOUND");

        // The app is uninstalled: its attachment is hidden, then revived by a restore.
        let uninstall = OperationId::new();
        let removed = lifecycle
            .soft_delete(app_target(site, app), uninstall)
            .await;
        assert_eq!(rows(&removed, "attachments"), (0, 1));
        let status = download(&mut harness.client, site, &app_id)
            .await
            .unwrap_err();
        refused(&status, Code::NotFound, "ATTACHMENT_NOT_FOUND");
        lifecycle
            .restore(
                app_target(site, app),
                Source::UndoOperationId(uninstall.to_string()),
            )
            .await;
        let (_, bytes) = download(&mut harness.client, site, &app_id).await.unwrap();
        assert!(bytes == app_data);

        // Uninstalled for good and purged after expiry: the app's blob goes; the site's
        // own attachment and the one only the change log refers to stay.
        lifecycle
            .soft_delete(app_target(site, app), OperationId::new())
            .await;
        clock.advance(31 * DAY);
        lifecycle
            .purge(app_target(site, app), OperationId::new())
            .await;
        let files = harness.site_files(site);
        assert_eq!(files.len(), 2, "{files:?}");
        let app_file = harness.blob_dir.path().join(site.to_string()).join(&app_id);
        assert!(!app_file.exists(), "the app's blob is deleted");
        for kept in [&own_id, &late_id] {
            let dir = harness.blob_dir.path().join(site.to_string()).join(kept);
            assert!(
                files.iter().any(|file| file.starts_with(&dir)),
                "{kept} kept: {files:?}"
            );
        }
        let (_, bytes) = download(&mut harness.client, site, &own_id).await.unwrap();
        assert!(bytes == own);
        let described = lifecycle.describe(site_target(site)).await;
        assert_eq!(rows(&described, "attachments"), (1, 0));
        harness.service.stop().await;
    }
}
