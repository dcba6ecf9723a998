//! Logs and traces: one `tracing` subscriber with an env filter, a text or JSON log layer on
//! stderr, and — when an OTLP endpoint is configured (or `OTEL_EXPORTER_OTLP_ENDPOINT` /
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set) — an OpenTelemetry layer exporting spans over
//! OTLP/gRPC in batches. W3C trace context (`traceparent`) is the propagation format.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Whether spans go anywhere. Request spans are only built when they do, so a node without
/// a collector pays nothing for them.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// A root request is traced when a random `u64` falls below this (`u64::MAX`: always).
static SAMPLE_BELOW: AtomicU64 = AtomicU64::new(u64::MAX);

/// Whether request spans are exported (an OTLP endpoint is configured).
pub fn traces_enabled() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Whether to trace a request that came with `traceparent` (parent-based sampling): the
/// client's own decision (its `sampled` flag) when it sent a valid one, else a draw at the
/// configured ratio. A request that is not traced builds no spans at all; its client's
/// `traceparent` is still passed upstream.
pub fn should_trace(traceparent: Option<&HeaderValue>) -> bool {
    if !traces_enabled() {
        return false;
    }
    if let Some(sampled) = traceparent.and_then(|v| parent_sampled(v.as_bytes())) {
        return sampled;
    }
    match SAMPLE_BELOW.load(Ordering::Relaxed) {
        u64::MAX => true,
        0 => false,
        below => rand::random::<u64>() < below,
    }
}

/// The share of requests without a client decision that are traced (0.0–1.0).
pub fn trace_sample_ratio() -> f64 {
    match SAMPLE_BELOW.load(Ordering::Relaxed) {
        u64::MAX => 1.0,
        below => below as f64 / 18_446_744_073_709_551_616.0,
    }
}

/// The `sampled` flag of a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`), or `None`
/// when it is not a valid one (it is then ignored, as the propagator ignores it).
fn parent_sampled(value: &[u8]) -> Option<bool> {
    let text = std::str::from_utf8(value).ok()?;
    let mut parts = text.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    let valid = hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && hex(span, 16)
        && span.bytes().any(|b| b != b'0')
        && hex(flags, 2)
        && (version != "00" || parts.next().is_none());
    valid.then(|| u8::from_str_radix(flags, 16).is_ok_and(|f| f & 1 == 1))
}

/// The share of root requests traced: `observability.otlp.sample_ratio`, else the standard
/// `OTEL_TRACES_SAMPLER` (`always_on`, `always_off`, `traceidratio`, and their `parentbased_`
/// forms, which is how this node samples anyway) with `OTEL_TRACES_SAMPLER_ARG`, else 1.
fn sample_ratio(configured: Option<f64>) -> f64 {
    if let Some(ratio) = configured {
        return ratio.clamp(0.0, 1.0);
    }
    let sampler = std::env::var("OTEL_TRACES_SAMPLER").unwrap_or_default();
    match sampler.trim().trim_start_matches("parentbased_") {
        "always_off" => 0.0,
        "traceidratio" => std::env::var("OTEL_TRACES_SAMPLER_ARG")
            .ok()
            .and_then(|arg| arg.trim().parse::<f64>().ok())
            .filter(|ratio| (0.0..=1.0).contains(ratio))
            .unwrap_or(1.0),
        _ => 1.0,
    }
}

/// The draw threshold for a ratio.
fn threshold(ratio: f64) -> u64 {
    if ratio >= 1.0 {
        u64::MAX
    } else if ratio <= 0.0 {
        0
    } else {
        // In (0, 1): the product is below 2^64, and at least 1 for any ratio worth asking for.
        ((ratio * 18_446_744_073_709_551_616.0) as u64).max(1)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TracingError {
    #[error("OTLP trace exporter: {0}")]
    Exporter(String),
    #[error("a global tracing subscriber is already set")]
    AlreadySet,
}

/// How logs and traces are set up.
#[derive(Clone, Debug, Default)]
pub struct TracingSettings {
    pub json_logs: bool,
    /// `observability.otlp.endpoint`; the standard OTEL variables apply when absent.
    pub otlp_endpoint: Option<String>,
    pub service_name: String,
    /// `observability.otlp.sample_ratio`; see [`should_trace`].
    pub sample_ratio: Option<f64>,
}

/// Keeps the span exporter and the log writer alive; dropping it flushes both.
#[derive(Debug)]
pub struct TracingGuard {
    provider: Option<SdkTracerProvider>,
    _logs: crate::log_writer::BatchGuard,
}

impl Drop for TracingGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

fn env_endpoint() -> bool {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()))
}

