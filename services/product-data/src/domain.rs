//! Documents as this service knows them — Jira-like issues and Confluence-like pages —
//! and the rules every field and change follows.

use micros_platform::{
    error::InvalidArgument,
    ids::{AppInstallationId, DocumentId, SiteId},
};

use crate::error::ProductDataError;

/// The longest title, summary or search query, in characters.
pub const MAX_TITLE_CHARS: usize = 255;
/// The largest page body, in bytes. With [`FULL_VIEW_PAGE_SIZE`] it keeps a list page of
/// full documents (3.2 MiB of bodies at most) under gRPC's default 4 MiB message limit.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The most documents or versions a list answers with when bodies are included.
pub const FULL_VIEW_PAGE_SIZE: usize = 50;

/// The product a document belongs to; it decides the document's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    /// Issues.
    Jira,
    /// Pages.
    Confluence,
}

impl Product {
    /// The stored and wire form, as the catalog names products.
    pub fn as_str(self) -> &'static str {
        match self {
            Product::Jira => "jira",
            Product::Confluence => "confluence",
        }
    }

    pub fn parse(text: &str) -> Option<Product> {
        match text {
            "jira" => Some(Product::Jira),
            "confluence" => Some(Product::Confluence),
            _ => None,
        }
    }
}

/// Where an issue is in its workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueStatus {
    ToDo,
    InProgress,
    Done,
}

impl IssueStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            IssueStatus::ToDo => "to_do",
            IssueStatus::InProgress => "in_progress",
            IssueStatus::Done => "done",
        }
    }

    pub fn parse(text: &str) -> Option<IssueStatus> {
        match text {
            "to_do" => Some(IssueStatus::ToDo),
            "in_progress" => Some(IssueStatus::InProgress),
            "done" => Some(IssueStatus::Done),
            _ => None,
        }
    }
}

/// `PROJ-12`: an issue's project and its number within the project on its site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueKey {
    pub project_key: String,
    pub number: i64,
}

impl std::fmt::Display for IssueKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.project_key, self.number)
    }
}

/// The versioned part of a document: what an update changes and a version keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Issue {
        summary: String,
        status: IssueStatus,
    },
    Page {
        title: String,
        body: String,
    },
}

impl Content {
    pub fn product(&self) -> Product {
        match self {
            Content::Issue { .. } => Product::Jira,
            Content::Page { .. } => Product::Confluence,
        }
    }

    /// What search matches: a page's title, an issue's summary.
    pub fn title(&self) -> &str {
        match self {
            Content::Issue { summary, .. } => summary,
            Content::Page { title, .. } => title,
        }
    }

    pub fn status(&self) -> Option<IssueStatus> {
        match self {
            Content::Issue { status, .. } => Some(*status),
            Content::Page { .. } => None,
        }
    }

    pub fn body(&self) -> Option<&str> {
        match self {
            Content::Issue { .. } => None,
            Content::Page { body, .. } => Some(body),
        }
    }

    /// The content after `change`, or `None` when it changes nothing (so a retried update
    /// does not make a version of its own). A change for the other product is refused.
    pub fn apply(
        &self,
        document_id: DocumentId,
        change: &DocumentChange,
    ) -> Result<Option<Content>, ProductDataError> {
        let changed = match (self, change) {
            (
                Content::Issue { summary, status },
                DocumentChange::Issue {
                    summary: new_summary,
                    status: new_status,
                },
            ) => Content::Issue {
                summary: new_summary.clone().unwrap_or_else(|| summary.clone()),
                status: new_status.unwrap_or(*status),
            },
            (
                Content::Page { title, body },
                DocumentChange::Page {
                    title: new_title,
                    body: new_body,
                },
            ) => Content::Page {
                title: new_title.clone().unwrap_or_else(|| title.clone()),
                body: new_body.clone().unwrap_or_else(|| body.clone()),
            },
            _ => {
                return Err(ProductDataError::ProductMismatch {
                    document_id,
                    product: self.product().as_str(),
                    change: change.product().as_str(),
                });
            }
        };
        Ok((changed != *self).then_some(changed))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub document_id: DocumentId,
    pub site_id: SiteId,
    pub app_installation_id: Option<AppInstallationId>,
    /// `Some` for issues, `None` for pages.
    pub issue_key: Option<IssueKey>,
    pub content: Content,
    pub version: i64,
    pub create_time: i64,
    pub update_time: i64,
}

/// One version of a document's content, as it was written at `create_time`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentVersion {
    pub version: i64,
    pub content: Content,
    pub create_time: i64,
}

