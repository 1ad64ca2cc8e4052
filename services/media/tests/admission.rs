//! Media takes a site's first attachment only for a site the catalog has active, asked
//! over gRPC (UNAVAILABLE, storing nothing, when the catalog cannot be asked), and lists
//! nothing, rather than SITE_NOT_FOUND, for a site the catalog has active that has no
//! attachment here yet. On every backend.

mod common;

use common::{KIB, content, messages, metadata, send, spawn, spawn_asking, upload};
use micros_catalog::{Catalog, CatalogSettings};
use micros_media::MediaSettings;
use micros_platform::{
    ids::SiteId,
    testing::{self, refused},
};
use micros_proto::media::v1::ListAttachmentsRequest;
use tonic::Code;

fn list(site_id: SiteId) -> ListAttachmentsRequest {
    ListAttachmentsRequest {
        site_id: site_id.to_string(),
        ..ListAttachmentsRequest::default()
    }
}

#[tokio::test]
async fn a_first_upload_is_refused_for_a_site_the_catalog_does_not_know_or_deleted() {
    for backend in testing::backends() {
        let mut harness = spawn(backend).await;
        let data = content(64 * KIB, 1);

        let unknown = SiteId::new();
        let status = send(
            &mut harness.client,
            messages(metadata(unknown, "a.pdf", &data), &data, 32 * KIB),
        )
        .await
        .unwrap_err();
        let info = refused(&status, Code::NotFound, "SITE_NOT_FOUND");
        assert_eq!(info.metadata["site_id"], unknown.to_string());

        let deleted = harness.site().await;
        harness.service.delete_catalog_site(deleted).await;
        let status = send(
            &mut harness.client,
            messages(metadata(deleted, "a.pdf", &data), &data, 32 * KIB),
        )
        .await
        .unwrap_err();
        refused(&status, Code::NotFound, "SITE_DELETED");

        assert_eq!(harness.blob_files(), Vec::<std::path::PathBuf>::new());
        for site in [unknown, deleted] {
            let status = harness
                .client
                .list_attachments(list(site))
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::NotFound, "{status:?}");
        }
        println!("{backend:?}: first data refused for unknown and deleted sites");
    }
}

#[tokio::test]
async fn a_first_upload_while_the_catalog_is_down_is_unavailable_and_stores_nothing() {
    for backend in testing::backends() {
        let mut harness = spawn_asking(
            backend,
            MediaSettings::default(),
            testing::unreachable_url(),
        )
        .await;
        let site = SiteId::new();
        let data = content(64 * KIB, 2);
        let status = send(
            &mut harness.client,
            messages(metadata(site, "a.pdf", &data), &data, 32 * KIB),
        )
        .await
        .unwrap_err();
        let info = refused(&status, Code::Unavailable, "CATALOG_UNAVAILABLE");
        assert_eq!(info.metadata["site_id"], site.to_string());
        assert_eq!(harness.blob_files(), Vec::<std::path::PathBuf>::new());
        let status = harness
            .client
            .list_attachments(list(site))
            .await
            .unwrap_err();
        refused(&status, Code::Unavailable, "CATALOG_UNAVAILABLE");
        println!("{backend:?}: catalog down, upload UNAVAILABLE");
    }
}

#[tokio::test]
async fn a_site_held_here_needs_no_catalog_and_a_fresh_one_lists_empty() {
    for backend in testing::backends() {
        let catalog = testing::spawn::<Catalog>(
            backend,
            CatalogSettings {
                product_data_shards: 4,
                ..CatalogSettings::default()
            },
        )
        .await;
        let mut harness =
            spawn_asking(backend, MediaSettings::default(), catalog.server.url()).await;
        let (held, fresh) = (harness.site().await, harness.site().await);

        let listed = harness
            .client
            .list_attachments(list(fresh))
            .await
            .unwrap()
            .into_inner();
        assert!(listed.attachments.is_empty(), "{listed:?}");
        assert!(listed.next_page_token.is_empty());

        let first = upload(&mut harness.client, held, "first.txt", b"first").await;
        catalog.stop().await;

        // The catalog is gone: the site media holds takes more, a new one is refused.
        let second = upload(&mut harness.client, held, "second.txt", b"second").await;
        let listed = harness
            .client
            .list_attachments(list(held))
            .await
            .unwrap()
            .into_inner();
        let mut names: Vec<String> = listed.attachments.into_iter().map(|a| a.media_id).collect();
        names.sort();
        let mut expected = vec![first.media_id, second.media_id];
        expected.sort();
        assert_eq!(names, expected);
        let status = send(
            &mut harness.client,
            messages(metadata(fresh, "x.txt", b"x"), b"x", KIB),
        )
        .await
        .unwrap_err();
        refused(&status, Code::Unavailable, "CATALOG_UNAVAILABLE");
        println!("{backend:?}: held site served without the catalog");
    }
}