/// Installs the global subscriber. Must run inside a Tokio runtime when OTLP is on (the
/// exporter's channel and batch worker live there).
pub fn init(settings: &TracingSettings) -> Result<TracingGuard, TracingError> {
    let filter = EnvFilter::try_from_env("TOLLGATE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let provider = if settings.otlp_endpoint.is_some() || env_endpoint() {
        let mut builder = opentelemetry_otlp::SpanExporter::builder().with_tonic();
        if let Some(endpoint) = &settings.otlp_endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        let exporter = builder
            .build()
            .map_err(|e| TracingError::Exporter(e.to_string()))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name(settings.service_name.clone())
                    .build(),
            )
            .build();
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        Some(provider)
    } else {
        None
    };
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("tollgate"))
            .with_tracked_inactivity(false)
            // Source locations, thread names and targets on every span cost every request and
            // tell an operator nothing about it.
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_level(false)
            // Start a span's context lazily, so its name can still be set after it is entered.
            .with_context_activation(false)
            // Only the gateway's own spans (request, upstream attempt) are exported, not the
            // internal spans of libraries such as the actor runtime.
            .with_filter(tracing_subscriber::filter::filter_fn(|metadata| {
                metadata.is_span() && metadata.target().starts_with("tollgate")
            }))
    });
    // Log lines are written in batches by a dedicated thread: a request never waits on stderr.
    let (writer, logs) = crate::log_writer::batch_writer(std::io::stderr());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    crate::access::install(writer.clone(), settings.json_logs);
    let (text, json) = if settings.json_logs {
        (
            None,
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_span_list(false)
                    .with_current_span(false)
                    .with_writer(writer)
                    .with_filter(events_only()),
            ),
        )
    } else {
        (
            Some(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_writer(writer)
                    .with_filter(events_only()),
            ),
            None,
        )
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .with(otel)
        .try_init()
        .map_err(|_| TracingError::AlreadySet)?;
    EXPORTING.store(provider.is_some(), Ordering::Relaxed);
    SAMPLE_BELOW.store(
        threshold(sample_ratio(settings.sample_ratio)),
        Ordering::Relaxed,
    );
    Ok(TracingGuard {
        provider,
        _logs: logs,
    })
}

/// The log layers print events; spans are for the trace exporter, and formatting their fields
/// for logs that never show them would cost every request.
fn events_only() -> tracing_subscriber::filter::FilterFn {
    tracing_subscriber::filter::filter_fn(|metadata| metadata.is_event())
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// Makes `span` a child of the client's `traceparent`, when it sent a valid one.
pub fn adopt_parent(span: &tracing::Span, headers: &HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

struct PairInjector<'a>(&'a mut Vec<(&'static str, HeaderValue)>);

impl Injector for PairInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let name = match key {
            "traceparent" => "traceparent",
            "tracestate" => "tracestate",
            _ => return,
        };
        if let Ok(value) = HeaderValue::from_str(&value) {
            self.0.push((name, value));
        }
    }
}

/// The W3C trace headers of `span` for an upstream request (empty when it has no context).
pub fn trace_headers(span: &tracing::Span) -> Vec<(&'static str, HeaderValue)> {
    let mut out = Vec::new();
    let context = span.context();
    if context.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&context, &mut PairInjector(&mut out));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_sampling_flag_is_read_from_a_valid_traceparent_only() {
        let tp = |s: &str| parent_sampled(s.as_bytes());
        assert_eq!(
            tp("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            Some(true)
        );
        assert_eq!(
            tp("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"),
            Some(false)
        );
        assert_eq!(
            tp("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03"),
            Some(true),
            "other flag bits do not matter"
        );
        for invalid in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-0af7651916cd43dd8448eb211c80319z-b7ad6b7169203331-01",
        ] {
            assert_eq!(tp(invalid), None, "{invalid:?}");
        }
        assert_eq!(
            tp("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-future"),
            Some(true),
            "a later version may carry more fields"
        );
    }

    #[test]
    fn ratios_become_thresholds_at_both_ends_and_between() {
        assert_eq!(threshold(1.0), u64::MAX);
        assert_eq!(threshold(0.0), 0);
        let quarter = threshold(0.25);
        assert_eq!(quarter, 1 << 62);
        assert!(
            threshold(1e-30) >= 1,
            "a tiny ratio still samples sometimes"
        );
        assert_eq!(sample_ratio(Some(0.25)), 0.25);
        assert_eq!(sample_ratio(Some(7.0)), 1.0);
    }
}
