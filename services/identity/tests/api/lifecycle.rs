//! Identity's tenant lifecycle through `micros.lifecycle.v1.TenantLifecycle`, as the
//! orchestrator drives it with its `lifecycle` token: the platform's lifecycle contract
//! on users, groups, grants and product access, then what only identity has: grants an
//! app installation owns, and the contact escrow that outlives a purge.

use std::{collections::BTreeMap, time::Duration};

use micros_identity::Identity;
use micros_platform::{
    clock::Clock,
    ids::{AppInstallationId, OperationId, SiteId},
    testing::{
        self, TestService,
        lifecycle_contract::{self, app_target, rows, site_target},
        refused,
    },
};
use micros_proto::{
    identity::v1::{
        self as pb, AddMemberRequest, Contact, ContactKind, CreateUserRequest, DeleteUserRequest,
        EscrowContactsRequest, GetEscrowedContactsRequest, GetUserRequest, GrantPermissionRequest,
        ListGrantsRequest, ListProductAccessRequest, ListUsersRequest, ProductRole,
        RevokePermissionRequest, SetProductAccessRequest, SetSiteAdminRequest, SiteState,
    },
    lifecycle::v1::{TenantState, restore_request::Source},
};
use tonic::{Code, Status};

use crate::common::{Harness, group_subject, harness, user_subject};

const DAY: Duration = Duration::from_secs(24 * 3600);

impl Harness {
    /// The site's grants as `subject/role/app`, in key order.
    async fn grant_keys(&mut self, site_id: SiteId) -> Vec<String> {
        self.identity
            .list_grants(ListGrantsRequest {
                site_id: site_id.to_string(),
                ..ListGrantsRequest::default()
            })
            .await
            .unwrap()
            .into_inner()
            .grants
            .into_iter()
            .map(|grant| {
                format!(
                    "{:?}/{}/{}",
                    grant.subject.and_then(|subject| subject.kind),
                    grant.role,
                    grant.app_installation_id
                )
            })
            .collect()
    }

    /// A site with users (one of them deleted by a user-level delete), a group with a
    /// member, grants (one owned by an app installation) and product access; returns the
    /// deleted user's ID.
    async fn populated(&mut self, site_id: SiteId, domain: &str) -> String {
        let admin = self.user(site_id, &format!("admin@{domain}")).await;
        let member = self.user(site_id, &format!("member@{domain}")).await;
        let leaver = self.user(site_id, &format!("leaver@{domain}")).await;
        let group = self.group(site_id, "Everyone").await;
        for user in [&member, &leaver] {
            self.identity
                .add_member(AddMemberRequest {
                    site_id: site_id.to_string(),
                    group_id: group.group_id.clone(),
                    user_id: user.user_id.clone(),
                })
                .await
                .unwrap();
        }
        let app = AppInstallationId::new().to_string();
        self.grant(site_id, user_subject(&admin), ProductRole::Admin, "")
            .await;
        self.grant(site_id, group_subject(&group), ProductRole::Use, "")
            .await;
        self.grant(site_id, user_subject(&member), ProductRole::Use, &app)
            .await;
        self.set_product_access(site_id, true).await;
        self.identity
            .delete_user(DeleteUserRequest {
                site_id: site_id.to_string(),
                user_id: leaver.user_id.clone(),
            })
            .await
            .unwrap();
        leaver.user_id
    }

    async fn set_product_access(&mut self, site_id: SiteId, enabled: bool) {
        self.identity
            .set_product_access(SetProductAccessRequest {
                site_id: site_id.to_string(),
                product: "jira".to_owned(),
                enabled,
            })
            .await
            .unwrap();
    }
}

/// Identity as the lifecycle contract sees it: each site's mail domain and the user
/// deleted before any lifecycle call, who must stay deleted.
struct Directory {
    h: Harness,
    sites: BTreeMap<SiteId, (String, String)>,
}

/// What a user sees of a site: its users with their IDs, grants, product access, and
/// that the user deleted before stays unknown.
#[derive(Debug, PartialEq)]
struct DirectoryView {
    users: Vec<pb::User>,
    grants: Vec<String>,
    product_access: Vec<pb::ProductAccess>,
    leaver: Code,
}

