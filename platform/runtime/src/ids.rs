//! Typed identifiers: a kind prefix, an underscore and a UUIDv7 in lower-case hex
//! (`site_01936f0e8c2a7d3e9b1f4a5c6d7e8f90`).
//!
//! Each kind is its own Rust type, so a site ID cannot be passed where an app
//! installation ID is expected: the April 2022 incident was exactly that mistake made
//! with bare strings. Parsing at the edge refuses a well-formed ID of the wrong kind with
//! an error that names both kinds, and anything else with its own error.

use std::{
    cmp::Ordering,
    fmt,
    hash::{Hash, Hasher},
    marker::PhantomData,
    str::FromStr,
};

use uuid::Uuid;

/// Every kind of ID Micros hands out. The prefix is the wire form; it never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Site,
    AppInstallation,
    User,
    Group,
    License,
    Document,
    Media,
    Operation,
    Plan,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Site,
        Kind::AppInstallation,
        Kind::User,
        Kind::Group,
        Kind::License,
        Kind::Document,
        Kind::Media,
        Kind::Operation,
        Kind::Plan,
    ];

    /// The prefix before the underscore, e.g. `site`.
    pub const fn prefix(self) -> &'static str {
        match self {
            Kind::Site => "site",
            Kind::AppInstallation => "app",
            Kind::User => "usr",
            Kind::Group => "grp",
            Kind::License => "lic",
            Kind::Document => "doc",
            Kind::Media => "med",
            Kind::Operation => "op",
            Kind::Plan => "pln",
        }
    }

    /// What an operator calls it, e.g. `app installation`.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Site => "site",
            Kind::AppInstallation => "app installation",
            Kind::User => "user",
            Kind::Group => "group",
            Kind::License => "license",
            Kind::Document => "document",
            Kind::Media => "media",
            Kind::Operation => "operation",
            Kind::Plan => "plan",
        }
    }

    pub fn from_prefix(prefix: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.prefix() == prefix)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix())
    }
}

/// Why a string is not an ID of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error(
        "expected {} {} ID (`{}_…`) but `{input}` is {} {} ID (`{}_…`)",
        article(expected.name()), expected.name(), expected.prefix(),
        article(actual.name()), actual.name(), actual.prefix()
    )]
    WrongKind {
        expected: Kind,
        actual: Kind,
        input: String,
    },
    #[error("`{input}` is not a valid {}: {problem}", expected_label(*expected))]
    Malformed {
        /// `None` when any kind would do (resolving what an input is).
        expected: Option<Kind>,
        input: String,
        problem: &'static str,
    },
}

fn article(noun: &str) -> &'static str {
    if noun.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn expected_label(expected: Option<Kind>) -> String {
    match expected {
        Some(kind) => format!("{} ID (`{}_…`)", kind.name(), kind.prefix()),
        None => "ID".to_owned(),
    }
}

/// Marker for one kind of ID; implemented by the zero-sized types below.
pub trait IdKind: Send + Sync + 'static {
    const KIND: Kind;
}

/// An ID of kind `K`. Copy, ordered by creation time (UUIDv7), displayed in wire form.
pub struct Id<K: IdKind> {
    uuid: Uuid,
    kind: PhantomData<fn() -> K>,
}

