//! The tenant lifecycle of the license service through `micros.lifecycle.v1.TenantLifecycle`
//! over real gRPC, as the orchestrator drives it, on every configured backend.

mod common;

use std::time::Duration;

use common::{Client, get, list, new_license, refused, spawn};
use micros_license::License;
use micros_platform::{
    auth::Role,
    client::ServiceChannel,
    clock::Clock,
    ids::{OperationId, SiteId},
    store::Backend,
    testing::{self, TestService},
};
use micros_proto::{
    license::v1::{LicenseState, UpdateLicenseRequest},
    lifecycle::v1::{
        self as lc, DescribeRequest, Justification, PurgeRequest, RestoreRequest,
        SoftDeleteRequest, TargetOutcome, TenantState, restore_request::Source,
        tenant_lifecycle_client::TenantLifecycleClient,
    },
};
use tonic::Code;

type Lifecycle = TenantLifecycleClient<ServiceChannel>;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// A client with the orchestrator's role.
fn orchestrator(service: &TestService<License>) -> Lifecycle {
    TenantLifecycleClient::new(service.channel(&[Role::Lifecycle]))
}

fn target(site_id: SiteId) -> Vec<lc::Target> {
    vec![lc::Target {
        kind: Some(lc::target::Kind::Site(lc::SiteTarget {
            site_id: site_id.to_string(),
        })),
    }]
}

fn justification() -> Option<Justification> {
    Some(Justification {
        reason: "license service test".to_owned(),
        ticket: "INC-2022-04".to_owned(),
    })
}

async fn describe(lifecycle: &mut Lifecycle, site_id: SiteId) -> TargetOutcome {
    lifecycle
        .describe(DescribeRequest {
            targets: target(site_id),
        })
        .await
        .unwrap()
        .into_inner()
        .outcomes
        .remove(0)
}

async fn fingerprint(lifecycle: &mut Lifecycle, site_id: SiteId) -> String {
    describe(lifecycle, site_id).await.fingerprint
}

/// (live, deleted) rows of the licenses table.
fn licenses(outcome: &TargetOutcome) -> (i64, i64) {
    let count = outcome
        .counts
        .iter()
        .find(|count| count.table == "licenses")
        .expect("a count for licenses");
    (count.live, count.deleted)
}

