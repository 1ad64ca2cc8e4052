//! The catalog on the lifecycle machinery, through gRPC on every backend: site and app
//! soft delete and restore, point in time, purge, wrong ID kinds and Resolve (the
//! deletion guard, the same in every service, is proven in the suite's `guard` tests).

use std::time::Duration;

use micros_catalog::{Catalog, CatalogSettings};
use micros_platform::{
    auth::Role,
    client::ServiceChannel,
    clock::Clock,
    ids::{AppInstallationId, OperationId, SiteId},
    store::Backend,
    testing::{self, TestService},
};
use micros_proto::{
    catalog::v1::{
        self as catalog, CreateSiteRequest, GetSiteRequest, InputKind, InstallAppRequest,
        ListAppInstallationsRequest, ListProductsRequest, ProductRequest, ResolveRequest,
        catalog_service_client::CatalogServiceClient,
    },
    lifecycle::v1::{
        AppInstallationTarget, DescribeRequest, Justification, PurgeRequest, RestoreRequest,
        SiteTarget, SoftDeleteRequest, Target, TargetOutcome, TenantState, restore_request::Source,
        target::Kind, tenant_lifecycle_client::TenantLifecycleClient,
    },
};
use tonic::Code;
use tonic_types::StatusExt;

const DAY: Duration = Duration::from_secs(24 * 3600);

struct Harness {
    service: TestService<Catalog>,
    catalog: CatalogServiceClient<ServiceChannel>,
    lifecycle: TenantLifecycleClient<ServiceChannel>,
}

async fn harness(backend: Backend) -> Harness {
    let service = testing::spawn::<Catalog>(
        backend,
        CatalogSettings {
            product_data_shards: 4,
            ..CatalogSettings::default()
        },
    )
    .await;
    let catalog = CatalogServiceClient::new(service.channel(&[Role::Admin, Role::Operator]));
    let lifecycle = TenantLifecycleClient::new(service.channel(&[Role::Lifecycle]));
    Harness {
        service,
        catalog,
        lifecycle,
    }
}

fn site_target(site_id: &str) -> Target {
    Target {
        kind: Some(Kind::Site(SiteTarget {
            site_id: site_id.to_owned(),
        })),
    }
}

fn app_target(site_id: &str, app_installation_id: &str) -> Target {
    Target {
        kind: Some(Kind::AppInstallation(AppInstallationTarget {
            site_id: site_id.to_owned(),
            app_installation_id: app_installation_id.to_owned(),
        })),
    }
}

fn justification() -> Option<Justification> {
    Some(Justification {
        reason: "test".to_owned(),
        ticket: "INC-1".to_owned(),
    })
}