macro_rules! id_kinds {
    ($($(#[$doc:meta])* $marker:ident => $alias:ident = $kind:ident;)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
            pub enum $marker {}
            impl IdKind for $marker {
                const KIND: Kind = Kind::$kind;
            }
            $(#[$doc])*
            pub type $alias = Id<$marker>;
        )*
    };
}

id_kinds! {
    /// A site (tenant): `site_…`.
    SiteKind => SiteId = Site;
    /// An app installation on a site: `app_…`.
    AppInstallationKind => AppInstallationId = AppInstallation;
    /// A user: `usr_…`.
    UserKind => UserId = User;
    /// A group of users: `grp_…`.
    GroupKind => GroupId = Group;
    /// A license: `lic_…`.
    LicenseKind => LicenseId = License;
    /// A product document: `doc_…`.
    DocumentKind => DocumentId = Document;
    /// An attachment: `med_…`.
    MediaKind => MediaId = Media;
    /// A lifecycle or workflow operation: `op_…`.
    OperationKind => OperationId = Operation;
    /// A bulk-operation plan: `pln_…`.
    PlanKind => PlanId = Plan;
}

impl<K: IdKind> Id<K> {
    /// A new ID, time-ordered (UUIDv7).
    pub fn new() -> Self {
        Self::from_uuid(Uuid::now_v7())
    }

    /// Wraps a UUID; it must be version 7 to parse back, so this is for UUIDs that came
    /// from `Uuid::now_v7` or a parsed ID.
    pub fn from_uuid(uuid: Uuid) -> Self {
        Self {
            uuid,
            kind: PhantomData,
        }
    }

    /// A deterministic ID of this kind derived from `parent` and a label: a multi-step
    /// workflow retried after a crash names the same objects again (idempotent creates).
    /// It keeps the parent's timestamp, so derived IDs sort with their parent.
    pub fn derived(parent: Uuid, label: &str) -> Self {
        let digest = blake3::Hasher::new()
            .update(parent.as_bytes())
            .update(label.as_bytes())
            .finalize();
        let millis = parent
            .get_timestamp()
            .map(|timestamp| {
                let (seconds, nanos) = timestamp.to_unix();
                seconds * 1000 + u64::from(nanos) / 1_000_000
            })
            .unwrap_or_default();
        let mut random = [0u8; 10];
        random.copy_from_slice(&digest.as_bytes()[..10]);
        Self::from_uuid(uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid())
    }

    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    pub fn kind(&self) -> Kind {
        K::KIND
    }

    /// Parses the wire form, refusing other kinds and malformed input.
    pub fn parse(input: &str) -> Result<Self, IdError> {
        let (kind, uuid) = parse_any(input, Some(K::KIND))?;
        if kind != K::KIND {
            return Err(IdError::WrongKind {
                expected: K::KIND,
                actual: kind,
                input: input.to_owned(),
            });
        }
        Ok(Self::from_uuid(uuid))
    }
}

/// Parses an ID of any kind, for inputs whose kind is the question (Resolve).
pub fn parse_kind(input: &str) -> Result<(Kind, Uuid), IdError> {
    parse_any(input, None)
}

/// `expected` only labels a malformed-input error; the kind found is returned.
fn parse_any(input: &str, expected: Option<Kind>) -> Result<(Kind, Uuid), IdError> {
    let malformed = |problem| IdError::Malformed {
        expected,
        input: crate::input::echo(input),
        problem,
    };
    let (prefix, hex) = input
        .split_once('_')
        .ok_or_else(|| malformed("it has no `<kind>_` prefix"))?;
    let kind =
        Kind::from_prefix(prefix).ok_or_else(|| malformed("the prefix names no kind of ID"))?;
    if hex.len() != 32
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(malformed(
            "the part after the prefix must be 32 lower-case hex digits",
        ));
    }
    let uuid =
        Uuid::try_parse(hex).map_err(|_| malformed("the part after the prefix is not a UUID"))?;
    if uuid.get_version_num() != 7 {
        return Err(malformed("the UUID is not version 7"));
    }
    Ok((kind, uuid))
}

impl<K: IdKind> Default for Id<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: IdKind> Clone for Id<K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K: IdKind> Copy for Id<K> {}

impl<K: IdKind> PartialEq for Id<K> {
    fn eq(&self, other: &Self) -> bool {
        self.uuid == other.uuid
    }
}

impl<K: IdKind> Eq for Id<K> {}

impl<K: IdKind> PartialOrd for Id<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K: IdKind> Ord for Id<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.uuid.cmp(&other.uuid)
    }
}

impl<K: IdKind> Hash for Id<K> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.uuid.hash(state);
    }
}

impl<K: IdKind> fmt::Display for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", K::KIND.prefix(), self.uuid.simple())
    }
}

impl<K: IdKind> fmt::Debug for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<K: IdKind> FromStr for Id<K> {
    type Err = IdError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Self::parse(input)
    }
}

