//! What the orchestrator asks of identity: a new site's admin and escrowed contacts,
//! product access, and contacts for support and incident reports.

use micros_platform::ids::{SiteId, UserId};
use micros_proto::{
    identity::v1::{
        self as identity, ContactKind, CreateUserRequest, EscrowContactsRequest,
        SetProductAccessRequest, identity_service_client::IdentityServiceClient,
    },
    orchestrator::v1 as pb,
};

use crate::{error::OrchestratorError, fleet::Fleet, report::Contacts};

fn client(
    fleet: &Fleet,
) -> Result<IdentityServiceClient<micros_platform::client::ServiceChannel>, OrchestratorError> {
    Ok(IdentityServiceClient::new(fleet.channel("identity")?))
}

fn downstream(status: tonic::Status) -> OrchestratorError {
    OrchestratorError::Downstream {
        service: "identity".to_owned(),
        status,
    }
}

fn contact_kind(kind: &str) -> ContactKind {
    match kind {
        "billing" => ContactKind::Billing,
        "technical" => ContactKind::Technical,
        _ => ContactKind::Admin,
    }
}

/// Escrows the site's contacts, creates its admin user and opens its products.
pub async fn provision(
    fleet: &Fleet,
    site_id: SiteId,
    request: &pb::ProvisionSiteRequest,
    admin: &pb::Contact,
) -> Result<String, OrchestratorError> {
    let mut identity = client(fleet)?;
    let mut contacts = vec![identity::Contact {
        email: admin.email.clone(),
        name: admin.name.clone(),
        kind: ContactKind::Admin as i32,
    }];
    contacts.extend(request.contacts.iter().map(|contact| identity::Contact {
        email: contact.email.clone(),
        name: contact.name.clone(),
        kind: contact_kind(&contact.kind) as i32,
    }));
    identity
        .escrow_contacts(EscrowContactsRequest {
            site_id: site_id.to_string(),
            site_name: request.name.clone(),
            site_url: request.url.clone(),
            contacts,
        })
        .await
        .map_err(downstream)?;
    let admin_user_id = UserId::derived(site_id.uuid(), "user:admin");
    identity
        .create_user(CreateUserRequest {
            site_id: site_id.to_string(),
            email: admin.email.clone(),
            display_name: if admin.name.is_empty() {
                admin.email.clone()
            } else {
                admin.name.clone()
            },
            site_admin: true,
            user_id: admin_user_id.to_string(),
        })
        .await
        .map_err(downstream)?;
    for product in &request.products {
        set_product_access(fleet, site_id, product, true).await?;
    }
    Ok(admin_user_id.to_string())
}

pub async fn set_product_access(
    fleet: &Fleet,
    site_id: SiteId,
    product: &str,
    enabled: bool,
) -> Result<(), OrchestratorError> {
    client(fleet)?
        .set_product_access(SetProductAccessRequest {
            site_id: site_id.to_string(),
            product: product.to_owned(),
            enabled,
        })
        .await
        .map_err(downstream)?;
    Ok(())
}

/// Admin contacts per site for reports; a report is still written when identity cannot
/// be reached (the contacts column then says so).
pub async fn admin_contacts(fleet: &Fleet, sites: &[SiteId]) -> Contacts {
    let mut contacts = Contacts::new();
    let Ok(mut identity) = client(fleet) else {
        return contacts;
    };
    let request = identity::GetEscrowedContactsRequest {
        site_ids: sites.iter().map(ToString::to_string).collect(),
    };
    match identity.get_escrowed_contacts(request).await {
        Ok(response) => {
            for site in response.into_inner().sites {
                let admins = site
                    .contacts
                    .iter()
                    .filter(|contact| contact.kind() == ContactKind::Admin)
                    .map(|contact| contact.email.clone())
                    .collect();
                contacts.insert(site.site_id, admins);
            }
        }
        Err(status) => tracing::warn!(%status, "escrowed contacts unavailable for the report"),
    }
    contacts
}

pub async fn find_sites_by_contact(
    fleet: &Fleet,
    email: &str,
) -> Result<pb::FindSitesByContactResponse, OrchestratorError> {
    let mut identity = client(fleet)?;
    let mut sites = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = identity
            .find_sites_by_contact(identity::FindSitesByContactRequest {
                email: email.to_owned(),
                page_size: 1000,
                page_token: page_token.clone(),
            })
            .await
            .map_err(downstream)?
            .into_inner();
        sites.extend(page.sites.into_iter().map(|site| {
            pb::ContactSite {
                state: site
                    .state()
                    .as_str_name()
                    .trim_start_matches("SITE_STATE_")
                    .to_lowercase(),
                contact_kinds: site
                    .kinds()
                    .map(|kind| {
                        kind.as_str_name()
                            .trim_start_matches("CONTACT_KIND_")
                            .to_lowercase()
                    })
                    .collect(),
                site_id: site.site_id,
                site_name: site.site_name,
                site_url: site.site_url,
            }
        }));
        if page.next_page_token.is_empty() {
            return Ok(pb::FindSitesByContactResponse { sites });
        }
        page_token = page.next_page_token;
    }
}