impl Directory {
    fn domain(&self, site_id: SiteId) -> String {
        self.sites[&site_id].0.clone()
    }
}

impl lifecycle_contract::Subject for Directory {
    type Service = Identity;
    type View = DirectoryView;

    fn service(&self) -> &TestService<Identity> {
        &self.h.service
    }

    async fn site(&mut self) -> SiteId {
        self.h.site().await
    }

    async fn seed(&mut self, site_id: SiteId) {
        let domain = format!("tenant{}.example.com", self.sites.len());
        let leaver = self.h.populated(site_id, &domain).await;
        self.sites.insert(site_id, (domain, leaver));
    }

    /// A new user, a user deleted and one re-created with a new ID, a new group with an
    /// admin grant, product access turned off.
    async fn change(&mut self, site_id: SiteId) {
        let domain = self.domain(site_id);
        self.h.user(site_id, &format!("mallory@{domain}")).await;
        let member = self.h.users(site_id).await.remove(1);
        self.h
            .identity
            .delete_user(DeleteUserRequest {
                site_id: site_id.to_string(),
                user_id: member.user_id.clone(),
            })
            .await
            .unwrap();
        self.h.user(site_id, &member.email).await;
        let contractors = self.h.group(site_id, "Contractors").await;
        self.h
            .grant(site_id, group_subject(&contractors), ProductRole::Admin, "")
            .await;
        self.h.set_product_access(site_id, false).await;
    }

    async fn view(&mut self, site_id: SiteId) -> DirectoryView {
        let leaver = self.sites[&site_id].1.clone();
        DirectoryView {
            users: self.h.users(site_id).await,
            grants: self.h.grant_keys(site_id).await,
            product_access: self
                .h
                .identity
                .list_product_access(ListProductAccessRequest {
                    site_id: site_id.to_string(),
                })
                .await
                .unwrap()
                .into_inner()
                .products,
            leaver: self
                .h
                .identity
                .get_user(GetUserRequest {
                    site_id: site_id.to_string(),
                    user_id: leaver,
                })
                .await
                .unwrap_err()
                .code(),
        }
    }

    async fn refusals(&mut self, site_id: SiteId) -> Vec<Status> {
        let (domain, leaver) = self.sites[&site_id].clone();
        let site_key = site_id.to_string();
        let identity = &mut self.h.identity;
        vec![
            identity
                .list_users(ListUsersRequest {
                    site_id: site_key.clone(),
                    ..ListUsersRequest::default()
                })
                .await
                .unwrap_err(),
            identity
                .get_user(GetUserRequest {
                    site_id: site_key.clone(),
                    user_id: leaver.clone(),
                })
                .await
                .unwrap_err(),
            identity
                .create_user(CreateUserRequest {
                    site_id: site_key.clone(),
                    email: format!("new@{domain}"),
                    display_name: "New".to_owned(),
                    site_admin: false,
                    user_id: String::new(),
                })
                .await
                .unwrap_err(),
            identity
                .list_grants(ListGrantsRequest {
                    site_id: site_key.clone(),
                    ..ListGrantsRequest::default()
                })
                .await
                .unwrap_err(),
            identity
                .set_product_access(SetProductAccessRequest {
                    site_id: site_key.clone(),
                    product: "jira".to_owned(),
                    enabled: false,
                })
                .await
                .unwrap_err(),
            identity
                .set_site_admin(SetSiteAdminRequest {
                    site_id: site_key,
                    user_id: leaver,
                    site_admin: true,
                })
                .await
                .unwrap_err(),
        ]
    }

    /// A user's and a group's grants owned by a new app installation.
    async fn seed_app(&mut self, site_id: SiteId) -> Option<String> {
        let domain = self.domain(site_id);
        let app = AppInstallationId::new().to_string();
        let user = self.h.user(site_id, &format!("app-user@{domain}")).await;
        let group = self.h.group(site_id, "App users").await;
        self.h
            .grant(site_id, user_subject(&user), ProductRole::Use, &app)
            .await;
        self.h
            .grant(site_id, group_subject(&group), ProductRole::Admin, &app)
            .await;
        Some(app)
    }
}

