//! Product-data's tenant lifecycle through `micros.lifecycle.v1.TenantLifecycle` over
//! real gRPC, as the orchestrator drives it: the platform's lifecycle contract with the
//! neighbour in the same shard database, then what only product-data has: many sites
//! per shard, each found through the catalog's placement, on every configured backend.

mod common;

use std::{collections::BTreeMap, time::Duration};

use common::{
    Client, Suite, all_documents, create, get, issue_of, list, new_issue, new_page, rows_of, spawn,
};
use micros_platform::{
    clock::Clock,
    ids::{DocumentId, OperationId, SiteId, UserId},
    testing::{
        self, TestService,
        lifecycle_contract::{self, Lifecycle, justification, rows, site_target},
        refused,
    },
};
use micros_product_data::ProductData;
use micros_proto::{
    catalog::v1::InstallAppRequest,
    lifecycle::v1::{self as lc, SoftDeleteRequest, TenantState, restore_request::Source},
    productdata::v1::{
        Document, IssueChange, IssueStatus, ListVersionsRequest, PageChange,
        SearchDocumentsRequest, TrashDocumentRequest, UpdateDocumentRequest, document,
        update_document_request,
    },
};
use tonic::{Code, Status};

const DAY: Duration = Duration::from_secs(24 * 3600);

fn rename_page(site_id: SiteId, document_id: &str, title: &str) -> UpdateDocumentRequest {
    UpdateDocumentRequest {
        site_id: site_id.to_string(),
        document_id: document_id.to_owned(),
        expected_version: None,
        change: Some(update_document_request::Change::Page(PageChange {
            title: Some(title.to_owned()),
            body: None,
        })),
    }
}

fn close_issue(site_id: SiteId, document_id: &str) -> UpdateDocumentRequest {
    UpdateDocumentRequest {
        site_id: site_id.to_string(),
        document_id: document_id.to_owned(),
        expected_version: None,
        change: Some(update_document_request::Change::Issue(IssueChange {
            summary: None,
            status: Some(IssueStatus::Done as i32),
        })),
    }
}

fn trash(site_id: SiteId, document_id: &str) -> TrashDocumentRequest {
    TrashDocumentRequest {
        site_id: site_id.to_string(),
        document_id: document_id.to_owned(),
        user_id: UserId::new().to_string(),
    }
}

/// Creates sites until two share a shard; returns them and the shard.
async fn two_sites_on_one_shard(suite: &mut Suite) -> (SiteId, SiteId, usize) {
    let mut by_shard: BTreeMap<usize, SiteId> = BTreeMap::new();
    for n in 0..=4 {
        let (site, shard) = suite.site(&format!("Neighbour{n}")).await;
        if let Some(first) = by_shard.insert(shard, site) {
            return (first, site, shard);
        }
    }
    unreachable!("five sites on four shards always share one")
}

/// A page, an issue and a page the user trashed; returns (page, issue, trashed) IDs.
async fn provision(client: &mut Client, site_id: SiteId) -> (String, String, String) {
    let page = create(client, new_page(site_id, "Home", "Welcome")).await;
    let issue = create(client, new_issue(site_id, "PROJ", "Crash")).await;
    client
        .update_document(rename_page(site_id, &page.document_id, "Start here"))
        .await
        .unwrap();
    let trashed = create(client, new_page(site_id, "Old draft", "")).await;
    client
        .trash_document(trash(site_id, &trashed.document_id))
        .await
        .unwrap();
    (page.document_id, issue.document_id, trashed.document_id)
}

/// Product-data as the lifecycle contract sees it: every site it is given lands on the
/// shard of the first, so the contract's neighbour shares the site's database.
struct SharedShard {
    suite: Suite,
    shard: Option<usize>,
    sites: usize,
}

/// The first document of the site whose content is `kind`.
fn first_of(documents: &[Document], kind: fn(&document::Content) -> bool) -> String {
    documents
        .iter()
        .find(|document| document.content.as_ref().is_some_and(kind))
        .expect("a document of that kind")
        .document_id
        .clone()
}

impl lifecycle_contract::Subject for SharedShard {
    type Service = ProductData;
    type View = Vec<Document>;

    fn service(&self) -> &TestService<ProductData> {
        &self.suite.service
    }

    async fn site(&mut self) -> SiteId {
        for _ in 0..40 {
            self.sites += 1;
            let (site, shard) = self.suite.site(&format!("Tenant{}", self.sites)).await;
            if *self.shard.get_or_insert(shard) == shard {
                return site;
            }
        }
        panic!("40 sites on four shards and none on shard {:?}", self.shard)
    }

