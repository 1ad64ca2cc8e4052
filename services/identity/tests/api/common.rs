//! What the test modules share: an identity service on a backend, its clients, request
//! builders and a refusal check.

use micros_catalog::{Catalog, CatalogSettings};
use micros_identity::{Identity, IdentitySettings};
use micros_platform::{
    auth::Role,
    client::ServiceChannel,
    clock::TestClock,
    ids::SiteId,
    store::Backend,
    testing::{self, TestService},
};
use micros_proto::{
    identity::v1::{
        self as pb, Contact, ContactKind, CreateGroupRequest, CreateUserRequest,
        EscrowContactsRequest, FindSitesByContactRequest, GrantPermissionRequest, ListUsersRequest,
        ProductRole, Subject, identity_service_client::IdentityServiceClient,
    },
    lifecycle::v1::{
        self as lc, DescribeRequest, Justification, TargetOutcome,
        tenant_lifecycle_client::TenantLifecycleClient,
    },
};
use tonic::{Code, Status};
use tonic_types::{ErrorInfo, StatusExt};

pub type Client = IdentityServiceClient<ServiceChannel>;
pub type Lifecycle = TenantLifecycleClient<ServiceChannel>;

/// A running identity service and clients for each kind of caller.
pub struct Harness {
    pub service: TestService<Identity>,
    /// Admin and operator: the domain API and the contact escrow.
    pub identity: Client,
    /// The orchestrator's service identity: `TenantLifecycle`.
    pub lifecycle: Lifecycle,
}

pub async fn harness(backend: Backend) -> Harness {
    harness_with(backend, IdentitySettings::default()).await
}

/// Identity with `settings`, asking a catalog of its own (sites come from
/// [`Harness::site`]).
pub async fn harness_with(backend: Backend, settings: IdentitySettings) -> Harness {
    let catalog = testing::spawn::<Catalog>(
        backend,
        CatalogSettings {
            product_data_shards: 4,
            ..CatalogSettings::default()
        },
    )
    .await;
    let mut harness = harness_asking(backend, settings, catalog.server.url()).await;
    harness.service.keep(catalog);
    harness
}

/// Identity with `settings`, asking the catalog at `catalog_url` (which may be down).
pub async fn harness_asking(
    backend: Backend,
    settings: IdentitySettings,
    catalog_url: String,
) -> Harness {
    let service = testing::spawn_with::<Identity>(backend, settings, TestClock::new(), |config| {
        config.clients = testing::catalog_clients(catalog_url);
    })
    .await;
    let identity = IdentityServiceClient::new(service.channel(&[Role::Admin, Role::Operator]));
    let lifecycle = TenantLifecycleClient::new(service.channel(&[Role::Lifecycle]));
    Harness {
        service,
        identity,
        lifecycle,
    }
}

impl Harness {
    /// A site the catalog has active: one identity may take data for.
    pub async fn site(&self) -> SiteId {
        self.service.catalog_site().await
    }

    /// A client whose token holds only `roles`.
    pub fn client(&self, roles: &[Role]) -> Client {
        IdentityServiceClient::new(self.service.channel(roles))
    }

    pub async fn user(&mut self, site_id: SiteId, email: &str) -> pb::User {
        self.identity
            .create_user(CreateUserRequest {
                site_id: site_id.to_string(),
                email: email.to_owned(),
                display_name: email.split('@').next().unwrap_or(email).to_owned(),
                site_admin: false,
                user_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn group(&mut self, site_id: SiteId, name: &str) -> pb::Group {
        self.identity
            .create_group(CreateGroupRequest {
                site_id: site_id.to_string(),
                name: name.to_owned(),
                group_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn grant(
        &mut self,
        site_id: SiteId,
        subject: Subject,
        role: ProductRole,
        app_installation_id: &str,
    ) -> pb::Grant {
        self.identity
            .grant_permission(GrantPermissionRequest {
                site_id: site_id.to_string(),
                subject: Some(subject),
                product: "jira".to_owned(),
                role: role as i32,
                app_installation_id: app_installation_id.to_owned(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// Every live user of the site's, by email, through pagination.
    pub async fn emails(&mut self, site_id: SiteId) -> Vec<String> {
        let mut emails = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .identity
                .list_users(ListUsersRequest {
                    site_id: site_id.to_string(),
                    page_size: 2,
                    page_token,
                    site_admins_only: false,
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

    /// Escrows one admin contact for the site.
    pub async fn escrow_admin(&mut self, site_id: SiteId, name: &str, email: &str) {
        self.identity
            .escrow_contacts(EscrowContactsRequest {
                site_id: site_id.to_string(),
                site_name: name.to_owned(),
                site_url: format!("https://{}.example.com", name.to_lowercase()),
                contacts: vec![Contact {
                    email: email.to_owned(),
                    name: format!("{name} Admin"),
                    kind: ContactKind::Admin as i32,
                }],
            })
            .await
            .unwrap();
    }

    /// Every site the escrow has for `email`, through pagination.
    pub async fn sites_of(&mut self, email: &str) -> Vec<pb::ContactSite> {
        let mut sites = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .identity
                .find_sites_by_contact(FindSitesByContactRequest {
                    email: email.to_owned(),
                    page_size: 1,
                    page_token,
                })
                .await
                .unwrap()
                .into_inner();
            sites.extend(page.sites);
            if page.next_page_token.is_empty() {
                return sites;
            }
            page_token = page.next_page_token;
        }
    }

    pub async fn describe(&mut self, target: lc::Target) -> TargetOutcome {
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

    pub async fn fingerprint(&mut self, site_id: SiteId) -> String {
        self.describe(site_target(site_id)).await.fingerprint
    }
}

pub fn user_subject(user: &pb::User) -> Subject {
    Subject {
        kind: Some(pb::subject::Kind::UserId(user.user_id.clone())),
    }
}

pub fn group_subject(group: &pb::Group) -> Subject {
    Subject {
        kind: Some(pb::subject::Kind::GroupId(group.group_id.clone())),
    }
}

pub fn site_target(site_id: SiteId) -> lc::Target {
    lc::Target {
        kind: Some(lc::target::Kind::Site(lc::SiteTarget {
            site_id: site_id.to_string(),
        })),
    }
}

pub fn app_target(site_id: SiteId, app_installation_id: &str) -> lc::Target {
    lc::Target {
        kind: Some(lc::target::Kind::AppInstallation(
            lc::AppInstallationTarget {
                site_id: site_id.to_string(),
                app_installation_id: app_installation_id.to_owned(),
            },
        )),
    }
}

pub fn justification() -> Option<Justification> {
    Some(Justification {
        reason: "identity service test".to_owned(),
        ticket: "INC-2022-04".to_owned(),
    })
}

/// Asserts `status` has `code` and an ErrorInfo with `reason`, and returns the ErrorInfo.
#[track_caller]
pub fn refused(status: &Status, code: Code, reason: &str) -> ErrorInfo {
    assert_eq!(status.code(), code, "{status:?}");
    let info = status
        .get_details_error_info()
        .expect("an ErrorInfo detail");
    assert_eq!(info.reason, reason, "{status:?}");
    info
}