async fn soft_delete(
    lifecycle: &mut Lifecycle,
    site_id: SiteId,
    operation: OperationId,
) -> TargetOutcome {
    lifecycle
        .soft_delete(SoftDeleteRequest {
            targets: target(site_id),
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

async fn restore(lifecycle: &mut Lifecycle, site_id: SiteId, source: Source) -> TargetOutcome {
    lifecycle
        .restore(RestoreRequest {
            targets: target(site_id),
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
        targets: target(site_id),
        operation_id: operation.to_string(),
        justification: justification(),
        validate_only: false,
        lease_token: 0,
    }
}

/// Creates `seats.len()` jira licenses on the site and returns their IDs.
async fn provision(client: &mut Client, site_id: SiteId, seats: &[i32]) -> Vec<String> {
    let mut ids = Vec::new();
    for seats in seats {
        let license = client
            .create_license(new_license(site_id, "jira", *seats))
            .await
            .unwrap()
            .into_inner();
        ids.push(license.license_id);
    }
    ids
}

fn set_seats(site_id: SiteId, license_id: &str, seats: i32) -> UpdateLicenseRequest {
    UpdateLicenseRequest {
        site_id: site_id.to_string(),
        license_id: license_id.to_owned(),
        seats: Some(seats),
        state: None,
    }
}

/// Asserts that every domain RPC for the site answers NOT_FOUND with SITE_DELETED.
async fn assert_site_deleted(client: &mut Client, site_id: SiteId, license_id: &str) {
    let site = site_id.to_string();
    let statuses = [
        client
            .create_license(new_license(site_id, "jira", 1))
            .await
            .unwrap_err(),
        client
            .get_license(get(site_id, license_id))
            .await
            .unwrap_err(),
        client.list_licenses(list(site_id)).await.unwrap_err(),
        client
            .update_license(set_seats(site_id, license_id, 2))
            .await
            .unwrap_err(),
    ];
    for status in statuses {
        let info = refused(&status, Code::NotFound, "SITE_DELETED");
        assert_eq!(info.metadata["site_id"], site);
    }
}

#[tokio::test]
async fn soft_delete_hides_the_site_and_restore_brings_it_back_unchanged() {
    for backend in testing::backends() {
        let (service, mut client) = spawn(backend).await;
        let mut lifecycle = orchestrator(&service);
        let (site, neighbour) = (service.catalog_site().await, service.catalog_site().await);
        let ids = provision(&mut client, site, &[5, 10, 15]).await;
        let neighbour_ids = provision(&mut client, neighbour, &[20, 25]).await;
        let original = client
            .get_license(get(site, &ids[1]))
            .await
            .unwrap()
            .into_inner();

        let before = describe(&mut lifecycle, site).await;
        assert_eq!(before.state, TenantState::Active as i32, "{backend:?}");
        assert_eq!(licenses(&before), (3, 0));
        let neighbour_before = fingerprint(&mut lifecycle, neighbour).await;
        assert_ne!(before.fingerprint, neighbour_before);

        let delete = OperationId::new();
        let deleted = soft_delete(&mut lifecycle, site, delete).await;
        assert_eq!(deleted.state, TenantState::Deleted as i32);
        assert_eq!(deleted.fingerprint, before.fingerprint, "what was deleted");
        assert_eq!(
            deleted.rows_affected, 0,
            "a site-level delete touches no row"
        );
        let (delete_time, expire_time) =
            (deleted.delete_time.unwrap(), deleted.expire_time.unwrap());
        assert_eq!(expire_time.seconds - delete_time.seconds, 30 * 24 * 3600);

        assert_site_deleted(&mut client, site, &ids[0]).await;
        let during = describe(&mut lifecycle, site).await;
        assert_eq!(during.state, TenantState::Deleted as i32);
        assert_eq!(
            during.fingerprint, before.fingerprint,
            "unchanged while deleted"
        );
        assert_eq!(licenses(&during), (3, 0));
        assert_eq!(
            fingerprint(&mut lifecycle, neighbour).await,
            neighbour_before
        );
        let neighbour_live = client
            .get_license(get(neighbour, &neighbour_ids[0]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(neighbour_live.seats, 20, "the neighbour still answers");

        let restored = restore(
            &mut lifecycle,
            site,
            Source::UndoOperationId(delete.to_string()),
        )
        .await;
        assert_eq!(restored.state, TenantState::Active as i32, "{backend:?}");
        assert_eq!(restored.fingerprint, before.fingerprint);
        assert_eq!(
            fingerprint(&mut lifecycle, neighbour).await,
            neighbour_before
        );

        let back = client
            .get_license(get(site, &ids[1]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(back, original, "same ID, same license");
        let listed = client.list_licenses(list(site)).await.unwrap().into_inner();
        assert_eq!(
            listed
                .licenses
                .iter()
                .map(|license| license.license_id.clone())
                .collect::<Vec<_>>(),
            ids
        );
        let updated = client
            .update_license(set_seats(site, &ids[0], 6))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(updated.seats, 6, "writes work again");
        client
            .create_license(new_license(site, "confluence", 3))
            .await
            .unwrap();
        assert_eq!(licenses(&describe(&mut lifecycle, site).await), (4, 0));
        assert_eq!(
            fingerprint(&mut lifecycle, neighbour).await,
            neighbour_before
        );
        service.stop().await;
    }
}

#[tokio::test]
async fn point_in_time_restore_returns_the_site_to_its_licenses_at_t() {
    for backend in testing::backends() {
        let (service, mut client) = spawn(backend).await;
        let mut lifecycle = orchestrator(&service);
        let (site, neighbour) = (service.catalog_site().await, service.catalog_site().await);
        let ids = provision(&mut client, site, &[10, 20]).await;
        provision(&mut client, neighbour, &[30]).await;
        let at_t = describe(&mut lifecycle, site).await;
        let neighbour_at_t = fingerprint(&mut lifecycle, neighbour).await;
        let first_at_t = client
            .get_license(get(site, &ids[0]))
            .await
            .unwrap()
            .into_inner();
        tokio::time::sleep(Duration::from_millis(3)).await;
        let t = service.clock.now();
        tokio::time::sleep(Duration::from_millis(3)).await;

        client
            .update_license(set_seats(site, &ids[0], 99))
            .await
            .unwrap();
        client
            .update_license(UpdateLicenseRequest {
                state: Some(LicenseState::Cancelled as i32),
                ..set_seats(site, &ids[1], 20)
            })
            .await
            .unwrap();
        let late = provision(&mut client, site, &[7]).await;
        let changed = fingerprint(&mut lifecycle, site).await;
        assert_ne!(changed, at_t.fingerprint, "{backend:?}");

        let restored = restore(&mut lifecycle, site, Source::PointInTime(t.into())).await;
        assert_eq!(restored.fingerprint, at_t.fingerprint, "{backend:?}");
        assert_eq!(restored.state, TenantState::Active as i32);
        assert_eq!(licenses(&restored), (2, 0));
        assert_eq!(fingerprint(&mut lifecycle, site).await, at_t.fingerprint);
        assert_eq!(fingerprint(&mut lifecycle, neighbour).await, neighbour_at_t);

        let first = client
            .get_license(get(site, &ids[0]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(first, first_at_t, "seats and update_time as they were at T");
        let second = client
            .get_license(get(site, &ids[1]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            second.state,
            LicenseState::Active as i32,
            "the cancel is undone"
        );
        let status = client.get_license(get(site, &late[0])).await.unwrap_err();
        refused(&status, Code::NotFound, "LICENSE_NOT_FOUND");
        service.stop().await;
    }
}

#[tokio::test]
async fn purge_waits_for_expiry_then_removes_every_row_once() {
    for backend in testing::backends() {
        let (service, mut client) = spawn(backend).await;
        let mut lifecycle = orchestrator(&service);
        let (site, neighbour) = (service.catalog_site().await, service.catalog_site().await);
        let ids = provision(&mut client, site, &[1, 2, 3, 4]).await;
        let neighbour_ids = provision(&mut client, neighbour, &[5]).await;
        let neighbour_before = fingerprint(&mut lifecycle, neighbour).await;
        soft_delete(&mut lifecycle, site, OperationId::new()).await;

        let status = lifecycle
            .purge(purge_request(site, OperationId::new()))
            .await
            .unwrap_err();
        let info = refused(&status, Code::FailedPrecondition, "PURGE_BEFORE_EXPIRY");
        assert!(info.metadata.contains_key("expire_time"), "{info:?}");
        let kept = describe(&mut lifecycle, site).await;
        assert_eq!(licenses(&kept), (4, 0), "{backend:?}: nothing purged");
        assert_eq!(kept.state, TenantState::Deleted as i32);

        service.clock.advance(31 * DAY);
        let purge = OperationId::new();
        let purged = lifecycle
            .purge(purge_request(site, purge))
            .await
            .unwrap()
            .into_inner()
            .outcomes
            .remove(0);
        assert_eq!(purged.state, TenantState::Purged as i32, "{backend:?}");
        assert_eq!(purged.rows_affected, 4);
        let after = describe(&mut lifecycle, site).await;
        assert_eq!(after.state, TenantState::Purged as i32);
        assert_eq!(licenses(&after), (0, 0), "the rows are gone");

        let again = lifecycle
            .purge(purge_request(site, purge))
            .await
            .unwrap()
            .into_inner()
            .outcomes
            .remove(0);
        assert_eq!(
            again.rows_affected, 0,
            "the same operation again is a no-op"
        );
        assert_eq!(again.state, TenantState::Purged as i32);

        assert_site_deleted(&mut client, site, &ids[0]).await;
        assert_eq!(
            fingerprint(&mut lifecycle, neighbour).await,
            neighbour_before
        );
        let neighbour_license = client
            .get_license(get(neighbour, &neighbour_ids[0]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(neighbour_license.seats, 5);
        service.stop().await;
    }
}

#[tokio::test]
async fn only_the_lifecycle_role_may_call_the_lifecycle() {
    let (service, mut client) = spawn(Backend::Sqlite).await;
    let site = service.catalog_site().await;
    let ids = provision(&mut client, site, &[5]).await;
    let mut admin = TenantLifecycleClient::new(service.channel(&[Role::Admin]));

    let status = admin
        .describe(DescribeRequest {
            targets: target(site),
        })
        .await
        .unwrap_err();
    let info = refused(&status, Code::PermissionDenied, "MISSING_ROLE");
    assert_eq!(info.metadata["required_role"], "lifecycle");

    let status = admin
        .soft_delete(SoftDeleteRequest {
            targets: target(site),
            operation_id: OperationId::new().to_string(),
            justification: justification(),
            validate_only: false,
            lease_token: 0,
            call_key: String::new(),
        })
        .await
        .unwrap_err();
    refused(&status, Code::PermissionDenied, "MISSING_ROLE");
    let license = client
        .get_license(get(site, &ids[0]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(license.seats, 5, "the refused delete deleted nothing");
    assert_eq!(
        describe(&mut orchestrator(&service), site).await.state,
        TenantState::Active as i32
    );
    service.stop().await;
}
