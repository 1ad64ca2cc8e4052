//! `micros.media.v1.MediaService`: proto ↔ domain, nothing else.

use bytes::Bytes;
use futures::{StreamExt, stream::BoxStream};
use micros_platform::{
    auth::{Role, require_role},
    error::{InvalidArgument, parse_id},
    ids::{MediaId, SiteId},
    paging,
    store::timestamp,
};
use micros_proto::media::v1::{
    self as pb, media_service_server::MediaService, upload_request::Part as UploadPart,
};
use tonic::{Request, Response, Status, Streaming};

use crate::{
    attachments::Attachments,
    domain::{self, Attachment, NewUpload, Part, crc32c},
    error::MediaError,
};

pub struct MediaApi {
    attachments: Attachments,
}

impl MediaApi {
    pub fn new(attachments: Attachments) -> Self {
        Self { attachments }
    }
}

/// `site_id` and `media_id` of a request naming one attachment.
fn attachment_ids(site_id: &str, media_id: &str) -> Result<(SiteId, MediaId), MediaError> {
    Ok((
        parse_id("site_id", site_id)?,
        parse_id("media_id", media_id)?,
    ))
}

fn new_upload(metadata: pb::UploadMetadata) -> Result<NewUpload, MediaError> {
    Ok(NewUpload {
        site_id: parse_id("site_id", &metadata.site_id)?,
        media_id: if metadata.media_id.is_empty() {
            MediaId::new()
        } else {
            parse_id("media_id", &metadata.media_id)?
        },
        app_installation_id: if metadata.app_installation_id.is_empty() {
            None
        } else {
            Some(parse_id(
                "app_installation_id",
                &metadata.app_installation_id,
            )?)
        },
        file_name: domain::file_name(&metadata.file_name)?,
        content_type: domain::content_type(&metadata.content_type)?,
        size_bytes: domain::size_bytes(metadata.size_bytes)?,
        sha256: domain::sha256(&metadata.sha256)?,
    })
}

/// Every message after the first must be a chunk.
fn part(message: Result<pb::UploadRequest, Status>) -> Result<Part, MediaError> {
    match message.map_err(MediaError::UploadInterrupted)?.part {
        Some(UploadPart::Chunk(chunk)) => Ok(Part {
            data: Bytes::from(chunk.data),
            crc32c: chunk.crc32c,
        }),
        Some(UploadPart::Metadata(_)) => Err(InvalidArgument::field(
            "metadata",
            "METADATA_NOT_FIRST",
            "",
            "only the first message of an upload carries metadata",
        )
        .into()),
        None => Err(InvalidArgument::missing("chunk").into()),
    }
}

#[tonic::async_trait]
impl MediaService for MediaApi {
    async fn upload(
        &self,
        request: Request<Streaming<pb::UploadRequest>>,
    ) -> Result<Response<pb::Attachment>, Status> {
        let principal = require_role(&request, Role::Admin)?;
        let mut messages = request.into_inner();
        let metadata = match messages.next().await {
            Some(message) => match message.map_err(MediaError::UploadInterrupted)?.part {
                Some(UploadPart::Metadata(metadata)) => metadata,
                _ => {
                    return Err(MediaError::from(InvalidArgument::field(
                        "metadata",
                        "METADATA_FIRST",
                        "",
                        "the first message of an upload must carry its metadata",
                    ))
                    .into());
                }
            },
            None => return Err(MediaError::from(InvalidArgument::missing("metadata")).into()),
        };
        let upload = new_upload(metadata)?;
        let attachment = self
            .attachments
            .upload(upload, &principal.name, messages.map(part))
            .await?;
        Ok(Response::new(attachment_to_proto(attachment)))
    }

    type DownloadStream = BoxStream<'static, Result<pb::DownloadChunk, Status>>;

    async fn download(
        &self,
        request: Request<pb::DownloadRequest>,
    ) -> Result<Response<Self::DownloadStream>, Status> {
        require_role(&request, Role::Viewer)?;
        let request = request.into_inner();
        let (site_id, media_id) = attachment_ids(&request.site_id, &request.media_id)?;
        let (attachment, pieces) = self.attachments.download(site_id, media_id).await?;
        let header = pb::DownloadChunk {
            attachment: Some(attachment_to_proto(attachment)),
            offset: 0,
            data: Vec::new(),
            crc32c: crc32c(&[]),
        };
        let chunks = pieces.map(|piece| {
            let piece = piece?;
            Ok(pb::DownloadChunk {
                attachment: None,
                offset: i64::try_from(piece.offset).unwrap_or(i64::MAX),
                crc32c: crc32c(&piece.data),
                data: piece.data.to_vec(),
            })
        });
        Ok(Response::new(
            futures::stream::once(async { Ok(header) })
                .chain(chunks)
                .boxed(),
        ))
    }

    async fn get_attachment(
        &self,
        request: Request<pb::GetAttachmentRequest>,
    ) -> Result<Response<pb::Attachment>, Status> {
        require_role(&request, Role::Viewer)?;
        let request = request.into_inner();
        let (site_id, media_id) = attachment_ids(&request.site_id, &request.media_id)?;
        let attachment = self.attachments.get(site_id, media_id).await?;
        Ok(Response::new(attachment_to_proto(attachment)))
    }

    async fn list_attachments(
        &self,
        request: Request<pb::ListAttachmentsRequest>,
    ) -> Result<Response<pb::ListAttachmentsResponse>, Status> {
        require_role(&request, Role::Viewer)?;
        let request = request.into_inner();
        let site_id: SiteId = parse_id("site_id", &request.site_id)?;
        let page = paging::Page::of(request.page_size, &request.page_token)?;
        let attachments = self
            .attachments
            .list(site_id, page.after.as_deref(), page.fetch())
            .await?;
        let (attachments, next_page_token) =
            page.cut(attachments, |last| last.media_id.to_string());
        Ok(Response::new(pb::ListAttachmentsResponse {
            attachments: attachments.into_iter().map(attachment_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn delete_attachment(
        &self,
        request: Request<pb::DeleteAttachmentRequest>,
    ) -> Result<Response<pb::DeleteAttachmentResponse>, Status> {
        let principal = require_role(&request, Role::Admin)?;
        let request = request.into_inner();
        let (site_id, media_id) = attachment_ids(&request.site_id, &request.media_id)?;
        self.attachments
            .delete(site_id, media_id, &principal.name)
            .await?;
        Ok(Response::new(pb::DeleteAttachmentResponse {}))
    }
}

fn attachment_to_proto(attachment: Attachment) -> pb::Attachment {
    pb::Attachment {
        media_id: attachment.media_id.to_string(),
        site_id: attachment.site_id.to_string(),
        app_installation_id: attachment
            .app_installation_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        file_name: attachment.file_name,
        content_type: attachment.content_type,
        size_bytes: i64::try_from(attachment.size_bytes).unwrap_or(i64::MAX),
        sha256: attachment.sha256,
        create_time: Some(timestamp(attachment.create_time)),
        created_by: attachment.created_by,
    }
}
