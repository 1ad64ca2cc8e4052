//! "April 2022, replayed" (DESIGN.md, steps 1–6 and 8) through gRPC only, with 40 sites
//! on every configured backend (PostgreSQL in CI). Step 7, the orchestrator killed
//! mid-restore, is `tests/crash.rs`.

mod support;

use std::time::Duration;

use micros_orchestrator::OrchestratorSettings;
use micros_platform::{auth::Role, ids::SiteId, lifecycle::Target, testing};
use micros_proto::{
    catalog::v1::{ListAppInstallationsRequest, catalog_service_client::CatalogServiceClient},
    identity::v1::{
        CreateUserRequest, DeleteUserRequest, ListUsersRequest,
        identity_service_client::IdentityServiceClient,
    },
    lifecycle::v1::{
        Justification, SiteTarget, SoftDeleteRequest, TenantState, target,
        tenant_lifecycle_client::TenantLifecycleClient,
    },
    media::v1::{
        Chunk, DeleteAttachmentRequest, DownloadRequest, UploadMetadata, UploadRequest,
        media_service_client::MediaServiceClient, upload_request::Part,
    },
    orchestrator::v1::{
        self as pb, ApplyPlanRequest, ApprovePlanRequest, CreatePlanRequest, PlanKind,
    },
    productdata::v1::{
        CreateDocumentRequest, GetDocumentRequest, IssueChange, IssueStatus, ListDocumentsRequest,
        NewIssue, Page, TrashDocumentRequest, UpdateDocumentRequest, create_document_request,
        product_data_service_client::ProductDataServiceClient, update_document_request,
    },
};
use sha2::Digest;
use support::{Suite, orchestrator_client, prints, settle};
use tonic::Code;
use tonic_types::StatusExt;

const SITES: usize = 40;
const WITH_INSIGHT: usize = 35;
const CASTAGNOLI: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// What the test provisioned for one site.
struct Provisioned {
    site_id: String,
    admin_email: String,
    shard: i32,
    app_installation_id: Option<String>,
    attachment: (String, Vec<u8>),
    trashed_document: String,
    deleted_user: String,
}

fn plan(kind: PlanKind, inputs: Vec<String>, reason: &str) -> CreatePlanRequest {
    CreatePlanRequest {
        kind: kind as i32,
        inputs,
        reason: reason.to_owned(),
        ticket: "INC-2022-04".to_owned(),
        ..Default::default()
    }
}

fn site_targets(sites: &[Provisioned]) -> Vec<Target> {
    sites
        .iter()
        .map(|site| Target::Site(SiteId::parse(&site.site_id).unwrap()))
        .collect()
}

async fn upload(
    media: &mut MediaServiceClient<micros_platform::client::ServiceChannel>,
    site_id: &str,
    name: &str,
    data: &[u8],
) -> String {
    let metadata = UploadMetadata {
        site_id: site_id.to_owned(),
        file_name: name.to_owned(),
        content_type: "text/plain".to_owned(),
        size_bytes: data.len() as i64,
        sha256: format!("{:x}", sha2::Sha256::digest(data)),
        ..Default::default()
    };
    let mut parts = vec![UploadRequest {
        part: Some(Part::Metadata(metadata)),
    }];
    for piece in data.chunks(1000) {
        parts.push(UploadRequest {
            part: Some(Part::Chunk(Chunk {
                data: piece.to_vec(),
                crc32c: Some(CASTAGNOLI.checksum(piece)),
            })),
        });
    }
    media
        .upload(tokio_stream::iter(parts))
        .await
        .unwrap()
        .into_inner()
        .media_id
}

async fn download(
    media: &mut MediaServiceClient<micros_platform::client::ServiceChannel>,
    site_id: &str,
    media_id: &str,
) -> Result<Vec<u8>, tonic::Status> {
    let mut stream = media
        .download(DownloadRequest {
            site_id: site_id.to_owned(),
            media_id: media_id.to_owned(),
        })
        .await?
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await? {
        bytes.extend_from_slice(&chunk.data);
    }
    Ok(bytes)
}

