//! Logs and traces: one `tracing` subscriber with an env filter and a text or JSON log layer on
//! stderr; and, when an OTLP endpoint is configured (or `OTEL_EXPORTER_OTLP_ENDPOINT` /
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set), the batch exporter that request spans
//! ([`crate::spans`]) go to over OTLP/gRPC, and the sampling decision. W3C trace context
//! (`traceparent`) is the propagation format.

use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderValue;
use opentelemetry_sdk::Resource;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::otlp::{ExportSettings, Exporter, Signal, without_userinfo};
use crate::spans::{SpanIds, parse_traceparent};

/// A root request is traced when a random `u64` falls below this (`u64::MAX`: always).
static SAMPLE_BELOW: AtomicU64 = AtomicU64::new(u64::MAX);

/// Whether request spans are exported (an OTLP endpoint is configured). Request spans are only
/// built when they are, so a node without a collector pays nothing for them.
pub fn traces_enabled() -> bool {
    crate::spans::exporting()
}

/// Whether to trace a request that came with `traceparent` (parent-based sampling), and if
/// so the ids of its server span. The client's own decision (its `sampled` flag) holds when it
/// sent a valid `traceparent`; otherwise a draw at the configured ratio decides. A request that
/// is not traced builds no spans at all; its client's `traceparent` is still passed upstream.
pub fn trace_request(traceparent: Option<&HeaderValue>) -> Option<SpanIds> {
    if !traces_enabled() {
        return None;
    }
    let parent = traceparent.and_then(|v| parse_traceparent(v.as_bytes()));
    let sampled = match parent {
        Some(parent) => parent.sampled,
        None => match SAMPLE_BELOW.load(Ordering::Relaxed) {
            u64::MAX => true,
            0 => false,
            below => crate::spans::random::<u64>() < below,
        },
    };
    sampled.then(|| SpanIds::server(parent))
}

/// The share of requests without a client decision that are traced (0.0–1.0).
pub fn trace_sample_ratio() -> f64 {
    match SAMPLE_BELOW.load(Ordering::Relaxed) {
        u64::MAX => 1.0,
        below => below as f64 / 18_446_744_073_709_551_616.0,
    }
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
    /// `observability.otlp.sample_ratio`; see [`trace_request`].
    pub sample_ratio: Option<f64>,
}

/// Keeps the span exporter and the log writer alive; dropping it flushes both (spans first,
/// so an export failure's warning still reaches the log).
#[derive(Debug)]
pub struct TracingGuard {
    /// The span exporter and the collector it sends to (without credentials).
    spans: Option<(Exporter, String)>,
    _logs: crate::log_writer::BatchGuard,
}

impl TracingGuard {
    /// Where spans are exported, when they are (any user and password in it masked).
    pub fn traces_endpoint(&self) -> Option<&str> {
        self.spans.as_ref().map(|(_, endpoint)| endpoint.as_str())
    }
}

/// Installs the global subscriber, and starts the OTLP export thread when traces are on.
pub fn init(settings: &TracingSettings) -> Result<TracingGuard, TracingError> {
    let filter = EnvFilter::try_from_env("TOLLGATE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let export =
        ExportSettings::resolve(Signal::Traces, settings.otlp_endpoint.as_deref(), |name| {
            std::env::var(name).ok()
        });
    let spans = match export {
        Some(export) => {
            let resource = Resource::builder()
                .with_service_name(settings.service_name.clone())
                .build();
            let (exporter, queue) = Exporter::start(&export, &resource)
                .map_err(|e| TracingError::Exporter(e.to_string()))?;
            crate::spans::install(queue);
            Some((exporter, without_userinfo(&export.endpoint)))
        }
        None => None,
    };
    // Log lines are written in batches by a dedicated thread: a request never waits on stderr.
    let (writer, logs) = crate::log_writer::batch_writer(std::io::stderr());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    crate::access::install(writer.clone(), settings.json_logs);
    log_subscriber(filter, settings.json_logs, ansi, writer)
        .try_init()
        .map_err(|_| TracingError::AlreadySet)?;
    SAMPLE_BELOW.store(
        threshold(sample_ratio(settings.sample_ratio)),
        Ordering::Relaxed,
    );
    Ok(TracingGuard { spans, _logs: logs })
}

/// The log subscriber: `filter`, then spans turned off for everyone (library spans, the actor
/// runtime's say, are not worth building on every request for logs that never show them; our
/// own spans go to OTLP without `tracing`), then one text or JSON layer writing to `writer`.
///
/// Both filters are global on purpose. A per-layer filter remembers its verdict in a
/// thread-local until the event it was asked about arrives; a `tracing::enabled!` check (as
/// [`crate::access`] makes for every request) asks without sending one, and the verdict left
/// behind then silenced the next event on that thread: "SIGTERM received" went missing when
/// the signal was handled on a thread that had just written an access line.
fn log_subscriber<W>(
    filter: EnvFilter,
    json: bool,
    ansi: bool,
    writer: W,
) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let no_spans = tracing_subscriber::filter::filter_fn(|metadata| !metadata.is_span());
    let (text, json) = if json {
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_span_list(false)
            .with_current_span(false)
            .with_writer(writer);
        (None, Some(layer))
    } else {
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(writer);
        (Some(layer), None)
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(no_spans)
        .with(text)
        .with(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_enabled_check_does_not_silence_the_next_event() {
        for json in [false, true] {
            let sink = crate::log_writer::tests::Sink::default();
            let (writer, flush) = crate::log_writer::batch_writer(sink.clone());
            let subscriber = log_subscriber(EnvFilter::new("info"), json, false, writer);
            tracing::subscriber::with_default(subscriber, || {
                // What `access` asks before writing an access line, then an ordinary event.
                assert!(tracing::enabled!(target: "tollgate::access", tracing::Level::INFO));
                tracing::info!("SIGTERM received");
                assert!(!tracing::enabled!(target: "tollgate::access", tracing::Level::DEBUG));
                tracing::info!("drained; stopped");
                let span = tracing::info_span!("library span");
                let _entered = span.enter();
                tracing::info!("inside a span");
            });
            drop(flush);
            let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
            for line in ["SIGTERM received", "drained; stopped", "inside a span"] {
                assert!(
                    text.contains(line),
                    "json={json}: {line:?} missing from {text}"
                );
            }
            assert!(!text.contains("library span"), "spans are off: {text}");
        }
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
