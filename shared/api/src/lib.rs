//! The OpenAI-compatible wire contract shared by every Tollgate crate: the one error table
//! ([`ErrorCode`] → HTTP status, OpenAI `type`/`code`, retryability), the error body
//! ([`ApiError`]), the request reader that validates the fields the gateway uses and keeps every
//! other field byte-for-byte ([`request`]), token usage as providers report it ([`Usage`]) and
//! the scrubber that keeps secrets out of client-visible text ([`redact`]).
//!
//! # Layout
//! - `error`: `ErrorCode` (the table) and `ApiError` (what a client receives).
//! - `request`: `LlmRequest`, the validated view of a chat/completions/embeddings body.
//! - `json_object`: an order-preserving, zero-copy JSON object used to rewrite request bodies.
//! - `usage`: lenient token-usage parsing (integers, floats rounded up, missing fields).
//! - `redact`: removes key-shaped substrings from text that may reach a client or a log.

mod error;
mod json_object;
pub mod redact;
pub mod request;
mod usage;

pub use error::{ApiError, ErrorCode};
pub use json_object::JsonObject;
pub use request::{Endpoint, LlmRequest};
pub use usage::Usage;