    async fn seed(&mut self, site_id: SiteId) {
        provision(&mut self.suite.documents, site_id).await;
    }

    /// A bad batch job: renames the page, closes and trashes the issue, adds an issue.
    async fn change(&mut self, site_id: SiteId) {
        let documents = self.view(site_id).await;
        let page = first_of(&documents, |content| {
            matches!(content, document::Content::Page(_))
        });
        let issue = first_of(&documents, |content| {
            matches!(content, document::Content::Issue(_))
        });
        let client = &mut self.suite.documents;
        client
            .update_document(rename_page(site_id, &page, "CORRUPTED"))
            .await
            .unwrap();
        client
            .update_document(close_issue(site_id, &issue))
            .await
            .unwrap();
        client.trash_document(trash(site_id, &issue)).await.unwrap();
        create(client, new_issue(site_id, "PROJ", "Garbage")).await;
    }

    async fn view(&mut self, site_id: SiteId) -> Vec<Document> {
        all_documents(&mut self.suite.documents, site_id).await
    }

    async fn refusals(&mut self, site_id: SiteId) -> Vec<Status> {
        let document_id = DocumentId::new().to_string();
        let client = &mut self.suite.documents;
        vec![
            client
                .create_document(new_page(site_id, "During deletion", ""))
                .await
                .unwrap_err(),
            client
                .get_document(get(site_id, &document_id))
                .await
                .unwrap_err(),
            client.list_documents(list(site_id)).await.unwrap_err(),
            client
                .update_document(rename_page(site_id, &document_id, "During deletion"))
                .await
                .unwrap_err(),
            client
                .trash_document(trash(site_id, &document_id))
                .await
                .unwrap_err(),
            client
                .list_versions(ListVersionsRequest {
                    site_id: site_id.to_string(),
                    document_id: document_id.clone(),
                    ..ListVersionsRequest::default()
                })
                .await
                .unwrap_err(),
            client
                .search_documents(SearchDocumentsRequest {
                    site_id: site_id.to_string(),
                    title_query: "home".to_owned(),
                    ..SearchDocumentsRequest::default()
                })
                .await
                .unwrap_err(),
        ]
    }

