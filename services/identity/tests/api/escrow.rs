//! The contact escrow: upsert, find by email without a site URL (case-insensitive, every
//! site, paginated), forget on request, removal after its retention, validation, roles.

use std::time::{Duration, Instant};

use micros_identity::IdentitySettings;
use micros_platform::{
    auth::Role,
    ids::{AppInstallationId, OperationId, SiteId},
    testing::{self, lifecycle_contract::site_target, refused},
};
use micros_proto::identity::v1::{
    Contact, ContactKind, EscrowContactsRequest, EscrowedSite, FindSitesByContactRequest,
    ForgetContactsRequest, GetEscrowedContactsRequest, SiteState,
};
use tonic::Code;

use crate::common::{Harness, harness, harness_with};

const DAY: Duration = Duration::from_secs(24 * 3600);

fn contact(email: &str, name: &str, kind: ContactKind) -> Contact {
    Contact {
        email: email.to_owned(),
        name: name.to_owned(),
        kind: kind as i32,
    }
}

fn escrow(site_id: &str, contacts: Vec<Contact>) -> EscrowContactsRequest {
    EscrowContactsRequest {
        site_id: site_id.to_owned(),
        site_name: "Acme".to_owned(),
        site_url: "https://acme.example.com".to_owned(),
        contacts,
    }
}

/// The escrow's contacts as (email, name, kind).
fn contacts(site: &EscrowedSite) -> Vec<(String, String, i32)> {
    site.contacts
        .iter()
        .map(|contact| (contact.email.clone(), contact.name.clone(), contact.kind))
        .collect()
}

impl Harness {
    async fn delete_and_purge(&mut self, site_id: SiteId) {
        self.lifecycle
            .soft_delete(site_target(site_id), OperationId::new())
            .await;
        self.service.clock.advance(31 * DAY);
        self.lifecycle
            .purge(site_target(site_id), OperationId::new())
            .await;
    }
}

