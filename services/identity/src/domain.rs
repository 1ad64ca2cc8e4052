//! Identity's vocabulary and the rules its inputs must follow, independent of gRPC and SQL.

use micros_platform::{
    error::{InvalidArgument, parse_id},
    ids::{AppInstallationId, GroupId, Kind, SiteId, UserId, parse_kind},
    lifecycle::TenantState,
};

/// The longest display, group and site name accepted, in characters.
const MAX_NAME_CHARS: usize = 200;

/// An email address in the one form it is stored and compared in: trimmed, lower-case.
/// Contacts are found by exact, case-insensitive email, so the comparison form is the
/// stored form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Email(String);

impl Email {
    /// Accepts `Ada@Example.com` (stored as `ada@example.com`); refuses what is not one
    /// address: no `@`, several, spaces, an empty part, a domain without a dot.
    pub fn parse(field: &str, input: &str) -> Result<Email, InvalidArgument> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(InvalidArgument::missing(field));
        }
        let invalid = |message: &str| {
            InvalidArgument::field(field, "INVALID_EMAIL", input, message.to_owned())
        };
        if trimmed.len() > 254 {
            return Err(invalid("is longer than 254 characters"));
        }
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("must not contain spaces or control characters"));
        }
        let lower = trimmed.to_lowercase();
        let Some((local, domain)) = lower.split_once('@') else {
            return Err(invalid("must be an address like ada@example.com"));
        };
        if local.is_empty() || local.len() > 64 || domain.contains('@') {
            return Err(invalid("must be an address like ada@example.com"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 || labels.iter().any(|label| label.is_empty()) {
            return Err(invalid("the domain must have at least two labels"));
        }
        Ok(Email(lower))
    }

    /// Wraps an address read back from the store, where it is already in stored form.
    pub fn from_stored(email: String) -> Email {
        Email(email)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A display, group or site name: trimmed, 1 to 200 printable characters.
pub fn name(field: &str, input: &str, reason: &'static str) -> Result<String, InvalidArgument> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(InvalidArgument::missing(field));
    }
    if trimmed.chars().count() > MAX_NAME_CHARS || trimmed.chars().any(char::is_control) {
        return Err(InvalidArgument::field(
            field,
            reason,
            input,
            format!("must be at most {MAX_NAME_CHARS} printable characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// A site URL as escrowed: trimmed, at most 2048 characters, no spaces. Kept as the
/// orchestrator gives it (the catalog owns the canonical form).
pub fn site_url(input: &str) -> Result<String, InvalidArgument> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(InvalidArgument::missing("site_url"));
    }
    if trimmed.len() > 2048 || trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(InvalidArgument::field(
            "site_url",
            "INVALID_SITE_URL",
            input,
            "must be a URL of at most 2048 characters without spaces",
        ));
    }
    Ok(trimmed.to_owned())
}

/// A product from the configured list.
pub fn product(field: &str, input: &str, allowed: &[String]) -> Result<String, InvalidArgument> {
    if input.is_empty() {
        return Err(InvalidArgument::missing(field));
    }
    if allowed.iter().any(|known| known == input) {
        Ok(input.to_owned())
    } else {
        Err(InvalidArgument::field(
            field,
            "UNKNOWN_PRODUCT",
            input,
            format!("must be one of {}", allowed.join(", ")),
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub user_id: UserId,
    pub site_id: SiteId,
    pub email: Email,
    pub display_name: String,
    pub site_admin: bool,
    pub create_time: i64,
}

/// A validated request to create a user.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub user_id: UserId,
    pub email: Email,
    pub display_name: String,
    pub site_admin: bool,
}

impl NewUser {
    /// Whether `existing` is what this request would have created (a retry).
    pub fn matches(&self, existing: &User) -> bool {
        existing.user_id == self.user_id
            && existing.email == self.email
            && existing.display_name == self.display_name
            && existing.site_admin == self.site_admin
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub group_id: GroupId,
    pub site_id: SiteId,
    pub name: String,
    pub create_time: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub site_id: SiteId,
    pub group_id: GroupId,
    pub user_id: UserId,
    pub create_time: i64,
}

/// The key of a user's membership in a group: unique because both IDs are.
pub fn membership_key(group_id: GroupId, user_id: UserId) -> String {
    format!("{group_id}/{user_id}")
}

/// Who a grant is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    User(UserId),
    Group(GroupId),
}

impl Subject {
    /// The subject's ID in wire form, as stored in `subject_id`.
    pub fn id(&self) -> String {
        match self {
            Subject::User(user_id) => user_id.to_string(),
            Subject::Group(group_id) => group_id.to_string(),
        }
    }

    /// Reads a stored `subject_id` back: a `usr_…` or a `grp_…`.
    pub fn parse_stored(text: &str) -> Result<Subject, InvalidArgument> {
        match parse_kind(text) {
            Ok((Kind::Group, _)) => Ok(Subject::Group(parse_id("subject_id", text)?)),
            _ => Ok(Subject::User(parse_id("subject_id", text)?)),
        }
    }
}

/// What a grant lets its subject do with a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProductRole {
    Use,
    Admin,
}

impl ProductRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ProductRole::Use => "use",
            ProductRole::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<ProductRole> {
        match text {
            "use" => Some(ProductRole::Use),
            "admin" => Some(ProductRole::Admin),
            _ => None,
        }
    }
}

/// What identifies a grant: who, on what, which role, and the app installation that owns
/// it (`None`: a direct grant). A direct grant and an app's grant of the same role are
/// two grants, so uninstalling the app leaves the direct one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GrantSpec {
    pub subject: Subject,
    pub product: String,
    pub role: ProductRole,
    pub app_installation_id: Option<AppInstallationId>,
}

impl GrantSpec {
    /// `<subject>/<product>/<role>/<app_… or direct>`: unique in the table because the
    /// subject's ID is, and sorts a subject's grants together.
    pub fn key(&self) -> String {
        let owner = self
            .app_installation_id
            .map_or_else(|| "direct".to_owned(), |app| app.to_string());
        format!(
            "{}/{}/{}/{owner}",
            self.subject.id(),
            self.product,
            self.role.as_str()
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub site_id: SiteId,
    pub spec: GrantSpec,
    pub create_time: i64,
}

/// Filters of a grant listing.
#[derive(Debug, Clone, Default)]
pub struct GrantFilter {
    pub subject: Option<Subject>,
    pub product: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductAccess {
    pub site_id: SiteId,
    pub product: String,
    pub enabled: bool,
    pub update_time: i64,
}

/// Why support would reach a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContactKind {
    Admin,
    Billing,
    Technical,
}

impl ContactKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ContactKind::Admin => "admin",
            ContactKind::Billing => "billing",
            ContactKind::Technical => "technical",
        }
    }

    pub fn parse(text: &str) -> Option<ContactKind> {
        match text {
            "admin" => Some(ContactKind::Admin),
            "billing" => Some(ContactKind::Billing),
            "technical" => Some(ContactKind::Technical),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub email: Email,
    pub name: String,
    pub kind: ContactKind,
}

/// A validated EscrowContacts request.
#[derive(Debug, Clone)]
pub struct EscrowRequest {
    pub site_id: SiteId,
    pub site_name: String,
    pub site_url: String,
    pub contacts: Vec<Contact>,
}

/// A site's escrow as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscrowedSite {
    pub site_id: SiteId,
    pub site_name: String,
    pub site_url: String,
    pub contacts: Vec<Contact>,
}

/// A site found by one of its contacts' email, with its state from the tenant registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactSite {
    pub site_id: SiteId,
    pub site_name: String,
    pub site_url: String,
    /// `Absent` when the registry has no row for the site.
    pub state: TenantState,
    pub kinds: Vec<ContactKind>,
    pub contact_name: String,
    pub delete_time: Option<i64>,
    pub expire_time: Option<i64>,
    pub purge_time: Option<i64>,
    /// When the pruner removes the escrow (purged sites only).
    pub escrow_expire_time: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_stored_lower_case_and_bad_ones_refused() {
        assert_eq!(
            Email::parse("email", "  Ada.Lovelace@Example.COM ")
                .unwrap()
                .as_str(),
            "ada.lovelace@example.com"
        );
        for bad in [
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@@example.com",
            "ada lovelace@example.com",
            "ada@example..com",
        ] {
            assert!(Email::parse("email", bad).is_err(), "{bad}");
        }
        assert!(matches!(
            Email::parse("email", " "),
            Err(InvalidArgument::Field {
                reason: "MISSING_FIELD",
                ..
            })
        ));
    }

    #[test]
    fn grant_keys_tell_direct_and_app_grants_apart() {
        let user = UserId::new();
        let direct = GrantSpec {
            subject: Subject::User(user),
            product: "jira".to_owned(),
            role: ProductRole::Use,
            app_installation_id: None,
        };
        let app = AppInstallationId::new();
        let owned = GrantSpec {
            app_installation_id: Some(app),
            ..direct.clone()
        };
        assert_eq!(direct.key(), format!("{user}/jira/use/direct"));
        assert_eq!(owned.key(), format!("{user}/jira/use/{app}"));
    }

    #[test]
    fn stored_subjects_keep_their_kind() {
        let group = GroupId::new();
        assert_eq!(
            Subject::parse_stored(&group.to_string()).unwrap(),
            Subject::Group(group)
        );
        let user = UserId::new();
        assert_eq!(
            Subject::parse_stored(&user.to_string()).unwrap(),
            Subject::User(user)
        );
        assert!(Subject::parse_stored(&SiteId::new().to_string()).is_err());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(name("name", " Ada ", "INVALID_NAME").unwrap(), "Ada");
        assert!(name("name", &"x".repeat(201), "INVALID_NAME").is_err());
        assert!(name("name", "a\u{7}b", "INVALID_NAME").is_err());
    }
}