/// Step 1: sites with products, users, documents, attachments and (mostly) `insight`.
async fn provision(
    suite: &Suite,
    orchestrator_url: &str,
    count: usize,
    offset: usize,
) -> Vec<Provisioned> {
    let mut orchestrator = orchestrator_client(orchestrator_url, "provisioner", &[Role::Admin]);
    let mut identity =
        IdentityServiceClient::new(suite.channel("identity", "admin", &[Role::Admin]));
    let mut media = MediaServiceClient::new(suite.channel("media", "admin", &[Role::Admin]));
    let mut documents =
        ProductDataServiceClient::new(suite.channel("product-data", "admin", &[Role::Admin]));
    let mut sites = Vec::new();
    for index in offset..offset + count {
        let admin_email = format!("admin{index}@customer{index}.example");
        let provisioned = orchestrator
            .provision_site(pb::ProvisionSiteRequest {
                name: format!("Customer {index}"),
                url: format!("customer{index}.example.net"),
                region: "us-east".to_owned(),
                products: vec!["jira".to_owned(), "confluence".to_owned()],
                admin: Some(pb::Contact {
                    email: admin_email.clone(),
                    name: format!("Admin {index}"),
                    kind: "admin".to_owned(),
                }),
                contacts: vec![pb::Contact {
                    email: format!("billing@customer{index}.example"),
                    name: String::new(),
                    kind: "billing".to_owned(),
                }],
                apps: if index - offset < WITH_INSIGHT {
                    vec!["insight".to_owned()]
                } else {
                    Vec::new()
                },
                site_id: String::new(),
                seats: 25,
            })
            .await
            .unwrap()
            .into_inner();
        let site_id = provisioned.site_id.clone();
        let user = identity
            .create_user(CreateUserRequest {
                site_id: site_id.clone(),
                email: format!("leaver{index}@customer{index}.example"),
                display_name: "Leaver".to_owned(),
                site_admin: false,
                user_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        identity
            .delete_user(DeleteUserRequest {
                site_id: site_id.clone(),
                user_id: user.user_id.clone(),
            })
            .await
            .unwrap();
        let mut document_ids = Vec::new();
        for (position, content) in [
            create_document_request::Content::Issue(NewIssue {
                project_key: "OPS".to_owned(),
                summary: format!("Issue of customer {index}"),
                status: IssueStatus::ToDo as i32,
            }),
            create_document_request::Content::Page(Page {
                title: "Runbook".to_owned(),
                body: "Steps".to_owned(),
            }),
            create_document_request::Content::Page(Page {
                title: "Old draft".to_owned(),
                body: "Delete me".to_owned(),
            }),
        ]
        .into_iter()
        .enumerate()
        {
            let app = provisioned
                .app_installation_ids
                .first()
                .filter(|_| position == 1)
                .cloned()
                .unwrap_or_default();
            let document = documents
                .create_document(CreateDocumentRequest {
                    site_id: site_id.clone(),
                    document_id: String::new(),
                    app_installation_id: app,
                    content: Some(content),
                })
                .await
                .unwrap()
                .into_inner();
            document_ids.push(document.document_id);
        }
        documents
            .trash_document(TrashDocumentRequest {
                site_id: site_id.clone(),
                document_id: document_ids[2].clone(),
                user_id: user.user_id.clone(),
            })
            .await
            .unwrap();
        let data: Vec<u8> = (0..2500u32)
            .map(|byte| (byte * 7 + index as u32) as u8)
            .collect();
        let media_id = upload(&mut media, &site_id, "diagram.txt", &data).await;
        let discarded = upload(&mut media, &site_id, "discarded.txt", b"not wanted").await;
        media
            .delete_attachment(DeleteAttachmentRequest {
                site_id: site_id.clone(),
                media_id: discarded,
            })
            .await
            .unwrap();
        sites.push(Provisioned {
            site_id,
            admin_email,
            shard: provisioned.shard,
            app_installation_id: provisioned.app_installation_ids.first().cloned(),
            attachment: (media_id, data),
            trashed_document: document_ids[2].clone(),
            deleted_user: user.user_id,
        });
    }
    sites
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn april_2022_replayed() {
    for backend in testing::backends() {
        let suite = Suite::start(backend).await;
        let orchestrator = suite
            .orchestrator(backend, OrchestratorSettings::default())
            .await;
        let url = orchestrator.server.url();
        let mut alice = orchestrator_client(&url, "alice", &[Role::Operator, Role::Viewer]);
        let mut bob = orchestrator_client(&url, "bob", &[Role::Operator, Role::Approver]);

        // 1. Provision.
        let sites = provision(&suite, &url, SITES, 0).await;
        let bystanders = provision(&suite, &url, 6, SITES).await;
        let targets = site_targets(&sites);
        let at_start = prints(&suite.describe(&targets).await);

        // 2. An uninstall of `insight` fed site IDs is refused at the edge.
        let site_ids: Vec<String> = sites.iter().map(|site| site.site_id.clone()).collect();
        let mistaken = alice
            .create_plan(CreatePlanRequest {
                app_key: "insight".to_owned(),
                ..plan(
                    PlanKind::UninstallApp,
                    site_ids.clone(),
                    "remove the legacy Insight app",
                )
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            mistaken.targets.is_empty(),
            "{backend:?}: the plan shows zero app installations"
        );
        assert_eq!(mistaken.errors.len(), SITES);
        assert!(
            mistaken
                .errors
                .iter()
                .all(|error| error.reason == "WRONG_KIND")
        );
        let refused = alice
            .apply_plan(ApplyPlanRequest {
                plan_id: mistaken.plan_id.clone(),
                fingerprint: mistaken.fingerprint.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            refused.get_details_error_info().unwrap().reason,
            "PLAN_HAS_ERRORS"
        );
        assert_eq!(
            prints(&suite.describe(&targets).await),
            at_start,
            "nothing changed anywhere"
        );

        // 3. The correct uninstall: app installations, zero sites, in waves; only the app goes.
        let app_ids: Vec<String> = sites
            .iter()
            .filter_map(|site| site.app_installation_id.clone())
            .collect();
        let uninstall = alice
            .create_plan(CreatePlanRequest {
                app_key: "insight".to_owned(),
                expected_kind: pb::ExpectedKind::AppInstallation as i32,
                expected_count: WITH_INSIGHT as i32,
                ..plan(
                    PlanKind::UninstallApp,
                    app_ids.clone(),
                    "remove the legacy Insight app",
                )
            })
            .await
            .unwrap()
            .into_inner();
        assert!(uninstall.errors.is_empty(), "{:?}", uninstall.errors);
        assert_eq!(uninstall.targets.len(), WITH_INSIGHT);
        assert!(
            uninstall
                .targets
                .iter()
                .all(|target| !target.app_installation_id.is_empty())
        );
        bob.approve_plan(ApprovePlanRequest {
            plan_id: uninstall.plan_id.clone(),
            fingerprint: uninstall.fingerprint.clone(),
        })
        .await
        .unwrap();
        let uninstalling = alice
            .apply_plan(ApplyPlanRequest {
                plan_id: uninstall.plan_id.clone(),
                fingerprint: uninstall.fingerprint.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(uninstalling.waves > 2, "canary, then growing waves");
        let uninstalled = settle(&mut alice, &uninstalling.operation_id).await;
        assert_eq!(
            uninstalled.state(),
            pb::OperationState::Succeeded,
            "{}",
            uninstalled.halt_reason
        );
        let mut catalog =
            CatalogServiceClient::new(suite.channel("catalog", "inspector", &[Role::Viewer]));
        let mut documents = ProductDataServiceClient::new(suite.channel(
            "product-data",
            "inspector",
            &[Role::Viewer],
        ));
        for site in &sites {
            let apps = catalog
                .list_app_installations(ListAppInstallationsRequest {
                    site_id: site.site_id.clone(),
                    app_key: String::new(),
                })
                .await
                .unwrap()
                .into_inner()
                .app_installations;
            assert!(apps.is_empty(), "insight is gone from {}", site.site_id);
        }
        let after_uninstall = suite.describe(&targets).await;
        assert!(
            after_uninstall
                .values()
                .flatten()
                .all(|outcome| outcome.state == TenantState::Active as i32),
            "no site was deleted by the uninstall"
        );
        let app_docs = documents
            .list_documents(ListDocumentsRequest {
                site_id: sites[0].site_id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .documents;
        assert_eq!(
            app_docs.len(),
            1,
            "the app's page went with it; the issue stays (the trashed page stays trashed)"
        );

        // 4. A bulk deletion above the threshold needs approval; approved, it runs in waves.
        let before_delete = prints(&after_uninstall);
        let delete = alice
            .create_plan(CreatePlanRequest {
                expected_kind: pb::ExpectedKind::Site as i32,
                expected_count: SITES as i32,
                ..plan(PlanKind::DeleteSites, site_ids.clone(), "customers left")
            })
            .await
            .unwrap()
            .into_inner();
        assert!(delete.requires_approval && delete.errors.is_empty());
        assert_eq!(delete.blast_radius.as_ref().unwrap().sites, SITES as i32);
        let unapproved = alice
            .apply_plan(ApplyPlanRequest {
                plan_id: delete.plan_id.clone(),
                fingerprint: delete.fingerprint.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            unapproved.get_details_error_info().unwrap().reason,
            "APPROVAL_REQUIRED"
        );
        bob.approve_plan(ApprovePlanRequest {
            plan_id: delete.plan_id.clone(),
            fingerprint: delete.fingerprint.clone(),
        })
        .await
        .unwrap();
        let deleting = alice
            .apply_plan(ApplyPlanRequest {
                plan_id: delete.plan_id.clone(),
                fingerprint: delete.fingerprint.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let deleted = settle(&mut alice, &deleting.operation_id).await;
        assert_eq!(
            deleted.state(),
            pb::OperationState::Succeeded,
            "{}",
            deleted.halt_reason
        );
        let while_deleted = suite.describe(&targets).await;
        assert!(
            while_deleted
                .values()
                .flatten()
                .all(|outcome| outcome.state == TenantState::Deleted as i32)
        );
        assert_eq!(
            prints(&while_deleted),
            before_delete,
            "fingerprints unchanged while deleted"
        );
        let gone = documents
            .get_document(GetDocumentRequest {
                site_id: sites[0].site_id.clone(),
                document_id: app_docs[0].document_id.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(gone.code(), Code::NotFound);

        // … and a direct burst of deletions to the catalog is refused at the source.
        let mut direct =
            TenantLifecycleClient::new(suite.channel("catalog", "script", &[Role::Lifecycle]));
        let mut refused_burst = None;
        for bystander in &bystanders {
            let attempt = direct
                .soft_delete(SoftDeleteRequest {
                    targets: vec![micros_proto::lifecycle::v1::Target {
                        kind: Some(target::Kind::Site(SiteTarget {
                            site_id: bystander.site_id.clone(),
                        })),
                    }],
                    operation_id: micros_platform::ids::OperationId::new().to_string(),
                    justification: Some(Justification {
                        reason: "cleanup script".to_owned(),
                        ticket: String::new(),
                    }),
                    validate_only: false,
                    lease_token: 0,
                    call_key: String::new(),
                })
                .await;
            if let Err(status) = attempt {
                refused_burst = Some(status);
                break;
            }
        }
        let burst = refused_burst.expect("the sixth direct deletion within an hour is refused");
        assert_eq!(burst.code(), Code::FailedPrecondition);
        assert_eq!(
            burst.get_details_error_info().unwrap().reason,
            "DELETION_RATE_EXCEEDED"
        );

        // 5. Restore everything with the original IDs, verified against the fingerprints.
        let restore = alice
            .create_plan(CreatePlanRequest {
                undo_operation_id: deleting.operation_id.clone(),
                ..plan(
                    PlanKind::RestoreSites,
                    Vec::new(),
                    "restore after the mistaken deletion",
                )
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(restore.targets.len(), SITES);
        bob.approve_plan(ApprovePlanRequest {
            plan_id: restore.plan_id.clone(),
            fingerprint: restore.fingerprint.clone(),
        })
        .await
        .unwrap();
        let restoring = alice
            .apply_plan(ApplyPlanRequest {
                plan_id: restore.plan_id.clone(),
                fingerprint: restore.fingerprint.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let restored = settle(&mut alice, &restoring.operation_id).await;
        assert_eq!(
            restored.state(),
            pb::OperationState::Succeeded,
            "{}",
            restored.halt_reason
        );
        let after_restore = suite.describe(&targets).await;
        assert!(
            after_restore
                .values()
                .flatten()
                .all(|outcome| outcome.state == TenantState::Active as i32)
        );
        assert_eq!(
            prints(&after_restore),
            before_delete,
            "{backend:?}: every service, every site, same fingerprints"
        );
        let mut media =
            MediaServiceClient::new(suite.channel("media", "inspector", &[Role::Viewer]));
        let mut identity =
            IdentityServiceClient::new(suite.channel("identity", "inspector", &[Role::Viewer]));
        for site in &sites {
            let bytes = download(&mut media, &site.site_id, &site.attachment.0)
                .await
                .unwrap();
            assert_eq!(bytes, site.attachment.1, "attachment bytes identical");
            let trashed = documents
                .get_document(GetDocumentRequest {
                    site_id: site.site_id.clone(),
                    document_id: site.trashed_document.clone(),
                })
                .await
                .unwrap_err();
            assert_eq!(
                trashed.code(),
                Code::NotFound,
                "a document trashed before stays trashed"
            );
            let users = identity
                .list_users(ListUsersRequest {
                    site_id: site.site_id.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .users;
            assert!(
                users.iter().all(|user| user.user_id != site.deleted_user),
                "a deleted user stays deleted"
            );
        }
        let report = alice
            .get_report(pb::GetReportRequest {
                operation_id: restoring.operation_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(report.percent_restored, 100.0);
        assert_eq!(report.confidence, 1.0);
        assert!(
            report
                .sites
                .iter()
                .all(|site| !site.admin_contacts.is_empty()),
            "support can reach every customer"
        );

        // 8. A tenant corrupted by a bad update goes back to a point in time; its shard
        //    neighbours are untouched.
        let victim = &sites[0];
        let neighbour = sites[1..]
            .iter()
            .find(|site| site.shard == victim.shard)
            .expect("40 sites on 4 shards share one");
        let victim_target = site_targets(std::slice::from_ref(victim));
        let neighbour_target = site_targets(std::slice::from_ref(neighbour));
        let victim_before = prints(&suite.describe(&victim_target).await);
        let neighbour_before = prints(&suite.describe(&neighbour_target).await);
        suite.clock.advance(Duration::from_secs(1));
        let t = micros_platform::clock::Clock::now(&suite.clock);
        suite.clock.advance(Duration::from_secs(1));
        let mut writer = ProductDataServiceClient::new(suite.channel(
            "product-data",
            "bad-script",
            &[Role::Admin],
        ));
        let issue = writer
            .list_documents(ListDocumentsRequest {
                site_id: victim.site_id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .documents
            .remove(0);
        writer
            .update_document(UpdateDocumentRequest {
                site_id: victim.site_id.clone(),
                document_id: issue.document_id.clone(),
                expected_version: None,
                change: Some(update_document_request::Change::Issue(IssueChange {
                    summary: Some("CORRUPTED".to_owned()),
                    status: Some(IssueStatus::Done as i32),
                })),
            })
            .await
            .unwrap();
        assert_ne!(prints(&suite.describe(&victim_target).await), victim_before);
        let rewind = alice
            .create_plan(CreatePlanRequest {
                point_in_time: Some(t.into()),
                ..plan(
                    PlanKind::RestoreSites,
                    vec![victim.site_id.clone()],
                    "undo a bad update",
                )
            })
            .await
            .unwrap()
            .into_inner();
        assert!(rewind.errors.is_empty(), "{:?}", rewind.errors);
        let rewinding = alice
            .apply_plan(ApplyPlanRequest {
                plan_id: rewind.plan_id,
                fingerprint: rewind.fingerprint,
            })
            .await
            .unwrap()
            .into_inner();
        let rewound = settle(&mut alice, &rewinding.operation_id).await;
        assert_eq!(
            rewound.state(),
            pb::OperationState::Succeeded,
            "{}",
            rewound.halt_reason
        );
        assert_eq!(
            prints(&suite.describe(&victim_target).await),
            victim_before,
            "back to T in every service"
        );
        assert_eq!(
            prints(&suite.describe(&neighbour_target).await),
            neighbour_before,
            "the shard neighbour is untouched"
        );

        // 6. Purge before expiry is refused; after it, rows and blobs go everywhere; the
        //    contact escrow still finds the customer's admin.
        let doomed: Vec<String> = sites[SITES - 3..]
            .iter()
            .map(|site| site.site_id.clone())
            .collect();
        let again = alice
            .create_plan(plan(
                PlanKind::DeleteSites,
                doomed.clone(),
                "contract ended",
            ))
            .await
            .unwrap()
            .into_inner();
        // Approved, so it gets a budget: the bystanders used up this hour's direct rate.
        bob.approve_plan(ApprovePlanRequest {
            plan_id: again.plan_id.clone(),
            fingerprint: again.fingerprint.clone(),
        })
        .await
        .unwrap();
        let deleting_again = alice
            .apply_plan(ApplyPlanRequest {
                plan_id: again.plan_id,
                fingerprint: again.fingerprint,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            settle(&mut alice, &deleting_again.operation_id)
                .await
                .state(),
            pb::OperationState::Succeeded
        );
        let early = alice
            .create_plan(plan(PlanKind::PurgeSites, doomed.clone(), "retention"))
            .await
            .unwrap()
            .into_inner();
        // Before expiry, the plan itself lists every site as not expired, and cannot
        // be applied.
        assert_eq!(early.targets.len(), 0);
        assert_eq!(early.errors.len(), doomed.len());
        assert!(
            early
                .errors
                .iter()
                .all(|problem| problem.reason == "NOT_EXPIRED"
                    && problem.message.contains("purging is refused before then")),
            "{:?}",
            early.errors
        );
        let refused = alice
            .apply_plan(ApplyPlanRequest {
                plan_id: early.plan_id,
                fingerprint: early.fingerprint,
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        assert_eq!(
            refused.get_details_error_info().unwrap().reason,
            "PLAN_HAS_ERRORS"
        );
        let blobs_before = count_files(suite.blob_dir.path());

        suite.clock.advance(Duration::from_secs(31 * 24 * 3600));
        let purge = alice
            .create_plan(plan(PlanKind::PurgeSites, doomed.clone(), "retention"))
            .await
            .unwrap()
            .into_inner();
        let purging = alice
            .apply_plan(ApplyPlanRequest {
                plan_id: purge.plan_id,
                fingerprint: purge.fingerprint,
            })
            .await
            .unwrap()
            .into_inner();
        let purged = settle(&mut alice, &purging.operation_id).await;
        assert_eq!(
            purged.state(),
            pb::OperationState::Succeeded,
            "{}",
            purged.halt_reason
        );
        let doomed_targets = site_targets(&sites[SITES - 3..]);
        let after_purge = suite.describe(&doomed_targets).await;
        for outcome in after_purge.values().flatten() {
            assert_eq!(outcome.state, TenantState::Purged as i32);
            assert!(
                outcome
                    .counts
                    .iter()
                    .all(|count| count.live == 0 && count.deleted == 0)
            );
        }
        assert!(
            count_files(suite.blob_dir.path()) <= blobs_before - 6,
            "two blobs of each purged site are gone"
        );
        let escrow = alice
            .find_sites_by_contact(pb::FindSitesByContactRequest {
                email: sites[SITES - 1].admin_email.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .sites;
        assert_eq!(escrow.len(), 1);
        assert_eq!(escrow[0].site_id, doomed[2]);
        assert_eq!(escrow[0].state, "purged");
        let survivors = site_targets(&sites[..SITES - 3]);
        assert!(
            suite
                .describe(&survivors)
                .await
                .values()
                .flatten()
                .all(|outcome| outcome.state == TenantState::Active as i32)
        );

        orchestrator.stop().await;
        suite.stop().await;
    }
}

fn count_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| {
                    let path = entry.path();
                    if path.is_dir() { count_files(&path) } else { 1 }
                })
                .sum()
        })
        .unwrap_or(0)
}