#[tokio::test]
async fn identity_keeps_the_lifecycle_contract() {
    for backend in testing::backends() {
        let mut directory = Directory {
            h: harness(backend).await,
            sites: BTreeMap::new(),
        };
        lifecycle_contract::check(&mut directory).await;
        directory.h.service.stop().await;
    }
}

#[tokio::test]
async fn an_app_uninstall_removes_only_the_apps_grants_and_its_restore_revives_them() {
    for backend in testing::backends() {
        let mut h = harness(backend).await;
        let (site, neighbour) = (h.site().await, h.site().await);
        h.populated(neighbour, "globex.example.com").await;
        let neighbour_before = h.fingerprint(neighbour).await;
        let ada = h.user(site, "ada@acme.example.com").await;
        let team = h.group(site, "Team").await;
        let (insight, calendar) = (
            AppInstallationId::new().to_string(),
            AppInstallationId::new().to_string(),
        );
        h.grant(site, user_subject(&ada), ProductRole::Use, "")
            .await;
        h.grant(site, user_subject(&ada), ProductRole::Use, &insight)
            .await;
        h.grant(site, group_subject(&team), ProductRole::Admin, &insight)
            .await;
        h.grant(site, user_subject(&ada), ProductRole::Admin, &calendar)
            .await;
        h.grant(site, group_subject(&team), ProductRole::Use, &insight)
            .await;
        h.identity
            .revoke_permission(RevokePermissionRequest {
                site_id: site.to_string(),
                subject: Some(group_subject(&team)),
                product: "jira".to_owned(),
                role: ProductRole::Use as i32,
                app_installation_id: insight.clone(),
            })
            .await
            .unwrap();
        let site_before = h.lifecycle.describe(site_target(site)).await;
        let grants_before = h.grant_keys(site).await;
        assert_eq!(grants_before.len(), 4);

        let operation = OperationId::new();
        let uninstalled = h
            .lifecycle
            .soft_delete(app_target(site, &insight), operation)
            .await;
        assert_eq!(uninstalled.rows_affected, 2, "{backend:?}");
        assert_eq!(rows(&uninstalled, "permission_grants"), (0, 2));
        let remaining = h.grant_keys(site).await;
        assert_eq!(remaining.len(), 2);
        assert!(remaining.iter().all(|grant| !grant.ends_with(&insight)));
        assert!(
            remaining.iter().any(|grant| grant.ends_with(&calendar)),
            "another app's grant stays"
        );
        assert_ne!(h.fingerprint(site).await, site_before.fingerprint);
        let regrant = h
            .identity
            .grant_permission(GrantPermissionRequest {
                site_id: site.to_string(),
                subject: Some(user_subject(&ada)),
                product: "jira".to_owned(),
                role: ProductRole::Use as i32,
                app_installation_id: insight.clone(),
            })
            .await
            .unwrap_err();
        let info = refused(&regrant, Code::FailedPrecondition, "GRANT_REMOVED");
        assert_eq!(info.metadata["deleted_by"], operation.to_string());

        let restored = h
            .lifecycle
            .restore(
                app_target(site, &insight),
                Source::UndoOperationId(operation.to_string()),
            )
            .await;
        assert_eq!(rows(&restored, "permission_grants"), (2, 0));
        assert_eq!(
            h.grant_keys(site).await,
            grants_before,
            "the grant revoked before the uninstall stays revoked"
        );
        assert_eq!(h.fingerprint(site).await, site_before.fingerprint);
        assert_eq!(h.fingerprint(neighbour).await, neighbour_before);
        h.service.stop().await;
    }
}

