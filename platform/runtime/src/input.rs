//! The input rules of every API edge, written once.
//!
//! * **Nothing is rewritten.** An input with leading or trailing whitespace, or an empty
//!   or blank one, is refused naming it (its field, its index in a list, a bounded
//!   prefix of its value); it is never trimmed or dropped, because a lookalike that is
//!   silently "fixed" is how a wrong list reaches a destructive call. (The `micros` CLI's
//!   input-file format may skip blank lines and `#` comments: that is a file format, not
//!   the API.)
//! * **Sizes are bounded.** An ID or an operator's input string is at most
//!   [`MAX_INPUT_BYTES`]; a list of inputs at most [`MAX_INPUTS`] items. Beyond that the
//!   call is refused with the length in `ErrorInfo` metadata.
//! * **Echoes are bounded.** A value quoted back in a message or in `ErrorInfo` metadata
//!   is cut by [`echo`] to [`ECHO_CHARS`] characters plus a marker with its full length;
//!   [`crate::error::status_with_info`] bounds every status as a backstop, so a 1 MB
//!   input never yields a megabyte of trailers whatever path refused it.

use crate::error::InvalidArgument;

/// The most bytes of one ID or input string (a site URL, an operator's pasted input).
/// A typed ID is 37 bytes; a site URL `https://<63-byte label>.<domain>` fits.
pub const MAX_INPUT_BYTES: usize = 128;

/// The most bytes of an operator's free text (a plan's or a hold's reason and ticket):
/// it is recorded with every lifecycle call in every service's audit log.
pub const MAX_TEXT_BYTES: usize = 1024;

/// The most items in one list of inputs (a plan's or a Resolve call's inputs).
pub const MAX_INPUTS: usize = 10_000;

/// The characters of a value quoted back to the caller before it is cut.
pub const ECHO_CHARS: usize = 64;

/// The characters of a status message, and of one `ErrorInfo` metadata value, the
/// platform lets out (the backstop for paths that do not cut with [`echo`]).
pub const MAX_STATUS_TEXT_CHARS: usize = 1024;

/// `value` as it may be quoted back: whole when short, else its first [`ECHO_CHARS`]
/// characters, `…` and its full length in bytes (`site_0123…[1048576 bytes]`).
pub fn echo(value: &str) -> String {
    cut(value, ECHO_CHARS)
}

/// `value` cut to `max_chars` characters with the marker [`echo`] uses.
pub fn cut(value: &str, max_chars: usize) -> String {
    match value.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…[{} bytes]", &value[..end], value.len()),
        None => value.to_owned(),
    }
}

/// Checks one input of a list (`index` given) or a single field (`index` None) against
/// the rules above, without changing it.
pub fn check(field: &str, index: Option<usize>, value: &str) -> Result<(), InvalidArgument> {
    let refuse = |reason: &'static str, rule: String| {
        Err(InvalidArgument::Input {
            field: field.to_owned(),
            index,
            reason,
            message: rule,
            value: echo(value),
            length: value.len(),
        })
    };
    if value.len() > MAX_INPUT_BYTES {
        return refuse(
            "INPUT_TOO_LONG",
            format!(
                "is {} bytes; at most {MAX_INPUT_BYTES} are accepted",
                value.len()
            ),
        );
    }
    if value.trim().is_empty() {
        return refuse(
            if value.is_empty() {
                "EMPTY_INPUT"
            } else {
                "BLANK_INPUT"
            },
            "is empty or only whitespace; inputs are never dropped, remove it".to_owned(),
        );
    }
    if value.trim() != value {
        return refuse(
            "INPUT_HAS_SURROUNDING_WHITESPACE",
            "has leading or trailing whitespace; inputs are never trimmed, send it exactly"
                .to_owned(),
        );
    }
    if value.chars().any(char::is_control) {
        return refuse(
            "INPUT_HAS_CONTROL_CHARACTERS",
            "contains control characters".to_owned(),
        );
    }
    Ok(())
}

/// Checks an operator's free text: required ones not blank, at most
/// [`MAX_TEXT_BYTES`], no control characters but line breaks and tabs. Never changed.
pub fn check_text(field: &str, value: &str, required: bool) -> Result<(), InvalidArgument> {
    let refuse = |reason: &'static str, rule: String| {
        Err(InvalidArgument::Input {
            field: field.to_owned(),
            index: None,
            reason,
            message: rule,
            value: echo(value),
            length: value.len(),
        })
    };
    if required && value.trim().is_empty() {
        return Err(InvalidArgument::missing(field));
    }
    if value.len() > MAX_TEXT_BYTES {
        return refuse(
            "INPUT_TOO_LONG",
            format!(
                "is {} bytes; at most {MAX_TEXT_BYTES} are accepted",
                value.len()
            ),
        );
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return refuse(
            "INPUT_HAS_CONTROL_CHARACTERS",
            "contains control characters".to_owned(),
        );
    }
    Ok(())
}

