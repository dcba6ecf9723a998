//! The one table from what went wrong to what the caller sees: status, headers and the error
//! body in the shape of the API that was called (OpenAI's or Anthropic's).

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Serialize;

use crate::fault::UnknownFault;
use crate::{Api, MockBody, MockResponse};

/// Why the mock refused a request, either because the request is invalid or because a fault
/// was scripted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MockError {
    #[error("We could not parse the JSON body of your request: {0}")]
    InvalidJson(String),
    #[error("you must provide a `{0}` field")]
    MissingField(&'static str),
    #[error("invalid value for `{field}`: {reason}")]
    InvalidField {
        field: &'static str,
        reason: &'static str,
    },
    #[error("invalid header `{0}`: expected a non-negative integer")]
    InvalidHeader(&'static str),
    #[error(transparent)]
    UnknownFault(UnknownFault),
    #[error("Incorrect API key provided.")]
    InvalidApiKey,
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    ModelNotFound(String),
    #[error(
        "Rate limit reached for requests (mock fault). Please try again in {retry_after_secs}s."
    )]
    RateLimited { retry_after_secs: u64 },
    #[error("The server had an error while processing your request (mock fault).")]
    ServerError,
    #[error("The server is overloaded or not ready yet (mock fault).")]
    Unavailable,
    #[error("The mock provider did not answer in time (mock fault).")]
    Timeout,
}

/// The small set of outcomes that decide status and error type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ErrorCode {
    BadRequest,
    Unauthorized,
    NotFound,
    RateLimited,
    ServerError,
    Unavailable,
    Timeout,
}

impl ErrorCode {
    fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    fn openai_type(self) -> &'static str {
        match self {
            ErrorCode::BadRequest | ErrorCode::Unauthorized | ErrorCode::NotFound => {
                "invalid_request_error"
            }
            ErrorCode::RateLimited => "requests",
            ErrorCode::ServerError | ErrorCode::Unavailable | ErrorCode::Timeout => "server_error",
        }
    }

    fn anthropic_type(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "invalid_request_error",
            ErrorCode::Unauthorized => "authentication_error",
            ErrorCode::NotFound => "not_found_error",
            ErrorCode::RateLimited => "rate_limit_error",
            ErrorCode::ServerError | ErrorCode::Timeout => "api_error",
            ErrorCode::Unavailable => "overloaded_error",
        }
    }
}

impl MockError {
    fn code(&self) -> ErrorCode {
        match self {
            MockError::InvalidJson(_)
            | MockError::MissingField(_)
            | MockError::InvalidField { .. }
            | MockError::InvalidHeader(_)
            | MockError::UnknownFault(_) => ErrorCode::BadRequest,
            MockError::InvalidApiKey => ErrorCode::Unauthorized,
            MockError::ModelNotFound(_) => ErrorCode::NotFound,
            MockError::RateLimited { .. } => ErrorCode::RateLimited,
            MockError::ServerError => ErrorCode::ServerError,
            MockError::Unavailable => ErrorCode::Unavailable,
            MockError::Timeout => ErrorCode::Timeout,
        }
    }

    /// OpenAI's machine-readable `code`, where OpenAI sends one.
    fn openai_code(&self) -> Option<&'static str> {
        match self {
            MockError::InvalidApiKey => Some("invalid_api_key"),
            MockError::ModelNotFound(_) => Some("model_not_found"),
            MockError::RateLimited { .. } => Some("rate_limit_exceeded"),
            MockError::InvalidJson(_)
            | MockError::MissingField(_)
            | MockError::InvalidField { .. }
            | MockError::InvalidHeader(_)
            | MockError::UnknownFault(_)
            | MockError::ServerError
            | MockError::Unavailable
            | MockError::Timeout => None,
        }
    }

    /// The error response in the shape of `api`.
    pub fn into_response(self, api: Api) -> MockResponse {
        let code = self.code();
        let message = self.to_string();
        let body = match api {
            Api::AnthropicMessages => serde_json::to_vec(&AnthropicError {
                kind: "error",
                error: AnthropicErrorBody {
                    kind: code.anthropic_type(),
                    message: &message,
                },
            }),
            Api::ChatCompletions | Api::Completions | Api::Embeddings | Api::Models => {
                serde_json::to_vec(&OpenAiError {
                    error: OpenAiErrorBody {
                        message: &message,
                        kind: code.openai_type(),
                        param: None,
                        code: self.openai_code(),
                    },
                })
            }
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let MockError::RateLimited { retry_after_secs } = self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            let millis = retry_after_secs.saturating_mul(1000);
            headers.insert("retry-after-ms", HeaderValue::from(millis));
        }
        MockResponse {
            status: code.status(),
            headers,
            // Serializing these plain structs cannot fail; an empty body is the safe fallback.
            body: MockBody::Full(Bytes::from(body.unwrap_or_default())),
        }
    }
}

#[derive(Serialize)]
struct OpenAiError<'a> {
    error: OpenAiErrorBody<'a>,
}

#[derive(Serialize)]
struct OpenAiErrorBody<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    param: Option<&'static str>,
    code: Option<&'static str>,
}

#[derive(Serialize)]
struct AnthropicError<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: AnthropicErrorBody<'a>,
}

#[derive(Serialize)]
struct AnthropicErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}
