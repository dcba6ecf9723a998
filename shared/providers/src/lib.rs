//! The upstreams Tollgate calls: one prepared [`Upstream`] per deployment, all sharing one
//! pooled HTTP client (HTTP/1.1 and HTTP/2 over rustls), or the built-in `mock/` provider that
//! answers in-process.
//!
//! An upstream call returns a [`Reply`]: the upstream's status, the headers worth keeping and a
//! body stream. What a reply means (an error to map, usage to read, a stream to filter) is
//! decided by the helpers here, the same way for every provider.
//!
//! # Layout
//! - `client`: [`HttpClient`], the one pooled HTTP client (hyper-util over rustls).
//! - `upstream`: [`Upstreams`] (the shared client and the prepared deployments) and [`Upstream`].
//! - `openai`: OpenAI-compatible HTTP upstreams: `request` (URL, headers), `error` (upstream
//!   status → [`ApiError`], Retry-After in all its forms).
//! - `mock`: the in-process `mock/` provider, backed by `tollgate-mock`.
//! - `sse`: the stream filter that passes chunks through, reads usage, and drops the usage chunk
//!   the client did not ask for.
//! - `error`: [`ProviderError`] and its one mapping to [`ApiError`].

pub mod client;
mod error;
mod mock;
mod openai;
pub mod sse;
mod upstream;

pub use client::HttpClient;
pub use error::ProviderError;
pub use openai::upstream_error;
pub use upstream::{Body, Call, Reply, TraceContext, Upstream, Upstreams, collect};

pub use tollgate_api::ApiError;
