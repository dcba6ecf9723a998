//! An upstream's error status and body → the [`ApiError`] the client receives.

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use tollgate_api::{ApiError, ErrorCode, redact};

/// The longest upstream message passed on; the rest is cut.
const MAX_MESSAGE: usize = 500;

/// Maps an upstream's non-2xx answer. The upstream's status is kept (a 429 stays a 429 with its
/// Retry-After), except that an upstream refusing the gateway's own credentials (401/403) is the
/// operator's problem, not the client's, and becomes a 502. The message quotes the upstream's
/// own message, scrubbed of anything key-shaped, never its raw body.
pub fn upstream_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    deployment: &str,
) -> ApiError {
    let detail = upstream_message(body)
        .map(|m| format!(": {}", truncate(&redact::scrub(&m))))
        .unwrap_or_default();
    let code = match status.as_u16() {
        429 => ErrorCode::RateLimited,
        404 => ErrorCode::ModelNotFound,
        408 => ErrorCode::UpstreamTimeout,
        413 => ErrorCode::RequestTooLarge,
        401 | 403 => {
            return ApiError::new(
                ErrorCode::UpstreamError,
                format!(
                    "deployment `{deployment}` refused the gateway's credentials \
                     (upstream status {}); check its api_key",
                    status.as_u16()
                ),
            );
        }
        400..=499 => ErrorCode::UpstreamRejected,
        500..=599 => ErrorCode::UpstreamError,
        _ => {
            return ApiError::new(
                ErrorCode::UpstreamError,
                format!(
                    "deployment `{deployment}` answered with unexpected status {}",
                    status.as_u16()
                ),
            );
        }
    };
    let status = if code == ErrorCode::UpstreamTimeout {
        code.status()
    } else {
        status
    };
    let mut error = ApiError::new(
        code,
        format!(
            "deployment `{deployment}` returned {}{detail}",
            status.as_u16()
        ),
    )
    .with_status(status);
    error.retry_after = retry_after(headers);
    error
}

/// The upstream's own error message, from OpenAI's, Anthropic's or a plain `{"message"}` shape.
fn upstream_message(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Shape {
        Nested { error: Inner },
        Flat { message: String },
        Detail { detail: String },
        Plain { error: String },
    }
    #[derive(Deserialize)]
    struct Inner {
        message: String,
    }
    let message = match serde_json::from_slice::<Shape>(body).ok()? {
        Shape::Nested { error } => error.message,
        Shape::Flat { message } | Shape::Detail { detail: message } => message,
        Shape::Plain { error } => error,
    };
    let message = message.trim();
    (!message.is_empty()).then(|| message.to_owned())
}

fn truncate(s: &str) -> String {
    if s.len() <= MAX_MESSAGE {
        return s.to_owned();
    }
    let mut end = MAX_MESSAGE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// When the upstream says a retry may succeed: `retry-after-ms` (most precise), `retry-after`
/// in seconds, or OpenAI's `x-ratelimit-reset-*` durations (`6m0s`, `20ms`).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    if let Some(secs) = header("retry-after").and_then(|v| v.parse::<f64>().ok()) {
        return Duration::try_from_secs_f64(secs).ok();
    }
    ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]
        .into_iter()
        .filter_map(|name| header(name).and_then(parse_go_duration))
        .max()
}

/// Parses durations as OpenAI writes them: `1s`, `6m0s`, `1h2m3.5s`, `20ms`.
fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut total = 0.0_f64;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_429_stays_a_429_with_its_retry_after() {
        let body = br#"{"error":{"message":"Rate limit reached for gpt-4o","type":"requests","code":"rate_limit_exceeded"}}"#;
        let e = upstream_error(
            StatusCode::TOO_MANY_REQUESTS,
            &headers(&[("retry-after", "7")]),
            body,
            "d1",
        );
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.code, ErrorCode::RateLimited);
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(e.retry_after_secs(), Some(7));
        assert!(
            e.message.contains("Rate limit reached for gpt-4o"),
            "{}",
            e.message
        );
        assert!(
            !e.message.to_lowercase().contains("connection"),
            "{}",
            e.message
        );
    }

    #[test]
    fn retry_after_in_every_form() {
        assert_eq!(
            retry_after(&headers(&[("retry-after-ms", "1500")])),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "0.5")])),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            retry_after(&headers(&[
                ("x-ratelimit-reset-requests", "6m0s"),
                ("x-ratelimit-reset-tokens", "20ms")
            ])),
            Some(Duration::from_secs(360))
        );
        assert_eq!(
            retry_after(&headers(&[("x-ratelimit-reset-tokens", "1h2m3.5s")])),
            Some(Duration::from_secs_f64(3723.5))
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")])), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn statuses_are_kept_and_keys_are_scrubbed() {
        let body =
            br#"{"error":{"message":"Incorrect API key provided: sk-proj-AAAABBBBCCCCDDDD"}}"#;
        let e = upstream_error(StatusCode::UNAUTHORIZED, &HeaderMap::new(), body, "d1");
        assert_eq!(e.status, StatusCode::BAD_GATEWAY);
        assert!(!e.message.contains("AAAABBBB"), "{}", e.message);
        let e = upstream_error(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            br#"{"error":{"message":"sk-proj-AAAABBBBCCCCDDDD is bad"}}"#,
            "d1",
        );
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(!e.message.contains("AAAABBBB"), "{}", e.message);
        let e = upstream_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &headers(&[("retry-after", "3")]),
            b"<html>oops</html>",
            "d1",
        );
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.code, ErrorCode::UpstreamError);
        assert!(
            !e.message.contains("html"),
            "raw bodies never reach the client: {}",
            e.message
        );
        let e = upstream_error(
            StatusCode::NOT_FOUND,
            &HeaderMap::new(),
            br#"{"error":{"message":"The model `x` does not exist"}}"#,
            "d1",
        );
        assert_eq!((e.status.as_u16(), e.code), (404, ErrorCode::ModelNotFound));
    }
}
