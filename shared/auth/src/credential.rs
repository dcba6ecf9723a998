use http::HeaderMap;
use http::header::AUTHORIZATION;

/// The headers a key may arrive in, in the order they are consulted: LiteLLM's own header, the
/// OpenAI SDKs' `Authorization: Bearer`, the Anthropic SDK's `x-api-key`, Azure SDKs' `api-key`.
pub const KEY_HEADERS: [&str; 4] = ["x-litellm-api-key", "authorization", "x-api-key", "api-key"];

/// What the request presented as its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presented<'a> {
    None,
    /// A header was there but unusable (not UTF-8, empty, wrong scheme).
    Malformed,
    Key(&'a str),
}

/// The key presented in `headers`, from the first of [`KEY_HEADERS`] that is present.
pub fn credential(headers: &HeaderMap) -> Presented<'_> {
    for name in KEY_HEADERS {
        let Some(value) = headers.get(name) else {
            continue;
        };
        let Ok(value) = value.to_str() else {
            return Presented::Malformed;
        };
        let value = value.trim();
        let key = if name == AUTHORIZATION.as_str() {
            match value.split_once(' ') {
                Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
                None if value.eq_ignore_ascii_case("bearer") => return Presented::Malformed,
                // LiteLLM also accepts a bare key in Authorization.
                None => value,
                Some(_) => return Presented::Malformed,
            }
        } else {
            value
        };
        return if key.is_empty() {
            Presented::Malformed
        } else {
            Presented::Key(key)
        };
    }
    Presented::None
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(name: &'static str, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn every_header_form() {
        assert_eq!(
            credential(&with("authorization", "Bearer sk-1")),
            Presented::Key("sk-1")
        );
        assert_eq!(
            credential(&with("authorization", "bearer  sk-1 ")),
            Presented::Key("sk-1")
        );
        assert_eq!(
            credential(&with("authorization", "sk-1")),
            Presented::Key("sk-1")
        );
        assert_eq!(
            credential(&with("x-api-key", "sk-2")),
            Presented::Key("sk-2")
        );
        assert_eq!(credential(&with("api-key", "sk-3")), Presented::Key("sk-3"));
        assert_eq!(
            credential(&with("x-litellm-api-key", "sk-4")),
            Presented::Key("sk-4")
        );
        assert_eq!(credential(&HeaderMap::new()), Presented::None);
        assert_eq!(
            credential(&with("authorization", "Bearer ")),
            Presented::Malformed
        );
        assert_eq!(
            credential(&with("authorization", "Basic abc")),
            Presented::Malformed
        );
    }

    #[test]
    fn litellm_header_wins() {
        let mut h = with("authorization", "Bearer upstream-token");
        h.insert("x-litellm-api-key", HeaderValue::from_static("sk-gateway"));
        assert_eq!(credential(&h), Presented::Key("sk-gateway"));
    }
}
