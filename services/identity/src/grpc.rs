//! `micros.identity.v1.IdentityService`: proto ↔ domain, nothing else.

use std::collections::HashSet;

use micros_platform::{
    auth::{Role, require_role},
    error::{InvalidArgument, parse_id},
    ids::{GroupId, Id, IdKind, SiteId, UserId},
    lifecycle::{LiveTenant, TenantState},
    paging::Page,
    store::timestamp,
};
use micros_proto::identity::v1::{self as pb, identity_service_server::IdentityService};
use tonic::{Request, Response, Status};

use crate::{
    domain::{
        self, Contact, ContactKind, ContactSite, Email, EscrowRequest, EscrowedSite, Grant,
        GrantFilter, GrantSpec, Group, Membership, NewUser, ProductAccess, ProductRole, Subject,
        User,
    },
    error::IdentityError,
    escrow::ContactEscrow,
    settings::IdentitySettings,
    store::DirectoryStore,
};

/// The most contacts one EscrowContacts call takes.
const MAX_CONTACTS: usize = 100;
/// The most sites one GetEscrowedContacts call takes.
const MAX_ESCROW_SITES: usize = 10_000;
/// The longest reason ForgetContacts records, in characters.
const MAX_REASON_CHARS: usize = 1000;

pub struct IdentityApi {
    directory: DirectoryStore,
    escrow: ContactEscrow,
    settings: IdentitySettings,
}

impl IdentityApi {
    pub fn new(
        directory: DirectoryStore,
        escrow: ContactEscrow,
        settings: IdentitySettings,
    ) -> Self {
        Self {
            directory,
            escrow,
            settings,
        }
    }

    /// The handle of the active site named in `site_id`.
    async fn live(&self, site_id: &str) -> Result<LiveTenant, IdentityError> {
        let site_id: SiteId = parse_id("site_id", site_id)?;
        self.directory.live(site_id).await
    }

    /// The handle of the site named in `site_id` for a list read; `None`: nothing yet.
    async fn reader(&self, site_id: &str) -> Result<Option<LiveTenant>, IdentityError> {
        let site_id: SiteId = parse_id("site_id", site_id)?;
        self.directory.reader(site_id).await
    }

    /// The handle of the site named in `site_id`, registering it if it is new here.
    async fn register(&self, site_id: &str) -> Result<LiveTenant, IdentityError> {
        let site_id: SiteId = parse_id("site_id", site_id)?;
        self.directory.register(site_id).await
    }

    fn product(&self, field: &str, input: &str) -> Result<String, IdentityError> {
        Ok(domain::product(field, input, &self.settings.products)?)
    }

    fn grant_spec(
        &self,
        subject: Option<pb::Subject>,
        product: &str,
        role: i32,
        app_installation_id: &str,
    ) -> Result<GrantSpec, IdentityError> {
        Ok(GrantSpec {
            subject: subject_from_proto(subject)?,
            product: self.product("product", product)?,
            role: role_from_proto(role)?,
            app_installation_id: optional_id("app_installation_id", app_installation_id)?,
        })
    }
}

