//! Product-data's document RPCs through real gRPC, with a real catalog placing the sites,
//! on every configured backend.

mod common;

use std::collections::BTreeMap;

use common::{
    all_documents, create, get, issue_of, list, new_issue, new_page, page_of, rows_of, spawn,
    spawn_with_shards,
};
use micros_platform::{
    auth::Role,
    ids::{AppInstallationId, DocumentId, SiteId, UserId},
    testing::{self, refused},
};
use micros_proto::{
    catalog::v1::InstallAppRequest,
    productdata::v1::{
        DocumentView, IssueChange, IssueStatus, ListDocumentsRequest, ListVersionsRequest,
        PageChange, SearchDocumentsRequest, TrashDocumentRequest, UpdateDocumentRequest,
        create_document_request, document_version,
        product_data_service_client::ProductDataServiceClient, update_document_request,
    },
};
use tonic::Code;

fn search(site_id: SiteId, title_query: &str) -> SearchDocumentsRequest {
    SearchDocumentsRequest {
        site_id: site_id.to_string(),
        title_query: title_query.to_owned(),
        ..SearchDocumentsRequest::default()
    }
}

fn titles(documents: &[micros_proto::productdata::v1::Document]) -> Vec<String> {
    documents
        .iter()
        .map(|document| match &document.content {
            Some(micros_proto::productdata::v1::document::Content::Issue(issue)) => {
                issue.summary.clone()
            }
            Some(micros_proto::productdata::v1::document::Content::Page(page)) => {
                page.title.clone()
            }
            None => panic!("a document without content"),
        })
        .collect()
}

fn page_change(site_id: SiteId, document_id: &str, change: PageChange) -> UpdateDocumentRequest {
    UpdateDocumentRequest {
        site_id: site_id.to_string(),
        document_id: document_id.to_owned(),
        expected_version: None,
        change: Some(update_document_request::Change::Page(change)),
    }
}

fn issue_change(site_id: SiteId, document_id: &str, change: IssueChange) -> UpdateDocumentRequest {
    UpdateDocumentRequest {
        site_id: site_id.to_string(),
        document_id: document_id.to_owned(),
        expected_version: None,
        change: Some(update_document_request::Change::Issue(change)),
    }
}

fn trash(site_id: SiteId, document_id: &str, user_id: &str) -> TrashDocumentRequest {
    TrashDocumentRequest {
        site_id: site_id.to_string(),
        document_id: document_id.to_owned(),
        user_id: user_id.to_owned(),
    }
}

fn versions(site_id: SiteId, document_id: &str) -> ListVersionsRequest {
    ListVersionsRequest {
        site_id: site_id.to_string(),
        document_id: document_id.to_owned(),
        view: DocumentView::Full as i32,
        ..ListVersionsRequest::default()
    }
}

