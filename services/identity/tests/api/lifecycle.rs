//! Identity's tenant lifecycle through `micros.lifecycle.v1.TenantLifecycle`, as the
//! orchestrator drives it with its `lifecycle` token: site soft delete and restore,
//! app-installation uninstall and restore, purge after expiry, point in time.

use std::time::Duration;

use micros_platform::{
    clock::Clock,
    ids::{AppInstallationId, OperationId, SiteId},
    testing,
};
use micros_proto::{
    identity::v1::{
        AddMemberRequest, Contact, ContactKind, CreateUserRequest, DeleteUserRequest,
        EscrowContactsRequest, GetEscrowedContactsRequest, GetUserRequest, GrantPermissionRequest,
        ListGrantsRequest, ListUsersRequest, ProductRole, RevokePermissionRequest,
        SetProductAccessRequest, SetSiteAdminRequest, SiteState,
    },
    lifecycle::v1::{
        self as lc, PurgeRequest, RestoreRequest, SoftDeleteRequest, TargetOutcome, TenantState,
        restore_request::Source,
    },
};
use tonic::Code;

use crate::common::{
    Harness, app_target, group_subject, harness, justification, refused, site_target, user_subject,
};

const DAY: Duration = Duration::from_secs(24 * 3600);

impl Harness {
    async fn soft_delete(&mut self, target: lc::Target, operation_id: &str) -> TargetOutcome {
        self.lifecycle
            .soft_delete(SoftDeleteRequest {
                targets: vec![target],
                operation_id: operation_id.to_owned(),
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

    async fn restore(&mut self, target: lc::Target, source: Source) -> TargetOutcome {
        self.lifecycle
            .restore(RestoreRequest {
                targets: vec![target],
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

    async fn purge(&mut self, site_id: SiteId) -> Result<TargetOutcome, tonic::Status> {
        self.lifecycle
            .purge(PurgeRequest {
                targets: vec![site_target(site_id)],
                operation_id: OperationId::new().to_string(),
                justification: justification(),
                validate_only: false,
                lease_token: 0,
            })
            .await
            .map(|response| response.into_inner().outcomes.remove(0))
    }

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
        self.identity
            .set_product_access(SetProductAccessRequest {
                site_id: site_id.to_string(),
                product: "jira".to_owned(),
                enabled: true,
            })
            .await
            .unwrap();
        self.identity
            .delete_user(DeleteUserRequest {
                site_id: site_id.to_string(),
                user_id: leaver.user_id.clone(),
            })
            .await
            .unwrap();
        leaver.user_id
    }
}

/// (live, deleted) rows of `table` in an outcome.
fn rows(outcome: &TargetOutcome, table: &str) -> (i64, i64) {
    let count = outcome
        .counts
        .iter()
        .find(|count| count.table == table)
        .unwrap_or_else(|| panic!("a count for {table}"));
    (count.live, count.deleted)
}

#[tokio::test]
async fn a_deleted_site_is_unreachable_and_restores_to_the_same_fingerprint() {
    for backend in testing::backends() {
        let mut h = harness(backend).await;
        let (site, neighbour) = (h.site().await, h.site().await);
        let leaver = h.populated(site, "acme.example.com").await;
        h.populated(neighbour, "globex.example.com").await;
        let before = h.describe(site_target(site)).await;
        let neighbour_before = h.fingerprint(neighbour).await;
        let emails_before = h.emails(site).await;
        let grants_before = h.grant_keys(site).await;
        assert_eq!(rows(&before, "users"), (2, 1), "{backend:?}");

        let operation = OperationId::new().to_string();
        let deleted = h.soft_delete(site_target(site), &operation).await;
        assert_eq!(deleted.state, TenantState::Deleted as i32, "{backend:?}");
        assert_eq!(deleted.fingerprint, before.fingerprint);
        assert!(deleted.expire_time.is_some());
        let while_deleted = h.describe(site_target(site)).await;
        assert_eq!(while_deleted.fingerprint, before.fingerprint);
        assert_eq!(
            while_deleted.counts, before.counts,
            "no data row was touched"
        );

        let site_key = site.to_string();
        let refusals = vec![
            h.identity
                .list_users(ListUsersRequest {
                    site_id: site_key.clone(),
                    ..ListUsersRequest::default()
                })
                .await
                .unwrap_err(),
            h.identity
                .get_user(GetUserRequest {
                    site_id: site_key.clone(),
                    user_id: leaver.clone(),
                })
                .await
                .unwrap_err(),
            h.identity
                .create_user(CreateUserRequest {
                    site_id: site_key.clone(),
                    email: "new@acme.example.com".to_owned(),
                    display_name: "New".to_owned(),
                    site_admin: false,
                    user_id: String::new(),
                })
                .await
                .unwrap_err(),
            h.identity
                .list_grants(ListGrantsRequest {
                    site_id: site_key.clone(),
                    ..ListGrantsRequest::default()
                })
                .await
                .unwrap_err(),
            h.identity
                .set_product_access(SetProductAccessRequest {
                    site_id: site_key.clone(),
                    product: "jira".to_owned(),
                    enabled: false,
                })
                .await
                .unwrap_err(),
            h.identity
                .set_site_admin(SetSiteAdminRequest {
                    site_id: site_key.clone(),
                    user_id: leaver.clone(),
                    site_admin: true,
                })
                .await
                .unwrap_err(),
        ];
        for status in refusals {
            let info = refused(&status, Code::NotFound, "SITE_DELETED");
            assert_eq!(info.metadata["site_id"], site_key);
        }
        assert_eq!(h.fingerprint(neighbour).await, neighbour_before);
        assert_eq!(
            h.emails(neighbour).await.len(),
            2,
            "the neighbour is served"
        );

        let restored = h
            .restore(site_target(site), Source::UndoOperationId(operation))
            .await;
        assert_eq!(restored.state, TenantState::Active as i32);
        assert_eq!(restored.fingerprint, before.fingerprint, "{backend:?}");
        assert_eq!(h.emails(site).await, emails_before);
        assert_eq!(h.grant_keys(site).await, grants_before);
        let leaver = h
            .identity
            .get_user(GetUserRequest {
                site_id: site_key.clone(),
                user_id: leaver.clone(),
            })
            .await
            .unwrap_err();
        refused(&leaver, Code::NotFound, "USER_NOT_FOUND");
        assert_eq!(
            rows(&h.describe(site_target(site)).await, "users"),
            (2, 1),
            "the user deleted before the site stays deleted"
        );
        assert_eq!(h.fingerprint(neighbour).await, neighbour_before);
        h.service.stop().await;
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
        let site_before = h.describe(site_target(site)).await;
        let grants_before = h.grant_keys(site).await;
        assert_eq!(grants_before.len(), 4);

        let operation = OperationId::new().to_string();
        let uninstalled = h.soft_delete(app_target(site, &insight), &operation).await;
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
        assert_eq!(info.metadata["deleted_by"], operation);

        let restored = h
            .restore(
                app_target(site, &insight),
                Source::UndoOperationId(operation),
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
            .soft_delete(site_target(site), &OperationId::new().to_string())
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

        let early = h.purge(site).await.unwrap_err();
        refused(&early, Code::FailedPrecondition, "PURGE_BEFORE_EXPIRY");
        h.service.clock.advance(31 * DAY);
        let purged = h.purge(site).await.unwrap();
        assert_eq!(purged.state, TenantState::Purged as i32);
        assert!(purged.rows_affected > 0);
        let after = h.describe(site_target(site)).await;
        assert!(
            after
                .counts
                .iter()
                .all(|count| count.live == 0 && count.deleted == 0),
            "{backend:?}: {:?}",
            after.counts
        );

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

#[tokio::test]
async fn point_in_time_restore_of_one_site_leaves_its_neighbour_identical() {
    for backend in testing::backends() {
        let mut h = harness(backend).await;
        let (site, neighbour) = (h.site().await, h.site().await);
        h.populated(site, "acme.example.com").await;
        h.populated(neighbour, "globex.example.com").await;
        let ada = h.user(site, "ada@acme.example.com").await;
        let at_t = h.describe(site_target(site)).await;
        let emails_at_t = h.emails(site).await;
        let grants_at_t = h.grant_keys(site).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let t = h.service.clock.now();
        tokio::time::sleep(Duration::from_millis(5)).await;

        h.user(site, "mallory@acme.example.com").await;
        h.identity
            .delete_user(DeleteUserRequest {
                site_id: site.to_string(),
                user_id: ada.user_id.clone(),
            })
            .await
            .unwrap();
        h.user(site, "ada@acme.example.com").await;
        let emails_now = h.emails(site).await;
        assert!(emails_now.contains(&"mallory@acme.example.com".to_owned()));
        let contractors = h.group(site, "Contractors").await;
        h.grant(site, group_subject(&contractors), ProductRole::Admin, "")
            .await;
        h.identity
            .set_product_access(SetProductAccessRequest {
                site_id: site.to_string(),
                product: "jira".to_owned(),
                enabled: false,
            })
            .await
            .unwrap();
        h.user(neighbour, "later@globex.example.com").await;
        let neighbour_after = h.fingerprint(neighbour).await;
        let neighbour_emails = h.emails(neighbour).await;
        assert_ne!(h.fingerprint(site).await, at_t.fingerprint);

        let restored = h
            .restore(site_target(site), Source::PointInTime(t.into()))
            .await;
        assert_eq!(restored.fingerprint, at_t.fingerprint, "{backend:?}");
        assert_eq!(restored.counts, at_t.counts);
        assert_eq!(h.emails(site).await, emails_at_t);
        assert_eq!(h.grant_keys(site).await, grants_at_t);
        let ada_back = h
            .identity
            .get_user(GetUserRequest {
                site_id: site.to_string(),
                user_id: ada.user_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ada_back, ada, "the same ID, as it was at T");
        assert_eq!(h.fingerprint(neighbour).await, neighbour_after);
        assert_eq!(
            h.emails(neighbour).await,
            neighbour_emails,
            "the neighbour keeps its change made after T"
        );
        h.service.stop().await;
    }
}
