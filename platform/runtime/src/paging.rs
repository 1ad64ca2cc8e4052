//! Page tokens and sizes for list RPCs, the same in every service.
//!
//! A token is opaque to callers (base64url of the last key of the previous page), so the
//! key format can change without breaking them.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::error::InvalidArgument;

/// Page size when the caller asks for 0.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// The largest page a caller may ask for.
pub const MAX_PAGE_SIZE: usize = 1000;

/// One page of a list request: how many items, and after which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub size: usize,
    /// The key of the previous page's last item; `None` for the first page.
    pub after: Option<String>,
}

impl Page {
    /// The page a request's `page_size` and `page_token` ask for.
    pub fn of(page_size: i32, page_token: &str) -> Result<Page, InvalidArgument> {
        Ok(Page {
            size: self::page_size(page_size)?,
            after: decode_token(page_token)?,
        })
    }

    /// How many items to fetch: one more than the page, to know whether another follows.
    pub fn fetch(&self) -> usize {
        self.size + 1
    }

    /// The page's items and the token of the next page (empty on the last page), from
    /// the [`Page::fetch`] items fetched.
    pub fn cut<T>(&self, mut items: Vec<T>, key: impl Fn(&T) -> String) -> (Vec<T>, String) {
        if items.len() <= self.size {
            return (items, String::new());
        }
        items.truncate(self.size);
        let token = items
            .last()
            .map(|last| encode_token(&key(last)))
            .unwrap_or_default();
        (items, token)
    }
}

/// The page size of a request: 0 means the default; negative or too large is refused.
pub fn page_size(requested: i32) -> Result<usize, InvalidArgument> {
    match usize::try_from(requested) {
        Ok(0) => Ok(DEFAULT_PAGE_SIZE),
        Ok(size) if size <= MAX_PAGE_SIZE => Ok(size),
        _ => Err(InvalidArgument::field(
            "page_size",
            "INVALID_PAGE_SIZE",
            requested.to_string(),
            format!("must be between 0 and {MAX_PAGE_SIZE}"),
        )),
    }
}

/// The token that continues after `last_key`.
pub fn encode_token(last_key: &str) -> String {
    URL_SAFE_NO_PAD.encode(last_key)
}

/// The key to continue after, or `None` for the first page.
pub fn decode_token(token: &str) -> Result<Option<String>, InvalidArgument> {
    if token.is_empty() {
        return Ok(None);
    }
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(Some)
        .ok_or_else(|| {
            InvalidArgument::field(
                "page_token",
                "INVALID_PAGE_TOKEN",
                token,
                "is not a token this service returned",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let token = encode_token("site_0193");
        assert_eq!(decode_token(&token).unwrap().as_deref(), Some("site_0193"));
        assert_eq!(decode_token("").unwrap(), None);
        assert!(decode_token("!!not base64!!").is_err());
    }

    #[test]
    fn pages_cut_one_past_the_size() {
        let page = Page::of(2, "").unwrap();
        assert_eq!(page.fetch(), 3);
        let (items, token) = page.cut(vec!["a", "b", "c"], |item| (*item).to_owned());
        assert_eq!(items, vec!["a", "b"]);
        assert_eq!(decode_token(&token).unwrap().as_deref(), Some("b"));
        let (last, none) = page.cut(vec!["c"], |item| (*item).to_owned());
        assert_eq!((last, none), (vec!["c"], String::new()));
    }

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(7).unwrap(), 7);
        assert!(page_size(-1).is_err());
        assert!(page_size(1001).is_err());
    }
}