/// Checks a list of inputs: at least one, at most [`MAX_INPUTS`], each by [`check`].
pub fn check_list(field: &str, values: &[String]) -> Result<(), InvalidArgument> {
    if values.is_empty() {
        return Err(InvalidArgument::missing(field));
    }
    check_count(field, values.len(), MAX_INPUTS)?;
    for (index, value) in values.iter().enumerate() {
        check(field, Some(index), value)?;
    }
    Ok(())
}

/// Refuses a list of `count` items over `max`, with the count in metadata.
pub fn check_count(field: &str, count: usize, max: usize) -> Result<(), InvalidArgument> {
    if count > max {
        return Err(InvalidArgument::field(
            field,
            "TOO_MANY_INPUTS",
            count.to_string(),
            format!("has {count} items; at most {max} are accepted per call"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_is_bounded_but_may_span_lines() {
        assert!(check_text("reason", "contract ended\nsee OPS-12", true).is_ok());
        assert!(check_text("ticket", "", false).is_ok());
        assert!(check_text("reason", "  ", true).is_err());
        let long = "x".repeat(MAX_TEXT_BYTES + 1);
        let error = check_text("reason", &long, true).unwrap_err();
        assert!(error.to_string().contains("1025 bytes"), "{error}");
        assert!(check_text("reason", "bell\u{7}", true).is_err());
    }
    use crate::error::Problem;

    fn reason(value: &str) -> Option<&'static str> {
        check("inputs", Some(0), value)
            .err()
            .map(|error| error.reason())
    }

    #[test]
    fn lookalikes_are_refused_not_rewritten() {
        let id = "site_0190f5a7c1e47c3a9f0b6d2e8a4c1b7d";
        assert_eq!(reason(id), None);
        assert_eq!(reason("https://acme.example.com"), None);
        assert_eq!(reason(""), Some("EMPTY_INPUT"));
        assert_eq!(reason("  \t"), Some("BLANK_INPUT"));
        assert_eq!(
            reason(&format!(" {id}")),
            Some("INPUT_HAS_SURROUNDING_WHITESPACE")
        );
        assert_eq!(
            reason(&format!("{id}\n")),
            Some("INPUT_HAS_SURROUNDING_WHITESPACE")
        );
        assert_eq!(reason("site_\u{7}x"), Some("INPUT_HAS_CONTROL_CHARACTERS"));
        assert_eq!(
            reason(&"x".repeat(MAX_INPUT_BYTES + 1)),
            Some("INPUT_TOO_LONG")
        );
        assert_eq!(reason(&"x".repeat(MAX_INPUT_BYTES)), None);
    }

    #[test]
    fn metadata_names_index_length_and_a_bounded_prefix() {
        let huge = "y".repeat(1 << 20);
        let error = check("inputs", Some(7), &huge).unwrap_err();
        let metadata: std::collections::HashMap<_, _> = error.metadata().into_iter().collect();
        assert_eq!(metadata["index"], "7");
        assert_eq!(metadata["length"], (1 << 20).to_string());
        assert_eq!(
            metadata["value"],
            format!("{}…[1048576 bytes]", "y".repeat(ECHO_CHARS))
        );
        assert!(error.to_string().len() < 300, "{error}");
    }

    #[test]
    fn echo_keeps_short_values_and_cuts_on_characters() {
        assert_eq!(echo("abc"), "abc");
        let accented = "é".repeat(ECHO_CHARS + 1);
        assert_eq!(
            echo(&accented),
            format!("{}…[{} bytes]", "é".repeat(ECHO_CHARS), accented.len())
        );
    }

    #[test]
    fn lists_are_bounded() {
        assert_eq!(
            check_list("inputs", &[]).unwrap_err().reason(),
            "MISSING_FIELD"
        );
        let many = vec!["a".to_owned(); MAX_INPUTS + 1];
        assert_eq!(
            check_list("inputs", &many).unwrap_err().reason(),
            "TOO_MANY_INPUTS"
        );
        let blank_line = vec!["a".to_owned(), String::new()];
        let error = check_list("inputs", &blank_line).unwrap_err();
        assert_eq!(error.reason(), "EMPTY_INPUT");
        assert!(error.metadata().contains(&("index", "1".to_owned())));
    }
}
