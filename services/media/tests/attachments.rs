//! `micros.media.v1.MediaService` over real gRPC on every configured backend, with the
//! local object store in a temporary directory.

mod common;

use common::{
    Harness, KIB, MIB, chunk, content, crc32c, download, messages, metadata, send, sha256, spawn,
    spawn_with, upload,
};
use futures::StreamExt;
use micros_media::MediaSettings;
use micros_platform::{
    auth::Role,
    ids::{MediaId, SiteId},
    testing::{self, refused},
};
use micros_proto::media::v1::{
    Chunk, DeleteAttachmentRequest, GetAttachmentRequest, ListAttachmentsRequest, UploadRequest,
    media_service_client::MediaServiceClient, upload_request::Part,
};
use tonic::Code;

fn get(site_id: SiteId, media_id: &str) -> GetAttachmentRequest {
    GetAttachmentRequest {
        site_id: site_id.to_string(),
        media_id: media_id.to_owned(),
    }
}

/// Asserts the upload left nothing: no attachment listed (or the site not even known),
/// no file in the blob directory.
async fn assert_nothing_stored(harness: &mut Harness, site_id: SiteId) {
    let listed = harness
        .client
        .list_attachments(ListAttachmentsRequest {
            site_id: site_id.to_string(),
            ..ListAttachmentsRequest::default()
        })
        .await;
    // The catalog has the site active: nothing here is an empty list.
    let listed = listed.unwrap_or_else(|status| panic!("{status:?}"));
    assert!(listed.get_ref().attachments.is_empty(), "{listed:?}");
    assert_eq!(harness.blob_files(), Vec::<std::path::PathBuf>::new());
}

#[tokio::test]
async fn a_multi_chunk_file_round_trips_byte_for_byte() {
    for backend in testing::backends() {
        let mut harness = spawn(backend).await;
        let site = harness.site().await;
        let data = content(3 * MIB + 12_345, 1);
        let mut request = metadata(site, "design.pdf", &data);
        let media_id = MediaId::new();
        request.media_id = media_id.to_string();
        let stored = send(&mut harness.client, messages(request.clone(), &data, MIB))
            .await
            .unwrap();
        assert_eq!(stored.media_id, media_id.to_string(), "{backend:?}");
        assert_eq!(stored.site_id, site.to_string());
        assert_eq!(stored.size_bytes, i64::try_from(data.len()).unwrap());
        assert_eq!(stored.sha256, sha256(&data));
        assert_eq!(stored.file_name, "design.pdf");
        assert_eq!(stored.content_type, "application/pdf");
        assert_eq!(stored.created_by, "test-admin");

        let (header, downloaded) = download(&mut harness.client, site, &stored.media_id)
            .await
            .unwrap();
        assert_eq!(header, stored);
        assert_eq!(downloaded.len(), data.len());
        assert!(
            downloaded == data,
            "downloaded bytes differ from the uploaded ones"
        );
        let read = harness
            .client
            .get_attachment(get(site, &stored.media_id))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(read, stored);
        assert_eq!(harness.site_files(site).len(), 1, "one blob per attachment");

        // The same upload again (a retry) returns what is stored and writes nothing.
        let retried = send(&mut harness.client, messages(request.clone(), &data, MIB))
            .await
            .unwrap();
        assert_eq!(retried, stored);
        assert_eq!(harness.site_files(site).len(), 1);
        // The same ID with other content is refused, and leaves nothing behind.
        let other = content(1000, 2);
        let mut taken = metadata(site, "design.pdf", &other);
        taken.media_id = media_id.to_string();
        let status = send(&mut harness.client, messages(taken, &other, MIB))
            .await
            .unwrap_err();
        let info = refused(&status, Code::AlreadyExists, "MEDIA_ID_TAKEN");
        assert_eq!(info.metadata["media_id"], media_id.to_string());
        assert_eq!(harness.site_files(site).len(), 1);

        // An empty file is an attachment too.
        let empty = upload(&mut harness.client, site, "empty.txt", &[]).await;
        let (_, bytes) = download(&mut harness.client, site, &empty.media_id)
            .await
            .unwrap();
        assert!(bytes.is_empty());
        harness.service.stop().await;
    }
}

