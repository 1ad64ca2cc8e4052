//! Restore drills on scratch copies, against all five services through gRPC: a copy is
//! whole (every table's rows, blobs included), invisible to customers' reads and
//! listings, carries its origin, and can be purged at once; a drill copies, deletes,
//! restores, verifies and purges copies while a reader keeps reading the customers'
//! sites and finds every read answered and their data unchanged; drills run on a
//! schedule.

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use micros_orchestrator::OrchestratorSettings;
use micros_platform::{
    auth::Role,
    ids::{OperationId, SiteId},
    lifecycle::{Target, grpc::target_to_proto},
    testing,
};
use micros_proto::{
    catalog::v1::{GetSiteRequest, ListSitesRequest, catalog_service_client::CatalogServiceClient},
    lifecycle::v1::{
        CopyRequest, Justification, PurgeRequest, SiteCopy, TenantState,
        tenant_lifecycle_client::TenantLifecycleClient,
    },
    media::v1::{ListAttachmentsRequest, media_service_client::MediaServiceClient},
    orchestrator::v1::{
        self as pb, ApplyPlanRequest, CreatePlanRequest, ListOperationsRequest, PlanKind,
    },
    productdata::v1::{
        ListDocumentsRequest, product_data_service_client::ProductDataServiceClient,
    },
};
use support::{SERVICES, Suite, agreed_state, orchestrator_client, settle};
use tonic_types::StatusExt;

