//! Identity takes a site's first user only for a site the catalog has active, asked
//! over gRPC (UNAVAILABLE when the catalog cannot be asked), and lists nothing, rather
//! than SITE_NOT_FOUND, for a site the catalog has active with nothing here yet.

use micros_identity::IdentitySettings;
use micros_platform::{
    ids::SiteId,
    testing::{self, refused},
};
use micros_proto::identity::v1::{
    CreateUserRequest, ListGrantsRequest, ListGroupsRequest, ListProductAccessRequest,
    ListUsersRequest,
};
use tonic::Code;

use crate::common::{harness, harness_asking};

fn new_user(site_id: SiteId) -> CreateUserRequest {
    CreateUserRequest {
        site_id: site_id.to_string(),
        email: "ada@example.com".to_owned(),
        display_name: "Ada".to_owned(),
        site_admin: true,
        user_id: String::new(),
    }
}

#[tokio::test]
async fn a_first_user_is_refused_for_a_site_the_catalog_does_not_know_or_deleted() {
    for backend in testing::backends() {
        let mut h = harness(backend).await;
        let unknown = SiteId::new();
        let status = h.identity.create_user(new_user(unknown)).await.unwrap_err();
        let info = refused(&status, Code::NotFound, "SITE_NOT_FOUND");
        assert_eq!(info.metadata["site_id"], unknown.to_string());

        let deleted = h.site().await;
        h.service.delete_catalog_site(deleted).await;
        let status = h.identity.create_user(new_user(deleted)).await.unwrap_err();
        refused(&status, Code::NotFound, "SITE_DELETED");
        println!("{backend:?}: first user refused for unknown and deleted sites");
    }
}

#[tokio::test]
async fn list_reads_of_a_fresh_site_are_empty() {
    for backend in testing::backends() {
        let mut h = harness(backend).await;
        let fresh = h.site().await;
        let site_id = fresh.to_string();
        let users = h
            .identity
            .list_users(ListUsersRequest {
                site_id: site_id.clone(),
                ..ListUsersRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(users.users.is_empty(), "{users:?}");
        let groups = h
            .identity
            .list_groups(ListGroupsRequest {
                site_id: site_id.clone(),
                ..ListGroupsRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(groups.groups.is_empty(), "{groups:?}");
        let grants = h
            .identity
            .list_grants(ListGrantsRequest {
                site_id: site_id.clone(),
                ..ListGrantsRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(grants.grants.is_empty(), "{grants:?}");
        let access = h
            .identity
            .list_product_access(ListProductAccessRequest {
                site_id: site_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(access.products.is_empty(), "{access:?}");

        let unknown = h
            .identity
            .list_users(ListUsersRequest {
                site_id: SiteId::new().to_string(),
                ..ListUsersRequest::default()
            })
            .await
            .unwrap_err();
        refused(&unknown, Code::NotFound, "SITE_NOT_FOUND");
        println!("{backend:?}: a fresh site lists empty");
    }
}

#[tokio::test]
async fn a_first_user_while_the_catalog_is_down_is_unavailable() {
    for backend in testing::backends() {
        let mut h = harness_asking(
            backend,
            IdentitySettings::default(),
            testing::unreachable_url(),
        )
        .await;
        let status = h
            .identity
            .create_user(new_user(SiteId::new()))
            .await
            .unwrap_err();
        refused(&status, Code::Unavailable, "CATALOG_UNAVAILABLE");
        println!("{backend:?}: catalog down, create UNAVAILABLE");
    }
}
