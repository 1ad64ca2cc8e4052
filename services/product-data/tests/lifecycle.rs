//! Product-data's tenant lifecycle through `micros.lifecycle.v1.TenantLifecycle` over
//! real gRPC, as the orchestrator drives it: many sites per shard database, each site
//! found through the catalog's placement, on every configured backend.

mod common;

use std::{collections::BTreeMap, time::Duration};

use common::{
    Client, Suite, all_documents, create, get, issue_of, list, new_issue, new_page, page_of,
    refused, rows_of, spawn,
};
use micros_platform::{
    auth::Role,
    client::ServiceChannel,
    clock::Clock,
    ids::{OperationId, SiteId, UserId},
    testing,
};
use micros_proto::{
    catalog::v1::InstallAppRequest,
    lifecycle::v1::{
        self as lc, DescribeRequest, Justification, PurgeRequest, RestoreRequest,
        SoftDeleteRequest, TargetOutcome, TenantState, restore_request::Source,
        tenant_lifecycle_client::TenantLifecycleClient,
    },
    productdata::v1::{
        IssueChange, IssueStatus, ListVersionsRequest, PageChange, SearchDocumentsRequest,
        TrashDocumentRequest, UpdateDocumentRequest, update_document_request,
    },
};
use tonic::Code;

type Lifecycle = TenantLifecycleClient<ServiceChannel>;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// A client with the orchestrator's role.
fn orchestrator(suite: &Suite) -> Lifecycle {
    TenantLifecycleClient::new(suite.service.channel(&[Role::Lifecycle]))
}

fn site_target(site_id: SiteId) -> lc::Target {
    lc::Target {
        kind: Some(lc::target::Kind::Site(lc::SiteTarget {
            site_id: site_id.to_string(),
        })),
    }
}

fn app_target(site_id: SiteId, app_installation_id: &str) -> lc::Target {
    lc::Target {
        kind: Some(lc::target::Kind::AppInstallation(
            lc::AppInstallationTarget {
                site_id: site_id.to_string(),
                app_installation_id: app_installation_id.to_owned(),
            },
        )),
    }
}

