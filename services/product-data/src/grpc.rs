//! `micros.productdata.v1.ProductDataService`: proto ↔ domain, nothing else.

use micros_platform::{
    auth::{Role, require_role},
    error::{InvalidArgument, parse_id},
    ids::{AppInstallationId, DocumentId, SiteId, UserId},
    paging,
    store::timestamp,
};
use micros_proto::productdata::v1::{
    self as pb, create_document_request, document, document_version,
    product_data_service_server::ProductDataService, update_document_request,
};
use tonic::{Request, Response, Status};

use crate::{
    catalog::Catalog,
    domain::{
        self, Content, Document, DocumentChange, DocumentQuery, DocumentVersion, IssueStatus,
        NewDocument,
    },
    error::ProductDataError,
    store::DocumentStore,
};

pub struct ProductDataApi {
    documents: DocumentStore,
    catalog: Catalog,
}

impl ProductDataApi {
    pub fn new(documents: DocumentStore, catalog: Catalog) -> Self {
        Self { documents, catalog }
    }

    /// Lists `query`'s documents of the site, one page; a site with no document yet has
    /// an empty list.
    async fn page_of_documents(
        &self,
        site_id: &str,
        query: DocumentQuery,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<pb::Document>, String), ProductDataError> {
        let site_id: SiteId = parse_id("site_id", site_id)?;
        let page_size = page_limit(page_size, query.with_bodies)?;
        let after = paging::decode_token(page_token)?;
        let Some(tenant) = self.documents.reader(site_id).await? else {
            return Ok((Vec::new(), String::new()));
        };
        let page = paging::Page {
            size: page_size,
            after,
        };
        let documents = self
            .documents
            .list(&tenant, &query, page.after.as_deref(), page.fetch())
            .await?;
        let (documents, next_page_token) =
            page.cut(documents, |document| document.document_id.to_string());
        Ok((
            documents.into_iter().map(document_to_proto).collect(),
            next_page_token,
        ))
    }

    /// The live document `document_id` of the site, and the site's handle.
    async fn existing(
        &self,
        site_id: SiteId,
        document_id: DocumentId,
    ) -> Result<(micros_platform::lifecycle::LiveTenant, Document), ProductDataError> {
        let tenant =
            self.documents
                .reader(site_id)
                .await?
                .ok_or(ProductDataError::DocumentNotFound {
                    site_id,
                    document_id,
                })?;
        let document = self.documents.get(&tenant, document_id).await?;
        Ok((tenant, document))
    }
}

#[tonic::async_trait]
impl ProductDataService for ProductDataApi {
    async fn create_document(
        &self,
        request: Request<pb::CreateDocumentRequest>,
    ) -> Result<Response<pb::Document>, Status> {
        require_role(&request, Role::Admin)?;
        let request = request.into_inner();
        let site_id: SiteId = parse_id("site_id", &request.site_id)?;
        let new = new_document(&request)?;
        if let Some(app_installation_id) = new.app_installation_id
            && !self
                .catalog
                .app_installed(site_id, app_installation_id)
                .await?
        {
            return Err(ProductDataError::AppInstallationNotFound {
                site_id,
                app_installation_id,
            }
            .into());
        }
        let tenant = self.documents.register(site_id).await?;
        let document = self.documents.create(&tenant, &new).await?;
        tracing::info!(
            %site_id,
            document_id = %document.document_id,
            product = document.content.product().as_str(),
            "document created"
        );
        Ok(Response::new(document_to_proto(document)))
    }

    async fn get_document(
        &self,
        request: Request<pb::GetDocumentRequest>,
    ) -> Result<Response<pb::Document>, Status> {
        require_role(&request, Role::Viewer)?;
        let request = request.into_inner();
        let site_id: SiteId = parse_id("site_id", &request.site_id)?;
        let document_id: DocumentId = parse_id("document_id", &request.document_id)?;
        let (_, document) = self.existing(site_id, document_id).await?;
        Ok(Response::new(document_to_proto(document)))
    }

    async fn list_documents(
        &self,
        request: Request<pb::ListDocumentsRequest>,
    ) -> Result<Response<pb::ListDocumentsResponse>, Status> {
        require_role(&request, Role::Viewer)?;
        let request = request.into_inner();
        let query = DocumentQuery {
            product: domain::product_filter("product", &request.product)?,
            title_contains: None,
            with_bodies: full_view(request.view)?,
        };
        let (documents, next_page_token) = self
            .page_of_documents(
                &request.site_id,
                query,
                request.page_size,
                &request.page_token,
            )
            .await?;
        Ok(Response::new(pb::ListDocumentsResponse {
            documents,
            next_page_token,
        }))
    }

