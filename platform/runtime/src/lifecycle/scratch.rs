//! How a site's data is named in a scratch copy of it. Every typed ID inside the slice
//! (`usr_…`, `doc_…`, `app_…`, …, also inside composite keys and blob paths) becomes an ID
//! derived from the scratch site and the original, so every service maps the same ID the
//! same way without asking any other, references between rows and across services stay
//! whole, and no copied row collides with its origin. The origin site becomes the scratch
//! site; operation and plan IDs (deletion markers) are kept as they are.

use uuid::Uuid;

use crate::ids::{Kind, SiteId, parse_kind};

/// `text` as it reads in the scratch copy `scratch` of `origin`.
pub fn remap(origin: SiteId, scratch: SiteId, text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(found) = next_id(rest) {
        let (start, end, kind, uuid) = found;
        out.push_str(&rest[..start]);
        out.push_str(&copied(origin, scratch, kind, uuid, &rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The ID `uuid` of `kind` (written `original`) becomes in the copy.
fn copied(origin: SiteId, scratch: SiteId, kind: Kind, uuid: Uuid, original: &str) -> String {
    match kind {
        Kind::Site if uuid == origin.uuid() => scratch.to_string(),
        Kind::Operation | Kind::Plan => original.to_owned(),
        _ => format!(
            "{}_{}",
            kind.prefix(),
            derive(scratch.uuid(), uuid).simple()
        ),
    }
}

/// A UUIDv7 for the copy of `uuid` in the scratch site: its timestamp kept (copies sort
/// like their originals), the rest from a hash of both.
fn derive(scratch: Uuid, uuid: Uuid) -> Uuid {
    let digest = blake3::Hasher::new()
        .update(scratch.as_bytes())
        .update(uuid.as_bytes())
        .finalize();
    let millis = uuid
        .get_timestamp()
        .map(|timestamp| {
            let (seconds, nanos) = timestamp.to_unix();
            seconds * 1000 + u64::from(nanos) / 1_000_000
        })
        .unwrap_or_default();
    let mut random = [0u8; 10];
    random.copy_from_slice(&digest.as_bytes()[..10]);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

/// The next typed ID in `text`, as (start, end, kind, uuid): a known prefix, `_` and 32
/// lower-case hex digits, not glued to other letters or digits.
fn next_id(text: &str) -> Option<(usize, usize, Kind, Uuid)> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(offset) = text[from..].find('_') {
        let underscore = from + offset;
        from = underscore + 1;
        let start = bytes[..underscore]
            .iter()
            .rposition(|b| !b.is_ascii_lowercase())
            .map_or(0, |position| position + 1);
        let end = underscore + 33;
        if start == underscore
            || end > bytes.len()
            || (start > 0 && bytes[start - 1].is_ascii_alphanumeric())
            || bytes.get(end).is_some_and(u8::is_ascii_alphanumeric)
        {
            continue;
        }
        if let Ok((kind, uuid)) = parse_kind(&text[start..end]) {
            return Some((start, end, kind, uuid));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{DocumentId, OperationId, UserId};

    #[test]
    fn every_id_in_the_slice_is_renamed_the_same_way_and_markers_stay() {
        let (origin, scratch) = (SiteId::new(), SiteId::new());
        let (user, document, operation) = (UserId::new(), DocumentId::new(), OperationId::new());
        let key = format!("{origin}:{user}");
        let copied = remap(origin, scratch, &key);
        assert!(copied.starts_with(&format!("{scratch}:usr_")), "{copied}");
        assert_ne!(copied, key);
        // The same ID maps the same way wherever it appears, in any service.
        let alone = remap(origin, scratch, &user.to_string());
        assert!(copied.ends_with(&alone));
        assert!(UserId::parse(&alone).is_ok(), "a valid user ID: {alone}");
        // Another scratch copy of the same site names it differently.
        assert_ne!(remap(origin, SiteId::new(), &user.to_string()), alone);
        let path = format!("{origin}/{document}/upload-1");
        let moved = remap(origin, scratch, &path);
        assert!(moved.starts_with(&format!("{scratch}/doc_")) && moved.ends_with("/upload-1"));
        assert_eq!(
            remap(origin, scratch, &operation.to_string()),
            operation.to_string()
        );
        assert_eq!(
            remap(origin, scratch, "plain text, no_ids"),
            "plain text, no_ids"
        );
        let glued = format!("x{user}");
        assert_eq!(
            remap(origin, scratch, &glued),
            glued,
            "not an ID on its own"
        );
    }
}
