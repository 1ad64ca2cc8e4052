//! What every test file needs: a real catalog and product-data wired to it on a backend,
//! sites created in the catalog, and document requests.

#![allow(dead_code)] // Each test file uses its own part of these helpers.

use micros_catalog::{Catalog, CatalogSettings};
use micros_platform::{
    auth::Role,
    client::ServiceChannel,
    ids::SiteId,
    service::MicrosService,
    store::{Backend, Store},
    testing::{self, TestService},
};
use micros_product_data::{ProductData, ProductDataSettings, shard_database};
use micros_proto::{
    catalog::v1::{CreateSiteRequest, catalog_service_client::CatalogServiceClient},
    productdata::v1::{
        CreateDocumentRequest, Document, GetDocumentRequest, ListDocumentsRequest, NewIssue, Page,
        create_document_request, document, product_data_service_client::ProductDataServiceClient,
    },
};

pub type Client = ProductDataServiceClient<ServiceChannel>;
pub type CatalogClient = CatalogServiceClient<ServiceChannel>;

/// A catalog and a product-data service that asks it for placements.
pub struct Suite {
    pub catalog: TestService<Catalog>,
    pub service: TestService<ProductData>,
    /// The catalog, as an admin.
    pub sites: CatalogClient,
    /// Product-data, as an admin.
    pub documents: Client,
}

impl Suite {
    /// Creates a site in the catalog; returns it with the shard the catalog placed it on.
    pub async fn site(&mut self, name: &str) -> (SiteId, usize) {
        let site = self
            .sites
            .create_site(CreateSiteRequest {
                name: name.to_owned(),
                url: format!("https://{}.example.com", name.to_lowercase()),
                region: "eu-west".to_owned(),
                site_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        (
            SiteId::parse(&site.site_id).expect("a site ID"),
            usize::try_from(site.shard).expect("a shard index"),
        )
    }

    /// Every shard database of the service, opened directly (as an operator would).
    pub async fn shard_databases(&self) -> Vec<Store> {
        let mut stores = Vec::new();
        for shard in 0..self.service.config.service.shards {
            stores.push(
                Store::open(
                    &self.service.config.store,
                    &shard_database(shard),
                    &micros_platform::migrations!(),
                )
                .await
                .expect("open a shard database"),
            );
        }
        stores
    }
}

/// Rows of `table` that belong to `site_id` in one shard database, deleted ones included.
pub async fn rows_of(shard: &Store, table: &str, site_id: SiteId) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {table} WHERE site_id = $1"
    )))
    .bind(site_id.to_string())
    .fetch_one(shard.pool())
    .await
    .expect("count rows")
}

/// The suite on `backend`, product-data with `shards` shards and the catalog placing on
/// as many as product-data's descriptor says.
pub async fn spawn_with_shards(backend: Backend, shards: u16) -> Suite {
    let placing = CatalogSettings {
        product_data_shards: ProductData::DESCRIPTOR.shards,
        ..CatalogSettings::default()
    };
    let catalog = testing::spawn::<Catalog>(backend, placing).await;
    let catalog_url = catalog.server.url();
    let service =
        testing::spawn_asking::<ProductData>(backend, ProductDataSettings { shards }, catalog_url)
            .await;
    let sites = CatalogServiceClient::new(catalog.channel(&[Role::Admin]));
    let documents = ProductDataServiceClient::new(service.channel(&[Role::Admin]));
    Suite {
        catalog,
        service,
        sites,
        documents,
    }
}

/// The suite with the default 4 shards on both sides.
pub async fn spawn(backend: Backend) -> Suite {
    spawn_with_shards(backend, ProductData::DESCRIPTOR.shards).await
}

pub fn new_issue(site_id: SiteId, project_key: &str, summary: &str) -> CreateDocumentRequest {
    CreateDocumentRequest {
        site_id: site_id.to_string(),
        content: Some(create_document_request::Content::Issue(NewIssue {
            project_key: project_key.to_owned(),
            summary: summary.to_owned(),
            status: 0,
        })),
        ..CreateDocumentRequest::default()
    }
}

pub fn new_page(site_id: SiteId, title: &str, body: &str) -> CreateDocumentRequest {
    CreateDocumentRequest {
        site_id: site_id.to_string(),
        content: Some(create_document_request::Content::Page(Page {
            title: title.to_owned(),
            body: body.to_owned(),
        })),
        ..CreateDocumentRequest::default()
    }
}

pub fn get(site_id: SiteId, document_id: &str) -> GetDocumentRequest {
    GetDocumentRequest {
        site_id: site_id.to_string(),
        document_id: document_id.to_owned(),
    }
}

/// The first page of the site's documents.
pub fn list(site_id: SiteId) -> ListDocumentsRequest {
    ListDocumentsRequest {
        site_id: site_id.to_string(),
        ..ListDocumentsRequest::default()
    }
}

/// Creates a document and returns it.
pub async fn create(client: &mut Client, request: CreateDocumentRequest) -> Document {
    client.create_document(request).await.unwrap().into_inner()
}

/// Every document of the site, following page tokens.
pub async fn all_documents(client: &mut Client, site_id: SiteId) -> Vec<Document> {
    let mut request = list(site_id);
    let mut documents = Vec::new();
    loop {
        let page = client
            .list_documents(request.clone())
            .await
            .unwrap()
            .into_inner();
        documents.extend(page.documents);
        if page.next_page_token.is_empty() {
            return documents;
        }
        request.page_token = page.next_page_token;
    }
}

/// The page of a Confluence document, the issue of a Jira one.
pub fn page_of(document: &Document) -> &Page {
    match &document.content {
        Some(document::Content::Page(page)) => page,
        other => panic!("expected a page, got {other:?}"),
    }
}

pub fn issue_of(document: &Document) -> &micros_proto::productdata::v1::Issue {
    match &document.content {
        Some(document::Content::Issue(issue)) => issue,
        other => panic!("expected an issue, got {other:?}"),
    }
}
