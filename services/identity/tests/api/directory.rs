//! Users, groups, memberships, grants and product access: CRUD, pagination, tenant
//! scoping, typed IDs and roles.

use micros_platform::{
    auth::Role,
    ids::{AppInstallationId, GroupId, SiteId, UserId},
    testing::{self, refused},
};
use micros_proto::identity::v1::{
    AddMemberRequest, CreateGroupRequest, CreateUserRequest, DeleteGroupRequest, DeleteUserRequest,
    FindSitesByContactRequest, GetGroupRequest, GetUserRequest, GrantPermissionRequest,
    ListGrantsRequest, ListGroupsRequest, ListMembersRequest, ListProductAccessRequest,
    ListUsersRequest, ProductRole, RemoveMemberRequest, RevokePermissionRequest,
    SetProductAccessRequest, SetSiteAdminRequest, Subject, subject,
};
use tonic::Code;

use crate::common::{Client, Harness, group_subject, harness, user_subject};

fn get_user(site_id: SiteId, user_id: &str) -> GetUserRequest {
    GetUserRequest {
        site_id: site_id.to_string(),
        user_id: user_id.to_owned(),
    }
}

fn membership(site_id: SiteId, group_id: &str, user_id: &str) -> AddMemberRequest {
    AddMemberRequest {
        site_id: site_id.to_string(),
        group_id: group_id.to_owned(),
        user_id: user_id.to_owned(),
    }
}

impl Harness {
    /// Every member of the group, by email, through pagination.
    async fn member_emails(&mut self, site_id: SiteId, group_id: &str) -> Vec<String> {
        let mut emails = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .identity
                .list_members(ListMembersRequest {
                    site_id: site_id.to_string(),
                    group_id: group_id.to_owned(),
                    page_size: 1,
                    page_token,
                })
                .await
                .unwrap()
                .into_inner();
            emails.extend(page.users.into_iter().map(|user| user.email));
            if page.next_page_token.is_empty() {
                return emails;
            }
            page_token = page.next_page_token;
        }
    }

    /// Every grant of the site matching the filters, as `subject/role/app`, through
    /// pagination.
    async fn grants(&mut self, site_id: SiteId, subject: Option<Subject>) -> Vec<String> {
        let mut grants = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .identity
                .list_grants(ListGrantsRequest {
                    site_id: site_id.to_string(),
                    subject: subject.clone(),
                    product: String::new(),
                    page_size: 2,
                    page_token,
                })
                .await
                .unwrap()
                .into_inner();
            grants.extend(page.grants.into_iter().map(|grant| {
                let subject = match grant.subject.and_then(|subject| subject.kind) {
                    Some(subject::Kind::UserId(id) | subject::Kind::GroupId(id)) => id,
                    None => String::new(),
                };
                let role = ProductRole::try_from(grant.role).unwrap().as_str_name();
                format!("{subject}/{role}/{}", grant.app_installation_id)
            }));
            if page.next_page_token.is_empty() {
                return grants;
            }
            page_token = page.next_page_token;
        }
    }
}