#[tonic::async_trait]
impl IdentityService for IdentityApi {
    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        require_role(&request, Role::Admin)?;
        let request = request.into_inner();
        let new = NewUser {
            user_id: optional_id("user_id", &request.user_id)?.unwrap_or_else(UserId::new),
            email: Email::parse("email", &request.email)?,
            display_name: domain::name(
                "display_name",
                &request.display_name,
                "INVALID_DISPLAY_NAME",
            )?,
            site_admin: request.site_admin,
        };
        let tenant = self.register(&request.site_id).await?;
        let user = self.directory.create_user(&tenant, &new).await?;
        tracing::info!(site_id = %tenant.site_id(), user_id = %user.user_id, "user created");
        Ok(Response::new(user_to_proto(user)))
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        require_role(&request, Role::Viewer)?;
        let request = request.into_inner();
        let user_id: UserId = parse_id("user_id", &request.user_id)?;
        let tenant = self.live(&request.site_id).await?;
        let user = self.directory.user(&tenant, user_id).await?;
        Ok(Response::new(user_to_proto(user)))
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        require_role(&request, Role::Viewer)?;
        let request = request.into_inner();
        let page = Page::of(request.page_size, &request.page_token)?;
        let Some(tenant) = self.reader(&request.site_id).await? else {
            return Ok(Response::new(pb::ListUsersResponse::default()));
        };
        let users = self
            .directory
            .list_users(
                &tenant,
                page.after.as_deref(),
                page.fetch(),
                request.site_admins_only,
            )
            .await?;
        let (users, next_page_token) = page.cut(users, |user| user.user_id.to_string());
        Ok(Response::new(pb::ListUsersResponse {
            users: users.into_iter().map(user_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn set_site_admin(
        &self,
        request: Request<pb::SetSiteAdminRequest>,
    ) -> Result<Response<pb::User>, Status> {
        require_role(&request, Role::Admin)?;
        let request = request.into_inner();
        let user_id: UserId = parse_id("user_id", &request.user_id)?;
        let tenant = self.live(&request.site_id).await?;
        let user = self
            .directory
            .set_site_admin(&tenant, user_id, request.site_admin)
            .await?;
        tracing::info!(site_id = %tenant.site_id(), %user_id, site_admin = user.site_admin, "site admin set");
        Ok(Response::new(user_to_proto(user)))
    }

    async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        require_role(&request, Role::Admin)?;
        let request = request.into_inner();
        let user_id: UserId = parse_id("user_id", &request.user_id)?;
        let tenant = self.live(&request.site_id).await?;
        let cascade = self.directory.delete_user(&tenant, user_id).await?;
        tracing::info!(
            site_id = %tenant.site_id(),
            %user_id,
            memberships = cascade.memberships,
            grants = cascade.grants,
            "user deleted"
        );
        Ok(Response::new(pb::DeleteUserResponse {
            memberships_deleted: count(cascade.memberships),
            grants_deleted: count(cascade.grants),
        }))
    }

    async fn create_group(
        &self,
        request: Request<pb::CreateGroupRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        require_role(&request, Role::Admin)?;
        let request = request.into_inner();
        let group_id = optional_id("group_id", &request.group_id)?.unwrap_or_else(GroupId::new);
        let name = domain::name("name", &request.name, "INVALID_GROUP_NAME")?;
        let tenant = self.register(&request.site_id).await?;
        let group = self
            .directory
            .create_group(&tenant, group_id, &name)
            .await?;
        tracing::info!(site_id = %tenant.site_id(), group_id = %group.group_id, "group created");
        Ok(Response::new(group_to_proto(group)))
    }

    async fn get_group(
        &self,
        request: Request<pb::GetGroupRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        require_role(&request, Role::Viewer)?;
        let request = request.into_inner();
        let group_id: GroupId = parse_id("group_id", &request.group_id)?;
        let tenant = self.live(&request.site_id).await?;
        let group = self.directory.group(&tenant, group_id).await?;
        Ok(Response::new(group_to_proto(group)))
    }

    async fn list_groups(
        &self,
        request: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        require_role(&request, Role::Viewer)?;
        let request = request.into_inner();
        let page = Page::of(request.page_size, &request.page_token)?;
        let Some(tenant) = self.reader(&request.site_id).await? else {
            return Ok(Response::new(pb::ListGroupsResponse::default()));
        };
        let groups = self
            .directory
            .list_groups(&tenant, page.after.as_deref(), page.fetch())
            .await?;
        let (groups, next_page_token) = page.cut(groups, |group| group.group_id.to_string());
        Ok(Response::new(pb::ListGroupsResponse {
            groups: groups.into_iter().map(group_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn delete_group(
        &self,
        request: Request<pb::DeleteGroupRequest>,
    ) -> Result<Response<pb::DeleteGroupResponse>, Status> {
        require_role(&request, Role::Admin)?;
        let request = request.into_inner();
        let group_id: GroupId = parse_id("group_id", &request.group_id)?;
        let tenant = self.live(&request.site_id).await?;
        let cascade = self.directory.delete_group(&tenant, group_id).await?;
        tracing::info!(
            site_id = %tenant.site_id(),
            %group_id,
            memberships = cascade.memberships,
            grants = cascade.grants,
            "group deleted"
        );
        Ok(Response::new(pb::DeleteGroupResponse {
            memberships_deleted: count(cascade.memberships),
            grants_deleted: count(cascade.grants),
        }))
    }

    async fn add_member(
        &self,
        request: Request<pb::AddMemberRequest>,
    ) -> Result<Response<pb::Membership>, Status> {
        require_role(&request, Role::Admin)?;
        let request = request.into_inner();
        let group_id: GroupId = parse_id("group_id", &request.group_id)?;
        let user_id: UserId = parse_id("user_id", &request.user_id)?;
        let tenant = self.live(&request.site_id).await?;
        let membership = self
            .directory
            .add_member(&tenant, group_id, user_id)
            .await?;
        Ok(Response::new(membership_to_proto(membership)))
    }

    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::RemoveMemberResponse>, Status> {
        require_role(&request, Role::Admin)?;
        let request = request.into_inner();
        let group_id: GroupId = parse_id("group_id", &request.group_id)?;
        let user_id: UserId = parse_id("user_id", &request.user_id)?;
        let tenant = self.live(&request.site_id).await?;
        self.directory
            .remove_member(&tenant, group_id, user_id)
            .await?;
        Ok(Response::new(pb::RemoveMemberResponse {}))
    }

    async fn list_members(
        &self,
        request: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        require_role(&request, Role::Viewer)?;
        let request = request.into_inner();
        let group_id: GroupId = parse_id("group_id", &request.group_id)?;
        let page = Page::of(request.page_size, &request.page_token)?;
        let tenant = self.live(&request.site_id).await?;
        let users = self
            .directory
            .list_members(&tenant, group_id, page.after.as_deref(), page.fetch())
            .await?;
        let (users, next_page_token) = page.cut(users, |user| user.user_id.to_string());
        Ok(Response::new(pb::ListMembersResponse {
            users: users.into_iter().map(user_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn grant_permission(
        &self,
        request: Request<pb::GrantPermissionRequest>,
    ) -> Result<Response<pb::Grant>, Status> {
        require_role(&request, Role::Admin)?;
        let request = request.into_inner();
        let spec = self.grant_spec(
            request.subject,
            &request.product,
            request.role,
            &request.app_installation_id,
        )?;
        let tenant = self.live(&request.site_id).await?;
        let grant = self.directory.grant(&tenant, &spec).await?;
        tracing::info!(site_id = %tenant.site_id(), grant = spec.key(), "permission granted");
        Ok(Response::new(grant_to_proto(grant)))
    }

    async fn revoke_permission(
        &self,
        request: Request<pb::RevokePermissionRequest>,
    ) -> Result<Response<pb::RevokePermissionResponse>, Status> {
        require_role(&request, Role::Admin)?;
        let request = request.into_inner();
        let spec = self.grant_spec(
            request.subject,
            &request.product,
            request.role,
            &request.app_installation_id,
        )?;
        let tenant = self.live(&request.site_id).await?;
        self.directory.revoke(&tenant, &spec).await?;
        tracing::info!(site_id = %tenant.site_id(), grant = spec.key(), "permission revoked");
        Ok(Response::new(pb::RevokePermissionResponse {}))
    }

    async fn list_grants(
        &self,
        request: Request<pb::ListGrantsRequest>,
    ) -> Result<Response<pb::ListGrantsResponse>, Status> {
        require_role(&request, Role::Viewer)?;
        let request = request.into_inner();
        let filter = GrantFilter {
            subject: request
                .subject
                .map(|subject| subject_from_proto(Some(subject)))
                .transpose()?,
            product: (!request.product.is_empty())
                .then(|| self.product("product", &request.product))
                .transpose()?,
        };
        let page = Page::of(request.page_size, &request.page_token)?;
        let Some(tenant) = self.reader(&request.site_id).await? else {
            return Ok(Response::new(pb::ListGrantsResponse::default()));
        };
        let grants = self
            .directory
            .list_grants(&tenant, &filter, page.after.as_deref(), page.fetch())
            .await?;
        let (grants, next_page_token) = page.cut(grants, |grant| grant.spec.key());
        Ok(Response::new(pb::ListGrantsResponse {
            grants: grants.into_iter().map(grant_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn set_product_access(
        &self,
        request: Request<pb::SetProductAccessRequest>,
    ) -> Result<Response<pb::ProductAccess>, Status> {
        require_role(&request, Role::Admin)?;
        let request = request.into_inner();
        let product = self.product("product", &request.product)?;
        let tenant = self.register(&request.site_id).await?;
        let access = self
            .directory
            .set_product_access(&tenant, &product, request.enabled)
            .await?;
        tracing::info!(site_id = %tenant.site_id(), product, enabled = access.enabled, "product access set");
        Ok(Response::new(access_to_proto(access)))
    }

    async fn list_product_access(
        &self,
        request: Request<pb::ListProductAccessRequest>,
    ) -> Result<Response<pb::ListProductAccessResponse>, Status> {
        require_role(&request, Role::Viewer)?;
        let Some(tenant) = self.reader(&request.get_ref().site_id).await? else {
            return Ok(Response::new(pb::ListProductAccessResponse::default()));
        };
        let products = self.directory.product_access(&tenant).await?;
        Ok(Response::new(pb::ListProductAccessResponse {
            products: products.into_iter().map(access_to_proto).collect(),
        }))
    }

    async fn escrow_contacts(
        &self,
        request: Request<pb::EscrowContactsRequest>,
    ) -> Result<Response<pb::EscrowedSite>, Status> {
        require_role(&request, Role::Admin)?;
        let request = escrow_request(request.into_inner())?;
        self.directory.know(request.site_id).await?;
        let escrowed = self.escrow.escrow(&request).await?;
        tracing::info!(
            site_id = %request.site_id,
            contacts = escrowed.contacts.len(),
            "contacts escrowed"
        );
        Ok(Response::new(escrowed_to_proto(escrowed)))
    }

    async fn find_sites_by_contact(
        &self,
        request: Request<pb::FindSitesByContactRequest>,
    ) -> Result<Response<pb::FindSitesByContactResponse>, Status> {
        require_role(&request, Role::Operator)?;
        let request = request.into_inner();
        let email = Email::parse("email", &request.email)?;
        let page = Page::of(request.page_size, &request.page_token)?;
        let sites = self
            .escrow
            .find_sites(&email, page.after.as_deref(), page.fetch())
            .await?;
        let (sites, next_page_token) = page.cut(sites, |site| site.site_id.to_string());
        Ok(Response::new(pb::FindSitesByContactResponse {
            sites: sites.into_iter().map(contact_site_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn get_escrowed_contacts(
        &self,
        request: Request<pb::GetEscrowedContactsRequest>,
    ) -> Result<Response<pb::GetEscrowedContactsResponse>, Status> {
        require_role(&request, Role::Operator)?;
        let site_ids = &request.get_ref().site_ids;
        if site_ids.is_empty() {
            return Err(IdentityError::from(InvalidArgument::missing("site_ids")).into());
        }
        if site_ids.len() > MAX_ESCROW_SITES {
            return Err(IdentityError::from(InvalidArgument::field(
                "site_ids",
                "TOO_MANY_SITES",
                site_ids.len().to_string(),
                format!("at most {MAX_ESCROW_SITES} sites per call"),
            ))
            .into());
        }
        let sites = site_ids
            .iter()
            .enumerate()
            .map(|(index, site_id)| parse_id(&format!("site_ids[{index}]"), site_id))
            .collect::<Result<Vec<SiteId>, _>>()?;
        let escrowed = self.escrow.escrowed(&sites).await?;
        Ok(Response::new(pb::GetEscrowedContactsResponse {
            sites: escrowed.into_iter().map(escrowed_to_proto).collect(),
        }))
    }

    async fn forget_contacts(
        &self,
        request: Request<pb::ForgetContactsRequest>,
    ) -> Result<Response<pb::ForgetContactsResponse>, Status> {
        let principal = require_role(&request, Role::Operator)?;
        let request = request.into_inner();
        let site_id: SiteId = parse_id("site_id", &request.site_id)?;
        let reason = request.reason.trim();
        if reason.is_empty() {
            return Err(IdentityError::from(InvalidArgument::missing("reason")).into());
        }
        if reason.chars().count() > MAX_REASON_CHARS {
            return Err(IdentityError::from(InvalidArgument::field(
                "reason",
                "INVALID_REASON",
                request.reason.chars().take(80).collect::<String>(),
                format!("must be at most {MAX_REASON_CHARS} characters"),
            ))
            .into());
        }
        let forgotten = self.escrow.forget(site_id, &principal.name, reason).await?;
        tracing::info!(%site_id, principal = principal.name, reason, contacts = forgotten, "escrowed contacts forgotten");
        Ok(Response::new(pb::ForgetContactsResponse {
            contacts_forgotten: count(forgotten),
        }))
    }
}

/// An ID field the caller may leave empty.
fn optional_id<K: IdKind>(field: &str, value: &str) -> Result<Option<Id<K>>, IdentityError> {
    if value.is_empty() {
        return Ok(None);
    }
    Ok(Some(parse_id(field, value)?))
}

fn subject_from_proto(subject: Option<pb::Subject>) -> Result<Subject, IdentityError> {
    match subject.and_then(|subject| subject.kind) {
        Some(pb::subject::Kind::UserId(user_id)) => {
            Ok(Subject::User(parse_id("subject.user_id", &user_id)?))
        }
        Some(pb::subject::Kind::GroupId(group_id)) => {
            Ok(Subject::Group(parse_id("subject.group_id", &group_id)?))
        }
        None => Err(InvalidArgument::missing("subject").into()),
    }
}

fn subject_to_proto(subject: Subject) -> pb::Subject {
    pb::Subject {
        kind: Some(match subject {
            Subject::User(user_id) => pb::subject::Kind::UserId(user_id.to_string()),
            Subject::Group(group_id) => pb::subject::Kind::GroupId(group_id.to_string()),
        }),
    }
}

fn role_from_proto(value: i32) -> Result<ProductRole, IdentityError> {
    match pb::ProductRole::try_from(value) {
        Ok(pb::ProductRole::Use) => Ok(ProductRole::Use),
        Ok(pb::ProductRole::Admin) => Ok(ProductRole::Admin),
        Ok(pb::ProductRole::Unspecified) | Err(_) => Err(InvalidArgument::field(
            "role",
            "INVALID_PRODUCT_ROLE",
            value.to_string(),
            "must be PRODUCT_ROLE_USE or PRODUCT_ROLE_ADMIN",
        )
        .into()),
    }
}

fn role_to_proto(role: ProductRole) -> pb::ProductRole {
    match role {
        ProductRole::Use => pb::ProductRole::Use,
        ProductRole::Admin => pb::ProductRole::Admin,
    }
}

fn contact_kind_from_proto(field: &str, value: i32) -> Result<ContactKind, IdentityError> {
    match pb::ContactKind::try_from(value) {
        Ok(pb::ContactKind::Admin) => Ok(ContactKind::Admin),
        Ok(pb::ContactKind::Billing) => Ok(ContactKind::Billing),
        Ok(pb::ContactKind::Technical) => Ok(ContactKind::Technical),
        Ok(pb::ContactKind::Unspecified) | Err(_) => Err(InvalidArgument::field(
            field,
            "INVALID_CONTACT_KIND",
            value.to_string(),
            "must be CONTACT_KIND_ADMIN, CONTACT_KIND_BILLING or CONTACT_KIND_TECHNICAL",
        )
        .into()),
    }
}

fn contact_kind_to_proto(kind: ContactKind) -> i32 {
    let kind = match kind {
        ContactKind::Admin => pb::ContactKind::Admin,
        ContactKind::Billing => pb::ContactKind::Billing,
        ContactKind::Technical => pb::ContactKind::Technical,
    };
    kind as i32
}

/// Validates an EscrowContacts request as a whole before anything is stored.
fn escrow_request(request: pb::EscrowContactsRequest) -> Result<EscrowRequest, IdentityError> {
    let site_id: SiteId = parse_id("site_id", &request.site_id)?;
    let site_name = domain::name("site_name", &request.site_name, "INVALID_SITE_NAME")?;
    let site_url = domain::site_url(&request.site_url)?;
    if request.contacts.is_empty() {
        return Err(InvalidArgument::missing("contacts").into());
    }
    if request.contacts.len() > MAX_CONTACTS {
        return Err(InvalidArgument::field(
            "contacts",
            "TOO_MANY_CONTACTS",
            request.contacts.len().to_string(),
            format!("at most {MAX_CONTACTS} contacts per call"),
        )
        .into());
    }
    let mut seen = HashSet::new();
    let mut contacts = Vec::with_capacity(request.contacts.len());
    for (index, contact) in request.contacts.iter().enumerate() {
        let field = |name: &str| format!("contacts[{index}].{name}");
        let email = Email::parse(&field("email"), &contact.email)?;
        let kind = contact_kind_from_proto(&field("kind"), contact.kind)?;
        let name = if contact.name.trim().is_empty() {
            String::new()
        } else {
            domain::name(&field("name"), &contact.name, "INVALID_CONTACT_NAME")?
        };
        if !seen.insert((email.clone(), kind)) {
            return Err(InvalidArgument::field(
                field("email"),
                "DUPLICATE_CONTACT",
                email.as_str(),
                format!(
                    "names the {} contact {} twice",
                    kind.as_str(),
                    email.as_str()
                ),
            )
            .into());
        }
        contacts.push(Contact { email, name, kind });
    }
    Ok(EscrowRequest {
        site_id,
        site_name,
        site_url,
        contacts,
    })
}

fn count(rows: u64) -> i64 {
    i64::try_from(rows).unwrap_or(i64::MAX)
}

fn user_to_proto(user: User) -> pb::User {
    pb::User {
        user_id: user.user_id.to_string(),
        site_id: user.site_id.to_string(),
        email: user.email.as_str().to_owned(),
        display_name: user.display_name,
        site_admin: user.site_admin,
        create_time: Some(timestamp(user.create_time)),
    }
}

fn group_to_proto(group: Group) -> pb::Group {
    pb::Group {
        group_id: group.group_id.to_string(),
        site_id: group.site_id.to_string(),
        name: group.name,
        create_time: Some(timestamp(group.create_time)),
    }
}

fn membership_to_proto(membership: Membership) -> pb::Membership {
    pb::Membership {
        site_id: membership.site_id.to_string(),
        group_id: membership.group_id.to_string(),
        user_id: membership.user_id.to_string(),
        create_time: Some(timestamp(membership.create_time)),
    }
}

fn grant_to_proto(grant: Grant) -> pb::Grant {
    pb::Grant {
        site_id: grant.site_id.to_string(),
        subject: Some(subject_to_proto(grant.spec.subject)),
        product: grant.spec.product,
        role: role_to_proto(grant.spec.role) as i32,
        app_installation_id: grant
            .spec
            .app_installation_id
            .map(|app| app.to_string())
            .unwrap_or_default(),
        create_time: Some(timestamp(grant.create_time)),
    }
}

fn access_to_proto(access: ProductAccess) -> pb::ProductAccess {
    pb::ProductAccess {
        site_id: access.site_id.to_string(),
        product: access.product,
        enabled: access.enabled,
        update_time: Some(timestamp(access.update_time)),
    }
}

fn escrowed_to_proto(site: EscrowedSite) -> pb::EscrowedSite {
    pb::EscrowedSite {
        site_id: site.site_id.to_string(),
        site_name: site.site_name,
        site_url: site.site_url,
        contacts: site
            .contacts
            .into_iter()
            .map(|contact| pb::Contact {
                email: contact.email.as_str().to_owned(),
                name: contact.name,
                kind: contact_kind_to_proto(contact.kind),
            })
            .collect(),
    }
}

fn contact_site_to_proto(site: ContactSite) -> pb::ContactSite {
    pb::ContactSite {
        site_id: site.site_id.to_string(),
        site_name: site.site_name,
        site_url: site.site_url,
        state: match site.state {
            TenantState::Active => pb::SiteState::Active,
            TenantState::Deleted => pb::SiteState::Deleted,
            TenantState::Purging | TenantState::Purged => pb::SiteState::Purged,
            TenantState::Absent => pb::SiteState::Unspecified,
        } as i32,
        kinds: site.kinds.into_iter().map(contact_kind_to_proto).collect(),
        contact_name: site.contact_name,
        delete_time: site.delete_time.map(timestamp),
        expire_time: site.expire_time.map(timestamp),
        purge_time: site.purge_time.map(timestamp),
        escrow_expire_time: site.escrow_expire_time.map(timestamp),
    }
}
