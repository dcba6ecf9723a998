//! The validated view of an LLM request body.
//!
//! Only the fields the gateway itself acts on are checked (a wrong type is a 400 naming the
//! field); every other field stays in the [`JsonObject`] as the client's own bytes and is sent
//! upstream untouched.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::json_object::write_json_string;
use crate::{ApiError, ErrorCode, JsonObject};

/// The LLM operations the gateway routes to providers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
}

impl Endpoint {
    /// The path below the provider's base URL (`…/v1`).
    pub fn upstream_path(self) -> &'static str {
        match self {
            Self::ChatCompletions => "/chat/completions",
            Self::Completions => "/completions",
            Self::Embeddings => "/embeddings",
        }
    }

    /// Whether the operation can stream.
    pub fn streams(self) -> bool {
        !matches!(self, Self::Embeddings)
    }
}

/// A request body that passed validation, ready to be rewritten for an upstream.
#[derive(Clone, Debug)]
pub struct LlmRequest<'a> {
    pub endpoint: Endpoint,
    /// The public model name (a `model_name` of the config).
    pub model: String,
    pub stream: bool,
    /// The client asked for the final usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    /// `max_completion_tokens`, else `max_tokens`.
    pub max_tokens: Option<u64>,
    body: JsonObject<'a>,
}

impl<'a> LlmRequest<'a> {
    /// Validates `bytes` as a request for `endpoint`. Every failure is a 400 whose message says
    /// what was wrong and, for a field, which one.
    pub fn parse(endpoint: Endpoint, bytes: &'a [u8]) -> Result<Self, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(invalid(
                "the request body is empty; expected a JSON object with `model`",
            ));
        }
        if let Err(e) = std::str::from_utf8(bytes) {
            return Err(invalid(format!(
                "the request body is not valid UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            )));
        }
        let body = JsonObject::parse(bytes).map_err(|e| {
            if e.is_data() {
                invalid("the request body must be a JSON object")
            } else {
                invalid(format!("the request body is not valid JSON: {e}"))
            }
        })?;

        let model = required::<Cow<'_, str>>(&body, "model", "a string")?;
        if model.trim().is_empty() {
            return Err(ApiError::invalid_field(
                "model",
                "`model` must not be empty",
            ));
        }
        let model = model.into_owned();
        match endpoint {
            Endpoint::ChatCompletions => check_messages(&body)?,
            Endpoint::Completions => {
                required::<PromptShape>(&body, "prompt", "a string or an array")?;
            }
            Endpoint::Embeddings => {
                required::<PromptShape>(&body, "input", "a string or an array")?;
            }
        }
        let stream = optional::<bool>(&body, "stream", "a boolean")?.unwrap_or(false);
        if stream && !endpoint.streams() {
            return Err(ApiError::invalid_field(
                "stream",
                "`stream` is not supported for embeddings",
            ));
        }
        let include_usage = optional::<StreamOptions>(&body, "stream_options", "an object")?
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        let max_tokens = optional::<u64>(&body, "max_tokens", "a non-negative integer")?;
        let max_completion =
            optional::<u64>(&body, "max_completion_tokens", "a non-negative integer")?;
        if let Some(0) = optional::<u64>(&body, "n", "a positive integer")? {
            return Err(ApiError::invalid_field("n", "`n` must be at least 1"));
        }
        optional::<Vec<IgnoredAny>>(&body, "tools", "an array")?;
        optional::<ToolChoice>(&body, "tool_choice", "a string or an object")?;

        Ok(Self {
            endpoint,
            model,
            stream,
            include_usage,
            max_tokens: max_completion.or(max_tokens),
            body,
        })
    }

    /// The raw JSON of a field of the body, as the client sent it.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.body.get(name)
    }

    /// The body to send upstream: `model` replaced by the deployment's model, and for streams
    /// `stream_options.include_usage` forced on so usage is always known. Every other field is
    /// the client's own bytes, in the client's order.
    pub fn upstream_body(&self, upstream_model: &str, extra: &[(&str, String)]) -> Vec<u8> {
        let mut body = self.body.clone();
        let mut model = Vec::with_capacity(upstream_model.len() + 2);
        write_json_string(&mut model, upstream_model);
        body.set("model", String::from_utf8_lossy(&model).into_owned());
        if self.stream {
            body.set("stream_options", self.forced_stream_options());
        }
        for (name, json) in extra {
            body.set(name, json.clone());
        }
        body.to_vec()
    }

    fn forced_stream_options(&self) -> String {
        let existing = self
            .body
            .get("stream_options")
            .and_then(|raw| JsonObject::parse(raw.as_bytes()).ok());
        let mut options = existing.unwrap_or_default();
        options.set("include_usage", "true".to_owned());
        String::from_utf8_lossy(&options.to_vec()).into_owned()
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, message)
}

fn optional<'a, T: Deserialize<'a>>(
    body: &'a JsonObject<'a>,
    name: &str,
    expected: &str,
) -> Result<Option<T>, ApiError> {
    match body.get(name) {
        None | Some("null") => Ok(None),
        Some(raw) => serde_json::from_str::<T>(raw)
            .map(Some)
            .map_err(|_| ApiError::invalid_field(name, format!("`{name}` must be {expected}"))),
    }
}

fn required<'a, T: Deserialize<'a>>(
    body: &'a JsonObject<'a>,
    name: &str,
    expected: &str,
) -> Result<T, ApiError> {
    optional(body, name, expected)?.ok_or_else(|| {
        ApiError::invalid_field(name, format!("`{name}` is required and must be {expected}"))
    })
}

fn check_messages(body: &JsonObject<'_>) -> Result<(), ApiError> {
    let messages = required::<Vec<MessageShape<'_>>>(
        body,
        "messages",
        "an array of objects with a string `role`",
    )?;
    if messages.is_empty() {
        return Err(ApiError::invalid_field(
            "messages",
            "`messages` must contain at least one message",
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
struct MessageShape<'a> {
    #[serde(borrow)]
    #[expect(dead_code, reason = "deserialized only to check the type")]
    role: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PromptShape {
    Text(IgnoredString),
    List(#[expect(dead_code, reason = "type check only")] Vec<IgnoredAny>),
}

/// Accepts any JSON string without keeping it.
struct IgnoredString;

impl<'de> Deserialize<'de> for IgnoredString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Cow::<'de, str>::deserialize(d).map(|_| IgnoredString)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ToolChoice {
    Mode(IgnoredString),
    Named(
        #[expect(dead_code, reason = "type check only")] serde_json::Map<String, serde_json::Value>,
    ),
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[cfg(test)]
mod tests;
