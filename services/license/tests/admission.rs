//! License takes a site's first license only for a site the catalog has active, asked
//! over gRPC (UNAVAILABLE when the catalog cannot be asked), and lists nothing, rather
//! than SITE_NOT_FOUND, for a site the catalog has active with no license here yet. On
//! every backend.

mod common;

use common::{list, new_license, spawn};
use micros_license::{License, LicenseSettings};
use micros_platform::{
    auth::Role,
    ids::SiteId,
    testing::{self, refused},
};
use micros_proto::license::v1::license_service_client::LicenseServiceClient;
use tonic::Code;

#[tokio::test]
async fn a_first_license_is_refused_for_a_site_the_catalog_does_not_know_or_deleted() {
    for backend in testing::backends() {
        let (service, mut client) = spawn(backend).await;
        let unknown = SiteId::new();
        let status = client
            .create_license(new_license(unknown, "jira", 5))
            .await
            .unwrap_err();
        let info = refused(&status, Code::NotFound, "SITE_NOT_FOUND");
        assert_eq!(info.metadata["site_id"], unknown.to_string());

        let deleted = service.catalog_site().await;
        service.delete_catalog_site(deleted).await;
        let status = client
            .create_license(new_license(deleted, "jira", 5))
            .await
            .unwrap_err();
        refused(&status, Code::NotFound, "SITE_DELETED");
        let status = client.list_licenses(list(deleted)).await.unwrap_err();
        refused(&status, Code::NotFound, "SITE_DELETED");

        let fresh = service.catalog_site().await;
        let listed = client
            .list_licenses(list(fresh))
            .await
            .unwrap()
            .into_inner();
        assert!(listed.licenses.is_empty(), "{listed:?}");
        client
            .create_license(new_license(fresh, "jira", 5))
            .await
            .unwrap();
        let listed = client
            .list_licenses(list(fresh))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.licenses.len(), 1);
        println!("{backend:?}: first license refused for unknown and deleted sites");
    }
}

#[tokio::test]
async fn a_first_license_while_the_catalog_is_down_is_unavailable() {
    for backend in testing::backends() {
        let service = testing::spawn_asking::<License>(
            backend,
            LicenseSettings::default(),
            testing::unreachable_url(),
        )
        .await;
        let mut client = LicenseServiceClient::new(service.channel(&[Role::Admin]));
        let site = SiteId::new();
        let status = client
            .create_license(new_license(site, "jira", 5))
            .await
            .unwrap_err();
        refused(&status, Code::Unavailable, "CATALOG_UNAVAILABLE");
        let status = client.list_licenses(list(site)).await.unwrap_err();
        refused(&status, Code::Unavailable, "CATALOG_UNAVAILABLE");
        println!("{backend:?}: catalog down, create UNAVAILABLE");
    }
}