#[tokio::test]
async fn listing_pages_through_live_attachments_and_a_deleted_one_is_gone() {
    for backend in testing::backends() {
        let mut harness = spawn(backend).await;
        let site = harness.site().await;
        let mut ids = Vec::new();
        for seed in 0..5 {
            let data = content(10 * KIB, seed);
            ids.push(
                upload(&mut harness.client, site, &format!("f{seed}.bin"), &data)
                    .await
                    .media_id,
            );
        }
        harness
            .client
            .delete_attachment(DeleteAttachmentRequest {
                site_id: site.to_string(),
                media_id: ids[1].clone(),
            })
            .await
            .unwrap();
        let mut listed = Vec::new();
        let mut page_token = String::new();
        let mut pages = 0;
        loop {
            let page = harness
                .client
                .list_attachments(ListAttachmentsRequest {
                    site_id: site.to_string(),
                    page_size: 2,
                    page_token,
                })
                .await
                .unwrap()
                .into_inner();
            pages += 1;
            assert!(page.attachments.len() <= 2);
            listed.extend(page.attachments.into_iter().map(|a| a.media_id));
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        let expected: Vec<String> = [0, 2, 3, 4].iter().map(|i| ids[*i].clone()).collect();
        assert_eq!(listed, expected, "{backend:?}");
        assert_eq!(pages, 2);

        let status = harness
            .client
            .get_attachment(get(site, &ids[1]))
            .await
            .unwrap_err();
        refused(&status, Code::NotFound, "ATTACHMENT_NOT_FOUND");
        let status = download(&mut harness.client, site, &ids[1])
            .await
            .unwrap_err();
        refused(&status, Code::NotFound, "ATTACHMENT_NOT_FOUND");
        let again = harness
            .client
            .delete_attachment(DeleteAttachmentRequest {
                site_id: site.to_string(),
                media_id: ids[1].clone(),
            })
            .await
            .unwrap_err();
        refused(&again, Code::NotFound, "ATTACHMENT_NOT_FOUND");
        // A user's delete keeps the bytes: a restore of the site must find them.
        assert_eq!(harness.site_files(site).len(), 5);
        let status = harness
            .client
            .list_attachments(ListAttachmentsRequest {
                site_id: site.to_string(),
                page_size: 2,
                page_token: "!not a token".to_owned(),
            })
            .await
            .unwrap_err();
        refused(&status, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
        harness.service.stop().await;
    }
}

#[tokio::test]
async fn a_corrupted_chunk_is_refused_and_stores_nothing() {
    for backend in testing::backends() {
        let mut harness = spawn(backend).await;
        let site = harness.site().await;
        let data = content(3 * 256 * KIB, 3);
        let media_id = MediaId::new();
        let mut request = metadata(site, "scan.tiff", &data);
        request.media_id = media_id.to_string();
        let mut corrupted = messages(request.clone(), &data, 256 * KIB);
        if let Some(Part::Chunk(chunk)) = &mut corrupted[2].part {
            chunk.data[100] ^= 0x01;
        }
        let status = send(&mut harness.client, corrupted).await.unwrap_err();
        let info = refused(&status, Code::DataLoss, "CHUNK_CHECKSUM_MISMATCH");
        assert_eq!(info.domain, "micros.media", "{backend:?}");
        assert_eq!(info.metadata["chunk"], "1");
        assert_eq!(info.metadata["offset"], (256 * KIB).to_string());
        assert_nothing_stored(&mut harness, site).await;
        let status = harness
            .client
            .get_attachment(get(site, &media_id.to_string()))
            .await
            .unwrap_err();
        refused(&status, Code::NotFound, "ATTACHMENT_NOT_FOUND");

        // Chunks intact but not the declared content: the whole-content check refuses it.
        let mut wrong_sha = request.clone();
        wrong_sha.sha256 = sha256(b"something else");
        let status = send(&mut harness.client, messages(wrong_sha, &data, 256 * KIB))
            .await
            .unwrap_err();
        let info = refused(&status, Code::DataLoss, "CONTENT_CHECKSUM_MISMATCH");
        assert_eq!(info.metadata["actual_sha256"], sha256(&data));
        assert_nothing_stored(&mut harness, site).await;

        // A chunk without its checksum, one above the chunk limit, fewer bytes than
        // declared, metadata twice: each refused, nothing stored.
        let mut unchecked = messages(request.clone(), &data, 256 * KIB);
        unchecked[1] = UploadRequest {
            part: Some(Part::Chunk(Chunk {
                data: data[..256 * KIB].to_vec(),
                crc32c: None,
            })),
        };
        let status = send(&mut harness.client, unchecked).await.unwrap_err();
        refused(&status, Code::InvalidArgument, "MISSING_FIELD");
        let big = content(MIB + 1, 4);
        let status = send(
            &mut harness.client,
            messages(metadata(site, "big.bin", &big), &big, MIB + 1),
        )
        .await
        .unwrap_err();
        let info = refused(&status, Code::InvalidArgument, "CHUNK_TOO_LARGE");
        assert_eq!(info.metadata["max_bytes"], MIB.to_string());
        let mut short = messages(request.clone(), &data, 256 * KIB);
        short.pop();
        let status = send(&mut harness.client, short).await.unwrap_err();
        refused(&status, Code::InvalidArgument, "UPLOAD_SIZE_MISMATCH");
        let mut twice = messages(request.clone(), &data, 256 * KIB);
        twice.insert(
            2,
            UploadRequest {
                part: Some(Part::Metadata(request.clone())),
            },
        );
        let status = send(&mut harness.client, twice).await.unwrap_err();
        refused(&status, Code::InvalidArgument, "METADATA_NOT_FIRST");
        let status = send(&mut harness.client, vec![chunk(b"no metadata")])
            .await
            .unwrap_err();
        refused(&status, Code::InvalidArgument, "METADATA_FIRST");
        assert_nothing_stored(&mut harness, site).await;
        harness.service.stop().await;
    }
}

#[tokio::test]
async fn oversized_uploads_are_refused_without_being_buffered() {
    for backend in testing::backends() {
        let mut harness = spawn(backend).await;
        let site = harness.site().await;
        // 2 GiB declared, a few bytes sent: refused on the metadata alone.
        let mut declared = metadata(site, "huge.iso", b"");
        declared.size_bytes = 2 * 1024 * 1024 * 1024;
        let status = send(
            &mut harness.client,
            vec![
                UploadRequest {
                    part: Some(Part::Metadata(declared)),
                },
                chunk(b"the first bytes of a huge file"),
            ],
        )
        .await
        .unwrap_err();
        let info = refused(&status, Code::InvalidArgument, "UPLOAD_TOO_LARGE");
        assert_eq!(info.metadata["size_bytes"], (2u64 << 30).to_string());
        assert_eq!(info.metadata["max_bytes"], (256 * MIB).to_string());
        assert_nothing_stored(&mut harness, site).await;
        harness.service.stop().await;

        // With a 64 KiB limit, a client that declares 64 KiB and then streams without end
        // is cut off at the first byte past it; the test never holds more than one chunk.
        let mut harness = spawn_with(
            backend,
            MediaSettings {
                max_upload_bytes: 64 * KIB as u64,
                ..MediaSettings::default()
            },
        )
        .await;
        let site = harness.site().await;
        let piece = content(16 * KIB, 5);
        let mut request = metadata(site, "endless.bin", &piece);
        request.size_bytes = 64 * 1024;
        let endless = futures::stream::iter([UploadRequest {
            part: Some(Part::Metadata(request)),
        }])
        .chain(futures::stream::repeat_with(move || chunk(&piece)));
        let status = harness.client.upload(endless).await.unwrap_err();
        let info = refused(&status, Code::InvalidArgument, "UPLOAD_SIZE_MISMATCH");
        assert_eq!(info.metadata["declared_bytes"], (64 * KIB).to_string());
        assert_eq!(info.metadata["received_bytes"], (80 * KIB).to_string());
        let mut above = metadata(site, "above.bin", b"");
        above.size_bytes = 64 * 1024 + 1;
        let status = send(
            &mut harness.client,
            vec![UploadRequest {
                part: Some(Part::Metadata(above)),
            }],
        )
        .await
        .unwrap_err();
        refused(&status, Code::InvalidArgument, "UPLOAD_TOO_LARGE");
        assert_nothing_stored(&mut harness, site).await;
        harness.service.stop().await;
    }
}

#[tokio::test]
async fn another_sites_media_id_is_not_found_and_ids_are_typed() {
    for backend in testing::backends() {
        let mut harness = spawn(backend).await;
        let (site, other) = (harness.site().await, harness.site().await);
        let secret = content(4 * KIB, 6);
        let stored = upload(&mut harness.client, site, "payroll.xlsx", &secret).await;
        upload(&mut harness.client, other, "other.txt", b"the other site").await;

        let status = harness
            .client
            .get_attachment(get(other, &stored.media_id))
            .await
            .unwrap_err();
        let info = refused(&status, Code::NotFound, "ATTACHMENT_NOT_FOUND");
        assert_eq!(info.metadata["site_id"], other.to_string(), "{backend:?}");
        let status = download(&mut harness.client, other, &stored.media_id)
            .await
            .unwrap_err();
        refused(&status, Code::NotFound, "ATTACHMENT_NOT_FOUND");
        let status = harness
            .client
            .delete_attachment(DeleteAttachmentRequest {
                site_id: other.to_string(),
                media_id: stored.media_id.clone(),
            })
            .await
            .unwrap_err();
        refused(&status, Code::NotFound, "ATTACHMENT_NOT_FOUND");
        // Reusing the ID on the other site is refused without revealing anything.
        let mut reuse = metadata(other, "payroll.xlsx", &secret);
        reuse.media_id = stored.media_id.clone();
        let status = send(&mut harness.client, messages(reuse, &secret, MIB))
            .await
            .unwrap_err();
        refused(&status, Code::AlreadyExists, "MEDIA_ID_TAKEN");
        assert_eq!(harness.site_files(other).len(), 1);
        // Still there, untouched, on its own site.
        let (_, bytes) = download(&mut harness.client, site, &stored.media_id)
            .await
            .unwrap();
        assert!(bytes == secret);

        // A site ID where a media ID belongs names both kinds.
        let status = harness
            .client
            .get_attachment(get(site, &site.to_string()))
            .await
            .unwrap_err();
        let info = refused(&status, Code::InvalidArgument, "WRONG_ID_KIND");
        assert_eq!(info.metadata["expected_kind"], "med");
        assert_eq!(info.metadata["actual_kind"], "site");
        // An unknown site is NOT_FOUND too.
        let status = harness
            .client
            .get_attachment(get(SiteId::new(), &stored.media_id))
            .await
            .unwrap_err();
        refused(&status, Code::NotFound, "SITE_NOT_FOUND");
        harness.service.stop().await;
    }
}

#[tokio::test]
async fn uploads_and_deletes_need_the_admin_role() {
    for backend in testing::backends() {
        let mut harness = spawn(backend).await;
        let site = harness.site().await;
        let stored = upload(&mut harness.client, site, "a.txt", b"admin wrote this").await;
        let mut viewer = MediaServiceClient::new(harness.service.channel(&[Role::Viewer]));
        let status = send(
            &mut viewer,
            messages(metadata(site, "b.txt", b"viewer"), b"viewer", MIB),
        )
        .await
        .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{backend:?}");
        let status = viewer
            .delete_attachment(DeleteAttachmentRequest {
                site_id: site.to_string(),
                media_id: stored.media_id.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied);
        let (_, bytes) = download(&mut viewer, site, &stored.media_id).await.unwrap();
        assert_eq!(bytes, b"admin wrote this");
        assert_eq!(crc32c(&bytes), crc32c(b"admin wrote this"));
        harness.service.stop().await;
    }
}

/// Polls until `done` holds, for at most ten seconds.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if done() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    done()
}

#[tokio::test]
async fn a_client_that_hangs_up_mid_upload_leaves_nothing() {
    for backend in testing::backends() {
        let mut harness = spawn(backend).await;
        let site = harness.site().await;
        let data = content(512 * KIB, 7);
        let (sender, receiver) = futures::channel::mpsc::unbounded();
        for message in messages(metadata(site, "cut.bin", &data), &data, 128 * KIB)
            .into_iter()
            .take(3)
        {
            sender.unbounded_send(message).unwrap();
        }
        let mut client = harness.client.clone();
        let call = tokio::spawn(async move { client.upload(receiver).await });
        assert!(
            eventually(|| !harness.blob_files().is_empty()).await,
            "the upload started writing"
        );
        call.abort();
        drop(sender);
        assert!(
            eventually(|| harness.blob_files().is_empty()).await,
            "left behind: {:?} ({backend:?})",
            harness.blob_files()
        );
        assert_nothing_stored(&mut harness, site).await;
        harness.service.stop().await;
    }
}
