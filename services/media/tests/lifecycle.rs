//! Media's tenant lifecycle through `micros.lifecycle.v1.TenantLifecycle` over real gRPC,
//! as the orchestrator drives it, on every configured backend: soft delete hides, restore
//! reveals the same bytes, purge removes rows and blob files and nothing of a neighbour.

mod common;

use std::time::Duration;

use common::{
    Harness, KIB, MIB, content, download, messages, metadata, refused, send, spawn, upload,
};
use micros_platform::{
    auth::Role,
    client::ServiceChannel,
    clock::Clock,
    ids::{AppInstallationId, OperationId, SiteId},
    store::timestamp,
    testing,
};
use micros_proto::{
    lifecycle::v1::{
        self as lc, DescribeRequest, Justification, PurgeRequest, RestoreRequest,
        SoftDeleteRequest, TargetOutcome, TenantState, restore_request::Source,
        tenant_lifecycle_client::TenantLifecycleClient,
    },
    media::v1::{DeleteAttachmentRequest, GetAttachmentRequest, ListAttachmentsRequest},
};
use tonic::Code;

type Lifecycle = TenantLifecycleClient<ServiceChannel>;

const DAY: Duration = Duration::from_secs(24 * 3600);

fn orchestrator(harness: &Harness) -> Lifecycle {
    TenantLifecycleClient::new(harness.service.channel(&[Role::Lifecycle]))
}

fn site_target(site_id: SiteId) -> lc::Target {
    lc::Target {
        kind: Some(lc::target::Kind::Site(lc::SiteTarget {
            site_id: site_id.to_string(),
        })),
    }
}

fn app_target(site_id: SiteId, app: AppInstallationId) -> lc::Target {
    lc::Target {
        kind: Some(lc::target::Kind::AppInstallation(
            lc::AppInstallationTarget {
                site_id: site_id.to_string(),
                app_installation_id: app.to_string(),
            },
        )),
    }
}

fn justification() -> Option<Justification> {
    Some(Justification {
        reason: "media service test".to_owned(),
        ticket: "INC-2022-04".to_owned(),
    })
}

async fn describe(lifecycle: &mut Lifecycle, target: lc::Target) -> TargetOutcome {
    lifecycle
        .describe(DescribeRequest {
            targets: vec![target],
        })
        .await
        .unwrap()
        .into_inner()
        .outcomes
        .remove(0)
}

