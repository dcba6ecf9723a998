//! OpenAI-compatible HTTP upstreams (`openai/`, `groq/`, `hosted_vllm/`, ...).

mod error;
mod request;

pub use error::upstream_error;
pub(crate) use request::HttpUpstream;