    /// A page of a new app installation (from the catalog), renamed once.
    async fn seed_app(&mut self, site_id: SiteId) -> Option<String> {
        let app = self
            .suite
            .sites
            .install_app(InstallAppRequest {
                site_id: site_id.to_string(),
                app_key: "insight".to_owned(),
                app_installation_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .app_installation_id;
        let mut report = new_page(site_id, "Insight report", "numbers");
        report.app_installation_id = app.clone();
        let report = create(&mut self.suite.documents, report).await;
        self.suite
            .documents
            .update_document(rename_page(
                site_id,
                &report.document_id,
                "Insight report v2",
            ))
            .await
            .unwrap();
        Some(app)
    }
}

#[tokio::test]
async fn product_data_keeps_the_lifecycle_contract() {
    for backend in testing::backends() {
        let mut shared = SharedShard {
            suite: spawn(backend).await,
            shard: None,
            sites: 0,
        };
        lifecycle_contract::check(&mut shared).await;
    }
}

#[tokio::test]
async fn issue_numbering_follows_a_point_in_time_restore() {
    for backend in testing::backends() {
        let mut suite = spawn(backend).await;
        let mut lifecycle = Lifecycle::of(&suite.service);
        let (site, _) = suite.site("Acme").await;
        provision(&mut suite.documents, site).await;
        let t = suite.service.clock.now();
        suite.service.clock.advance(Duration::from_secs(1));
        let stray = create(&mut suite.documents, new_issue(site, "PROJ", "Garbage")).await;
        assert_eq!(issue_of(&stray).key, "PROJ-2", "{backend:?}");

        lifecycle
            .restore(site_target(site), Source::PointInTime(t.into()))
            .await;
        let next = create(
            &mut suite.documents,
            new_issue(site, "PROJ", "After restore"),
        )
        .await;
        assert_eq!(
            issue_of(&next).key,
            "PROJ-2",
            "numbering follows the restored state"
        );
    }
}

#[tokio::test]
async fn purge_removes_the_sites_rows_from_its_shard_and_none_of_its_neighbours() {
    for backend in testing::backends() {
        let mut suite = spawn(backend).await;
        let mut lifecycle = Lifecycle::of(&suite.service);
        let (site, neighbour, shard) = two_sites_on_one_shard(&mut suite).await;
        provision(&mut suite.documents, site).await;
        provision(&mut suite.documents, neighbour).await;
        lifecycle
            .soft_delete(site_target(site), OperationId::new())
            .await;
        suite.service.clock.advance(31 * DAY);
        let purged = lifecycle.purge(site_target(site), OperationId::new()).await;
        assert_eq!(rows(&purged, "documents"), (0, 0), "{backend:?}");
        assert_eq!(rows(&purged, "document_versions"), (0, 0));
        assert_eq!(purged.rows_affected, 3 + 4, "3 documents and 4 versions");

        let shards = suite.shard_databases().await;
        for table in ["documents", "document_versions"] {
            assert_eq!(rows_of(&shards[shard], table, site).await, 0, "{table}");
            assert!(
                rows_of(&shards[shard], table, neighbour).await > 0,
                "{table}"
            );
        }
    }
}

#[tokio::test]
async fn a_site_without_data_here_is_absent_and_an_unknown_site_is_not_found() {
    for backend in testing::backends() {
        let mut suite = spawn(backend).await;
        let (site, _) = suite.site("Acme").await;
        let mut lifecycle = Lifecycle::of(&suite.service);
        let fresh = lifecycle.describe(site_target(site)).await;
        assert_eq!(fresh.state, TenantState::Absent as i32, "{backend:?}");
        let stranger = SiteId::new();
        let unknown = lifecycle
            .try_describe(vec![site_target(stranger)])
            .await
            .unwrap_err();
        let info = refused(&unknown, Code::NotFound, "SITE_NOT_FOUND");
        assert_eq!(info.metadata["site_id"], stranger.to_string());
    }
}

#[tokio::test]
async fn one_call_acts_on_sites_in_several_shards() {
    for backend in testing::backends() {
        let mut suite = spawn(backend).await;
        let mut lifecycle = Lifecycle::of(&suite.service);
        let mut sites: Vec<(SiteId, usize)> = Vec::new();
        for n in 0..8 {
            let (site, shard) = suite.site(&format!("Bulk{n}")).await;
            create(
                &mut suite.documents,
                new_page(site, &format!("Page {n}"), ""),
            )
            .await;
            sites.push((site, shard));
        }
        let shards: std::collections::BTreeSet<usize> =
            sites.iter().map(|(_, shard)| *shard).collect();
        assert!(shards.len() > 1, "8 sites on one shard: {shards:?}");
        let targets: Vec<lc::Target> = sites.iter().map(|(site, _)| site_target(*site)).collect();
        let before = lifecycle.try_describe(targets.clone()).await.unwrap();

        // Eight sites are more than the free rate: the operation carries the
        // orchestrator's grant, which the shards count together.
        let delete = OperationId::new();
        let mut request = tonic::Request::new(SoftDeleteRequest {
            targets: targets.clone(),
            operation_id: delete.to_string(),
            justification: justification(),
            validate_only: false,
            lease_token: 0,
            call_key: String::new(),
        });
        request.metadata_mut().insert(
            micros_platform::auth::GRANT_HEADER,
            testing::test_grant(micros_platform::auth::ORCHESTRATOR, &delete.to_string(), 8)
                .parse()
                .unwrap(),
        );
        let deleted = lifecycle
            .client
            .soft_delete(request)
            .await
            .unwrap()
            .into_inner()
            .outcomes;
        assert_eq!(deleted.len(), sites.len(), "{backend:?}");
        for ((outcome, before), (site, _)) in deleted.iter().zip(&before).zip(&sites) {
            assert_eq!(
                outcome.target,
                Some(site_target(*site)),
                "answered in order"
            );
            assert_eq!(outcome.state, TenantState::Deleted as i32);
            assert_eq!(outcome.fingerprint, before.fingerprint);
        }
        for (site, _) in &sites {
            let status = suite
                .documents
                .list_documents(list(*site))
                .await
                .unwrap_err();
            refused(&status, Code::NotFound, "SITE_DELETED");
        }

        let restored = lifecycle
            .try_restore(targets, Source::UndoOperationId(delete.to_string()))
            .await
            .unwrap();
        for (outcome, before) in restored.iter().zip(&before) {
            assert_eq!(outcome.state, TenantState::Active as i32);
            assert_eq!(outcome.fingerprint, before.fingerprint);
        }
        for (site, _) in &sites {
            assert_eq!(all_documents(&mut suite.documents, *site).await.len(), 1);
        }
    }
}