async fn soft_delete(
    lifecycle: &mut Lifecycle,
    target: lc::Target,
    operation: OperationId,
) -> TargetOutcome {
    lifecycle
        .soft_delete(SoftDeleteRequest {
            targets: vec![target],
            operation_id: operation.to_string(),
            justification: justification(),
            validate_only: false,
            lease_token: 0,
            call_key: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .outcomes
        .remove(0)
}

async fn restore(lifecycle: &mut Lifecycle, target: lc::Target, source: Source) -> TargetOutcome {
    lifecycle
        .restore(RestoreRequest {
            targets: vec![target],
            operation_id: OperationId::new().to_string(),
            source: Some(source),
            justification: justification(),
            validate_only: false,
            lease_token: 0,
            call_key: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .outcomes
        .remove(0)
}

fn purge(target: lc::Target) -> PurgeRequest {
    PurgeRequest {
        targets: vec![target],
        operation_id: OperationId::new().to_string(),
        justification: justification(),
        validate_only: false,
        lease_token: 0,
    }
}

/// (live, deleted) rows of the attachments table.
fn attachments(outcome: &TargetOutcome) -> (i64, i64) {
    let count = outcome
        .counts
        .iter()
        .find(|count| count.table == "attachments")
        .expect("a count for attachments");
    (count.live, count.deleted)
}

fn get(site_id: SiteId, media_id: &str) -> GetAttachmentRequest {
    GetAttachmentRequest {
        site_id: site_id.to_string(),
        media_id: media_id.to_owned(),
    }
}

#[tokio::test]
async fn soft_delete_hides_restore_reveals_and_purge_removes_rows_and_blobs() {
    for backend in testing::backends() {
        let mut harness = spawn(backend).await;
        let mut lifecycle = orchestrator(&harness);
        let (site, neighbour) = (harness.site().await, harness.site().await);
        let big = content(2 * MIB + 777, 10);
        let small = content(40 * KIB, 11);
        let trashed = content(5 * KIB, 12);
        let big_id = upload(&mut harness.client, site, "big.bin", &big)
            .await
            .media_id;
        let small_id = upload(&mut harness.client, site, "small.bin", &small)
            .await
            .media_id;
        let trashed_id = upload(&mut harness.client, site, "trashed.bin", &trashed)
            .await
            .media_id;
        let neighbour_data = content(300 * KIB, 13);
        let neighbour_id = upload(&mut harness.client, neighbour, "n.bin", &neighbour_data)
            .await
            .media_id;
        // A user deletes one before the site is deleted.
        harness
            .client
            .delete_attachment(DeleteAttachmentRequest {
                site_id: site.to_string(),
                media_id: trashed_id.clone(),
            })
            .await
            .unwrap();

        let before = describe(&mut lifecycle, site_target(site)).await;
        assert_eq!(before.state, TenantState::Active as i32, "{backend:?}");
        assert_eq!(attachments(&before), (2, 1));
        let neighbour_before = describe(&mut lifecycle, site_target(neighbour)).await;
        assert_ne!(before.fingerprint, neighbour_before.fingerprint);
        let neighbour_files = harness.site_files(neighbour);
        assert_eq!(neighbour_files.len(), 1);
        assert_eq!(harness.site_files(site).len(), 3);

        let delete = OperationId::new();
        let deleted = soft_delete(&mut lifecycle, site_target(site), delete).await;
        assert_eq!(deleted.state, TenantState::Deleted as i32);
        assert_eq!(deleted.fingerprint, before.fingerprint, "what was deleted");
        let while_deleted = describe(&mut lifecycle, site_target(site)).await;
        assert_eq!(while_deleted.fingerprint, before.fingerprint);
        for media_id in [&big_id, &small_id] {
            let status = download(&mut harness.client, site, media_id)
                .await
                .unwrap_err();
            refused(&status, Code::NotFound, "SITE_DELETED");
            let status = harness
                .client
                .get_attachment(get(site, media_id))
                .await
                .unwrap_err();
            refused(&status, Code::NotFound, "SITE_DELETED");
        }
        let status = send(
            &mut harness.client,
            messages(metadata(site, "late.bin", b"late"), b"late", MIB),
        )
        .await
        .unwrap_err();
        refused(&status, Code::NotFound, "SITE_DELETED");
        assert_eq!(
            harness.site_files(site).len(),
            3,
            "soft delete keeps the bytes"
        );

        let restored = restore(
            &mut lifecycle,
            site_target(site),
            Source::UndoOperationId(delete.to_string()),
        )
        .await;
        assert_eq!(restored.state, TenantState::Active as i32);
        assert_eq!(restored.fingerprint, before.fingerprint);
        let (_, bytes) = download(&mut harness.client, site, &big_id).await.unwrap();
        assert!(bytes == big, "restored bytes differ");
        let (_, bytes) = download(&mut harness.client, site, &small_id)
            .await
            .unwrap();
        assert!(bytes == small);
        let status = harness
            .client
            .get_attachment(get(site, &trashed_id))
            .await
            .unwrap_err();
        refused(&status, Code::NotFound, "ATTACHMENT_NOT_FOUND");
        let listed = harness
            .client
            .list_attachments(ListAttachmentsRequest {
                site_id: site.to_string(),
                ..ListAttachmentsRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.attachments.len(), 2, "the user's delete stays");

        // Deleted again; purging before expiry is refused and removes nothing.
        soft_delete(&mut lifecycle, site_target(site), OperationId::new()).await;
        let status = lifecycle.purge(purge(site_target(site))).await.unwrap_err();
        refused(&status, Code::FailedPrecondition, "PURGE_BEFORE_EXPIRY");
        assert_eq!(harness.site_files(site).len(), 3);

        harness.service.clock.advance(31 * DAY);
        let purged = lifecycle
            .purge(purge(site_target(site)))
            .await
            .unwrap()
            .into_inner()
            .outcomes
            .remove(0);
        assert_eq!(purged.state, TenantState::Purged as i32);
        assert_eq!(attachments(&purged), (0, 0));
        assert_eq!(purged.rows_affected, 3);
        assert_eq!(
            harness.site_files(site),
            Vec::<std::path::PathBuf>::new(),
            "the purged site's blob files are gone"
        );
        assert!(!harness.blob_dir.path().join(site.to_string()).exists());

        // The neighbour is untouched: rows, fingerprint, files and bytes.
        let neighbour_after = describe(&mut lifecycle, site_target(neighbour)).await;
        assert_eq!(neighbour_after.fingerprint, neighbour_before.fingerprint);
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
        let mut lifecycle = orchestrator(&harness);
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
        restore(
            &mut lifecycle,
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
        let removed = soft_delete(&mut lifecycle, app_target(site, app), uninstall).await;
        assert_eq!(attachments(&removed), (0, 1));
        let status = download(&mut harness.client, site, &app_id)
            .await
            .unwrap_err();
        refused(&status, Code::NotFound, "ATTACHMENT_NOT_FOUND");
        restore(
            &mut lifecycle,
            app_target(site, app),
            Source::UndoOperationId(uninstall.to_string()),
        )
        .await;
        let (_, bytes) = download(&mut harness.client, site, &app_id).await.unwrap();
        assert!(bytes == app_data);

        // Uninstalled for good and purged after expiry: the app's blob goes; the site's
        // own attachment and the one only the change log refers to stay.
        soft_delete(&mut lifecycle, app_target(site, app), OperationId::new()).await;
        clock.advance(31 * DAY);
        lifecycle.purge(purge(app_target(site, app))).await.unwrap();
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
        let described = describe(&mut lifecycle, site_target(site)).await;
        assert_eq!(attachments(&described), (1, 0));
        harness.service.stop().await;
    }
}
