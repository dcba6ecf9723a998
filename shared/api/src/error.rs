use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;

/// Every way a request can fail, as the outside world sees it. Crate-level error enums map
/// exhaustively onto one of these; the variant alone decides the HTTP status, the OpenAI error
/// `type` and `code`, and whether another deployment may be tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Malformed JSON, a missing field or a wrong type or value (400).
    InvalidRequest,
    /// The body is larger than `general_settings.max_request_size_mb` (413).
    RequestTooLarge,
    /// No credential, an unknown one, or an expired or blocked key (401).
    InvalidApiKey,
    /// The credential is valid but may not use the requested model (403).
    ModelNotAllowed,
    /// The credential is valid but its role may not call the route (403).
    RouteNotAllowed,
    /// No model group of that name (404).
    ModelNotFound,
    /// No route at that path (404).
    RouteNotFound,
    /// The path exists, but not for that method (405).
    MethodNotAllowed,
    /// A budget has no room for the request's worst-case cost (400).
    BudgetExceeded,
    /// A rate limit of ours or the upstream's (429).
    RateLimited,
    /// The fair queue's wait was exceeded or the queue is full (429).
    QueueTimeout,
    /// The upstream did not answer in time (504).
    UpstreamTimeout,
    /// The upstream failed, could not be reached or sent something unusable (502).
    UpstreamError,
    /// The upstream refused the request as the client's fault (the upstream's 4xx status).
    UpstreamRejected,
    /// The node is shutting down or otherwise cannot take the request (503).
    Unavailable,
    /// The budget ledger cannot be read, so no spend can be admitted: fail closed (503).
    BudgetUnavailable,
    /// A bug in the gateway; details are in the log, never in the response (500).
    Internal,
}

