//! Building responses: JSON bodies and errors in OpenAI's shape with the headers that go with
//! them.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use tollgate_api::{ApiError, ErrorCode};

pub(crate) static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(crate) static MODEL_GROUP: HeaderName = HeaderName::from_static("x-tollgate-model-group");
pub(crate) static DEPLOYMENT: HeaderName = HeaderName::from_static("x-tollgate-deployment");
pub(crate) static ATTEMPTS: HeaderName = HeaderName::from_static("x-tollgate-attempts");
pub(crate) const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// The first `n` characters of `s`: how much of a client's own text (a model name, an id) an
/// error shows back.
pub(crate) fn first_chars(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(end, _)| &s[..end])
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, APPLICATION_JSON);
    response
}

/// An error in OpenAI's shape, with `Retry-After` when the error has one.
pub(crate) fn error_response(error: &ApiError, request_id: Option<&HeaderValue>) -> Response {
    let mut response = json(error.status, error.openai_body());
    let headers = response.headers_mut();
    if let Some(secs) = error.retry_after_secs() {
        headers.insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    for (name, value) in &error.headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    if let Some(id) = request_id {
        headers.insert(REQUEST_ID.clone(), id.clone());
    }
    response
}

/// 413 for a body over `general_settings.max_request_size_mb` (`limit` bytes).
pub(crate) fn request_too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorCode::RequestTooLarge,
        format!(
            "the request body is larger than the limit of {limit} bytes \
             (general_settings.max_request_size_mb)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_chars_cuts_at_a_character_boundary() {
        assert_eq!(first_chars("gpt-4o", 200), "gpt-4o");
        assert_eq!(first_chars("gpt-4o", 3), "gpt");
        let long = "é".repeat(300);
        assert_eq!(first_chars(&long, 200), "é".repeat(200));
        assert_eq!(first_chars("", 1), "");
    }
}
