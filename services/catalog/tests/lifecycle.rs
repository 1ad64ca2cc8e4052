//! The catalog on the lifecycle machinery, through gRPC on every backend: the platform's
//! lifecycle contract on sites, products and app installations, then what only the
//! catalog has: the site record an operator still sees when deleted and its tombstone
//! after purge, several app installations in one call, wrong ID kinds in its own API,
//! and Resolve (the deletion guard, the same in every service, is proven in the suite's
//! `guard` tests).

use std::time::Duration;

use micros_catalog::{Catalog, CatalogSettings};
use micros_platform::{
    auth::Role,
    client::ServiceChannel,
    ids::{AppInstallationId, OperationId, SiteId},
    store::Backend,
    testing::{
        self, TestService,
        lifecycle_contract::{self, Lifecycle, app_target, site_target},
        refused,
    },
};
use micros_proto::{
    catalog::v1::{
        self as catalog, CreateSiteRequest, GetSiteRequest, InputKind, InstallAppRequest,
        ListAppInstallationsRequest, ListProductsRequest, ProductRequest, ResolveRequest,
        catalog_service_client::CatalogServiceClient,
    },
    lifecycle::v1::restore_request::Source,
};
use tonic::{Code, Status};

const DAY: Duration = Duration::from_secs(24 * 3600);

struct Harness {
    service: TestService<Catalog>,
    catalog: CatalogServiceClient<ServiceChannel>,
    lifecycle: Lifecycle,
    /// Sites made for the lifecycle contract, for names of their own.
    sites: usize,
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
    let lifecycle = Lifecycle::of(&service);
    Harness {
        service,
        catalog,
        lifecycle,
        sites: 0,
    }
}

fn product(site_id: impl ToString, product: &str) -> ProductRequest {
    ProductRequest {
        site_id: site_id.to_string(),
        product: product.to_owned(),
    }
}