#[tokio::test]
async fn issues_and_pages_are_created_read_and_listed_page_by_page() {
    for backend in testing::backends() {
        let mut suite = spawn(backend).await;
        let (site, _) = suite.site("Acme").await;
        let client = &mut suite.documents;

        let crash = create(client, new_issue(site, "PROJ", "  Crash on login ")).await;
        let issue = issue_of(&crash);
        assert_eq!(issue.key, "PROJ-1", "{backend:?}");
        assert_eq!(issue.summary, "Crash on login", "trimmed");
        assert_eq!(issue.status, IssueStatus::ToDo as i32, "the default status");
        assert_eq!(crash.product, "jira");
        assert_eq!(crash.version, 1);
        assert_eq!(crash.site_id, site.to_string());
        assert!(DocumentId::parse(&crash.document_id).is_ok());
        assert_eq!(crash.create_time, crash.update_time);

        let second = create(client, new_issue(site, "PROJ", "Slow search")).await;
        let other_project = create(client, new_issue(site, "OPS", "Rotate keys")).await;
        assert_eq!(issue_of(&second).key, "PROJ-2");
        assert_eq!(
            issue_of(&other_project).key,
            "OPS-1",
            "numbered per project"
        );
        let roadmap = create(client, new_page(site, "Roadmap 2022", "# Goals\n")).await;
        assert_eq!(roadmap.product, "confluence");
        assert_eq!(page_of(&roadmap).body, "# Goals\n");
        let notes = create(client, new_page(site, "Meeting notes", "")).await;

        let fetched = client
            .get_document(get(site, &roadmap.document_id))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(fetched, roadmap);

        let mut request = ListDocumentsRequest {
            page_size: 2,
            ..list(site)
        };
        let mut pages = Vec::new();
        loop {
            let page = client
                .list_documents(request.clone())
                .await
                .unwrap()
                .into_inner();
            assert!(page.documents.len() <= 2);
            pages.push(page.documents);
            if page.next_page_token.is_empty() {
                break;
            }
            request.page_token = page.next_page_token;
        }
        assert_eq!(pages.len(), 3, "5 documents in pages of 2");
        let listed: Vec<String> = pages
            .concat()
            .iter()
            .map(|document| document.document_id.clone())
            .collect();
        let created: Vec<String> = [&crash, &second, &other_project, &roadmap, &notes]
            .iter()
            .map(|document| document.document_id.clone())
            .collect();
        assert_eq!(listed, created, "creation order");
        let basic = pages.concat();
        assert_eq!(
            page_of(&basic[3]).body,
            "",
            "lists leave bodies out by default"
        );

        let full = client
            .list_documents(ListDocumentsRequest {
                view: DocumentView::Full as i32,
                ..list(site)
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(full.documents[3], roadmap, "the full view has the body");

        let jira = client
            .list_documents(ListDocumentsRequest {
                product: "jira".to_owned(),
                ..list(site)
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            titles(&jira.documents),
            ["Crash on login", "Slow search", "Rotate keys"]
        );

        let bad_token = client
            .list_documents(ListDocumentsRequest {
                page_token: "!!".to_owned(),
                ..list(site)
            })
            .await
            .unwrap_err();
        refused(&bad_token, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
        let bad_product = client
            .list_documents(ListDocumentsRequest {
                product: "trello".to_owned(),
                ..list(site)
            })
            .await
            .unwrap_err();
        refused(&bad_product, Code::InvalidArgument, "UNKNOWN_PRODUCT");

        let (empty_site, _) = suite.site("Empty").await;
        assert!(
            all_documents(&mut suite.documents, empty_site)
                .await
                .is_empty(),
            "a placed site without documents lists none"
        );
    }
}

#[tokio::test]
async fn search_matches_titles_and_summaries_ignoring_case() {
    for backend in testing::backends() {
        let mut suite = spawn(backend).await;
        let (site, _) = suite.site("Acme").await;
        let (other, _) = suite.site("Globex").await;
        let client = &mut suite.documents;
        create(client, new_page(site, "Roadmap 2022", "")).await;
        create(client, new_issue(site, "PROJ", "Update the ROADMAP page")).await;
        create(
            client,
            new_page(site, "Release notes", "roadmap in the body only"),
        )
        .await;
        create(client, new_page(site, "100% done_list", "")).await;
        create(client, new_page(site, "Über-Straße", "")).await;
        create(client, new_page(other, "Roadmap of another site", "")).await;

        let found = client
            .search_documents(search(site, "roadmap"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            titles(&found.documents),
            ["Roadmap 2022", "Update the ROADMAP page"],
            "{backend:?}"
        );

        let issues_only = client
            .search_documents(SearchDocumentsRequest {
                product: "jira".to_owned(),
                ..search(site, "RoadMap")
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(titles(&issues_only.documents), ["Update the ROADMAP page"]);

        for wildcard in ["%", "_", "0% d"] {
            let literal = client
                .search_documents(search(site, wildcard))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(
                titles(&literal.documents),
                ["100% done_list"],
                "`{wildcard}` is a plain character"
            );
        }
        let unicode = client
            .search_documents(search(site, "ÜBER-STRAßE"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(titles(&unicode.documents), ["Über-Straße"], "{backend:?}");

        let mut request = SearchDocumentsRequest {
            page_size: 1,
            ..search(site, "o")
        };
        let mut paged = Vec::new();
        loop {
            let page = client
                .search_documents(request.clone())
                .await
                .unwrap()
                .into_inner();
            assert!(page.documents.len() <= 1);
            paged.extend(titles(&page.documents));
            if page.next_page_token.is_empty() {
                break;
            }
            request.page_token = page.next_page_token;
        }
        assert_eq!(
            paged,
            [
                "Roadmap 2022",
                "Update the ROADMAP page",
                "Release notes",
                "100% done_list"
            ]
        );

        let nothing = client
            .search_documents(search(site, "absent"))
            .await
            .unwrap()
            .into_inner();
        assert!(nothing.documents.is_empty());
        let blank = client
            .search_documents(search(site, "  "))
            .await
            .unwrap_err();
        refused(&blank, Code::InvalidArgument, "MISSING_FIELD");
    }
}

#[tokio::test]
async fn updates_bump_the_version_and_every_version_stays_readable() {
    for backend in testing::backends() {
        let mut suite = spawn(backend).await;
        let (site, _) = suite.site("Acme").await;
        let client = &mut suite.documents;
        let page = create(client, new_page(site, "Draft", "v1 body")).await;
        let id = page.document_id.clone();

        let renamed = client
            .update_document(page_change(
                site,
                &id,
                PageChange {
                    title: Some("Plan".to_owned()),
                    body: Some("v2 body".to_owned()),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(renamed.version, 2, "{backend:?}");
        assert_eq!(page_of(&renamed).title, "Plan");
        let micros = |time: Option<prost_types::Timestamp>| {
            let time = time.expect("a timestamp");
            time.seconds * 1_000_000 + i64::from(time.nanos / 1000)
        };
        assert!(micros(renamed.update_time) > micros(renamed.create_time));
        assert_eq!(renamed.create_time, page.create_time);

        let edited = client
            .update_document(UpdateDocumentRequest {
                expected_version: Some(2),
                ..page_change(
                    site,
                    &id,
                    PageChange {
                        title: None,
                        body: Some("v3 body".to_owned()),
                    },
                )
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(edited.version, 3);
        assert_eq!(
            page_of(&edited).title,
            "Plan",
            "unset fields keep their value"
        );

        let unchanged = client
            .update_document(page_change(
                site,
                &id,
                PageChange {
                    title: Some("Plan".to_owned()),
                    body: None,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            unchanged, edited,
            "a change that changes nothing makes no version"
        );

        let stale = client
            .update_document(UpdateDocumentRequest {
                expected_version: Some(2),
                ..page_change(
                    site,
                    &id,
                    PageChange {
                        title: Some("Lost update".to_owned()),
                        body: None,
                    },
                )
            })
            .await
            .unwrap_err();
        let info = refused(&stale, Code::Aborted, "VERSION_MISMATCH");
        assert_eq!(info.metadata["actual_version"], "3");

        let wrong_product = client
            .update_document(issue_change(
                site,
                &id,
                IssueChange {
                    summary: Some("Not a page".to_owned()),
                    status: None,
                },
            ))
            .await
            .unwrap_err();
        refused(&wrong_product, Code::InvalidArgument, "PRODUCT_MISMATCH");
        let empty_change = client
            .update_document(page_change(site, &id, PageChange::default()))
            .await
            .unwrap_err();
        refused(&empty_change, Code::InvalidArgument, "MISSING_FIELD");
        assert_eq!(
            client
                .get_document(get(site, &id))
                .await
                .unwrap()
                .into_inner(),
            edited,
            "refused updates changed nothing"
        );

        let history = client
            .list_versions(versions(site, &id))
            .await
            .unwrap()
            .into_inner();
        let contents: Vec<(i64, String, String)> = history
            .versions
            .iter()
            .map(|version| match &version.content {
                Some(document_version::Content::Page(page)) => {
                    (version.version, page.title.clone(), page.body.clone())
                }
                other => panic!("expected a page version, got {other:?}"),
            })
            .collect();
        assert_eq!(
            contents,
            [
                (1, "Draft".to_owned(), "v1 body".to_owned()),
                (2, "Plan".to_owned(), "v2 body".to_owned()),
                (3, "Plan".to_owned(), "v3 body".to_owned()),
            ]
        );
        assert_eq!(history.versions[2].create_time, edited.update_time);

        let first_page = client
            .list_versions(ListVersionsRequest {
                page_size: 2,
                ..versions(site, &id)
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(first_page.versions.len(), 2);
        let rest = client
            .list_versions(ListVersionsRequest {
                page_size: 2,
                page_token: first_page.next_page_token,
                ..versions(site, &id)
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(rest.versions.len(), 1);
        assert_eq!(rest.versions[0].version, 3);
        assert!(rest.next_page_token.is_empty());

        let issue = create(client, new_issue(site, "PROJ", "Crash")).await;
        let started = client
            .update_document(issue_change(
                site,
                &issue.document_id,
                IssueChange {
                    summary: None,
                    status: Some(IssueStatus::InProgress as i32),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(started.version, 2);
        assert_eq!(issue_of(&started).status, IssueStatus::InProgress as i32);
        assert_eq!(issue_of(&started).key, "PROJ-1", "a key never changes");
        let issue_history = client
            .list_versions(versions(site, &issue.document_id))
            .await
            .unwrap()
            .into_inner();
        let statuses: Vec<i32> = issue_history
            .versions
            .iter()
            .map(|version| match &version.content {
                Some(document_version::Content::Issue(issue)) => {
                    assert_eq!(issue.key, "PROJ-1");
                    issue.status
                }
                other => panic!("expected an issue version, got {other:?}"),
            })
            .collect();
        assert_eq!(
            statuses,
            [IssueStatus::ToDo as i32, IssueStatus::InProgress as i32]
        );
        let no_status = client
            .update_document(issue_change(
                site,
                &issue.document_id,
                IssueChange {
                    summary: None,
                    status: Some(IssueStatus::Unspecified as i32),
                },
            ))
            .await
            .unwrap_err();
        refused(&no_status, Code::InvalidArgument, "INVALID_ISSUE_STATUS");
    }
}

#[tokio::test]
async fn trashed_documents_are_gone_for_readers_and_keep_their_issue_key() {
    for backend in testing::backends() {
        let mut suite = spawn(backend).await;
        let (site, _) = suite.site("Acme").await;
        let client = &mut suite.documents;
        let first = create(client, new_issue(site, "PROJ", "Flaky build")).await;
        let kept = create(client, new_page(site, "Flaky tests", "")).await;
        let user = UserId::new().to_string();

        let trashed = client
            .trash_document(trash(site, &first.document_id, &user))
            .await
            .unwrap()
            .into_inner();
        assert!(trashed.trash_time.is_some(), "{backend:?}");

        let gone = client
            .get_document(get(site, &first.document_id))
            .await
            .unwrap_err();
        let info = refused(&gone, Code::NotFound, "DOCUMENT_NOT_FOUND");
        assert_eq!(info.metadata["document_id"], first.document_id);
        let listed = all_documents(client, site).await;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].document_id, kept.document_id);
        let found = client
            .search_documents(search(site, "flaky"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(titles(&found.documents), ["Flaky tests"]);
        for status in [
            client
                .update_document(issue_change(
                    site,
                    &first.document_id,
                    IssueChange {
                        summary: Some("Back?".to_owned()),
                        status: None,
                    },
                ))
                .await
                .unwrap_err(),
            client
                .list_versions(versions(site, &first.document_id))
                .await
                .unwrap_err(),
            client
                .trash_document(trash(site, &first.document_id, &user))
                .await
                .unwrap_err(),
        ] {
            refused(&status, Code::NotFound, "DOCUMENT_NOT_FOUND");
        }

        let next = create(client, new_issue(site, "PROJ", "Another")).await;
        assert_eq!(
            issue_of(&next).key,
            "PROJ-2",
            "a trashed issue keeps its number"
        );
    }
}

#[tokio::test]
async fn another_sites_document_is_not_found_and_stays_unchanged() {
    for backend in testing::backends() {
        let mut suite = spawn(backend).await;
        let (acme, _) = suite.site("Acme").await;
        let (globex, _) = suite.site("Globex").await;
        let client = &mut suite.documents;
        let secret = create(client, new_page(acme, "Acme secrets", "do not leak")).await;
        create(client, new_page(globex, "Globex home", "")).await;
        let id = secret.document_id.clone();

        let statuses = [
            client.get_document(get(globex, &id)).await.unwrap_err(),
            client
                .update_document(page_change(
                    globex,
                    &id,
                    PageChange {
                        title: Some("Hijacked".to_owned()),
                        body: None,
                    },
                ))
                .await
                .unwrap_err(),
            client
                .trash_document(trash(globex, &id, &UserId::new().to_string()))
                .await
                .unwrap_err(),
            client
                .list_versions(versions(globex, &id))
                .await
                .unwrap_err(),
        ];
        for status in statuses {
            let info = refused(&status, Code::NotFound, "DOCUMENT_NOT_FOUND");
            assert_eq!(info.metadata["site_id"], globex.to_string(), "{backend:?}");
            assert!(!status.message().contains("leak"));
        }
        let found = client
            .search_documents(search(globex, "secrets"))
            .await
            .unwrap()
            .into_inner();
        assert!(found.documents.is_empty());

        let retried_elsewhere = client
            .create_document(CreateDocumentRequestExt::with_id(
                new_page(globex, "Acme secrets", "do not leak"),
                &id,
            ))
            .await
            .unwrap_err();
        refused(&retried_elsewhere, Code::AlreadyExists, "DOCUMENT_ID_TAKEN");

        let untouched = client
            .get_document(get(acme, &id))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(untouched, secret);
    }
}

/// A create request with a caller-chosen ID or owner.
trait CreateDocumentRequestExt {
    fn with_id(self, document_id: &str) -> Self;
    fn owned_by(self, app_installation_id: &str) -> Self;
}

impl CreateDocumentRequestExt for micros_proto::productdata::v1::CreateDocumentRequest {
    fn with_id(self, document_id: &str) -> Self {
        Self {
            document_id: document_id.to_owned(),
            ..self
        }
    }

    fn owned_by(self, app_installation_id: &str) -> Self {
        Self {
            app_installation_id: app_installation_id.to_owned(),
            ..self
        }
    }
}

#[tokio::test]
async fn a_create_with_a_chosen_id_is_idempotent() {
    for backend in testing::backends() {
        let mut suite = spawn(backend).await;
        let (site, _) = suite.site("Acme").await;
        let client = &mut suite.documents;
        let id = DocumentId::new().to_string();
        let request = new_issue(site, "PROJ", "Exactly once").with_id(&id);
        let created = create(client, request.clone()).await;
        assert_eq!(created.document_id, id);
        let again = create(client, request.clone()).await;
        assert_eq!(again, created, "{backend:?}");
        assert_eq!(all_documents(client, site).await.len(), 1);

        let other = client
            .create_document(new_issue(site, "PROJ", "Something else").with_id(&id))
            .await
            .unwrap_err();
        let info = refused(&other, Code::AlreadyExists, "DOCUMENT_ID_TAKEN");
        assert_eq!(info.metadata["document_id"], id);
    }
}

#[tokio::test]
async fn ids_of_the_wrong_kind_are_refused_naming_both_kinds() {
    for backend in testing::backends() {
        let mut suite = spawn(backend).await;
        let (site, _) = suite.site("Acme").await;
        let client = &mut suite.documents;
        let page = create(client, new_page(site, "Home", "")).await;
        let app = AppInstallationId::new().to_string();

        let site_as_app = client
            .list_documents(ListDocumentsRequest {
                site_id: app.clone(),
                ..ListDocumentsRequest::default()
            })
            .await
            .unwrap_err();
        let info = refused(&site_as_app, Code::InvalidArgument, "WRONG_ID_KIND");
        assert_eq!(
            (
                info.metadata["field"].as_str(),
                info.metadata["expected_kind"].as_str()
            ),
            ("site_id", "site")
        );
        assert_eq!(info.metadata["actual_kind"], "app", "{backend:?}");
        assert!(site_as_app.message().contains("site ID"));
        assert!(site_as_app.message().contains("app installation ID"));

        let document_as_site = client
            .get_document(get(site, &site.to_string()))
            .await
            .unwrap_err();
        let info = refused(&document_as_site, Code::InvalidArgument, "WRONG_ID_KIND");
        assert_eq!(info.metadata["expected_kind"], "doc");
        assert_eq!(info.metadata["actual_kind"], "site");

        let user_as_site = client
            .trash_document(trash(site, &page.document_id, &site.to_string()))
            .await
            .unwrap_err();
        let info = refused(&user_as_site, Code::InvalidArgument, "WRONG_ID_KIND");
        assert_eq!(info.metadata["field"], "user_id");
        assert_eq!(info.metadata["expected_kind"], "usr");

        let owner_as_site = client
            .create_document(new_page(site, "Owned", "").owned_by(&site.to_string()))
            .await
            .unwrap_err();
        let info = refused(&owner_as_site, Code::InvalidArgument, "WRONG_ID_KIND");
        assert_eq!(info.metadata["expected_kind"], "app");

        assert_eq!(
            all_documents(client, site).await,
            [page],
            "nothing was created or trashed"
        );
    }
}

#[tokio::test]
async fn input_is_validated_and_writes_need_the_admin_role() {
    for backend in testing::backends() {
        let mut suite = spawn(backend).await;
        let (site, _) = suite.site("Acme").await;
        let client = &mut suite.documents;
        let cases = [
            (
                micros_proto::productdata::v1::CreateDocumentRequest {
                    site_id: site.to_string(),
                    ..Default::default()
                },
                "MISSING_FIELD",
            ),
            (
                new_issue(site, "proj", "Lower-case project"),
                "INVALID_PROJECT_KEY",
            ),
            (new_issue(site, "PROJ", "   "), "MISSING_FIELD"),
            (new_page(site, &"x".repeat(256), ""), "TITLE_TOO_LONG"),
            (
                new_page(site, "Huge", &"x".repeat(64 * 1024 + 1)),
                "BODY_TOO_LARGE",
            ),
        ];
        for (request, reason) in cases {
            let status = client.create_document(request).await.unwrap_err();
            refused(&status, Code::InvalidArgument, reason);
        }
        let bad_status = client
            .create_document(micros_proto::productdata::v1::CreateDocumentRequest {
                content: Some(create_document_request::Content::Issue(
                    micros_proto::productdata::v1::NewIssue {
                        project_key: "PROJ".to_owned(),
                        summary: "Status 42".to_owned(),
                        status: 42,
                    },
                )),
                ..new_issue(site, "PROJ", "")
            })
            .await
            .unwrap_err();
        refused(&bad_status, Code::InvalidArgument, "INVALID_ISSUE_STATUS");
        assert!(all_documents(client, site).await.is_empty(), "{backend:?}");

        let mut viewer = ProductDataServiceClient::new(suite.service.channel(&[Role::Viewer]));
        let denied = viewer
            .create_document(new_page(site, "Viewer page", ""))
            .await
            .unwrap_err();
        refused(&denied, Code::PermissionDenied, "MISSING_ROLE");
        assert!(viewer.list_documents(list(site)).await.is_ok());
        let anonymous = ProductDataServiceClient::new(suite.service.anonymous_channel())
            .list_documents(list(site))
            .await
            .unwrap_err();
        assert_eq!(anonymous.code(), Code::Unauthenticated);
    }
}

#[tokio::test]
async fn sites_spread_over_the_shards_the_catalog_places_them_on() {
    for backend in testing::backends() {
        let mut suite = spawn(backend).await;
        let mut placed: Vec<(SiteId, usize)> = Vec::new();
        for n in 0..12 {
            let (site, shard) = suite.site(&format!("Tenant{n}")).await;
            create(
                &mut suite.documents,
                new_page(site, &format!("Home of {n}"), ""),
            )
            .await;
            create(&mut suite.documents, new_issue(site, "PROJ", "First issue")).await;
            placed.push((site, shard));
        }
        let shards = suite.shard_databases().await;
        let mut sites_per_shard: BTreeMap<usize, usize> = BTreeMap::new();
        for (site, shard) in &placed {
            for (candidate, database) in shards.iter().enumerate() {
                let rows = rows_of(database, "documents", *site).await;
                let expected = if candidate == *shard { 2 } else { 0 };
                assert_eq!(
                    rows, expected,
                    "{backend:?}: site {site} placed on shard {shard}, rows in shard {candidate}"
                );
            }
            *sites_per_shard.entry(*shard).or_default() += 1;
        }
        assert!(
            sites_per_shard.len() > 1,
            "12 sites all landed on one shard: {sites_per_shard:?}"
        );
        for (site, _) in &placed {
            assert_eq!(all_documents(&mut suite.documents, *site).await.len(), 2);
        }
    }
}

#[tokio::test]
async fn sites_the_catalog_does_not_place_here_are_refused() {
    for backend in testing::backends() {
        let mut suite = spawn(backend).await;
        let stranger = SiteId::new();
        let unknown = suite
            .documents
            .create_document(new_page(stranger, "Nowhere", ""))
            .await
            .unwrap_err();
        let info = refused(&unknown, Code::NotFound, "SITE_NOT_FOUND");
        assert_eq!(
            info.metadata["site_id"],
            stranger.to_string(),
            "{backend:?}"
        );
        let unknown_read = suite
            .documents
            .list_documents(list(stranger))
            .await
            .unwrap_err();
        refused(&unknown_read, Code::NotFound, "SITE_NOT_FOUND");

        let mut misconfigured = spawn_with_shards(backend, 2).await;
        let (site, _) = misconfigured.site("Acme").await;
        let mismatch = misconfigured
            .documents
            .create_document(new_page(site, "Home", ""))
            .await
            .unwrap_err();
        let info = refused(&mismatch, Code::FailedPrecondition, "SHARD_COUNT_MISMATCH");
        assert_eq!(info.metadata["catalog_shard_count"], "4");
        assert_eq!(info.metadata["configured_shard_count"], "2");
        assert!(mismatch.message().contains("service.shards"));
    }
}

#[tokio::test]
async fn a_first_document_is_refused_for_a_site_the_catalog_deleted() {
    for backend in testing::backends() {
        let mut suite = spawn(backend).await;
        let (site, _) = suite.site("Deleted").await;
        suite.service.delete_catalog_site(site).await;
        let status = suite
            .documents
            .create_document(new_page(site, "Home", ""))
            .await
            .unwrap_err();
        let info = refused(&status, Code::NotFound, "SITE_DELETED");
        assert_eq!(info.metadata["site_id"], site.to_string(), "{backend:?}");
        let read = suite
            .documents
            .list_documents(list(site))
            .await
            .unwrap_err();
        refused(&read, Code::NotFound, "SITE_DELETED");
        println!("{backend:?}: first document refused for a deleted site");
    }
}

#[tokio::test]
async fn documents_may_belong_to_an_app_installed_on_the_site() {
    for backend in testing::backends() {
        let mut suite = spawn(backend).await;
        let (site, _) = suite.site("Acme").await;
        let (other, _) = suite.site("Globex").await;
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

        let owned = create(
            &mut suite.documents,
            new_page(site, "Insight report", "").owned_by(&app),
        )
        .await;
        assert_eq!(owned.app_installation_id, app, "{backend:?}");

        for (site_id, app_id) in [
            (other, app.clone()),
            (site, AppInstallationId::new().to_string()),
        ] {
            let status = suite
                .documents
                .create_document(new_page(site_id, "Stray", "").owned_by(&app_id))
                .await
                .unwrap_err();
            let info = refused(&status, Code::NotFound, "APP_INSTALLATION_NOT_FOUND");
            assert_eq!(info.metadata["app_installation_id"], app_id);
        }
        assert_eq!(all_documents(&mut suite.documents, site).await, [owned]);
    }
}