fn justification() -> Option<Justification> {
    Some(Justification {
        reason: "drill test".to_owned(),
        ticket: String::new(),
    })
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_copy_is_whole_invisible_and_purged_at_once() {
    for backend in testing::backends() {
        let suite = Suite::start(backend).await;
        let orchestrator = suite
            .orchestrator(backend, OrchestratorSettings::default())
            .await;
        let seeded = suite.seed(&orchestrator.server.url(), "copied", 1).await;
        let origin = SiteId::parse(&seeded[0].site_id).unwrap();
        let scratch = SiteId::new();
        let blobs_before = count_files(suite.blob_dir.path());
        let origin_before = suite.snapshot(&[origin.to_string()]).await;

        let copy = OperationId::new().to_string();
        let request = |operation: &str, scratch: SiteId| CopyRequest {
            copies: vec![SiteCopy {
                site_id: origin.to_string(),
                scratch_site_id: scratch.to_string(),
            }],
            operation_id: operation.to_owned(),
            justification: justification(),
            lease_token: 0,
        };
        for service in SERVICES {
            let mut lifecycle =
                TenantLifecycleClient::new(suite.channel(service, "drill", &[Role::Lifecycle]));
            let copied = lifecycle
                .copy(request(&copy, scratch))
                .await
                .unwrap_or_else(|status| panic!("{service}: {status}"))
                .into_inner();
            let again = lifecycle
                .copy(request(&copy, scratch))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(
                again.outcomes[0].fingerprint, copied.outcomes[0].fingerprint,
                "{service}: a repeated copy is answered from the record"
            );
            let taken = lifecycle
                .copy(request(&OperationId::new().to_string(), scratch))
                .await
                .unwrap_err();
            assert_eq!(
                taken.get_details_error_info().unwrap().reason,
                "SCRATCH_SITE_TAKEN",
                "{service}"
            );
        }

        let both = [Target::Site(origin), Target::Site(scratch)];
        for (service, outcomes) in suite.describe(&both).await {
            let (original, copied) = (&outcomes[0], &outcomes[1]);
            assert_eq!(copied.state(), TenantState::Active, "{service}");
            assert_eq!(copied.origin_site_id, origin.to_string(), "{service}");
            assert_eq!(
                copied.counts, original.counts,
                "{service}: every row of every table copied"
            );
            if original.counts.iter().any(|count| count.live > 0) {
                assert_ne!(
                    copied.fingerprint, original.fingerprint,
                    "{service}: the copy's IDs are its own"
                );
            }
        }
        assert!(
            count_files(suite.blob_dir.path()) > blobs_before,
            "the attachment blobs were copied"
        );

        // Invisible to customers' reads and to listings.
        let mut catalog = CatalogServiceClient::new(suite.channel(
            "catalog",
            "admin",
            &[Role::Admin, Role::Operator],
        ));
        let listed = catalog
            .list_sites(ListSitesRequest {
                page_size: 100,
                page_token: String::new(),
                show_deleted: true,
            })
            .await
            .unwrap()
            .into_inner()
            .sites;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].site_id, origin.to_string());
        let hidden = catalog
            .get_site(GetSiteRequest {
                site_id: scratch.to_string(),
                show_deleted: true,
            })
            .await
            .unwrap_err();
        assert_eq!(hidden.code(), tonic::Code::NotFound, "{hidden}");
        let unreachable = MediaServiceClient::new(suite.channel("media", "admin", &[Role::Admin]))
            .list_attachments(ListAttachmentsRequest {
                site_id: scratch.to_string(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(unreachable.code(), tonic::Code::NotFound, "{unreachable}");

        // Purged at once, whatever its retention; the origin never changed.
        let purge = OperationId::new().to_string();
        for service in SERVICES.iter().rev() {
            TenantLifecycleClient::new(suite.channel(service, "drill", &[Role::Lifecycle]))
                .purge(PurgeRequest {
                    targets: vec![target_to_proto(&Target::Site(scratch))],
                    operation_id: purge.clone(),
                    justification: justification(),
                    validate_only: false,
                    lease_token: 0,
                })
                .await
                .unwrap_or_else(|status| panic!("{service}: {status}"));
        }
        let gone = suite.snapshot(&[scratch.to_string()]).await;
        assert_eq!(
            agreed_state(&gone, &scratch.to_string()),
            Ok(TenantState::Purged)
        );
        assert_eq!(suite.snapshot(&[origin.to_string()]).await, origin_before);
        assert_eq!(count_files(suite.blob_dir.path()), blobs_before);
        orchestrator.stop().await;
        suite.stop().await;
    }
}

/// Reads every customer site through three services until told to stop; the number of
/// reads, and the first read that failed.
async fn read_continuously(
    suite: &Suite,
    sites: Vec<String>,
    stop: Arc<AtomicBool>,
) -> (usize, Option<String>) {
    let reads = AtomicUsize::new(0);
    let mut catalog =
        CatalogServiceClient::new(suite.channel("catalog", "reader", &[Role::Viewer]));
    let mut media = MediaServiceClient::new(suite.channel("media", "reader", &[Role::Viewer]));
    let mut documents =
        ProductDataServiceClient::new(suite.channel("product-data", "reader", &[Role::Viewer]));
    while !stop.load(Ordering::SeqCst) {
        for site in &sites {
            let site_read = catalog
                .get_site(GetSiteRequest {
                    site_id: site.clone(),
                    show_deleted: false,
                })
                .await;
            let attachments = media
                .list_attachments(ListAttachmentsRequest {
                    site_id: site.clone(),
                    ..Default::default()
                })
                .await;
            let listed = documents
                .list_documents(ListDocumentsRequest {
                    site_id: site.clone(),
                    ..Default::default()
                })
                .await;
            match (site_read, attachments, listed) {
                (Ok(_), Ok(attachments), Ok(listed))
                    if !attachments.get_ref().attachments.is_empty()
                        && !listed.get_ref().documents.is_empty() =>
                {
                    reads.fetch_add(3, Ordering::SeqCst);
                }
                (site_read, attachments, listed) => {
                    return (
                        reads.load(Ordering::SeqCst),
                        Some(format!("{site}: {site_read:?} {attachments:?} {listed:?}")),
                    );
                }
            }
        }
    }
    (reads.load(Ordering::SeqCst), None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drill_on_copies_takes_no_customer_site_down() {
    for backend in testing::backends() {
        let suite = Suite::start(backend).await;
        let orchestrator = suite
            .orchestrator(
                backend,
                OrchestratorSettings {
                    max_wave: 2,
                    // Below the drill's five sites: a drill on copies still needs no
                    // approval, one of the real sites does.
                    approval_threshold_sites: 2,
                    reaper_interval: Duration::ZERO,
                    ..OrchestratorSettings::default()
                },
            )
            .await;
        let url = orchestrator.server.url();
        let seeded = suite.seed(&url, "drilled", 5).await;
        let sites: Vec<String> = seeded.iter().map(|site| site.site_id.clone()).collect();
        let before = suite.snapshot(&sites).await;
        let blobs_before = count_files(suite.blob_dir.path());

        let stop = Arc::new(AtomicBool::new(false));
        let reader = read_continuously(&suite, sites.clone(), stop.clone());
        let mut alice = orchestrator_client(&url, "alice", &[Role::Operator]);
        let drilling = async {
            let plan = alice
                .create_plan(CreatePlanRequest {
                    kind: PlanKind::RestoreDrill as i32,
                    inputs: sites.clone(),
                    reason: "quarterly drill".to_owned(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert!(
                !plan.requires_approval,
                "a drill on copies needs no approval"
            );
            let operation = alice
                .apply_plan(ApplyPlanRequest {
                    plan_id: plan.plan_id,
                    fingerprint: plan.fingerprint,
                })
                .await
                .unwrap()
                .into_inner();
            let ended = settle(&mut alice, &operation.operation_id).await;
            stop.store(true, Ordering::SeqCst);
            ended
        };
        let ((reads, failed), ended) = tokio::join!(reader, drilling);
        assert_eq!(
            ended.state(),
            pb::OperationState::Succeeded,
            "{}",
            ended.halt_reason
        );
        assert_eq!(failed, None, "every read answered during the drill");
        assert!(reads > 0);
        println!("{backend:?}: {reads} customer reads answered during the drill");

        assert_eq!(
            suite.snapshot(&sites).await,
            before,
            "the customers' sites unchanged"
        );
        assert_eq!(
            count_files(suite.blob_dir.path()),
            blobs_before,
            "the copies' blobs purged with them"
        );
        let report = alice
            .get_report(pb::GetReportRequest {
                operation_id: ended.operation_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            report.title.contains("on scratch copies"),
            "{}",
            report.title
        );
        assert_eq!(report.confidence, 1.0);
        for service in SERVICES {
            for action in ["copy", "soft_delete", "restore", "discard"] {
                assert!(
                    report
                        .steps
                        .iter()
                        .any(|step| step.service == service && step.action == action),
                    "{service} {action}: {:?}",
                    report.steps
                );
            }
        }
        // A drill of the real sites has to say so, and needs approval like a deletion.
        let real = alice
            .create_plan(CreatePlanRequest {
                kind: PlanKind::RestoreDrill as i32,
                inputs: sites.clone(),
                reason: "drill the real thing".to_owned(),
                drill_real_sites: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(real.drill_real_sites && real.requires_approval);
        orchestrator.stop().await;
        suite.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drills_run_on_a_schedule_over_a_sample_of_sites() {
    for backend in testing::backends() {
        let suite = Suite::start(backend).await;
        let orchestrator = suite
            .orchestrator(
                backend,
                OrchestratorSettings {
                    drill_interval: Duration::from_millis(300),
                    drill_sample: 2,
                    reaper_interval: Duration::ZERO,
                    ..OrchestratorSettings::default()
                },
            )
            .await;
        let url = orchestrator.server.url();
        let seeded = suite.seed(&url, "scheduled", 3).await;
        let sites: Vec<String> = seeded.iter().map(|site| site.site_id.clone()).collect();
        let mut alice = orchestrator_client(&url, "alice", &[Role::Operator]);
        let mut drill = None;
        for _ in 0..600 {
            let operations = alice
                .list_operations(ListOperationsRequest::default())
                .await
                .unwrap()
                .into_inner()
                .operations;
            // Drills may start while the sites are still being seeded; wait for one that
            // found them all to sample from.
            if let Some(found) = operations.into_iter().find(|operation| {
                operation.kind() == PlanKind::RestoreDrill && operation.targets_total == 2
            }) {
                drill = Some(found);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let drill = drill.expect("a scheduled drill started");
        let ended = settle(&mut alice, &drill.operation_id).await;
        assert_eq!(
            ended.state(),
            pb::OperationState::Succeeded,
            "{}",
            ended.halt_reason
        );
        assert_eq!(ended.targets_total, 2, "a sample of drill_sample sites");
        let report = alice
            .get_report(pb::GetReportRequest {
                operation_id: drill.operation_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(report.markdown.contains("service:orchestrator-drills"));
        assert!(
            report
                .sites
                .iter()
                .all(|site| sites.contains(&site.site_id))
        );
        orchestrator.stop().await;
        suite.stop().await;
    }
}