impl Harness {
    async fn create_site(&mut self, name: &str) -> String {
        self.catalog
            .create_site(CreateSiteRequest {
                name: name.to_owned(),
                url: format!("{}.example.com", name.to_lowercase()),
                region: "us-east".to_owned(),
                site_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .site_id
    }

    /// A site with jira active.
    async fn site(&mut self, name: &str) -> String {
        let site_id = self.create_site(name).await;
        self.catalog
            .activate_product(product(&site_id, "jira"))
            .await
            .unwrap();
        site_id
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

    async fn uninstall(&mut self, site_id: &str, app_installation_id: &str) -> Result<(), Status> {
        self.catalog
            .uninstall_app(catalog::UninstallAppRequest {
                site_id: site_id.to_owned(),
                app_installation_id: app_installation_id.to_owned(),
            })
            .await
            .map(|_| ())
    }

    async fn apps(&mut self, site_id: &str) -> Vec<String> {
        self.app_installations(site_id)
            .await
            .into_iter()
            .map(|app| app.app_installation_id)
            .collect()
    }

    async fn app_installations(&mut self, site_id: &str) -> Vec<catalog::AppInstallation> {
        self.catalog
            .list_app_installations(ListAppInstallationsRequest {
                site_id: site_id.to_owned(),
                app_key: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .app_installations
    }

    async fn get_site(
        &mut self,
        site_id: &str,
        show_deleted: bool,
    ) -> Result<catalog::Site, Status> {
        self.catalog
            .get_site(GetSiteRequest {
                site_id: site_id.to_owned(),
                show_deleted,
            })
            .await
            .map(tonic::Response::into_inner)
    }
}

/// What a user sees of a site in the catalog: the site, its products and its apps.
#[derive(Debug, PartialEq)]
struct SiteView {
    site: catalog::Site,
    products: Vec<catalog::SiteProduct>,
    apps: Vec<catalog::AppInstallation>,
}

impl lifecycle_contract::Subject for Harness {
    type Service = Catalog;
    type View = SiteView;

    fn service(&self) -> &TestService<Catalog> {
        &self.service
    }

    async fn site(&mut self) -> SiteId {
        self.sites += 1;
        let site_id = self.create_site(&format!("Tenant{}", self.sites)).await;
        SiteId::parse(&site_id).expect("a site ID")
    }

    /// Jira active, an app installed, and another one a user uninstalled.
    async fn seed(&mut self, site_id: SiteId) {
        let site = site_id.to_string();
        self.catalog
            .activate_product(product(site_id, "jira"))
            .await
            .unwrap();
        self.install(&site, "insight").await;
        let removed = self.install(&site, "calendar").await;
        self.uninstall(&site, &removed).await.unwrap();
    }

    /// Jira suspended, confluence activated, another app installed.
    async fn change(&mut self, site_id: SiteId) {
        self.catalog
            .suspend_product(product(site_id, "jira"))
            .await
            .unwrap();
        self.catalog
            .activate_product(product(site_id, "confluence"))
            .await
            .unwrap();
        self.install(&site_id.to_string(), "whiteboard").await;
    }

    async fn view(&mut self, site_id: SiteId) -> SiteView {
        let site = site_id.to_string();
        SiteView {
            site: self.get_site(&site, false).await.unwrap(),
            products: self
                .catalog
                .list_products(ListProductsRequest {
                    site_id: site.clone(),
                })
                .await
                .unwrap()
                .into_inner()
                .products,
            apps: self.app_installations(&site).await,
        }
    }

    async fn refusals(&mut self, site_id: SiteId) -> Vec<Status> {
        let site = site_id.to_string();
        vec![
            self.get_site(&site, false).await.unwrap_err(),
            self.catalog
                .list_products(ListProductsRequest {
                    site_id: site.clone(),
                })
                .await
                .unwrap_err(),
            self.catalog
                .list_app_installations(ListAppInstallationsRequest {
                    site_id: site.clone(),
                    app_key: String::new(),
                })
                .await
                .unwrap_err(),
            self.catalog
                .install_app(InstallAppRequest {
                    site_id: site.clone(),
                    app_key: "other".to_owned(),
                    app_installation_id: String::new(),
                })
                .await
                .unwrap_err(),
            self.catalog
                .suspend_product(product(site_id, "jira"))
                .await
                .unwrap_err(),
            self.uninstall(&site, &AppInstallationId::new().to_string())
                .await
                .unwrap_err(),
        ]
    }

    async fn seed_app(&mut self, site_id: SiteId) -> Option<String> {
        Some(self.install(&site_id.to_string(), "insight").await)
    }
}

#[tokio::test]
async fn the_catalog_keeps_the_lifecycle_contract() {
    for backend in testing::backends() {
        let mut h = harness(backend).await;
        lifecycle_contract::check(&mut h).await;
        h.service.stop().await;
    }
}

#[tokio::test]
async fn an_operator_sees_a_deleted_site_and_after_purge_only_its_tombstone() {
    for backend in testing::backends() {
        let mut h = harness(backend).await;
        let site = h.site("Zeta").await;
        h.lifecycle
            .soft_delete(site_target(&site), OperationId::new())
            .await;
        let shown = h.get_site(&site, true).await.unwrap();
        assert_eq!(
            shown.state,
            catalog::SiteState::Deleted as i32,
            "{backend:?}: operators still see it"
        );
        assert_eq!(shown.url, "https://zeta.example.com");

        h.service.clock.advance(31 * DAY);
        let purged = h
            .lifecycle
            .purge(site_target(&site), OperationId::new())
            .await;
        assert!(purged.rows_affected >= 2, "the site record and its product");
        let tombstone = h.get_site(&site, true).await.unwrap();
        assert_eq!(tombstone.state, catalog::SiteState::Purged as i32);
        assert!(
            tombstone.url.is_empty(),
            "nothing of the site is left but its ID and state"
        );
        h.service.stop().await;
    }
}

#[tokio::test]
async fn an_app_id_of_the_wrong_kind_is_refused_by_uninstall_and_changes_nothing() {
    for backend in testing::backends() {
        let mut h = harness(backend).await;
        let site = h.site("Theta").await;
        let app = h.install(&site, "insight").await;
        let before = h.lifecycle.describe(site_target(&site)).await;
        let uninstall = h.uninstall(&site, &site).await.unwrap_err();
        refused(&uninstall, Code::InvalidArgument, "WRONG_ID_KIND");
        let after = h.lifecycle.describe(site_target(&site)).await;
        assert_eq!(after.fingerprint, before.fingerprint, "{backend:?}");
        assert_eq!(h.apps(&site).await, vec![app]);
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
        h.uninstall(&site, &earlier).await.unwrap();
        let site_before = h.lifecycle.describe(site_target(&site)).await;

        let op = OperationId::new();
        let outcomes = h
            .lifecycle
            .try_soft_delete(
                vec![app_target(&site, &current), app_target(&site, &earlier)],
                op,
            )
            .await
            .unwrap();
        assert_eq!(outcomes[0].rows_affected, 1, "{backend:?}");
        assert_eq!(
            outcomes[1].rows_affected, 0,
            "already uninstalled by someone else"
        );
        assert_eq!(h.apps(&site).await, vec![other_app.clone()]);

        h.lifecycle
            .try_restore(
                vec![app_target(&site, &current), app_target(&site, &earlier)],
                Source::UndoOperationId(op.to_string()),
            )
            .await
            .unwrap();
        let mut apps = h.apps(&site).await;
        apps.sort();
        let mut expected = vec![current, other_app];
        expected.sort();
        assert_eq!(apps, expected, "the earlier uninstall stays");
        assert_eq!(
            h.lifecycle.fingerprint(SiteId::parse(&site).unwrap()).await,
            site_before.fingerprint
        );
        h.service.stop().await;
    }
}

#[tokio::test]
async fn resolve_says_what_each_input_is_and_never_guesses() {
    let mut h = harness(Backend::Sqlite).await;
    let site = h.site("Iota").await;
    let app = h.install(&site, "insight").await;
    let gone = h.site("Kappa").await;
    h.lifecycle
        .soft_delete(site_target(&gone), OperationId::new())
        .await;
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