    async fn update_document(
        &self,
        request: Request<pb::UpdateDocumentRequest>,
    ) -> Result<Response<pb::Document>, Status> {
        require_role(&request, Role::Admin)?;
        let request = request.into_inner();
        let site_id: SiteId = parse_id("site_id", &request.site_id)?;
        let document_id: DocumentId = parse_id("document_id", &request.document_id)?;
        let change = document_change(request.change.as_ref())?;
        if let Some(expected) = request.expected_version
            && expected < 1
        {
            return Err(ProductDataError::from(InvalidArgument::field(
                "expected_version",
                "INVALID_VERSION",
                expected.to_string(),
                "versions start at 1",
            ))
            .into());
        }
        let tenant =
            self.documents
                .reader(site_id)
                .await?
                .ok_or(ProductDataError::DocumentNotFound {
                    site_id,
                    document_id,
                })?;
        let document = self
            .documents
            .update(&tenant, document_id, request.expected_version, &change)
            .await?;
        tracing::info!(%site_id, %document_id, version = document.version, "document updated");
        Ok(Response::new(document_to_proto(document)))
    }

    async fn trash_document(
        &self,
        request: Request<pb::TrashDocumentRequest>,
    ) -> Result<Response<pb::TrashDocumentResponse>, Status> {
        require_role(&request, Role::Admin)?;
        let request = request.into_inner();
        let site_id: SiteId = parse_id("site_id", &request.site_id)?;
        let document_id: DocumentId = parse_id("document_id", &request.document_id)?;
        let user_id: UserId = parse_id("user_id", &request.user_id)?;
        let tenant =
            self.documents
                .reader(site_id)
                .await?
                .ok_or(ProductDataError::DocumentNotFound {
                    site_id,
                    document_id,
                })?;
        let trash_time = self.documents.trash(&tenant, document_id, user_id).await?;
        tracing::info!(%site_id, %document_id, %user_id, "document trashed");
        Ok(Response::new(pb::TrashDocumentResponse {
            trash_time: Some(timestamp(trash_time)),
        }))
    }

    async fn list_versions(
        &self,
        request: Request<pb::ListVersionsRequest>,
    ) -> Result<Response<pb::ListVersionsResponse>, Status> {
        require_role(&request, Role::Viewer)?;
        let request = request.into_inner();
        let site_id: SiteId = parse_id("site_id", &request.site_id)?;
        let document_id: DocumentId = parse_id("document_id", &request.document_id)?;
        let with_bodies = full_view(request.view)?;
        let page_size = page_limit(request.page_size, with_bodies)?;
        let after = version_token(&request.page_token)?;
        let (tenant, document) = self.existing(site_id, document_id).await?;
        let page = paging::Page {
            size: page_size,
            after: None,
        };
        let versions = self
            .documents
            .versions(&tenant, &document, after, page.fetch(), with_bodies)
            .await?;
        let (versions, next_page_token) = page.cut(versions, |version| version.version.to_string());
        Ok(Response::new(pb::ListVersionsResponse {
            versions: versions
                .into_iter()
                .map(|version| version_to_proto(&document, version))
                .collect(),
            next_page_token,
        }))
    }

    async fn search_documents(
        &self,
        request: Request<pb::SearchDocumentsRequest>,
    ) -> Result<Response<pb::SearchDocumentsResponse>, Status> {
        require_role(&request, Role::Viewer)?;
        let request = request.into_inner();
        let query = DocumentQuery {
            product: domain::product_filter("product", &request.product)?,
            title_contains: Some(domain::title_query("title_query", &request.title_query)?),
            with_bodies: full_view(request.view)?,
        };
        let (documents, next_page_token) = self
            .page_of_documents(
                &request.site_id,
                query,
                request.page_size,
                &request.page_token,
            )
            .await?;
        Ok(Response::new(pb::SearchDocumentsResponse {
            documents,
            next_page_token,
        }))
    }
}

/// The page size of a list: as asked (0 is the default), and at most
/// [`domain::FULL_VIEW_PAGE_SIZE`] when bodies are included.
fn page_limit(requested: i32, with_bodies: bool) -> Result<usize, ProductDataError> {
    let size = paging::page_size(requested)?;
    Ok(if with_bodies {
        size.min(domain::FULL_VIEW_PAGE_SIZE)
    } else {
        size
    })
}

fn full_view(view: i32) -> Result<bool, ProductDataError> {
    match pb::DocumentView::try_from(view) {
        Ok(pb::DocumentView::Unspecified | pb::DocumentView::Basic) => Ok(false),
        Ok(pb::DocumentView::Full) => Ok(true),
        Err(_) => Err(InvalidArgument::field(
            "view",
            "INVALID_DOCUMENT_VIEW",
            view.to_string(),
            "must be DOCUMENT_VIEW_BASIC or DOCUMENT_VIEW_FULL",
        )
        .into()),
    }
}

/// The version a ListVersions page continues after; 0 for the first page.
fn version_token(token: &str) -> Result<i64, ProductDataError> {
    let invalid = || {
        InvalidArgument::field(
            "page_token",
            "INVALID_PAGE_TOKEN",
            token,
            "is not a token this service returned",
        )
    };
    match paging::decode_token(token)? {
        None => Ok(0),
        Some(version) => Ok(version.parse::<i64>().map_err(|_| invalid())?),
    }
}