/// A validated request to create a document; new documents are at version 1.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub document_id: DocumentId,
    /// Whether the caller chose the ID (to make the create idempotent), and so may have
    /// chosen one that another site's document already has.
    pub id_chosen_by_caller: bool,
    pub app_installation_id: Option<AppInstallationId>,
    /// The project an issue is numbered in; `None` for a page.
    pub project_key: Option<String>,
    pub content: Content,
}

impl NewDocument {
    /// Whether `existing`, whose first version was `first`, is what this request would
    /// have created: a retry, not a clash.
    pub fn matches(&self, existing: &Document, first: &Content) -> bool {
        existing.document_id == self.document_id
            && existing.app_installation_id == self.app_installation_id
            && existing
                .issue_key
                .as_ref()
                .map(|key| key.project_key.as_str())
                == self.project_key.as_deref()
            && *first == self.content
    }
}

/// A validated update: `None` keeps the current value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentChange {
    Issue {
        summary: Option<String>,
        status: Option<IssueStatus>,
    },
    Page {
        title: Option<String>,
        body: Option<String>,
    },
}

impl DocumentChange {
    fn product(&self) -> Product {
        match self {
            DocumentChange::Issue { .. } => Product::Jira,
            DocumentChange::Page { .. } => Product::Confluence,
        }
    }
}

/// Which of a site's documents a list or search answers with.
#[derive(Debug, Clone, Default)]
pub struct DocumentQuery {
    pub product: Option<Product>,
    /// Case-insensitive substring of the title.
    pub title_contains: Option<String>,
    /// Whether pages carry their body.
    pub with_bodies: bool,
}

