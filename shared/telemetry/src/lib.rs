//! What the node tells operators: metrics through an OpenTelemetry meter provider, exported in
//! Prometheus' text format by `opentelemetry-prometheus` (and pushed over OTLP when asked for,
//! [`OtlpPush`]); logs (text or JSON) through one `tracing` subscriber ([`init`]), written in
//! batches (`log_writer`), with the per-request access line written directly ([`access`]); and
//! request spans ([`spans`]) written as OTLP protobuf bytes, from per-deployment templates, as
//! they end and exported over OTLP/gRPC by a dedicated thread (`otlp`) (W3C trace context,
//! parent-based sampling, [`trace_request`]).
//!
//! Names follow the OpenTelemetry GenAI semantic conventions where one exists
//! (`gen_ai.server.request.duration`, `gen_ai.server.time_to_first_token`,
//! `gen_ai.client.token.usage`) and are `tollgate.*` otherwise. Every label value is bounded:
//! routes are route patterns, models configured model groups, deployments configured ids; key
//! aliases and teams appear only when the operator opts in.
//!
//! `tollgate_requests_total` and `tollgate_requests_failed_total` are recorded together under a
//! shared lock that a scrape takes exclusively, so every scrape sees the failed counter equal to
//! the 4xx + 5xx series of the total, never one updated without the other.

mod access;
mod log_writer;
mod metrics;
mod otlp;
pub mod spans;
mod traces;

pub use access::{AccessRecord, access};
pub use metrics::{CheckedPush, Metrics, MetricsError, OtlpPush, RequestRecord, UpstreamSeries};
pub use opentelemetry::KeyValue;
pub use spans::{SpanClock, SpanIds};
pub use traces::{
    TracingError, TracingGuard, TracingSettings, init, trace_request, trace_sample_ratio,
    traces_enabled,
};
