//! Bounded text: any string that came from outside (webhook payloads, admin requests) is clipped before it
//! reaches a log line or an error answer, so a 300 KB login cannot flood either.

use std::borrow::Cow;
use std::fmt;

/// The most characters of one outside-supplied string that a log line or an error answer carries.
pub const TEXT_LIMIT_CHARS: usize = 256;
/// Marks where clipped text was cut; followed by how much was left out.
pub const ELLIPSIS: &str = "…";

/// `text` cut to [`TEXT_LIMIT_CHARS`] characters, with a marker saying how many were left out.
pub fn clip(text: &str) -> Cow<'_, str> {
    clip_to(text, TEXT_LIMIT_CHARS)
}

/// `text` cut to `max_chars` characters (never inside a character), with a marker saying how many were
/// left out; unchanged when it fits.
pub fn clip_to(text: &str, max_chars: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max_chars) {
        None => Cow::Borrowed(text),
        Some((cut, _)) => {
            let omitted = text[cut..].chars().count();
            Cow::Owned(format!("{}{ELLIPSIS}[+{omitted} chars]", &text[..cut]))
        }
    }
}

/// A `Display` wrapper that clips what it shows, for `tracing` fields: `org = %Clipped(&login)`.
#[derive(Debug, Clone, Copy)]
pub struct Clipped<'a>(pub &'a str);

impl fmt::Display for Clipped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&clip(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_unchanged_and_long_text_is_cut_with_a_marker() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 3, ""),
            ("abc", 3, "abc"),
            ("abcd", 3, "abc…[+1 chars]"),
            ("ééééé", 2, "éé…[+3 chars]"),
            ("abc", 0, "…[+3 chars]"),
        ];
        for (text, max, want) in cases {
            assert_eq!(clip_to(text, *max), *want, "{text:?} at {max}");
        }
    }

    #[test]
    fn the_default_limit_bounds_huge_text() {
        let huge = "a".repeat(300 * 1024);
        let clipped = clip(&huge);
        assert!(clipped.starts_with(&"a".repeat(TEXT_LIMIT_CHARS)));
        assert!(clipped.chars().count() < TEXT_LIMIT_CHARS + 32, "{} chars", clipped.chars().count());
        assert!(clipped.ends_with(&format!("[+{} chars]", huge.len() - TEXT_LIMIT_CHARS)));
        assert_eq!(Clipped(&huge).to_string(), clipped);
    }
}
