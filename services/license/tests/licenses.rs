//! The license RPCs through real gRPC, on every configured backend.

mod common;

use std::time::SystemTime;

use common::{Client, get, list, new_license, spawn, spawn_with};
use micros_license::LicenseSettings;
use micros_platform::{
    auth::Role,
    ids::{AppInstallationId, LicenseId, SiteId},
    store::Backend,
    testing::{self, refused},
};
use micros_proto::license::v1::{
    CreateLicenseRequest, GetLicenseRequest, LicenseState, ListLicensesRequest,
    UpdateLicenseRequest, license_service_client::LicenseServiceClient,
};
use tonic::Code;

fn update(
    site_id: SiteId,
    license_id: &str,
    seats: Option<i32>,
    state: Option<LicenseState>,
) -> UpdateLicenseRequest {
    UpdateLicenseRequest {
        site_id: site_id.to_string(),
        license_id: license_id.to_owned(),
        seats,
        state: state.map(|state| state as i32),
    }
}

fn time(timestamp: &Option<prost_types::Timestamp>) -> SystemTime {
    SystemTime::try_from(timestamp.expect("a timestamp")).expect("a valid timestamp")
}

/// Every license ID of the site, page by page.
async fn list_all(client: &mut Client, site_id: SiteId, page_size: i32) -> (Vec<String>, usize) {
    let mut seen = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_licenses(ListLicensesRequest {
                site_id: site_id.to_string(),
                page_size,
                page_token: page_token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(page.licenses.len() <= page_size as usize);
        assert!(
            page.licenses
                .iter()
                .all(|license| license.site_id == site_id.to_string())
        );
        seen.extend(page.licenses.into_iter().map(|license| license.license_id));
        if page.next_page_token.is_empty() {
            return (seen, pages);
        }
        page_token = page.next_page_token;
    }
}

#[tokio::test]
async fn create_get_list_and_update() {
    for backend in testing::backends() {
        let (service, mut client) = spawn(backend).await;
        let (site, neighbour) = (service.catalog_site().await, service.catalog_site().await);
        let created = client
            .create_license(new_license(site, "jira", 25))
            .await
            .unwrap()
            .into_inner();
        LicenseId::parse(&created.license_id).expect("a license ID");
        assert_eq!(created.site_id, site.to_string());
        assert_eq!(
            (created.product.as_str(), created.seats, created.state),
            ("jira", 25, LicenseState::Active as i32),
            "{backend:?}"
        );
        assert!(created.create_time.is_some());
        assert_eq!(created.update_time, created.create_time);

        let fetched = client
            .get_license(get(site, &created.license_id))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(fetched, created, "{backend:?}");

        let mut ids = vec![created.license_id.clone()];
        for index in 1..7 {
            let product = if index % 2 == 0 { "jira" } else { "confluence" };
            let license = client
                .create_license(new_license(site, product, index))
                .await
                .unwrap()
                .into_inner();
            ids.push(license.license_id);
        }
        client
            .create_license(new_license(neighbour, "jira", 3))
            .await
            .unwrap();
        let (seen, pages) = list_all(&mut client, site, 3).await;
        assert_eq!(
            seen, ids,
            "{backend:?}: creation order, no gaps, no repeats, no neighbour"
        );
        assert_eq!(pages, 3);
        let (neighbours, _) = list_all(&mut client, neighbour, 3).await;
        assert_eq!(neighbours.len(), 1);

        let grown = client
            .update_license(update(site, &created.license_id, Some(40), None))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(grown.seats, 40);
        assert_eq!(grown.state, LicenseState::Active as i32);
        assert_eq!(grown.create_time, created.create_time);
        assert!(
            time(&grown.update_time) > time(&created.update_time),
            "{backend:?}: update_time moves on"
        );

        let suspended = client
            .update_license(update(
                site,
                &created.license_id,
                None,
                Some(LicenseState::Suspended),
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (suspended.seats, suspended.state),
            (40, LicenseState::Suspended as i32)
        );
        let unchanged = client
            .update_license(update(
                site,
                &created.license_id,
                Some(40),
                Some(LicenseState::Suspended),
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            unchanged, suspended,
            "a change to the same values changes nothing"
        );
        let resumed = client
            .update_license(update(
                site,
                &created.license_id,
                Some(45),
                Some(LicenseState::Active),
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (resumed.seats, resumed.state),
            (45, LicenseState::Active as i32)
        );
        assert_eq!(
            client
                .get_license(get(site, &created.license_id))
                .await
                .unwrap()
                .into_inner(),
            resumed,
            "{backend:?}: the update was stored"
        );

        let status = client
            .list_licenses(ListLicensesRequest {
                page_token: "not-a-token!".to_owned(),
                ..list(site)
            })
            .await
            .unwrap_err();
        refused(&status, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
        service.stop().await;
    }
}

#[tokio::test]
async fn cancelled_is_final() {
    for backend in testing::backends() {
        let (service, mut client) = spawn(backend).await;
        let site = service.catalog_site().await;
        let license = client
            .create_license(new_license(site, "confluence", 10))
            .await
            .unwrap()
            .into_inner();
        let cancel = update(
            site,
            &license.license_id,
            None,
            Some(LicenseState::Cancelled),
        );
        let cancelled = client
            .update_license(cancel.clone())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(cancelled.state, LicenseState::Cancelled as i32);
        let retried = client.update_license(cancel).await.unwrap().into_inner();
        assert_eq!(retried, cancelled, "a retried cancel answers the same");

        for change in [
            update(site, &license.license_id, None, Some(LicenseState::Active)),
            update(
                site,
                &license.license_id,
                None,
                Some(LicenseState::Suspended),
            ),
            update(site, &license.license_id, Some(11), None),
        ] {
            let status = client.update_license(change).await.unwrap_err();
            let info = refused(&status, Code::FailedPrecondition, "LICENSE_CANCELLED");
            assert_eq!(info.domain, "micros.license");
            assert_eq!(info.metadata["license_id"], license.license_id);
        }
        let after = client
            .get_license(get(site, &license.license_id))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            after, cancelled,
            "{backend:?}: refused changes stored nothing"
        );
        service.stop().await;
    }
}

#[tokio::test]
async fn create_with_caller_id_is_idempotent() {
    for backend in testing::backends() {
        let (service, mut client) = spawn(backend).await;
        let (site, other) = (service.catalog_site().await, service.catalog_site().await);
        let license_id = LicenseId::new().to_string();
        let request = CreateLicenseRequest {
            license_id: license_id.clone(),
            ..new_license(site, "jira", 12)
        };
        let first = client
            .create_license(request.clone())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(first.license_id, license_id);
        let again = client
            .create_license(request.clone())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(first, again, "{backend:?}");

        for clash in [
            CreateLicenseRequest {
                seats: 13,
                ..request.clone()
            },
            CreateLicenseRequest {
                product: "confluence".to_owned(),
                ..request.clone()
            },
            CreateLicenseRequest {
                site_id: other.to_string(),
                ..request.clone()
            },
        ] {
            let status = client.create_license(clash).await.unwrap_err();
            let info = refused(&status, Code::AlreadyExists, "LICENSE_ID_TAKEN");
            assert_eq!(info.metadata["license_id"], license_id);
        }
        let listed = client.list_licenses(list(site)).await.unwrap().into_inner();
        assert_eq!(
            listed.licenses,
            vec![first],
            "refused creates stored nothing"
        );
        let others = client
            .list_licenses(list(other))
            .await
            .unwrap()
            .into_inner();
        assert!(others.licenses.is_empty());
        service.stop().await;
    }
}

#[tokio::test]
async fn a_license_of_another_site_is_not_found() {
    for backend in testing::backends() {
        let (service, mut client) = spawn(backend).await;
        let (owner, intruder) = (service.catalog_site().await, service.catalog_site().await);
        let license = client
            .create_license(new_license(owner, "jira", 5))
            .await
            .unwrap()
            .into_inner();
        client
            .create_license(new_license(intruder, "jira", 7))
            .await
            .unwrap();

        let status = client
            .get_license(get(intruder, &license.license_id))
            .await
            .unwrap_err();
        let info = refused(&status, Code::NotFound, "LICENSE_NOT_FOUND");
        assert_eq!(info.metadata["site_id"], intruder.to_string());
        assert_eq!(info.metadata["license_id"], license.license_id);

        let status = client
            .update_license(update(
                intruder,
                &license.license_id,
                Some(1),
                Some(LicenseState::Cancelled),
            ))
            .await
            .unwrap_err();
        refused(&status, Code::NotFound, "LICENSE_NOT_FOUND");
        let untouched = client
            .get_license(get(owner, &license.license_id))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(untouched, license, "{backend:?}");

        let stranger = SiteId::new();
        let status = client
            .get_license(get(stranger, &license.license_id))
            .await
            .unwrap_err();
        let info = refused(&status, Code::NotFound, "SITE_NOT_FOUND");
        assert_eq!(info.metadata["site_id"], stranger.to_string());
        service.stop().await;
    }
}

#[tokio::test]
async fn wrong_id_kind_is_invalid_argument_naming_both_kinds() {
    for backend in testing::backends() {
        let (service, mut client) = spawn(backend).await;
        let site = service.catalog_site().await;
        let license = client
            .create_license(new_license(site, "jira", 5))
            .await
            .unwrap()
            .into_inner();
        let app = AppInstallationId::new().to_string();

        let status = client
            .get_license(GetLicenseRequest {
                site_id: app.clone(),
                license_id: license.license_id.clone(),
            })
            .await
            .unwrap_err();
        let info = refused(&status, Code::InvalidArgument, "WRONG_ID_KIND");
        assert_eq!(info.metadata["field"], "site_id");
        assert_eq!(info.metadata["expected_kind"], "site");
        assert_eq!(info.metadata["actual_kind"], "app");
        assert_eq!(info.metadata["value"], app);

        let status = client
            .update_license(update(
                site,
                &site.to_string(),
                None,
                Some(LicenseState::Cancelled),
            ))
            .await
            .unwrap_err();
        let info = refused(&status, Code::InvalidArgument, "WRONG_ID_KIND");
        assert_eq!(info.metadata["field"], "license_id");
        assert_eq!(info.metadata["expected_kind"], "lic");
        assert_eq!(info.metadata["actual_kind"], "site");

        let fresh = service.catalog_site().await;
        let status = client
            .create_license(CreateLicenseRequest {
                license_id: app.clone(),
                ..new_license(fresh, "jira", 5)
            })
            .await
            .unwrap_err();
        let info = refused(&status, Code::InvalidArgument, "WRONG_ID_KIND");
        assert_eq!(info.metadata["expected_kind"], "lic");
        assert_eq!(info.metadata["actual_kind"], "app");
        let listed = client
            .list_licenses(list(fresh))
            .await
            .unwrap()
            .into_inner();
        assert!(
            listed.licenses.is_empty(),
            "a refused create stored {listed:?}"
        );

        let status = client
            .list_licenses(ListLicensesRequest {
                site_id: license.license_id.clone(),
                ..ListLicensesRequest::default()
            })
            .await
            .unwrap_err();
        assert_eq!(
            testing::wrong_kind(&status),
            ("site".to_owned(), "lic".to_owned())
        );
        let unchanged = client
            .get_license(get(site, &license.license_id))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            unchanged, license,
            "{backend:?}: refused calls changed nothing"
        );
        service.stop().await;
    }
}

#[tokio::test]
async fn bad_fields_are_named() {
    let (service, mut client) = spawn(Backend::Sqlite).await;
    let site = service.catalog_site().await;
    let limit = LicenseSettings::default().max_seats as i32;
    let creates = [
        (new_license(site, "", 5), "product", "MISSING_FIELD"),
        (new_license(site, "bamboo", 5), "product", "UNKNOWN_PRODUCT"),
        (new_license(site, "Jira", 5), "product", "UNKNOWN_PRODUCT"),
        (new_license(site, "jira", 0), "seats", "INVALID_SEAT_COUNT"),
        (new_license(site, "jira", -3), "seats", "INVALID_SEAT_COUNT"),
        (
            new_license(site, "jira", limit + 1),
            "seats",
            "INVALID_SEAT_COUNT",
        ),
        (
            CreateLicenseRequest {
                site_id: String::new(),
                ..new_license(site, "jira", 5)
            },
            "site_id",
            "MISSING_FIELD",
        ),
        (
            CreateLicenseRequest {
                license_id: "lic_not-a-uuid".to_owned(),
                ..new_license(site, "jira", 5)
            },
            "license_id",
            "MALFORMED_ID",
        ),
    ];
    for (request, field, reason) in creates {
        let status = client.create_license(request).await.unwrap_err();
        let info = refused(&status, Code::InvalidArgument, reason);
        assert_eq!(info.metadata["field"], field, "{reason}");
    }
    let listed = client.list_licenses(list(site)).await.unwrap().into_inner();
    assert!(
        listed.licenses.is_empty(),
        "refused creates stored {listed:?}"
    );

    let license = client
        .create_license(new_license(site, "jira", limit))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(license.seats, limit, "the limit itself is allowed");
    let updates = [
        (
            update(site, &license.license_id, None, None),
            "seats | state",
            "MISSING_FIELD",
        ),
        (
            update(site, &license.license_id, Some(0), None),
            "seats",
            "INVALID_SEAT_COUNT",
        ),
        (
            update(site, &license.license_id, Some(limit + 1), None),
            "seats",
            "INVALID_SEAT_COUNT",
        ),
        (
            update(
                site,
                &license.license_id,
                None,
                Some(LicenseState::Unspecified),
            ),
            "state",
            "INVALID_LICENSE_STATE",
        ),
        (
            UpdateLicenseRequest {
                state: Some(42),
                ..update(site, &license.license_id, None, None)
            },
            "state",
            "INVALID_LICENSE_STATE",
        ),
    ];
    for (request, field, reason) in updates {
        let status = client.update_license(request).await.unwrap_err();
        let info = refused(&status, Code::InvalidArgument, reason);
        assert_eq!(info.metadata["field"], field, "{reason}");
    }
    let stored = client
        .get_license(get(site, &license.license_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored, license, "refused updates stored nothing");
    service.stop().await;
}

#[tokio::test]
async fn products_and_seat_limit_come_from_settings() {
    let settings = LicenseSettings {
        products: vec!["bitbucket".to_owned()],
        max_seats: 10,
    };
    let (service, mut client) = spawn_with(Backend::Sqlite, settings).await;
    let site = service.catalog_site().await;
    let status = client
        .create_license(new_license(site, "jira", 5))
        .await
        .unwrap_err();
    let info = refused(&status, Code::InvalidArgument, "UNKNOWN_PRODUCT");
    assert!(status.message().contains("bitbucket"), "{status:?}");
    assert_eq!(info.metadata["value"], "jira");
    let status = client
        .create_license(new_license(site, "bitbucket", 11))
        .await
        .unwrap_err();
    refused(&status, Code::InvalidArgument, "INVALID_SEAT_COUNT");
    let license = client
        .create_license(new_license(site, "bitbucket", 10))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((license.product.as_str(), license.seats), ("bitbucket", 10));
    service.stop().await;
}

#[tokio::test]
async fn credentials_and_roles_are_enforced() {
    let (service, mut admin) = spawn(Backend::Sqlite).await;
    let site = service.catalog_site().await;
    let license = admin
        .create_license(new_license(site, "jira", 5))
        .await
        .unwrap()
        .into_inner();

    let mut anonymous = LicenseServiceClient::new(service.anonymous_channel());
    let status = anonymous
        .get_license(get(site, &license.license_id))
        .await
        .unwrap_err();
    refused(&status, Code::Unauthenticated, "MISSING_CREDENTIALS");

    let mut viewer = LicenseServiceClient::new(service.channel(&[Role::Viewer]));
    let status = viewer
        .create_license(new_license(site, "jira", 5))
        .await
        .unwrap_err();
    let info = refused(&status, Code::PermissionDenied, "MISSING_ROLE");
    assert_eq!(info.metadata["required_role"], "admin");
    let status = viewer
        .update_license(update(
            site,
            &license.license_id,
            None,
            Some(LicenseState::Cancelled),
        ))
        .await
        .unwrap_err();
    refused(&status, Code::PermissionDenied, "MISSING_ROLE");

    let fetched = viewer
        .get_license(get(site, &license.license_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched, license, "refused calls changed nothing");
    let listed = viewer.list_licenses(list(site)).await.unwrap().into_inner();
    assert_eq!(listed.licenses.len(), 1, "refused calls created nothing");

    let mut orchestrator = LicenseServiceClient::new(service.channel(&[Role::Lifecycle]));
    let status = orchestrator
        .update_license(update(site, &license.license_id, Some(6), None))
        .await
        .unwrap_err();
    let info = refused(&status, Code::PermissionDenied, "MISSING_ROLE");
    assert_eq!(
        info.metadata["required_role"], "admin",
        "the lifecycle role does not change domain data"
    );
    service.stop().await;
}
