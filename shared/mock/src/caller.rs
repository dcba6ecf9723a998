//! Who is calling: the caller's key (for per-key stats and the accepted-keys check), and the
//! request id and attempt the gateway stamps on each upstream call (for the billing log).

use http::{HeaderMap, header};

/// The key of a caller that sent none.
pub const ANONYMOUS: &str = "anonymous";
/// Request id header; the billing log records it.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The gateway's attempt number for this request id (1 = first try).
pub const ATTEMPT_HEADER: &str = "x-tollgate-attempt";

/// Identity of one request, borrowed from its headers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller<'a> {
    pub key: &'a str,
    pub request_id: Option<&'a str>,
    pub attempt: u32,
}

impl<'a> Caller<'a> {
    /// Key from `Authorization: Bearer`, `api-key` (Azure) or `x-api-key` (Anthropic), in that
    /// order; a malformed attempt counts as the first.
    pub fn from_headers(headers: &'a HeaderMap) -> Self {
        let text = |name| headers.get(name).and_then(|value| value.to_str().ok());
        let bearer = text(header::AUTHORIZATION.as_str()).and_then(|auth| {
            auth.strip_prefix("Bearer ")
                .or_else(|| auth.strip_prefix("bearer "))
        });
        let key = bearer
            .or_else(|| text("api-key"))
            .or_else(|| text("x-api-key"))
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .unwrap_or(ANONYMOUS);
        Self {
            key,
            request_id: text(REQUEST_ID_HEADER).filter(|id| !id.is_empty()),
            attempt: text(ATTEMPT_HEADER)
                .and_then(|a| a.trim().parse().ok())
                .unwrap_or(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (http::HeaderName::from_static(name), value.parse().unwrap()))
            .collect()
    }

    #[test]
    fn key_comes_from_bearer_then_api_key_then_x_api_key() {
        let all = headers(&[
            ("authorization", "Bearer sk-1"),
            ("api-key", "az"),
            ("x-api-key", "an"),
        ]);
        assert_eq!(Caller::from_headers(&all).key, "sk-1");
        assert_eq!(
            Caller::from_headers(&headers(&[("api-key", "az")])).key,
            "az"
        );
        assert_eq!(
            Caller::from_headers(&headers(&[("x-api-key", "an")])).key,
            "an"
        );
        assert_eq!(Caller::from_headers(&HeaderMap::new()).key, ANONYMOUS);
    }

    #[test]
    fn attempt_and_request_id_are_read_leniently() {
        let h = headers(&[("x-request-id", "r-1"), ("x-tollgate-attempt", "3")]);
        let caller = Caller::from_headers(&h);
        assert_eq!((caller.request_id, caller.attempt), (Some("r-1"), 3));
        let bad = headers(&[("x-tollgate-attempt", "three")]);
        assert_eq!(Caller::from_headers(&bad).attempt, 1);
    }
}