#[tokio::test]
async fn purge_after_expiry_removes_the_rows_but_the_escrow_still_finds_the_admin() {
    for backend in testing::backends() {
        let mut h = harness(backend).await;
        let (site, neighbour) = (h.site().await, h.site().await);
        h.populated(site, "acme.example.com").await;
        h.populated(neighbour, "globex.example.com").await;
        h.escrow_admin(site, "Acme", "Admin@Acme.example.com").await;
        h.escrow_admin(neighbour, "Globex", "admin@globex.example.com")
            .await;
        let neighbour_before = h.fingerprint(neighbour).await;
        let found = h.sites_of("admin@acme.example.com").await;
        assert_eq!(found.len(), 1, "{backend:?}");
        assert_eq!(found[0].state, SiteState::Active as i32);

        let deleted = h
            .lifecycle
            .soft_delete(site_target(site), OperationId::new())
            .await;
        let found = h.sites_of("ADMIN@acme.example.com").await;
        assert_eq!(found[0].state, SiteState::Deleted as i32);
        assert_eq!(found[0].delete_time, deleted.delete_time);
        assert_eq!(found[0].expire_time, deleted.expire_time);
        assert_eq!(found[0].purge_time, None);

        let while_deleted = h
            .identity
            .escrow_contacts(EscrowContactsRequest {
                site_id: site.to_string(),
                site_name: "Acme".to_owned(),
                site_url: "https://acme.example.com".to_owned(),
                contacts: vec![Contact {
                    email: "billing@acme.example.com".to_owned(),
                    name: "Acme Billing".to_owned(),
                    kind: ContactKind::Billing as i32,
                }],
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            while_deleted.contacts.len(),
            2,
            "escrow is outside the lifecycle: it changes while the site is deleted"
        );

        h.service.clock.advance(31 * DAY);
        let purged = h
            .lifecycle
            .purge(site_target(site), OperationId::new())
            .await;
        assert_eq!(purged.state, TenantState::Purged as i32);

        let found = h.sites_of("admin@acme.example.com").await;
        assert_eq!(found.len(), 1, "the escrow outlives the purge");
        let acme = &found[0];
        assert_eq!(acme.site_id, site.to_string());
        assert_eq!(acme.state, SiteState::Purged as i32);
        assert_eq!(acme.site_name, "Acme");
        assert_eq!(acme.site_url, "https://acme.example.com");
        assert_eq!(acme.contact_name, "Acme Admin");
        assert_eq!(acme.delete_time, deleted.delete_time);
        let purge_time = acme.purge_time.expect("a purge time");
        let escrow_expiry = acme.escrow_expire_time.expect("an escrow expiry");
        assert_eq!(escrow_expiry.seconds - purge_time.seconds, 400 * 24 * 3600);
        let now = h.service.clock.now();
        let purged_at =
            std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(purge_time.seconds).unwrap());
        assert!(
            now.duration_since(purged_at).unwrap() < DAY,
            "by the service clock"
        );

        let escrowed = h
            .identity
            .get_escrowed_contacts(GetEscrowedContactsRequest {
                site_ids: vec![site.to_string()],
            })
            .await
            .unwrap()
            .into_inner()
            .sites;
        assert_eq!(
            escrowed.len(),
            1,
            "a purged site's contacts are still there"
        );
        assert_eq!(escrowed[0].contacts[0].email, "admin@acme.example.com");

        let refused_escrow = h
            .identity
            .escrow_contacts(EscrowContactsRequest {
                site_id: site.to_string(),
                site_name: "Acme".to_owned(),
                site_url: "https://acme.example.com".to_owned(),
                contacts: vec![Contact {
                    email: "late@acme.example.com".to_owned(),
                    name: String::new(),
                    kind: ContactKind::Billing as i32,
                }],
            })
            .await
            .unwrap_err();
        refused(&refused_escrow, Code::FailedPrecondition, "SITE_PURGED");
        let write = h
            .identity
            .create_user(CreateUserRequest {
                site_id: site.to_string(),
                email: "new@acme.example.com".to_owned(),
                display_name: "New".to_owned(),
                site_admin: false,
                user_id: String::new(),
            })
            .await
            .unwrap_err();
        refused(&write, Code::NotFound, "SITE_DELETED");

        assert_eq!(h.fingerprint(neighbour).await, neighbour_before);
        assert_eq!(h.emails(neighbour).await.len(), 2);
        let globex = h.sites_of("admin@globex.example.com").await;
        assert_eq!(globex[0].state, SiteState::Active as i32);
        h.service.stop().await;
    }
}