#[tokio::test]
async fn users_are_created_read_listed_by_page_promoted_and_deleted() {
    for backend in testing::backends() {
        let mut h = harness(backend).await;
        let site = h.site().await;
        let mut created = Vec::new();
        for name in ["ada", "bob", "cy", "dee", "eve"] {
            created.push(h.user(site, &format!("{name}@example.com")).await);
        }
        assert_eq!(
            h.emails(site).await,
            [
                "ada@example.com",
                "bob@example.com",
                "cy@example.com",
                "dee@example.com",
                "eve@example.com"
            ],
            "{backend:?}: three pages of two, in creation order"
        );
        let ada = h
            .identity
            .get_user(get_user(site, &created[0].user_id))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ada, created[0]);
        assert_eq!(ada.site_id, site.to_string());

        let taken = h
            .identity
            .create_user(CreateUserRequest {
                site_id: site.to_string(),
                email: "  ADA@Example.com ".to_owned(),
                display_name: "Ada again".to_owned(),
                site_admin: false,
                user_id: String::new(),
            })
            .await
            .unwrap_err();
        let info = refused(&taken, Code::AlreadyExists, "USER_EMAIL_TAKEN");
        assert_eq!(info.metadata["email"], "ada@example.com");

        let chosen = UserId::new().to_string();
        let request = CreateUserRequest {
            site_id: site.to_string(),
            email: "Fay@Example.com".to_owned(),
            display_name: "Fay".to_owned(),
            site_admin: true,
            user_id: chosen.clone(),
        };
        let fay = h
            .identity
            .create_user(request.clone())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(fay.email, "fay@example.com");
        let again = h
            .identity
            .create_user(request.clone())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(again, fay, "a retry returns the same user");
        let clash = h
            .identity
            .create_user(CreateUserRequest {
                display_name: "Someone else".to_owned(),
                ..request
            })
            .await
            .unwrap_err();
        refused(&clash, Code::AlreadyExists, "USER_ID_TAKEN");

        let bob = created[1].user_id.clone();
        let promoted = h
            .identity
            .set_site_admin(SetSiteAdminRequest {
                site_id: site.to_string(),
                user_id: bob.clone(),
                site_admin: true,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(promoted.site_admin);
        let admins = h
            .identity
            .list_users(ListUsersRequest {
                site_id: site.to_string(),
                site_admins_only: true,
                ..ListUsersRequest::default()
            })
            .await
            .unwrap()
            .into_inner()
            .users;
        let admins: Vec<&str> = admins.iter().map(|user| user.email.as_str()).collect();
        assert_eq!(admins, ["bob@example.com", "fay@example.com"]);

        h.identity
            .delete_user(DeleteUserRequest {
                site_id: site.to_string(),
                user_id: bob.clone(),
            })
            .await
            .unwrap();
        let gone = h.identity.get_user(get_user(site, &bob)).await.unwrap_err();
        refused(&gone, Code::NotFound, "USER_NOT_FOUND");
        let deleted_again = h
            .identity
            .delete_user(DeleteUserRequest {
                site_id: site.to_string(),
                user_id: bob.clone(),
            })
            .await
            .unwrap_err();
        refused(&deleted_again, Code::NotFound, "USER_NOT_FOUND");
        let successor = h.user(site, "bob@example.com").await;
        assert_ne!(successor.user_id, bob, "the email is free for a new user");
        assert_eq!(h.emails(site).await.len(), 6);

        for (email, display_name) in [("ada", "Ada"), ("ada@example", "Ada"), ("x@y.z", "")] {
            let bad = h
                .identity
                .create_user(CreateUserRequest {
                    site_id: site.to_string(),
                    email: email.to_owned(),
                    display_name: display_name.to_owned(),
                    site_admin: false,
                    user_id: String::new(),
                })
                .await
                .unwrap_err();
            assert_eq!(bad.code(), Code::InvalidArgument, "{email}: {bad:?}");
        }
        let garbage = h
            .identity
            .list_users(ListUsersRequest {
                site_id: site.to_string(),
                page_token: "not a token!".to_owned(),
                ..ListUsersRequest::default()
            })
            .await
            .unwrap_err();
        refused(&garbage, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
        h.service.stop().await;
    }
}

#[tokio::test]
async fn groups_memberships_and_grants_round_trip_and_cascade_on_delete() {
    for backend in testing::backends() {
        let mut h = harness(backend).await;
        let site = h.site().await;
        let ada = h.user(site, "ada@example.com").await;
        let bob = h.user(site, "bob@example.com").await;
        let cy = h.user(site, "cy@example.com").await;
        let devs = h.group(site, "Developers").await;
        let ops = h.group(site, "Operations").await;
        let qa = h.group(site, "QA").await;

        let fetched = h
            .identity
            .get_group(GetGroupRequest {
                site_id: site.to_string(),
                group_id: devs.group_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(fetched, devs);
        let first = h
            .identity
            .list_groups(ListGroupsRequest {
                site_id: site.to_string(),
                page_size: 2,
                page_token: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(first.groups, [devs.clone(), ops.clone()], "{backend:?}");
        let second = h
            .identity
            .list_groups(ListGroupsRequest {
                site_id: site.to_string(),
                page_size: 2,
                page_token: first.next_page_token,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(second.groups, [qa]);
        assert!(second.next_page_token.is_empty());
        let same_name = h
            .identity
            .create_group(CreateGroupRequest {
                site_id: site.to_string(),
                name: "Developers".to_owned(),
                group_id: String::new(),
            })
            .await
            .unwrap_err();
        refused(&same_name, Code::AlreadyExists, "GROUP_NAME_TAKEN");

        let added = h
            .identity
            .add_member(membership(site, &devs.group_id, &ada.user_id))
            .await
            .unwrap()
            .into_inner();
        let again = h
            .identity
            .add_member(membership(site, &devs.group_id, &ada.user_id))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(again, added, "adding a member again returns the membership");
        for user in [&bob, &cy] {
            h.identity
                .add_member(membership(site, &devs.group_id, &user.user_id))
                .await
                .unwrap();
        }
        assert_eq!(
            h.member_emails(site, &devs.group_id).await,
            ["ada@example.com", "bob@example.com", "cy@example.com"]
        );
        h.identity
            .remove_member(RemoveMemberRequest {
                site_id: site.to_string(),
                group_id: devs.group_id.clone(),
                user_id: cy.user_id.clone(),
            })
            .await
            .unwrap();
        let not_member = h
            .identity
            .remove_member(RemoveMemberRequest {
                site_id: site.to_string(),
                group_id: devs.group_id.clone(),
                user_id: cy.user_id.clone(),
            })
            .await
            .unwrap_err();
        refused(&not_member, Code::NotFound, "MEMBERSHIP_NOT_FOUND");
        assert_eq!(
            h.member_emails(site, &devs.group_id).await,
            ["ada@example.com", "bob@example.com"]
        );

        let app = AppInstallationId::new().to_string();
        let direct = h
            .grant(site, user_subject(&ada), ProductRole::Use, "")
            .await;
        let regrant = h
            .grant(site, user_subject(&ada), ProductRole::Use, "")
            .await;
        assert_eq!(regrant, direct, "granting again returns the grant");
        h.grant(site, user_subject(&ada), ProductRole::Use, &app)
            .await;
        h.grant(site, group_subject(&devs), ProductRole::Admin, "")
            .await;
        h.grant(site, user_subject(&bob), ProductRole::Admin, "")
            .await;
        let mut expected = vec![
            format!("{}/PRODUCT_ROLE_USE/", ada.user_id),
            format!("{}/PRODUCT_ROLE_USE/{app}", ada.user_id),
            format!("{}/PRODUCT_ROLE_ADMIN/", devs.group_id),
            format!("{}/PRODUCT_ROLE_ADMIN/", bob.user_id),
        ];
        expected.sort();
        let mut all = h.grants(site, None).await;
        all.sort();
        assert_eq!(all, expected, "{backend:?}");
        assert_eq!(
            h.grants(site, Some(user_subject(&ada))).await.len(),
            2,
            "the direct grant and the app's grant are two grants"
        );
        let no_confluence = h
            .identity
            .list_grants(ListGrantsRequest {
                site_id: site.to_string(),
                product: "confluence".to_owned(),
                ..ListGrantsRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(no_confluence.grants.is_empty());

        let revoke = RevokePermissionRequest {
            site_id: site.to_string(),
            subject: Some(user_subject(&ada)),
            product: "jira".to_owned(),
            role: ProductRole::Use as i32,
            app_installation_id: app.clone(),
        };
        h.identity.revoke_permission(revoke.clone()).await.unwrap();
        let revoked_again = h.identity.revoke_permission(revoke).await.unwrap_err();
        refused(&revoked_again, Code::NotFound, "GRANT_NOT_FOUND");
        assert_eq!(
            h.grants(site, Some(user_subject(&ada))).await,
            [format!("{}/PRODUCT_ROLE_USE/", ada.user_id)],
            "only the app's grant was revoked"
        );

        let deleted = h
            .identity
            .delete_user(DeleteUserRequest {
                site_id: site.to_string(),
                user_id: ada.user_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (deleted.memberships_deleted, deleted.grants_deleted),
            (1, 1)
        );
        assert_eq!(
            h.member_emails(site, &devs.group_id).await,
            ["bob@example.com"]
        );
        let deleted_group = h
            .identity
            .delete_group(DeleteGroupRequest {
                site_id: site.to_string(),
                group_id: devs.group_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (
                deleted_group.memberships_deleted,
                deleted_group.grants_deleted
            ),
            (1, 1)
        );
        assert_eq!(
            h.grants(site, None).await,
            [format!("{}/PRODUCT_ROLE_ADMIN/", bob.user_id)]
        );
        let gone = h
            .identity
            .list_members(ListMembersRequest {
                site_id: site.to_string(),
                group_id: devs.group_id.clone(),
                ..ListMembersRequest::default()
            })
            .await
            .unwrap_err();
        refused(&gone, Code::NotFound, "GROUP_NOT_FOUND");
        let to_deleted = h
            .identity
            .grant_permission(GrantPermissionRequest {
                site_id: site.to_string(),
                subject: Some(user_subject(&ada)),
                product: "jira".to_owned(),
                role: ProductRole::Use as i32,
                app_installation_id: String::new(),
            })
            .await
            .unwrap_err();
        refused(&to_deleted, Code::NotFound, "USER_NOT_FOUND");

        for (request, reason) in [
            (
                GrantPermissionRequest {
                    site_id: site.to_string(),
                    subject: Some(user_subject(&bob)),
                    product: "excel".to_owned(),
                    role: ProductRole::Use as i32,
                    app_installation_id: String::new(),
                },
                "UNKNOWN_PRODUCT",
            ),
            (
                GrantPermissionRequest {
                    site_id: site.to_string(),
                    subject: Some(user_subject(&bob)),
                    product: "jira".to_owned(),
                    role: ProductRole::Unspecified as i32,
                    app_installation_id: String::new(),
                },
                "INVALID_PRODUCT_ROLE",
            ),
            (
                GrantPermissionRequest {
                    site_id: site.to_string(),
                    subject: None,
                    product: "jira".to_owned(),
                    role: ProductRole::Use as i32,
                    app_installation_id: String::new(),
                },
                "MISSING_FIELD",
            ),
        ] {
            let status = h.identity.grant_permission(request).await.unwrap_err();
            refused(&status, Code::InvalidArgument, reason);
        }
        h.service.stop().await;
    }
}

#[tokio::test]
async fn another_sites_ids_are_not_found_and_leave_it_untouched() {
    for backend in testing::backends() {
        let mut h = harness(backend).await;
        let (mine, theirs) = (h.site().await, h.site().await);
        let their_user = h.user(theirs, "ada@theirs.example.com").await;
        let their_group = h.group(theirs, "Theirs").await;
        h.identity
            .add_member(membership(
                theirs,
                &their_group.group_id,
                &their_user.user_id,
            ))
            .await
            .unwrap();
        h.grant(theirs, user_subject(&their_user), ProductRole::Use, "")
            .await;
        let my_group = h.group(mine, "Mine").await;
        let my_user = h.user(mine, "bob@mine.example.com").await;
        let theirs_before = h.fingerprint(theirs).await;

        let read = h
            .identity
            .get_user(get_user(mine, &their_user.user_id))
            .await
            .unwrap_err();
        let info = refused(&read, Code::NotFound, "USER_NOT_FOUND");
        assert_eq!(info.metadata["site_id"], mine.to_string());
        let join = h
            .identity
            .add_member(membership(mine, &my_group.group_id, &their_user.user_id))
            .await
            .unwrap_err();
        refused(&join, Code::NotFound, "USER_NOT_FOUND");
        let join_theirs = h
            .identity
            .add_member(membership(mine, &their_group.group_id, &my_user.user_id))
            .await
            .unwrap_err();
        refused(&join_theirs, Code::NotFound, "GROUP_NOT_FOUND");
        let grant = h
            .identity
            .grant_permission(GrantPermissionRequest {
                site_id: mine.to_string(),
                subject: Some(group_subject(&their_group)),
                product: "jira".to_owned(),
                role: ProductRole::Admin as i32,
                app_installation_id: String::new(),
            })
            .await
            .unwrap_err();
        refused(&grant, Code::NotFound, "GROUP_NOT_FOUND");
        let delete = h
            .identity
            .delete_user(DeleteUserRequest {
                site_id: mine.to_string(),
                user_id: their_user.user_id.clone(),
            })
            .await
            .unwrap_err();
        refused(&delete, Code::NotFound, "USER_NOT_FOUND");
        let remove = h
            .identity
            .remove_member(RemoveMemberRequest {
                site_id: mine.to_string(),
                group_id: their_group.group_id.clone(),
                user_id: their_user.user_id.clone(),
            })
            .await
            .unwrap_err();
        refused(&remove, Code::NotFound, "MEMBERSHIP_NOT_FOUND");
        let revoke = h
            .identity
            .revoke_permission(RevokePermissionRequest {
                site_id: mine.to_string(),
                subject: Some(user_subject(&their_user)),
                product: "jira".to_owned(),
                role: ProductRole::Use as i32,
                app_installation_id: String::new(),
            })
            .await
            .unwrap_err();
        refused(&revoke, Code::NotFound, "GRANT_NOT_FOUND");
        let list = h
            .identity
            .list_members(ListMembersRequest {
                site_id: mine.to_string(),
                group_id: their_group.group_id.clone(),
                ..ListMembersRequest::default()
            })
            .await
            .unwrap_err();
        refused(&list, Code::NotFound, "GROUP_NOT_FOUND");
        let unknown_site = h
            .identity
            .get_user(get_user(SiteId::new(), &their_user.user_id))
            .await
            .unwrap_err();
        refused(&unknown_site, Code::NotFound, "SITE_NOT_FOUND");

        assert_eq!(h.fingerprint(theirs).await, theirs_before, "{backend:?}");
        assert_eq!(h.emails(theirs).await, ["ada@theirs.example.com"]);
        h.service.stop().await;
    }
}

#[tokio::test]
async fn an_id_of_the_wrong_kind_is_refused_naming_both_kinds_and_changes_nothing() {
    for backend in testing::backends() {
        let mut h = harness(backend).await;
        let site = h.site().await;
        let user = h.user(site, "ada@example.com").await;
        let group = h.group(site, "Developers").await;
        let before = h.fingerprint(site).await;
        let group_as_user = GroupId::new().to_string();
        let app_as_site = AppInstallationId::new().to_string();
        let site_as_app = SiteId::new().to_string();

        let cases = vec![
            (
                h.identity
                    .get_user(get_user(site, &group_as_user))
                    .await
                    .unwrap_err(),
                "user_id",
                "usr",
                "grp",
            ),
            (
                h.identity
                    .delete_user(DeleteUserRequest {
                        site_id: app_as_site.clone(),
                        user_id: user.user_id.clone(),
                    })
                    .await
                    .unwrap_err(),
                "site_id",
                "site",
                "app",
            ),
            (
                h.identity
                    .add_member(membership(site, &user.user_id, &user.user_id))
                    .await
                    .unwrap_err(),
                "group_id",
                "grp",
                "usr",
            ),
            (
                h.identity
                    .grant_permission(GrantPermissionRequest {
                        site_id: site.to_string(),
                        subject: Some(user_subject(&user)),
                        product: "jira".to_owned(),
                        role: ProductRole::Use as i32,
                        app_installation_id: site_as_app.clone(),
                    })
                    .await
                    .unwrap_err(),
                "app_installation_id",
                "app",
                "site",
            ),
            (
                h.identity
                    .grant_permission(GrantPermissionRequest {
                        site_id: site.to_string(),
                        subject: Some(Subject {
                            kind: Some(subject::Kind::UserId(group.group_id.clone())),
                        }),
                        product: "jira".to_owned(),
                        role: ProductRole::Use as i32,
                        app_installation_id: String::new(),
                    })
                    .await
                    .unwrap_err(),
                "subject.user_id",
                "usr",
                "grp",
            ),
        ];
        for (status, field, expected, actual) in cases {
            let info = refused(&status, Code::InvalidArgument, "WRONG_ID_KIND");
            assert_eq!(info.metadata["field"], field, "{backend:?}");
            assert_eq!(info.metadata["expected_kind"], expected);
            assert_eq!(info.metadata["actual_kind"], actual);
            assert!(status.message().contains(&format!("`{expected}_…`")));
            assert!(status.message().contains(&format!("`{actual}_…`")));
        }
        assert_eq!(h.fingerprint(site).await, before, "nothing changed");
        assert_eq!(h.emails(site).await, ["ada@example.com"]);
        h.service.stop().await;
    }
}

#[tokio::test]
async fn product_access_is_set_listed_and_unchanged_by_a_repeat() {
    for backend in testing::backends() {
        let mut h = harness(backend).await;
        let site = h.site().await;
        let set = |product: &str, enabled: bool| SetProductAccessRequest {
            site_id: site.to_string(),
            product: product.to_owned(),
            enabled,
        };
        let jira = h
            .identity
            .set_product_access(set("jira", true))
            .await
            .unwrap()
            .into_inner();
        assert!(jira.enabled);
        h.identity
            .set_product_access(set("confluence", true))
            .await
            .unwrap();
        let suspended = h
            .identity
            .set_product_access(set("jira", false))
            .await
            .unwrap()
            .into_inner();
        assert!(!suspended.enabled);
        let repeated = h
            .identity
            .set_product_access(set("jira", false))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            repeated.update_time, suspended.update_time,
            "{backend:?}: nothing changed"
        );
        let listed = h
            .identity
            .list_product_access(ListProductAccessRequest {
                site_id: site.to_string(),
            })
            .await
            .unwrap()
            .into_inner()
            .products;
        let listed: Vec<(String, bool)> = listed
            .into_iter()
            .map(|access| (access.product, access.enabled))
            .collect();
        assert_eq!(
            listed,
            [("confluence".to_owned(), true), ("jira".to_owned(), false)]
        );
        let unknown = h
            .identity
            .set_product_access(set("excel", true))
            .await
            .unwrap_err();
        refused(&unknown, Code::InvalidArgument, "UNKNOWN_PRODUCT");
        h.service.stop().await;
    }
}

#[tokio::test]
async fn each_call_needs_its_role() {
    for backend in testing::backends() {
        let mut h = harness(backend).await;
        let site = h.site().await;
        let user = h.user(site, "ada@example.com").await;
        let mut viewer = h.client(&[Role::Viewer]);
        let read = viewer
            .get_user(get_user(site, &user.user_id))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(read, user);
        let write = viewer
            .delete_user(DeleteUserRequest {
                site_id: site.to_string(),
                user_id: user.user_id.clone(),
            })
            .await
            .unwrap_err();
        let info = refused(&write, Code::PermissionDenied, "MISSING_ROLE");
        assert_eq!(info.metadata["required_role"], "admin");
        let mut admin = h.client(&[Role::Admin]);
        let find = admin
            .find_sites_by_contact(FindSitesByContactRequest {
                email: "ada@example.com".to_owned(),
                ..FindSitesByContactRequest::default()
            })
            .await
            .unwrap_err();
        let info = refused(&find, Code::PermissionDenied, "MISSING_ROLE");
        assert_eq!(info.metadata["required_role"], "operator", "{backend:?}");
        let mut orchestrator = h.client(&[Role::Lifecycle]);
        let lifecycle_only = orchestrator
            .create_group(CreateGroupRequest {
                site_id: site.to_string(),
                name: "Nope".to_owned(),
                group_id: String::new(),
            })
            .await
            .unwrap_err();
        refused(&lifecycle_only, Code::PermissionDenied, "MISSING_ROLE");
        let mut anonymous = Client::new(h.service.anonymous_channel());
        let status = anonymous
            .get_user(get_user(site, &user.user_id))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
        h.service.stop().await;
    }
}