fn justification() -> Option<Justification> {
    Some(Justification {
        reason: "product-data service test".to_owned(),
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

async fn fingerprint(lifecycle: &mut Lifecycle, site_id: SiteId) -> String {
    describe(lifecycle, site_target(site_id)).await.fingerprint
}

/// (live, deleted) rows of `table` in an outcome.
fn count(outcome: &TargetOutcome, table: &str) -> (i64, i64) {
    let count = outcome
        .counts
        .iter()
        .find(|count| count.table == table)
        .unwrap_or_else(|| panic!("a count for {table}"));
    (count.live, count.deleted)
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

fn purge_request(site_id: SiteId, operation: OperationId) -> PurgeRequest {
    PurgeRequest {
        targets: vec![site_target(site_id)],
        operation_id: operation.to_string(),
        justification: justification(),
        validate_only: false,
        lease_token: 0,
    }
}

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

/// Asserts that every domain RPC for the site answers NOT_FOUND with SITE_DELETED.
async fn assert_site_deleted(client: &mut Client, site_id: SiteId, document_id: &str) {
    let statuses = [
        client
            .create_document(new_page(site_id, "During deletion", ""))
            .await
            .unwrap_err(),
        client
            .get_document(get(site_id, document_id))
            .await
            .unwrap_err(),
        client.list_documents(list(site_id)).await.unwrap_err(),
        client
            .update_document(rename_page(site_id, document_id, "During deletion"))
            .await
            .unwrap_err(),
        client
            .trash_document(trash(site_id, document_id))
            .await
            .unwrap_err(),
        client
            .list_versions(ListVersionsRequest {
                site_id: site_id.to_string(),
                document_id: document_id.to_owned(),
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
    ];
    for status in statuses {
        let info = refused(&status, Code::NotFound, "SITE_DELETED");
        assert_eq!(info.metadata["site_id"], site_id.to_string());
    }
}

#[tokio::test]
async fn soft_delete_hides_the_site_and_restore_brings_it_back_as_it_was() {
    for backend in testing::backends() {
        let mut suite = spawn(backend).await;
        let mut lifecycle = orchestrator(&suite);
        let (site, neighbour, _) = two_sites_on_one_shard(&mut suite).await;
        let (page, issue, trashed) = provision(&mut suite.documents, site).await;
        provision(&mut suite.documents, neighbour).await;
        let documents_before = all_documents(&mut suite.documents, site).await;

        let before = describe(&mut lifecycle, site_target(site)).await;
        assert_eq!(before.state, TenantState::Active as i32, "{backend:?}");
        assert_eq!(count(&before, "documents"), (2, 1));
        assert_eq!(count(&before, "document_versions"), (4, 0));
        let neighbour_before = fingerprint(&mut lifecycle, neighbour).await;

        let delete = OperationId::new();
        let deleted = soft_delete(&mut lifecycle, site_target(site), delete).await;
        assert_eq!(deleted.state, TenantState::Deleted as i32);
        assert_eq!(deleted.fingerprint, before.fingerprint, "what was deleted");
        assert_eq!(
            deleted.rows_affected, 0,
            "a site-level delete touches no row"
        );
        let (delete_time, expire_time) =
            (deleted.delete_time.unwrap(), deleted.expire_time.unwrap());
        assert_eq!(expire_time.seconds - delete_time.seconds, 30 * 24 * 3600);

        assert_site_deleted(&mut suite.documents, site, &page).await;
        assert_eq!(
            fingerprint(&mut lifecycle, neighbour).await,
            neighbour_before,
            "the neighbour in the same shard is untouched"
        );
        assert_eq!(
            all_documents(&mut suite.documents, neighbour).await.len(),
            2
        );

        let restored = restore(
            &mut lifecycle,
            site_target(site),
            Source::UndoOperationId(delete.to_string()),
        )
        .await;
        assert_eq!(restored.state, TenantState::Active as i32);
        assert_eq!(restored.fingerprint, before.fingerprint, "{backend:?}");
        assert_eq!(count(&restored, "documents"), (2, 1));
        assert_eq!(
            all_documents(&mut suite.documents, site).await,
            documents_before
        );
        let issue_back = suite
            .documents
            .get_document(get(site, &issue))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(issue_of(&issue_back).key, "PROJ-1");
        let still_trashed = suite
            .documents
            .get_document(get(site, &trashed))
            .await
            .unwrap_err();
        refused(&still_trashed, Code::NotFound, "DOCUMENT_NOT_FOUND");

        let updated = suite
            .documents
            .update_document(close_issue(site, &issue))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(updated.version, 2, "writes work again");
    }
}

#[tokio::test]
async fn point_in_time_restore_of_one_site_leaves_its_shard_neighbours_identical() {
    for backend in testing::backends() {
        let mut suite = spawn(backend).await;
        let mut lifecycle = orchestrator(&suite);
        let (site, neighbour, shard) = two_sites_on_one_shard(&mut suite).await;
        let (page, issue, trashed) = provision(&mut suite.documents, site).await;
        let (neighbour_page, neighbour_issue, _) = provision(&mut suite.documents, neighbour).await;
        let at_t = describe(&mut lifecycle, site_target(site)).await;
        let documents_at_t = all_documents(&mut suite.documents, site).await;
        let t = suite.service.clock.now();
        suite.service.clock.advance(Duration::from_secs(1));

        // A bad batch job corrupts the site: renames, closes, trashes and adds.
        let client = &mut suite.documents;
        client
            .update_document(rename_page(site, &page, "CORRUPTED"))
            .await
            .unwrap();
        client
            .update_document(close_issue(site, &issue))
            .await
            .unwrap();
        client.trash_document(trash(site, &issue)).await.unwrap();
        let stray = create(client, new_issue(site, "PROJ", "Garbage")).await;
        // Its neighbour keeps working meanwhile; those changes must survive.
        client
            .update_document(rename_page(neighbour, &neighbour_page, "Neighbour v3"))
            .await
            .unwrap();
        let neighbour_new = create(client, new_page(neighbour, "Neighbour news", "")).await;
        client
            .update_document(close_issue(neighbour, &neighbour_issue))
            .await
            .unwrap();
        let corrupted = fingerprint(&mut lifecycle, site).await;
        assert_ne!(corrupted, at_t.fingerprint, "{backend:?}");
        let neighbour_before = describe(&mut lifecycle, site_target(neighbour)).await;
        let neighbour_documents = all_documents(&mut suite.documents, neighbour).await;

        let restored = restore(
            &mut lifecycle,
            site_target(site),
            Source::PointInTime(t.into()),
        )
        .await;
        assert_eq!(restored.fingerprint, at_t.fingerprint, "{backend:?}");
        assert_eq!(restored.state, TenantState::Active as i32);
        assert_eq!(restored.counts, at_t.counts);
        assert_eq!(
            all_documents(&mut suite.documents, site).await,
            documents_at_t
        );
        let home = suite
            .documents
            .get_document(get(site, &page))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (page_of(&home).title.as_str(), home.version),
            ("Start here", 2)
        );
        let crash = suite
            .documents
            .get_document(get(site, &issue))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(issue_of(&crash).status, IssueStatus::ToDo as i32);
        for gone in [&stray.document_id, &trashed] {
            let status = suite
                .documents
                .get_document(get(site, gone))
                .await
                .unwrap_err();
            refused(&status, Code::NotFound, "DOCUMENT_NOT_FOUND");
        }

        let neighbour_after = describe(&mut lifecycle, site_target(neighbour)).await;
        assert_eq!(
            neighbour_after.fingerprint, neighbour_before.fingerprint,
            "shard {shard}: the neighbour is byte-for-byte untouched"
        );
        assert_eq!(neighbour_after.counts, neighbour_before.counts);
        assert_eq!(
            all_documents(&mut suite.documents, neighbour).await,
            neighbour_documents
        );
        assert!(
            neighbour_documents
                .iter()
                .any(|document| document.document_id == neighbour_new.document_id),
            "the neighbour's document created after T is still there"
        );

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
async fn purge_after_expiry_removes_only_that_sites_rows() {
    for backend in testing::backends() {
        let mut suite = spawn(backend).await;
        let mut lifecycle = orchestrator(&suite);
        let (site, neighbour, shard) = two_sites_on_one_shard(&mut suite).await;
        provision(&mut suite.documents, site).await;
        let (neighbour_page, _, _) = provision(&mut suite.documents, neighbour).await;
        let neighbour_before = fingerprint(&mut lifecycle, neighbour).await;
        soft_delete(&mut lifecycle, site_target(site), OperationId::new()).await;

        let early = lifecycle
            .purge(purge_request(site, OperationId::new()))
            .await
            .unwrap_err();
        refused(&early, Code::FailedPrecondition, "PURGE_BEFORE_EXPIRY");

        suite.service.clock.advance(31 * DAY);
        let purged = lifecycle
            .purge(purge_request(site, OperationId::new()))
            .await
            .unwrap()
            .into_inner()
            .outcomes
            .remove(0);
        assert_eq!(purged.state, TenantState::Purged as i32, "{backend:?}");
        assert_eq!(count(&purged, "documents"), (0, 0));
        assert_eq!(count(&purged, "document_versions"), (0, 0));
        assert_eq!(purged.rows_affected, 3 + 4, "3 documents and 4 versions");

        let shards = suite.shard_databases().await;
        for table in ["documents", "document_versions"] {
            assert_eq!(rows_of(&shards[shard], table, site).await, 0, "{table}");
            assert!(
                rows_of(&shards[shard], table, neighbour).await > 0,
                "{table}"
            );
        }
        assert_eq!(
            fingerprint(&mut lifecycle, neighbour).await,
            neighbour_before
        );
        let neighbour_home = suite
            .documents
            .get_document(get(neighbour, &neighbour_page))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page_of(&neighbour_home).title, "Start here");

        let refused_write = suite
            .documents
            .create_document(new_page(site, "After purge", ""))
            .await
            .unwrap_err();
        refused(&refused_write, Code::NotFound, "SITE_DELETED");
    }
}

#[tokio::test]
async fn an_app_uninstall_removes_the_apps_documents_and_a_restore_returns_them() {
    for backend in testing::backends() {
        let mut suite = spawn(backend).await;
        let mut lifecycle = orchestrator(&suite);
        let (site, _) = suite.site("Acme").await;
        let app = suite
            .sites
            .install_app(InstallAppRequest {
                site_id: site.to_string(),
                app_key: "insight".to_owned(),
                app_installation_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .app_installation_id;
        let mut report = new_page(site, "Insight report", "numbers");
        report.app_installation_id = app.clone();
        let report = create(&mut suite.documents, report).await;
        suite
            .documents
            .update_document(rename_page(site, &report.document_id, "Insight report v2"))
            .await
            .unwrap();
        let own = create(&mut suite.documents, new_page(site, "Our page", "")).await;
        let before = describe(&mut lifecycle, site_target(site)).await;
        let app_before = describe(&mut lifecycle, app_target(site, &app)).await;
        assert_eq!(count(&app_before, "documents"), (1, 0), "{backend:?}");
        assert_eq!(count(&app_before, "document_versions"), (2, 0));

        let uninstall = OperationId::new();
        let uninstalled = soft_delete(&mut lifecycle, app_target(site, &app), uninstall).await;
        assert_eq!(
            uninstalled.rows_affected, 3,
            "the document and its two versions"
        );
        let gone = suite
            .documents
            .get_document(get(site, &report.document_id))
            .await
            .unwrap_err();
        refused(&gone, Code::NotFound, "DOCUMENT_NOT_FOUND");
        assert_eq!(all_documents(&mut suite.documents, site).await, [own]);
        let site_now = describe(&mut lifecycle, site_target(site)).await;
        assert_eq!(site_now.state, TenantState::Active as i32);
        assert_eq!(count(&site_now, "documents"), (1, 1));

        restore(
            &mut lifecycle,
            app_target(site, &app),
            Source::UndoOperationId(uninstall.to_string()),
        )
        .await;
        assert_eq!(fingerprint(&mut lifecycle, site).await, before.fingerprint);
        let back = suite
            .documents
            .get_document(get(site, &report.document_id))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (page_of(&back).title.as_str(), back.version),
            ("Insight report v2", 2)
        );
    }
}

#[tokio::test]
async fn lifecycle_calls_need_the_lifecycle_role_and_a_known_site() {
    for backend in testing::backends() {
        let mut suite = spawn(backend).await;
        let (site, _) = suite.site("Acme").await;
        let mut admin = TenantLifecycleClient::new(suite.service.channel(&[Role::Admin]));
        let denied = admin
            .describe(DescribeRequest {
                targets: vec![site_target(site)],
            })
            .await
            .unwrap_err();
        refused(&denied, Code::PermissionDenied, "MISSING_ROLE");

        let mut lifecycle = orchestrator(&suite);
        let fresh = describe(&mut lifecycle, site_target(site)).await;
        assert_eq!(fresh.state, TenantState::Absent as i32, "{backend:?}");
        let stranger = SiteId::new();
        let unknown = lifecycle
            .describe(DescribeRequest {
                targets: vec![site_target(stranger)],
            })
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
        let mut lifecycle = orchestrator(&suite);
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
        let before = lifecycle
            .describe(DescribeRequest {
                targets: targets.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .outcomes;

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
            .restore(RestoreRequest {
                targets,
                operation_id: OperationId::new().to_string(),
                source: Some(Source::UndoOperationId(delete.to_string())),
                justification: justification(),
                validate_only: false,
                lease_token: 0,
                call_key: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .outcomes;
        for (outcome, before) in restored.iter().zip(&before) {
            assert_eq!(outcome.state, TenantState::Active as i32);
            assert_eq!(outcome.fingerprint, before.fingerprint);
        }
        for (site, _) in &sites {
            assert_eq!(all_documents(&mut suite.documents, *site).await.len(), 1);
        }
    }
}
