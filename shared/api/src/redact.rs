//! Keeps secrets out of text that can reach a client or a log line.
//!
//! Upstream error messages sometimes quote the key they were called with ("Incorrect API key
//! provided: sk-abc...") and hashes are as sensitive as keys for correlating tenants. Anything
//! that looks like either is replaced before the text leaves the gateway.

use std::borrow::Cow;

const REDACTED: &str = "[redacted]";

/// Replaces key-shaped tokens (`sk-…`, `Bearer …`) and long hex runs (hashes) in `text`.
pub fn scrub(text: &str) -> Cow<'_, str> {
    if !needs_scrub(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let token_end = rest.find(|c: char| !is_token_char(c)).unwrap_or(rest.len());
        if token_end == 0 {
            let ch_len = rest.chars().next().map_or(1, char::len_utf8);
            let (sep, tail) = rest.split_at(ch_len);
            out.push_str(sep);
            if sep == " " && ends_with_ci(&out, "bearer ") {
                let next_end = tail.find(char::is_whitespace).unwrap_or(tail.len());
                if next_end > 0 {
                    out.push_str(REDACTED);
                    rest = &tail[next_end..];
                    continue;
                }
            }
            rest = tail;
            continue;
        }
        let (token, tail) = rest.split_at(token_end);
        if is_secret(token) {
            out.push_str(REDACTED);
        } else {
            out.push_str(token);
        }
        rest = tail;
    }
    Cow::Owned(out)
}

fn needs_scrub(text: &str) -> bool {
    text.contains("sk-")
        || text.to_ascii_lowercase().contains("bearer ")
        || text.split(|c: char| !is_token_char(c)).any(is_secret)
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

fn is_secret(token: &str) -> bool {
    let key_like = token.len() >= 12 && (token.starts_with("sk-") || token.contains("-sk-"));
    let hash_like = token.len() >= 32 && token.chars().all(|c| c.is_ascii_hexdigit());
    key_like || hash_like
}

fn ends_with_ci(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.is_char_boundary(s.len() - suffix.len())
        && s[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_keys_hashes_and_bearer_tokens() {
        let text = "Incorrect API key provided: sk-proj-abcdEFGH12345678. hash \
                    e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 \
                    header Bearer abc.def";
        let out = scrub(text);
        assert!(!out.contains("abcdEFGH"), "{out}");
        assert!(!out.contains("e3b0c442"), "{out}");
        assert!(!out.contains("abc.def"), "{out}");
        assert!(
            out.starts_with("Incorrect API key provided: [redacted]."),
            "{out}"
        );
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        let text = "The model `gpt-4o` does not exist; max_tokens is too large: 99999.";
        assert!(matches!(scrub(text), Cow::Borrowed(_)));
        assert_eq!(scrub("ask-me later"), "ask-me later");
    }
}
