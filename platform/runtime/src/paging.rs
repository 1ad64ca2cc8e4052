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
    fn page_sizes() {
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(7).unwrap(), 7);
        assert!(page_size(-1).is_err());
        assert!(page_size(1001).is_err());
    }
}