impl Harness {
    async fn site(&mut self, name: &str) -> String {
        let site = self
            .catalog
            .create_site(CreateSiteRequest {
                name: name.to_owned(),
                url: format!("{}.example.com", name.to_lowercase()),
                region: "us-east".to_owned(),
                site_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        self.catalog
            .activate_product(ProductRequest {
                site_id: site.site_id.clone(),
                product: "jira".to_owned(),
            })
            .await
            .unwrap();
        site.site_id
    }

    async fn install(&mut self, site_id: &str, app_key: &str) -> String {
        self.catalog
            .install_app(InstallAppRequest {
                site_id: site_id.to_owned(),
                app_key: app_key.to_owned(),
                app_installation_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .app_installation_id
    }

    async fn describe(&mut self, target: Target) -> TargetOutcome {
        self.lifecycle
            .describe(DescribeRequest {
                targets: vec![target],
            })
            .await
            .unwrap()
            .into_inner()
            .outcomes
            .remove(0)
    }

    async fn soft_delete(
        &mut self,
        targets: Vec<Target>,
        operation_id: &str,
    ) -> Result<Vec<TargetOutcome>, tonic::Status> {
        self.lifecycle
            .soft_delete(SoftDeleteRequest {
                targets,
                operation_id: operation_id.to_owned(),
                justification: justification(),
                validate_only: false,
                lease_token: 0,
                call_key: String::new(),
            })
            .await
            .map(|response| response.into_inner().outcomes)
    }

    async fn restore(&mut self, targets: Vec<Target>, source: Source) -> Vec<TargetOutcome> {
        self.lifecycle
            .restore(RestoreRequest {
                targets,
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
    }

    async fn apps(&mut self, site_id: &str) -> Vec<String> {
        self.catalog
            .list_app_installations(ListAppInstallationsRequest {
                site_id: site_id.to_owned(),
                app_key: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .app_installations
            .into_iter()
            .map(|app| app.app_installation_id)
            .collect()
    }
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

#[tokio::test]
async fn deleted_site_is_unreachable_and_restores_with_the_same_fingerprint() {
    for backend in testing::backends() {
        let mut h = harness(backend).await;
        let a = h.site("Alpha").await;
        let b = h.site("Beta").await;
        h.install(&a, "insight").await;
        let before_a = h.describe(site_target(&a)).await;
        let before_b = h.describe(site_target(&b)).await;
        assert_eq!(before_a.state, TenantState::Active as i32);

        let op = OperationId::new().to_string();
        let deleted = h
            .soft_delete(vec![site_target(&a)], &op)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(deleted.state, TenantState::Deleted as i32, "{backend:?}");
        assert_eq!(deleted.fingerprint, before_a.fingerprint);
        assert!(deleted.expire_time.is_some());

        let get = h
            .catalog
            .get_site(GetSiteRequest {
                site_id: a.clone(),
                show_deleted: false,
            })
            .await
            .unwrap_err();
        assert_eq!(
            (get.code(), reason(&get)),
            (Code::NotFound, "SITE_DELETED".to_owned())
        );
        let products = h
            .catalog
            .list_products(ListProductsRequest { site_id: a.clone() })
            .await
            .unwrap_err();
        assert_eq!(products.code(), Code::NotFound);
        let install = h
            .catalog
            .install_app(InstallAppRequest {
                site_id: a.clone(),
                app_key: "other".to_owned(),
                app_installation_id: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            (install.code(), reason(&install)),
            (Code::NotFound, "SITE_DELETED".to_owned())
        );
        let activate = h
            .catalog
            .suspend_product(ProductRequest {
                site_id: a.clone(),
                product: "jira".to_owned(),
            })
            .await
            .unwrap_err();
        assert_eq!(activate.code(), Code::NotFound);
        let shown = h
            .catalog
            .get_site(GetSiteRequest {
                site_id: a.clone(),
                show_deleted: true,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            shown.state,
            catalog::SiteState::Deleted as i32,
            "operators still see it"
        );

        assert_eq!(
            h.describe(site_target(&a)).await.fingerprint,
            before_a.fingerprint
        );
        assert_eq!(
            h.describe(site_target(&b)).await.fingerprint,
            before_b.fingerprint
        );

        let restored = h
            .restore(vec![site_target(&a)], Source::UndoOperationId(op))
            .await
            .remove(0);
        assert_eq!(restored.fingerprint, before_a.fingerprint);
        assert_eq!(restored.state, TenantState::Active as i32);
        assert_eq!(h.apps(&a).await.len(), 1);
        assert_eq!(
            h.describe(site_target(&b)).await.fingerprint,
            before_b.fingerprint
        );
        h.service.stop().await;
    }
}

#[tokio::test]
async fn app_uninstall_by_operation_restores_only_what_it_removed() {
    for backend in testing::backends() {
        let mut h = harness(backend).await;
        let site = h.site("Gamma").await;
        let earlier = h.install(&site, "insight").await;
        let current = h.install(&site, "insight").await;
        let other_app = h.install(&site, "calendar").await;
        h.catalog
            .uninstall_app(catalog::UninstallAppRequest {
                site_id: site.clone(),
                app_installation_id: earlier.clone(),
            })
            .await
            .unwrap();
        let site_before = h.describe(site_target(&site)).await;

        let op = OperationId::new().to_string();
        let outcomes = h
            .soft_delete(
                vec![app_target(&site, &current), app_target(&site, &earlier)],
                &op,
            )
            .await
            .unwrap();
        assert_eq!(outcomes[0].rows_affected, 1, "{backend:?}");
        assert_eq!(
            outcomes[1].rows_affected, 0,
            "already uninstalled by someone else"
        );
        assert_eq!(h.apps(&site).await, vec![other_app.clone()]);

        h.restore(
            vec![app_target(&site, &current), app_target(&site, &earlier)],
            Source::UndoOperationId(op),
        )
        .await;
        let mut apps = h.apps(&site).await;
        apps.sort();
        let mut expected = vec![current, other_app];
        expected.sort();
        assert_eq!(apps, expected, "the earlier uninstall stays");
        assert_eq!(
            h.describe(site_target(&site)).await.fingerprint,
            site_before.fingerprint
        );
        h.service.stop().await;
    }
}

#[tokio::test]
async fn point_in_time_restore_returns_products_to_t() {
    for backend in testing::backends() {
        let mut h = harness(backend).await;
        let site = h.site("Delta").await;
        let neighbour = h.site("Epsilon").await;
        let at_t = h.describe(site_target(&site)).await;
        let neighbour_before = h.describe(site_target(&neighbour)).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let t = h.service.clock.now();
        tokio::time::sleep(Duration::from_millis(5)).await;
        for (product, suspend) in [("jira", true), ("confluence", false)] {
            let request = ProductRequest {
                site_id: site.clone(),
                product: product.to_owned(),
            };
            if suspend {
                h.catalog.suspend_product(request).await.unwrap();
            } else {
                h.catalog.activate_product(request).await.unwrap();
            }
        }
        assert_ne!(
            h.describe(site_target(&site)).await.fingerprint,
            at_t.fingerprint
        );

        let restored = h
            .restore(vec![site_target(&site)], Source::PointInTime(t.into()))
            .await
            .remove(0);
        assert_eq!(restored.fingerprint, at_t.fingerprint, "{backend:?}");
        let products = h
            .catalog
            .list_products(ListProductsRequest {
                site_id: site.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .products;
        assert_eq!(products.len(), 1);
        assert_eq!(products[0].state, catalog::ProductState::Active as i32);
        assert_eq!(
            h.describe(site_target(&neighbour)).await.fingerprint,
            neighbour_before.fingerprint
        );
        h.service.stop().await;
    }
}

#[tokio::test]
async fn purge_is_refused_before_expiry_and_removes_the_site_after() {
    for backend in testing::backends() {
        let mut h = harness(backend).await;
        let site = h.site("Zeta").await;
        let neighbour = h.site("Eta").await;
        let neighbour_before = h.describe(site_target(&neighbour)).await;
        h.soft_delete(vec![site_target(&site)], &OperationId::new().to_string())
            .await
            .unwrap();
        let purge = PurgeRequest {
            targets: vec![site_target(&site)],
            operation_id: OperationId::new().to_string(),
            justification: justification(),
            validate_only: false,
            lease_token: 0,
        };
        let early = h.lifecycle.purge(purge.clone()).await.unwrap_err();
        assert_eq!(early.code(), Code::FailedPrecondition);
        let info = early.get_details_error_info().unwrap();
        assert_eq!(info.reason, "PURGE_BEFORE_EXPIRY");
        assert!(info.metadata.contains_key("expire_time"));

        h.service.clock.advance(31 * DAY);
        let purged = h
            .lifecycle
            .purge(purge.clone())
            .await
            .unwrap()
            .into_inner()
            .outcomes
            .remove(0);
        assert_eq!(purged.state, TenantState::Purged as i32, "{backend:?}");
        assert!(purged.rows_affected >= 2, "the site record and its product");
        assert!(
            purged
                .counts
                .iter()
                .all(|count| count.live == 0 && count.deleted == 0)
        );
        let again = h
            .lifecycle
            .purge(purge)
            .await
            .unwrap()
            .into_inner()
            .outcomes
            .remove(0);
        assert_eq!(
            again.rows_affected, 0,
            "the same operation again is a no-op"
        );

        let tombstone = h
            .catalog
            .get_site(GetSiteRequest {
                site_id: site.clone(),
                show_deleted: true,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(tombstone.state, catalog::SiteState::Purged as i32);
        assert!(
            tombstone.url.is_empty(),
            "nothing of the site is left but its ID and state"
        );
        assert_eq!(
            h.describe(site_target(&neighbour)).await.fingerprint,
            neighbour_before.fingerprint
        );
        h.service.stop().await;
    }
}

#[tokio::test]
async fn wrong_id_kinds_are_refused_and_change_nothing() {
    for backend in testing::backends() {
        let mut h = harness(backend).await;
        let site = h.site("Theta").await;
        let app = h.install(&site, "insight").await;
        let before = h.describe(site_target(&site)).await;

        let as_site = h
            .soft_delete(vec![site_target(&app)], &OperationId::new().to_string())
            .await
            .unwrap_err();
        assert_eq!(as_site.code(), Code::InvalidArgument);
        let info = as_site.get_details_error_info().unwrap();
        assert_eq!(info.reason, "WRONG_ID_KIND");
        assert_eq!(
            (
                info.metadata["expected_kind"].as_str(),
                info.metadata["actual_kind"].as_str()
            ),
            ("site", "app")
        );

        let as_app = h
            .soft_delete(
                vec![app_target(&site, &site)],
                &OperationId::new().to_string(),
            )
            .await
            .unwrap_err();
        assert_eq!(as_app.code(), Code::InvalidArgument);
        let info = as_app.get_details_error_info().unwrap();
        assert_eq!(
            (
                info.metadata["expected_kind"].as_str(),
                info.metadata["actual_kind"].as_str()
            ),
            ("app", "site")
        );

        let uninstall = h
            .catalog
            .uninstall_app(catalog::UninstallAppRequest {
                site_id: site.clone(),
                app_installation_id: site.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(uninstall.code(), Code::InvalidArgument);

        let after = h.describe(site_target(&site)).await;
        assert_eq!(after.fingerprint, before.fingerprint, "{backend:?}");
        assert_eq!(after.state, TenantState::Active as i32);
        assert_eq!(h.apps(&site).await, vec![app]);
        h.service.stop().await;
    }
}

#[tokio::test]
async fn resolve_says_what_each_input_is_and_never_guesses() {
    let mut h = harness(Backend::Sqlite).await;
    let site = h.site("Iota").await;
    let app = h.install(&site, "insight").await;
    let gone = h.site("Kappa").await;
    h.soft_delete(vec![site_target(&gone)], &OperationId::new().to_string())
        .await
        .unwrap();
    let inputs = vec![
        site.clone(),
        app.clone(),
        "https://iota.example.com".to_owned(),
        gone.clone(),
        "usr_0193a2b4c5d67e8f9a0b1c2d3e4f5a6b".to_owned(),
        SiteId::new().to_string(),
        AppInstallationId::new().to_string(),
        "site_123; DROP TABLE".to_owned(),
    ];
    let results = h
        .catalog
        .resolve(ResolveRequest { inputs })
        .await
        .unwrap()
        .into_inner()
        .results;
    let summary: Vec<(i32, bool, String)> = results
        .iter()
        .map(|result| (result.kind, result.found, result.site_id.clone()))
        .collect();
    assert_eq!(summary[0], (InputKind::Site as i32, true, site.clone()));
    assert_eq!(results[0].active_products, vec!["jira".to_owned()]);
    assert_eq!(results[0].app_installations, 1);
    assert_eq!(
        summary[1],
        (InputKind::AppInstallation as i32, true, site.clone())
    );
    assert!(results[1].app_installed);
    assert_eq!(results[1].app_key, "insight");
    assert_eq!(summary[2], (InputKind::SiteUrl as i32, true, site.clone()));
    assert_eq!(summary[3], (InputKind::Site as i32, true, gone.clone()));
    assert_eq!(results[3].site_state, catalog::SiteState::Deleted as i32);
    assert_eq!(results[4].kind, InputKind::OtherId as i32);
    assert!(!results[5].found && !results[6].found);
    assert_eq!(results[7].kind, InputKind::Malformed as i32);
    assert!(!results[7].problem.is_empty());
    h.service.stop().await;
}

#[tokio::test]
async fn lifecycle_calls_need_the_lifecycle_role() {
    let mut h = harness(Backend::Sqlite).await;
    let site = h.site("Lambda").await;
    let mut admin = TenantLifecycleClient::new(h.service.channel(&[Role::Admin, Role::Operator]));
    let denied = admin
        .soft_delete(SoftDeleteRequest {
            targets: vec![site_target(&site)],
            operation_id: OperationId::new().to_string(),
            justification: justification(),
            validate_only: false,
            lease_token: 0,
            call_key: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(reason(&denied), "MISSING_ROLE");
    assert_eq!(
        h.describe(site_target(&site)).await.state,
        TenantState::Active as i32,
        "nothing changed"
    );
    h.service.stop().await;
}