impl ErrorCode {
    /// The HTTP status this code is answered with when no upstream status overrides it.
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidRequest | Self::BudgetExceeded | Self::UpstreamRejected => {
                StatusCode::BAD_REQUEST
            }
            Self::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidApiKey => StatusCode::UNAUTHORIZED,
            Self::ModelNotAllowed | Self::RouteNotAllowed => StatusCode::FORBIDDEN,
            Self::ModelNotFound | Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RateLimited | Self::QueueTimeout => StatusCode::TOO_MANY_REQUESTS,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::UpstreamError => StatusCode::BAD_GATEWAY,
            Self::Unavailable | Self::BudgetUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// OpenAI's `error.type`.
    pub fn error_type(self) -> &'static str {
        match self {
            Self::InvalidRequest
            | Self::RequestTooLarge
            | Self::ModelNotFound
            | Self::RouteNotFound
            | Self::MethodNotAllowed
            | Self::UpstreamRejected => "invalid_request_error",
            Self::InvalidApiKey => "authentication_error",
            Self::ModelNotAllowed | Self::RouteNotAllowed => "permission_denied",
            Self::BudgetExceeded => "budget_exceeded",
            Self::RateLimited | Self::QueueTimeout => "rate_limit_error",
            Self::UpstreamTimeout => "timeout",
            Self::UpstreamError | Self::Internal => "api_error",
            Self::Unavailable | Self::BudgetUnavailable => "service_unavailable",
        }
    }

    /// OpenAI's `error.code`.
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::RequestTooLarge => "request_too_large",
            Self::InvalidApiKey => "invalid_api_key",
            Self::ModelNotAllowed => "model_not_allowed",
            Self::RouteNotAllowed => "route_not_allowed",
            Self::ModelNotFound => "model_not_found",
            Self::RouteNotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::BudgetExceeded => "budget_exceeded",
            Self::RateLimited => "rate_limit_exceeded",
            Self::QueueTimeout => "queue_timeout",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::UpstreamError => "upstream_error",
            Self::UpstreamRejected => "upstream_rejected",
            Self::Unavailable => "service_unavailable",
            Self::BudgetUnavailable => "budget_unavailable",
            Self::Internal => "internal_error",
        }
    }

    /// Whether the same request may be sent to another deployment.
    pub fn retryable(self) -> bool {
        match self {
            Self::RateLimited | Self::UpstreamTimeout | Self::UpstreamError => true,
            Self::InvalidRequest
            | Self::RequestTooLarge
            | Self::InvalidApiKey
            | Self::ModelNotAllowed
            | Self::RouteNotAllowed
            | Self::ModelNotFound
            | Self::RouteNotFound
            | Self::MethodNotAllowed
            | Self::BudgetExceeded
            | Self::QueueTimeout
            | Self::UpstreamRejected
            | Self::Unavailable
            | Self::BudgetUnavailable
            | Self::Internal => false,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An error as a client receives it. The message must already be safe to show: it never holds a
/// key, a key hash, an upstream credential or a raw upstream body (see [`crate::redact`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// The request field at fault, when there is one.
    pub param: Option<String>,
    /// The upstream's own status, kept when the upstream refused the request.
    pub status: StatusCode,
    /// Seconds until a retry may succeed; sent as `Retry-After`.
    pub retry_after: Option<Duration>,
    /// Further headers the response carries (OpenAI's `x-ratelimit-*` on our own 429s).
    pub headers: Vec<(&'static str, String)>,
}

#[derive(Serialize)]
struct OpenAiBody<'a> {
    error: OpenAiError<'a>,
}

#[derive(Serialize)]
struct OpenAiError<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: &'a str,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            param: None,
            status: code.status(),
            retry_after: None,
            headers: Vec::new(),
        }
    }

    /// A 400 naming the request field at fault.
    pub fn invalid_field(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            param: Some(param.into()),
            ..Self::new(ErrorCode::InvalidRequest, message)
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl ToString) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }

    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    /// `{"error": {"message", "type", "param", "code"}}`: OpenAI's shape, every field present.
    pub fn openai_body(&self) -> Bytes {
        let body = OpenAiBody {
            error: OpenAiError {
                message: &self.message,
                kind: self.code.error_type(),
                param: self.param.as_deref(),
                code: self.code.code(),
            },
        };
        Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
    }

    /// `Retry-After` in whole seconds, rounded up so a client never retries too early.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after
            .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_body_has_every_field() {
        let err = ApiError::invalid_field("messages", "`messages` must be an array");
        let v: serde_json::Value = serde_json::from_slice(&err.openai_body()).unwrap();
        assert_eq!(v["error"]["message"], "`messages` must be an array");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], "messages");
        assert_eq!(v["error"]["code"], "invalid_request");
        let none = ApiError::new(ErrorCode::InvalidApiKey, "no key");
        let v: serde_json::Value = serde_json::from_slice(&none.openai_body()).unwrap();
        assert!(v["error"].as_object().unwrap().contains_key("param"));
        assert!(v["error"]["param"].is_null());
    }

    #[test]
    fn interface_table_statuses() {
        use ErrorCode::*;
        let table = [
            (InvalidRequest, 400, "invalid_request_error"),
            (InvalidApiKey, 401, "authentication_error"),
            (ModelNotAllowed, 403, "permission_denied"),
            (RouteNotAllowed, 403, "permission_denied"),
            (ModelNotFound, 404, "invalid_request_error"),
            (BudgetExceeded, 400, "budget_exceeded"),
            (RateLimited, 429, "rate_limit_error"),
            (QueueTimeout, 429, "rate_limit_error"),
            (UpstreamTimeout, 504, "timeout"),
            (UpstreamError, 502, "api_error"),
            (RequestTooLarge, 413, "invalid_request_error"),
        ];
        for (code, status, kind) in table {
            assert_eq!(code.status().as_u16(), status, "{code}");
            assert_eq!(code.error_type(), kind, "{code}");
        }
    }

    #[test]
    fn retry_after_rounds_up() {
        let err = ApiError::new(ErrorCode::RateLimited, "slow down")
            .with_retry_after(Duration::from_millis(1500));
        assert_eq!(err.retry_after_secs(), Some(2));
    }
}
