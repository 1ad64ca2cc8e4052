//! The catalog's site RPCs through real gRPC, on every configured backend.

use micros_catalog::{Catalog, CatalogSettings};
use micros_platform::{
    auth::Role,
    client::ServiceChannel,
    ids::{AppInstallationId, SiteId},
    store::Backend,
    testing::{self, TestService},
};
use micros_proto::catalog::v1::{
    CreateSiteRequest, GetSiteRequest, ListSitesRequest, ResolveSiteUrlRequest, SiteState,
    catalog_service_client::CatalogServiceClient,
};
use tonic::Code;
use tonic_types::StatusExt;

type Client = CatalogServiceClient<ServiceChannel>;

async fn catalog(backend: Backend) -> (TestService<Catalog>, Client) {
    let service = testing::spawn::<Catalog>(
        backend,
        CatalogSettings {
            product_data_shards: 4,
            ..CatalogSettings::default()
        },
    )
    .await;
    let client = CatalogServiceClient::new(service.channel(&[Role::Admin]));
    (service, client)
}

fn new_site(name: &str, url: &str) -> CreateSiteRequest {
    CreateSiteRequest {
        name: name.to_owned(),
        url: url.to_owned(),
        region: "eu-west".to_owned(),
        site_id: String::new(),
    }
}