#[tokio::test]
async fn contacts_are_upserted_and_found_by_email_across_sites() {
    for backend in testing::backends() {
        let mut h = harness(backend).await;
        let (acme, globex) = (h.site().await, h.site().await);
        let first = h
            .identity
            .escrow_contacts(escrow(
                &acme.to_string(),
                vec![
                    contact("Ada@Example.com", "Ada", ContactKind::Admin),
                    contact("ada@example.com", "Ada", ContactKind::Billing),
                    contact("bob@example.com", "Bob", ContactKind::Technical),
                ],
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            contacts(&first),
            [
                (
                    "ada@example.com".to_owned(),
                    "Ada".to_owned(),
                    ContactKind::Admin as i32
                ),
                (
                    "ada@example.com".to_owned(),
                    "Ada".to_owned(),
                    ContactKind::Billing as i32
                ),
                (
                    "bob@example.com".to_owned(),
                    "Bob".to_owned(),
                    ContactKind::Technical as i32
                ),
            ],
            "{backend:?}"
        );
        let repeated = h
            .identity
            .escrow_contacts(escrow(
                &acme.to_string(),
                vec![contact("ada@example.com", "Ada", ContactKind::Admin)],
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            repeated, first,
            "a repeat changes nothing; contacts not named stay"
        );
        let updated = h
            .identity
            .escrow_contacts(EscrowContactsRequest {
                site_name: "Acme Corp".to_owned(),
                ..escrow(
                    &acme.to_string(),
                    vec![
                        contact("ada@example.com", "Ada Lovelace", ContactKind::Admin),
                        contact("cy@example.com", "", ContactKind::Billing),
                    ],
                )
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(updated.site_name, "Acme Corp");
        assert_eq!(updated.contacts.len(), 4);
        assert_eq!(updated.contacts[0].name, "Ada Lovelace");
        h.identity
            .escrow_contacts(EscrowContactsRequest {
                site_name: "Globex".to_owned(),
                site_url: "https://globex.example.com".to_owned(),
                ..escrow(
                    &globex.to_string(),
                    vec![contact("ADA@example.COM", "Ada", ContactKind::Technical)],
                )
            })
            .await
            .unwrap();

        let found = h.sites_of(" ada@EXAMPLE.com ").await;
        let mut expected = [acme.to_string(), globex.to_string()];
        expected.sort();
        let ids: Vec<&str> = found.iter().map(|site| site.site_id.as_str()).collect();
        assert_eq!(ids, expected, "every site, one page at a time");
        let acme_found = found
            .iter()
            .find(|site| site.site_id == acme.to_string())
            .unwrap();
        assert_eq!(acme_found.site_name, "Acme Corp");
        assert_eq!(acme_found.site_url, "https://acme.example.com");
        assert_eq!(acme_found.contact_name, "Ada Lovelace");
        assert_eq!(
            acme_found.kinds,
            [ContactKind::Admin as i32, ContactKind::Billing as i32]
        );
        assert_eq!(acme_found.state, SiteState::Active as i32);
        assert_eq!(acme_found.delete_time, None);
        let escrowed = h
            .identity
            .get_escrowed_contacts(GetEscrowedContactsRequest {
                site_ids: vec![
                    globex.to_string(),
                    SiteId::new().to_string(),
                    acme.to_string(),
                ],
            })
            .await
            .unwrap()
            .into_inner()
            .sites;
        let ids: Vec<&str> = escrowed.iter().map(|site| site.site_id.as_str()).collect();
        assert_eq!(
            ids,
            [globex.to_string(), acme.to_string()],
            "in the order asked; a site without escrow is left out"
        );
        assert_eq!(escrowed[1].contacts, updated.contacts);
        let wrong_kind = h
            .identity
            .get_escrowed_contacts(GetEscrowedContactsRequest {
                site_ids: vec![acme.to_string(), AppInstallationId::new().to_string()],
            })
            .await
            .unwrap_err();
        let info = refused(&wrong_kind, Code::InvalidArgument, "WRONG_ID_KIND");
        assert_eq!(info.metadata["field"], "site_ids[1]");
        assert!(h.sites_of("nobody@example.com").await.is_empty());
        assert_eq!(h.sites_of("cy@example.com").await.len(), 1);
        h.service.stop().await;
    }
}

#[tokio::test]
async fn a_bad_escrow_request_is_refused_whole() {
    for backend in testing::backends() {
        let mut h = harness(backend).await;
        let site = SiteId::new().to_string();
        let good = contact("ada@example.com", "Ada", ContactKind::Admin);
        let cases = [
            (
                escrow(
                    &site,
                    vec![good.clone(), contact("ada", "Ada", ContactKind::Billing)],
                ),
                "INVALID_EMAIL",
                "contacts[1].email",
            ),
            (
                escrow(&site, vec![good.clone(), good.clone()]),
                "DUPLICATE_CONTACT",
                "contacts[1].email",
            ),
            (
                escrow(
                    &site,
                    vec![contact("bob@example.com", "Bob", ContactKind::Unspecified)],
                ),
                "INVALID_CONTACT_KIND",
                "contacts[0].kind",
            ),
            (escrow(&site, Vec::new()), "MISSING_FIELD", "contacts"),
            (
                EscrowContactsRequest {
                    site_url: String::new(),
                    ..escrow(&site, vec![good.clone()])
                },
                "MISSING_FIELD",
                "site_url",
            ),
            (
                escrow(&AppInstallationId::new().to_string(), vec![good.clone()]),
                "WRONG_ID_KIND",
                "site_id",
            ),
        ];
        for (request, reason, field) in cases {
            let status = h.identity.escrow_contacts(request).await.unwrap_err();
            let info = refused(&status, Code::InvalidArgument, reason);
            assert_eq!(info.metadata["field"], field, "{backend:?}");
        }
        assert!(
            h.sites_of("ada@example.com").await.is_empty(),
            "nothing was stored"
        );
        let bad_search = h
            .identity
            .find_sites_by_contact(FindSitesByContactRequest {
                email: "not an email".to_owned(),
                ..FindSitesByContactRequest::default()
            })
            .await
            .unwrap_err();
        refused(&bad_search, Code::InvalidArgument, "INVALID_EMAIL");
        let mut viewer = h.client(&[Role::Viewer]);
        let status = viewer
            .escrow_contacts(escrow(&site, vec![good]))
            .await
            .unwrap_err();
        refused(&status, Code::PermissionDenied, "MISSING_ROLE");
        h.service.stop().await;
    }
}

#[tokio::test]
async fn forgotten_contacts_are_gone_and_others_stay() {
    for backend in testing::backends() {
        let mut h = harness(backend).await;
        let (acme, globex) = (h.site().await, h.site().await);
        h.escrow_admin(acme, "Acme", "ada@example.com").await;
        h.escrow_admin(globex, "Globex", "ada@example.com").await;
        let forget = |reason: &str| ForgetContactsRequest {
            site_id: acme.to_string(),
            reason: reason.to_owned(),
        };
        let no_reason = h.identity.forget_contacts(forget("  ")).await.unwrap_err();
        refused(&no_reason, Code::InvalidArgument, "MISSING_FIELD");
        let mut admin = h.client(&[Role::Admin]);
        let not_operator = admin
            .forget_contacts(forget("customer asked"))
            .await
            .unwrap_err();
        refused(&not_operator, Code::PermissionDenied, "MISSING_ROLE");
        assert_eq!(h.sites_of("ada@example.com").await.len(), 2, "{backend:?}");

        let forgotten = h
            .identity
            .forget_contacts(forget("customer asked, ticket SUP-7"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(forgotten.contacts_forgotten, 1);
        let left = h.sites_of("ada@example.com").await;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].site_id, globex.to_string());
        let again = h
            .identity
            .forget_contacts(forget("customer asked, ticket SUP-7"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(again.contacts_forgotten, 0);
        h.service.stop().await;
    }
}

#[tokio::test]
async fn a_purged_sites_contacts_are_removed_once_the_escrow_retention_passed() {
    for backend in testing::backends() {
        let settings = IdentitySettings {
            escrow_prune_interval: Duration::from_millis(50),
            ..IdentitySettings::default()
        };
        let mut h = harness_with(backend, settings).await;
        let (purged, active) = (h.site().await, h.site().await);
        h.escrow_admin(purged, "Acme", "ada@example.com").await;
        h.escrow_admin(active, "Globex", "ada@example.com").await;
        h.delete_and_purge(purged).await;
        let found = h.sites_of("ada@example.com").await;
        assert_eq!(found.len(), 2, "{backend:?}");

        h.service.clock.advance(401 * DAY);
        let deadline = Instant::now() + Duration::from_secs(20);
        let left = loop {
            let left = h.sites_of("ada@example.com").await;
            if left.len() < 2 || Instant::now() > deadline {
                break left;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let ids: Vec<&str> = left.iter().map(|site| site.site_id.as_str()).collect();
        assert_eq!(
            ids,
            [active.to_string()],
            "the pruner removed the purged site's escrow, and only it"
        );
        h.service.stop().await;
    }
}