impl<K: IdKind> serde::Serialize for Id<K> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de, K: IdKind> serde::Deserialize<'de> for Id<K> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_v7() -> impl Strategy<Value = Uuid> {
        (0u64..(1 << 48), any::<[u8; 10]>()).prop_map(|(millis, random)| {
            uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
        })
    }

    fn parse_as(kind: Kind, input: &str) -> Result<Kind, IdError> {
        macro_rules! parse {
            ($($k:ident => $alias:ident),*) => {
                match kind {
                    $(Kind::$k => $alias::parse(input).map(|id| id.kind()),)*
                }
            };
        }
        parse!(Site => SiteId, AppInstallation => AppInstallationId, User => UserId,
            Group => GroupId, License => LicenseId, Document => DocumentId, Media => MediaId,
            Operation => OperationId, Plan => PlanId)
    }

    fn wire(kind: Kind, uuid: Uuid) -> String {
        format!("{}_{}", kind.prefix(), uuid.simple())
    }

    #[test]
    fn new_ids_are_time_ordered_and_prefixed() {
        let first = SiteId::new();
        let second = SiteId::new();
        assert!(first < second);
        assert!(first.to_string().starts_with("site_"));
        assert_eq!(first.to_string().len(), "site_".len() + 32);
    }

    #[test]
    fn derived_ids_are_stable_valid_and_distinct() {
        let site = SiteId::new();
        let first = LicenseId::derived(site.uuid(), "license:jira");
        assert_eq!(first, LicenseId::derived(site.uuid(), "license:jira"));
        assert_ne!(first, LicenseId::derived(site.uuid(), "license:confluence"));
        assert_eq!(LicenseId::parse(&first.to_string()), Ok(first));
    }

    #[test]
    fn wrong_kind_names_both_kinds() {
        let app = AppInstallationId::new().to_string();
        let error = SiteId::parse(&app).unwrap_err();
        assert_eq!(
            error,
            IdError::WrongKind {
                expected: Kind::Site,
                actual: Kind::AppInstallation,
                input: app.clone(),
            }
        );
        let message = error.to_string();
        assert!(
            message.contains("expected a site ID (`site_…`)"),
            "{message}"
        );
        assert!(
            message.contains("is an app installation ID (`app_…`)"),
            "{message}"
        );
    }

    #[test]
    fn malformed_inputs_have_their_own_error() {
        for input in [
            "",
            "site",
            "site_",
            "site_xyz",
            "bogus_0193a2b4c5d67e8f9a0b1c2d3e4f5a6b",
            "site_0193A2B4C5D67E8F9A0B1C2D3E4F5A6B",
            "site_0193a2b4c5d64e8f9a0b1c2d3e4f5a6b",
        ] {
            assert!(
                matches!(
                    SiteId::parse(input),
                    Err(IdError::Malformed {
                        expected: Some(Kind::Site),
                        ..
                    })
                ),
                "{input:?} should be malformed"
            );
        }
    }

    #[test]
    fn serde_round_trip_refuses_wrong_kind() {
        let site = SiteId::new();
        let json = serde_json::to_string(&site).unwrap();
        assert_eq!(serde_json::from_str::<SiteId>(&json).unwrap(), site);
        assert!(serde_json::from_str::<UserId>(&json).is_err());
    }

    proptest! {
        #[test]
        fn every_kind_round_trips(uuid in any_v7(), index in 0..Kind::ALL.len()) {
            let kind = Kind::ALL[index];
            let text = wire(kind, uuid);
            prop_assert_eq!(parse_as(kind, &text), Ok(kind));
            prop_assert_eq!(parse_kind(&text), Ok((kind, uuid)));
            let site = SiteId::from_uuid(uuid);
            prop_assert_eq!(SiteId::parse(&site.to_string()), Ok(site));
        }

        #[test]
        fn every_wrong_kind_pair_is_refused(
            uuid in any_v7(),
            expected in 0..Kind::ALL.len(),
            actual in 0..Kind::ALL.len(),
        ) {
            prop_assume!(expected != actual);
            let (expected, actual) = (Kind::ALL[expected], Kind::ALL[actual]);
            let text = wire(actual, uuid);
            prop_assert_eq!(
                parse_as(expected, &text),
                Err(IdError::WrongKind { expected, actual, input: text.clone() })
            );
        }

        #[test]
        fn arbitrary_strings_never_panic(input in any::<String>()) {
            let _ = SiteId::parse(&input);
            let _ = parse_kind(&input);
        }

        #[test]
        fn prefixed_garbage_is_malformed(index in 0..Kind::ALL.len(), tail in "[^_]{0,40}") {
            let kind = Kind::ALL[index];
            let text = format!("{}_{tail}", kind.prefix());
            prop_assume!(parse_kind(&text).is_err());
            let refused = matches!(parse_as(kind, &text), Err(IdError::Malformed { .. }));
            prop_assert!(refused);
        }
    }
}