#[tokio::test]
async fn create_get_and_resolve() {
    for backend in testing::backends() {
        let (service, mut client) = catalog(backend).await;
        let created = client
            .create_site(new_site("Acme", "https://ACME.example.com/"))
            .await
            .unwrap()
            .into_inner();
        let site_id = SiteId::parse(&created.site_id).expect("a site ID");
        assert_eq!(created.url, "https://acme.example.com");
        assert_eq!(created.state, SiteState::Active as i32);
        assert!(created.create_time.is_some());

        let fetched = client
            .get_site(GetSiteRequest {
                site_id: site_id.to_string(),
                show_deleted: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(fetched, created, "{backend:?}");

        let resolved = client
            .resolve_site_url(ResolveSiteUrlRequest {
                url: "acme.example.com".to_owned(),
                show_deleted: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resolved.site_id, created.site_id);
        service.stop().await;
    }
}

#[tokio::test]
async fn create_with_caller_id_is_idempotent_and_urls_are_unique() {
    for backend in testing::backends() {
        let (service, mut client) = catalog(backend).await;
        let site_id = SiteId::new().to_string();
        let request = CreateSiteRequest {
            site_id: site_id.clone(),
            ..new_site("Acme", "acme.example.com")
        };
        let first = client
            .create_site(request.clone())
            .await
            .unwrap()
            .into_inner();
        let again = client
            .create_site(request.clone())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(first, again, "{backend:?}");

        let changed = client
            .create_site(CreateSiteRequest {
                name: "Other".to_owned(),
                ..request
            })
            .await
            .unwrap_err();
        assert_eq!(changed.code(), Code::AlreadyExists);
        assert_eq!(
            changed.get_details_error_info().unwrap().reason,
            "SITE_ID_TAKEN"
        );

        let taken = client
            .create_site(new_site("Impostor", "acme.example.com"))
            .await
            .unwrap_err();
        assert_eq!(taken.code(), Code::AlreadyExists);
        let info = taken.get_details_error_info().unwrap();
        assert_eq!(info.reason, "SITE_URL_TAKEN");
        assert_eq!(info.metadata["site_id"], site_id);

        let listed = client
            .list_sites(ListSitesRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.sites.len(), 1, "refused creates stored nothing");
        service.stop().await;
    }
}

#[tokio::test]
async fn wrong_id_kind_is_invalid_argument_naming_both_kinds() {
    for backend in testing::backends() {
        let (service, mut client) = catalog(backend).await;
        let app = AppInstallationId::new().to_string();
        let status = client
            .get_site(GetSiteRequest {
                site_id: app.clone(),
                show_deleted: false,
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "WRONG_ID_KIND");
        assert_eq!(info.metadata["expected_kind"], "site");
        assert_eq!(info.metadata["actual_kind"], "app");
        assert_eq!(info.metadata["value"], app);

        let created = client
            .create_site(CreateSiteRequest {
                site_id: app,
                ..new_site("Acme", "acme.example.com")
            })
            .await
            .unwrap_err();
        assert_eq!(created.code(), Code::InvalidArgument);
        let listed = client
            .list_sites(ListSitesRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(listed.sites.is_empty(), "a refused create changes nothing");
        service.stop().await;
    }
}

#[tokio::test]
async fn bad_fields_are_named() {
    let (service, mut client) = catalog(Backend::Sqlite).await;
    let cases = [
        (new_site("", "acme.example.com"), "name", "MISSING_FIELD"),
        (
            new_site("Acme", "http://acme.example.com"),
            "url",
            "INVALID_SITE_URL",
        ),
        (
            CreateSiteRequest {
                region: "mars-1".to_owned(),
                ..new_site("Acme", "acme.example.com")
            },
            "region",
            "UNKNOWN_REGION",
        ),
    ];
    for (request, field, reason) in cases {
        let status = client.create_site(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        let info = status.get_details_error_info().unwrap();
        assert_eq!(
            (info.reason.as_str(), info.metadata["field"].as_str()),
            (reason, field)
        );
    }
    service.stop().await;
}

#[tokio::test]
async fn unknown_site_and_url_are_not_found() {
    let (service, mut client) = catalog(Backend::Sqlite).await;
    let missing = SiteId::new().to_string();
    let status = client
        .get_site(GetSiteRequest {
            site_id: missing.clone(),
            show_deleted: true,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(
        status.get_details_error_info().unwrap().metadata["site_id"],
        missing
    );
    let status = client
        .resolve_site_url(ResolveSiteUrlRequest {
            url: "nobody.example.com".to_owned(),
            show_deleted: true,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "SITE_URL_NOT_FOUND"
    );
    service.stop().await;
}

#[tokio::test]
async fn list_pages_through_every_site_once() {
    for backend in testing::backends() {
        let (service, mut client) = catalog(backend).await;
        let mut created = Vec::new();
        for index in 0..7 {
            let site = client
                .create_site(new_site(
                    &format!("Site {index}"),
                    &format!("s{index}.example.com"),
                ))
                .await
                .unwrap()
                .into_inner();
            created.push(site.site_id);
        }
        let mut seen = Vec::new();
        let mut page_token = String::new();
        let mut pages = 0;
        loop {
            let page = client
                .list_sites(ListSitesRequest {
                    page_size: 3,
                    page_token: page_token.clone(),
                    show_deleted: false,
                })
                .await
                .unwrap()
                .into_inner();
            pages += 1;
            assert!(page.sites.len() <= 3);
            seen.extend(page.sites.into_iter().map(|site| site.site_id));
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        assert_eq!(
            seen, created,
            "{backend:?}: creation order, no gaps, no repeats"
        );
        assert_eq!(pages, 3);

        let status = client
            .list_sites(ListSitesRequest {
                page_size: 3,
                page_token: "not-a-token!".to_owned(),
                show_deleted: false,
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.get_details_error_info().unwrap().reason,
            "INVALID_PAGE_TOKEN"
        );
        service.stop().await;
    }
}

#[tokio::test]
async fn credentials_and_roles_are_enforced() {
    let (service, _) = catalog(Backend::Sqlite).await;
    let mut anonymous = CatalogServiceClient::new(service.anonymous_channel());
    let status = anonymous
        .create_site(new_site("Acme", "acme.example.com"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "MISSING_CREDENTIALS"
    );

    let mut viewer = CatalogServiceClient::new(service.channel(&[Role::Viewer]));
    let status = viewer
        .create_site(new_site("Acme", "acme.example.com"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let info = status.get_details_error_info().unwrap();
    assert_eq!(info.reason, "MISSING_ROLE");
    assert_eq!(info.metadata["required_role"], "admin");

    let listed = viewer
        .list_sites(ListSitesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.sites.is_empty(), "refused calls created nothing");
    service.stop().await;
}