/// A title or summary: surrounding blanks trimmed, 1 to [`MAX_TITLE_CHARS`] characters.
pub fn title(field: &str, input: &str) -> Result<String, InvalidArgument> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(InvalidArgument::missing(field));
    }
    if trimmed.chars().count() > MAX_TITLE_CHARS {
        return Err(InvalidArgument::field(
            field,
            "TITLE_TOO_LONG",
            truncated(trimmed),
            format!("must be at most {MAX_TITLE_CHARS} characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// A page body: at most [`MAX_BODY_BYTES`], kept as given.
pub fn body(field: &str, input: &str) -> Result<String, InvalidArgument> {
    if input.len() > MAX_BODY_BYTES {
        return Err(InvalidArgument::field(
            field,
            "BODY_TOO_LARGE",
            format!("{} bytes", input.len()),
            format!("must be at most {MAX_BODY_BYTES} bytes"),
        ));
    }
    Ok(input.to_owned())
}

/// A project key: 2 to 10 upper-case ASCII letters and digits, starting with a letter.
pub fn project_key(field: &str, input: &str) -> Result<String, InvalidArgument> {
    if input.is_empty() {
        return Err(InvalidArgument::missing(field));
    }
    let valid = (2..=10).contains(&input.len())
        && input.starts_with(|c: char| c.is_ascii_uppercase())
        && input
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if valid {
        Ok(input.to_owned())
    } else {
        Err(InvalidArgument::field(
            field,
            "INVALID_PROJECT_KEY",
            truncated(input),
            "must be 2 to 10 upper-case letters and digits, starting with a letter (PROJ)",
        ))
    }
}

/// An optional product filter: empty is every product.
pub fn product_filter(field: &str, input: &str) -> Result<Option<Product>, InvalidArgument> {
    if input.is_empty() {
        return Ok(None);
    }
    Product::parse(input).map(Some).ok_or_else(|| {
        InvalidArgument::field(
            field,
            "UNKNOWN_PRODUCT",
            truncated(input),
            "must be jira or confluence",
        )
    })
}

/// A search query: not blank, at most [`MAX_TITLE_CHARS`] characters, matched as given.
pub fn title_query(field: &str, input: &str) -> Result<String, InvalidArgument> {
    if input.trim().is_empty() {
        return Err(InvalidArgument::missing(field));
    }
    if input.chars().count() > MAX_TITLE_CHARS {
        return Err(InvalidArgument::field(
            field,
            "QUERY_TOO_LONG",
            truncated(input),
            format!("must be at most {MAX_TITLE_CHARS} characters"),
        ));
    }
    Ok(input.to_owned())
}

/// How titles are compared in search: the same folding for the stored title and the
/// query, done here so that SQLite and PostgreSQL agree beyond ASCII.
pub fn fold(text: &str) -> String {
    text.to_lowercase()
}

/// A `LIKE … ESCAPE '\'` pattern matching `needle` anywhere, its wildcards taken literally.
pub fn contains_pattern(needle: &str) -> String {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for c in fold(needle).chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// An input echoed back in an error, cut short so a huge value does not fill the reply.
fn truncated(input: &str) -> String {
    const ECHOED_CHARS: usize = 64;
    if input.chars().count() <= ECHOED_CHARS {
        input.to_owned()
    } else {
        let mut cut: String = input.chars().take(ECHOED_CHARS).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(summary: &str, status: IssueStatus) -> Content {
        Content::Issue {
            summary: summary.to_owned(),
            status,
        }
    }

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(title("t", "  Roadmap ").unwrap(), "Roadmap");
        assert!(title("t", "   ").is_err());
        assert!(title("t", &"é".repeat(MAX_TITLE_CHARS)).is_ok());
        assert!(title("t", &"é".repeat(MAX_TITLE_CHARS + 1)).is_err());
    }

    #[test]
    fn bodies_are_bounded_in_bytes() {
        assert!(body("b", "").is_ok());
        assert!(body("b", &"x".repeat(MAX_BODY_BYTES)).is_ok());
        assert!(body("b", &"x".repeat(MAX_BODY_BYTES + 1)).is_err());
    }

    #[test]
    fn project_keys() {
        for good in ["PROJ", "AB", "X123456789"] {
            assert!(project_key("p", good).is_ok(), "{good}");
        }
        for bad in ["", "P", "proj", "1PROJ", "PRO-J", "ABCDEFGHIJK"] {
            assert!(project_key("p", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn search_patterns_take_wildcards_literally_and_ignore_case() {
        assert_eq!(contains_pattern("Road"), "%road%");
        assert_eq!(contains_pattern("100%_a\\b"), "%100\\%\\_a\\\\b%");
        assert_eq!(contains_pattern("ÄRGER"), "%ärger%");
    }

    #[test]
    fn changes_apply_to_their_own_product_only() {
        let document_id = DocumentId::new();
        let current = issue("Crash", IssueStatus::ToDo);
        let start = DocumentChange::Issue {
            summary: None,
            status: Some(IssueStatus::InProgress),
        };
        assert_eq!(
            current.apply(document_id, &start).unwrap(),
            Some(issue("Crash", IssueStatus::InProgress))
        );
        let same = DocumentChange::Issue {
            summary: Some("Crash".to_owned()),
            status: Some(IssueStatus::ToDo),
        };
        assert_eq!(current.apply(document_id, &same).unwrap(), None);
        let page_change = DocumentChange::Page {
            title: Some("Notes".to_owned()),
            body: None,
        };
        assert!(matches!(
            current.apply(document_id, &page_change),
            Err(ProductDataError::ProductMismatch {
                product: "jira",
                change: "confluence",
                ..
            })
        ));
    }

    #[test]
    fn issue_keys_display_as_jira_does() {
        let key = IssueKey {
            project_key: "PROJ".to_owned(),
            number: 12,
        };
        assert_eq!(key.to_string(), "PROJ-12");
    }
}