fn new_document(request: &pb::CreateDocumentRequest) -> Result<NewDocument, ProductDataError> {
    let document_id = if request.document_id.is_empty() {
        DocumentId::new()
    } else {
        parse_id("document_id", &request.document_id)?
    };
    let app_installation_id: Option<AppInstallationId> = if request.app_installation_id.is_empty() {
        None
    } else {
        Some(parse_id(
            "app_installation_id",
            &request.app_installation_id,
        )?)
    };
    let (project_key, content) = match &request.content {
        Some(create_document_request::Content::Issue(issue)) => (
            Some(domain::project_key(
                "issue.project_key",
                &issue.project_key,
            )?),
            Content::Issue {
                summary: domain::title("issue.summary", &issue.summary)?,
                status: match pb::IssueStatus::try_from(issue.status) {
                    Ok(pb::IssueStatus::Unspecified) => IssueStatus::ToDo,
                    _ => status_from_proto("issue.status", issue.status)?,
                },
            },
        ),
        Some(create_document_request::Content::Page(page)) => (
            None,
            Content::Page {
                title: domain::title("page.title", &page.title)?,
                body: domain::body("page.body", &page.body)?,
            },
        ),
        None => return Err(InvalidArgument::missing("issue | page").into()),
    };
    Ok(NewDocument {
        document_id,
        id_chosen_by_caller: !request.document_id.is_empty(),
        app_installation_id,
        project_key,
        content,
    })
}

fn document_change(
    change: Option<&update_document_request::Change>,
) -> Result<DocumentChange, ProductDataError> {
    let change = match change {
        Some(update_document_request::Change::Issue(issue)) => DocumentChange::Issue {
            summary: issue
                .summary
                .as_deref()
                .map(|summary| domain::title("issue.summary", summary))
                .transpose()?,
            status: issue
                .status
                .map(|status| status_from_proto("issue.status", status))
                .transpose()?,
        },
        Some(update_document_request::Change::Page(page)) => DocumentChange::Page {
            title: page
                .title
                .as_deref()
                .map(|title| domain::title("page.title", title))
                .transpose()?,
            body: page
                .body
                .as_deref()
                .map(|body| domain::body("page.body", body))
                .transpose()?,
        },
        None => return Err(InvalidArgument::missing("issue | page").into()),
    };
    let empty = matches!(
        change,
        DocumentChange::Issue {
            summary: None,
            status: None
        }
    ) || matches!(
        change,
        DocumentChange::Page {
            title: None,
            body: None
        }
    );
    if empty {
        let fields = match change {
            DocumentChange::Issue { .. } => "issue.summary | issue.status",
            DocumentChange::Page { .. } => "page.title | page.body",
        };
        return Err(InvalidArgument::missing(fields).into());
    }
    Ok(change)
}

fn status_from_proto(field: &str, value: i32) -> Result<IssueStatus, ProductDataError> {
    match pb::IssueStatus::try_from(value) {
        Ok(pb::IssueStatus::ToDo) => Ok(IssueStatus::ToDo),
        Ok(pb::IssueStatus::InProgress) => Ok(IssueStatus::InProgress),
        Ok(pb::IssueStatus::Done) => Ok(IssueStatus::Done),
        Ok(pb::IssueStatus::Unspecified) | Err(_) => Err(InvalidArgument::field(
            field,
            "INVALID_ISSUE_STATUS",
            value.to_string(),
            "must be ISSUE_STATUS_TO_DO, ISSUE_STATUS_IN_PROGRESS or ISSUE_STATUS_DONE",
        )
        .into()),
    }
}

fn status_to_proto(status: IssueStatus) -> pb::IssueStatus {
    match status {
        IssueStatus::ToDo => pb::IssueStatus::ToDo,
        IssueStatus::InProgress => pb::IssueStatus::InProgress,
        IssueStatus::Done => pb::IssueStatus::Done,
    }
}

fn issue_to_proto(key: String, summary: String, status: IssueStatus) -> pb::Issue {
    pb::Issue {
        key,
        summary,
        status: status_to_proto(status) as i32,
    }
}

fn document_to_proto(document: Document) -> pb::Document {
    let key = document
        .issue_key
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    pb::Document {
        document_id: document.document_id.to_string(),
        site_id: document.site_id.to_string(),
        product: document.content.product().as_str().to_owned(),
        version: document.version,
        app_installation_id: document
            .app_installation_id
            .map(|app| app.to_string())
            .unwrap_or_default(),
        create_time: Some(timestamp(document.create_time)),
        update_time: Some(timestamp(document.update_time)),
        content: Some(match document.content {
            Content::Issue { summary, status } => {
                document::Content::Issue(issue_to_proto(key, summary, status))
            }
            Content::Page { title, body } => document::Content::Page(pb::Page { title, body }),
        }),
    }
}

fn version_to_proto(document: &Document, version: DocumentVersion) -> pb::DocumentVersion {
    let key = document
        .issue_key
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    pb::DocumentVersion {
        document_id: document.document_id.to_string(),
        version: version.version,
        create_time: Some(timestamp(version.create_time)),
        content: Some(match version.content {
            Content::Issue { summary, status } => {
                document_version::Content::Issue(issue_to_proto(key, summary, status))
            }
            Content::Page { title, body } => {
                document_version::Content::Page(pb::Page { title, body })
            }
        }),
    }
}
