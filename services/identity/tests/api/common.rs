//! What the test modules share: an identity service on a backend, its clients and
//! request builders.

use micros_catalog::{Catalog, CatalogSettings};
use micros_identity::{Identity, IdentitySettings};
use micros_platform::{
    auth::Role,
    client::ServiceChannel,
    ids::SiteId,
    store::Backend,
    testing::{self, TestService, lifecycle_contract::Lifecycle},
};
use micros_proto::identity::v1::{
    self as pb, Contact, ContactKind, CreateGroupRequest, CreateUserRequest, EscrowContactsRequest,
    FindSitesByContactRequest, GrantPermissionRequest, ListUsersRequest, ProductRole, Subject,
    identity_service_client::IdentityServiceClient,
};

pub type Client = IdentityServiceClient<ServiceChannel>;

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
    Harness::new(
        testing::spawn_with_catalog::<Identity, Catalog>(
            backend,
            settings,
            CatalogSettings {
                product_data_shards: 4,
                ..CatalogSettings::default()
            },
        )
        .await,
    )
}

/// Identity with `settings`, asking the catalog at `catalog_url` (which may be down).
pub async fn harness_asking(
    backend: Backend,
    settings: IdentitySettings,
    catalog_url: String,
) -> Harness {
    Harness::new(testing::spawn_asking::<Identity>(backend, settings, catalog_url).await)
}

impl Harness {
    fn new(service: TestService<Identity>) -> Self {
        let identity = IdentityServiceClient::new(service.channel(&[Role::Admin, Role::Operator]));
        let lifecycle = Lifecycle::of(&service);
        Self {
            service,
            identity,
            lifecycle,
        }
    }

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

    /// Every live user of the site's, by email.
    pub async fn emails(&mut self, site_id: SiteId) -> Vec<String> {
        self.users(site_id)
            .await
            .into_iter()
            .map(|user| user.email)
            .collect()
    }

    /// Every live user of the site's, through pagination.
    pub async fn users(&mut self, site_id: SiteId) -> Vec<pb::User> {
        let mut users = Vec::new();
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
            users.extend(page.users);
            if page.next_page_token.is_empty() {
                return users;
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

    pub async fn fingerprint(&mut self, site_id: SiteId) -> String {
        self.lifecycle.fingerprint(site_id).await
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
