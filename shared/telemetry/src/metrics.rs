use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use std::collections::HashMap;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{
    BoundCounter, BoundHistogram, Counter, Gauge, Histogram, MeterProvider as _,
    ObservableUpDownCounter,
};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Temporality,
};
use prometheus::{Encoder, TextEncoder};
use prost::Message as _;

use crate::otlp::{PushPlan, PushSettings, Pusher};

/// Latency buckets in seconds (OTel's defaults assume milliseconds).
const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0,
    160.0, 320.0,
];
/// Token-count buckets (the GenAI conventions' advice).
const TOKENS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics exporter: {0}")]
    Exporter(String),
    #[error("OTLP metrics push: {0}")]
    Push(String),
}

/// Pushing metrics to an OTLP collector besides serving them to Prometheus:
/// `observability.otlp.endpoint` and `observability.otlp.metrics`, the standard
/// `OTEL_METRICS_EXPORTER`, `OTEL_METRIC_EXPORT_INTERVAL` and `OTEL_EXPORTER_OTLP_[METRICS_]*`
/// variables filling in the rest. Off unless asked for: a backend that also scrapes
/// `/metrics` would count everything twice.
#[derive(Clone, Debug, Default)]
pub struct OtlpPush {
    pub endpoint: Option<String>,
    pub enabled: Option<bool>,
}

impl OtlpPush {
    /// Checks these settings, with what the standard variables add, and configures the push's
    /// client, starting nothing: a node does so before it opens its store, so that a wrong
    /// setting fails the start first, and hands the result to [`Metrics::with_otlp_push`].
    pub fn check(&self) -> Result<CheckedPush, MetricsError> {
        let settings = PushSettings::resolve(self.endpoint.as_deref(), self.enabled, |name| {
            std::env::var(name).ok()
        })
        .map_err(MetricsError::Push)?;
        settings
            .map(|settings| PushPlan::new(&settings))
            .transpose()
            .map(CheckedPush)
            .map_err(|e| MetricsError::Push(e.to_string()))
    }
}

/// An OTLP metrics push as [`OtlpPush::check`] found it: off, or checked and ready to start.
#[derive(Debug)]
pub struct CheckedPush(Option<PushPlan>);

/// One finished request, as the outcome point describes it. Label values are static or shared
/// strings, so recording one allocates no label text.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    pub status: u16,
    pub route: &'static str,
    pub model: Arc<str>,
    pub provider: &'static str,
    /// `chat`, `text_completion`, `embeddings` for LLM routes.
    pub operation: Option<&'static str>,
    pub duration: Duration,
    /// Streams: time to the first byte sent to the client.
    pub ttft: Option<Duration>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    /// The error code, for failures.
    pub error: Option<&'static str>,
}

/// The node's instruments and the registry `/metrics` renders.
#[derive(Debug)]
pub struct Metrics {
    /// `false`: every recording method returns at once (metrics switched off).
    enabled: bool,
    registry: prometheus::Registry,
    /// Dropped before the provider: its last push reads the provider.
    push: Option<(Pusher, String)>,
    _provider: SdkMeterProvider,
    /// Recording the two request counters takes it shared; a scrape (or an OTLP push) takes
    /// it exclusive.
    scrape: Arc<RwLock<()>>,
    requests: Counter<u64>,
    failed: Counter<u64>,
    /// Requests being handled, kept by whoever handles them ([`Metrics::in_flight_counter`])
    /// and read by the `tollgate.requests.in_flight` instrument when metrics are collected: no
    /// measurement through the SDK per request.
    in_flight: Arc<AtomicI64>,
    _in_flight_instrument: ObservableUpDownCounter<i64>,
    duration: Histogram<f64>,
    ttft: Histogram<f64>,
    tokens: Histogram<u64>,
    upstream: Histogram<f64>,
    spend: Counter<u64>,
    remaining: Gauge<u64>,
    rejections: Counter<u64>,
    /// Instruments bound to the label sets seen so far, so a request records without hashing
    /// its labels in the SDK (on the benchmark: ~13k -> ~2k instructions per request).
    bound_requests: BoundCache<RequestKey, RequestSeries>,
    bound_spend: BoundCache<[Id; 2], BoundCounter<u64>>,
}

/// Instruments bound to label sets seen so far. Keys are the identities (address, length) of
/// the label strings: route patterns, provider names and error codes are static, model groups
/// and deployment ids are shared strings made once from the config. Past [`MAX_BOUND`] sets a
/// new set is bound for the one recording and not kept, so no input grows this without bound.
struct BoundCache<K, V> {
    /// Keys are a few words of addresses and numbers, none chosen by a client: a fast hash.
    map: RwLock<HashMap<K, V, foldhash::fast::RandomState>>,
}

const MAX_BOUND: usize = 4096;

impl<K: std::hash::Hash + Eq, V> BoundCache<K, V> {
    fn new() -> Self {
        Self {
            map: RwLock::default(),
        }
    }

    /// Records through the instruments bound to `key`, binding them with `bind` the first time.
    fn record(&self, key: K, bind: impl FnOnce() -> V, record: impl FnOnce(&V)) {
        {
            let map = self.map.read().unwrap_or_else(|e| e.into_inner());
            if let Some(bound) = map.get(&key) {
                record(bound);
                return;
            }
        }
        let bound = bind();
        record(&bound);
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.len() < MAX_BOUND {
            map.insert(key, bound);
        }
    }
}

impl<K, V> std::fmt::Debug for BoundCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        write!(f, "BoundCache({} label sets)", map.len())
    }
}

/// A label string's identity.
type Id = (usize, usize);

fn id(s: &str) -> Id {
    (s.as_ptr() as usize, s.len())
}

#[derive(Clone, Copy, Hash, PartialEq, Eq)]
struct RequestKey {
    status: u16,
    route: Id,
    model: Id,
    provider: Id,
    operation: Option<Id>,
    error: Option<Id>,
}

/// A deployment's `tollgate.upstream.duration` series, one per outcome ([`Metrics::upstream_series`]).
pub struct UpstreamSeries(Option<[BoundHistogram<f64>; 2]>);

impl UpstreamSeries {
    /// One upstream attempt, `ok` or not, that took `took`.
    pub fn record(&self, ok: bool, took: Duration) {
        if let Some([succeeded, failed]) = &self.0 {
            let series = if ok { succeeded } else { failed };
            series.record(took.as_secs_f64());
        }
    }
}

impl std::fmt::Debug for UpstreamSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "UpstreamSeries"
        } else {
            "UpstreamSeries(off)"
        })
    }
}

/// Everything one request records, bound to its labels.
struct RequestSeries {
    requests: BoundCounter<u64>,
    failed: Option<BoundCounter<u64>>,
    /// LLM routes only.
    gen_ai: Option<GenAiSeries>,
}

struct GenAiSeries {
    duration: BoundHistogram<f64>,
    ttft: BoundHistogram<f64>,
    input_tokens: BoundHistogram<u64>,
    output_tokens: BoundHistogram<u64>,
}

impl Metrics {
    /// Instruments that record nothing (`observability.metrics.enabled: false`).
    pub fn disabled() -> Result<Metrics, MetricsError> {
        let mut metrics = Self::new("tollgate")?;
        metrics.enabled = false;
        Ok(metrics)
    }

    pub fn new(service_name: &str) -> Result<Metrics, MetricsError> {
        Self::build(service_name, None)
    }

    /// [`Metrics::new`], also pushing to an OTLP collector when the checked settings say so.
    pub fn with_otlp_push(service_name: &str, push: CheckedPush) -> Result<Metrics, MetricsError> {
        Self::build(service_name, push.0)
    }

    /// Where metrics are pushed over OTLP, and how often, when they are.
    pub fn pushing_to(&self) -> Option<&str> {
        self.push.as_ref().map(|(_, to)| to.as_str())
    }

    pub(crate) fn build(
        service_name: &str,
        push: Option<PushPlan>,
    ) -> Result<Metrics, MetricsError> {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .scope_info_enabled(false)
            .build()
            .map_err(|e| MetricsError::Exporter(e.to_string()))?;
        let mut provider = SdkMeterProvider::builder()
            .with_reader(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name(service_name.to_owned())
                    .build(),
            );
        let push = match push {
            Some(plan) => {
                let reader = SharedReader(Arc::new(ManualReader::builder().build()));
                provider = provider.with_reader(reader.clone());
                Some((plan, reader))
            }
            None => None,
        };
        let provider = provider.build();
        let scrape = Arc::new(RwLock::new(()));
        let push = push
            .map(|(plan, reader)| start_push(plan, reader, scrape.clone()))
            .transpose()?;
        let meter = provider.meter("tollgate");
        let in_flight = Arc::new(AtomicI64::new(0));
        let observed = in_flight.clone();
        Ok(Metrics {
            enabled: true,
            registry,
            push,
            scrape,
            requests: meter
                .u64_counter("tollgate.requests")
                .with_description(
                    "Requests, each counted once when it ends (LLM, management and pass-through routes)",
                )
                .build(),
            failed: meter
                .u64_counter("tollgate.requests.failed")
                .with_description("Requests that ended with a 4xx or 5xx status")
                .build(),
            in_flight,
            _in_flight_instrument: meter
                .i64_observable_up_down_counter("tollgate.requests.in_flight")
                .with_description("Requests being handled now")
                .with_callback(move |now| now.observe(observed.load(Ordering::Relaxed), &[]))
                .build(),
            duration: meter
                .f64_histogram("gen_ai.server.request.duration")
                .with_unit("s")
                .with_description("Duration of LLM requests, to the last byte")
                .with_boundaries(SECONDS.to_vec())
                .build(),
            ttft: meter
                .f64_histogram("gen_ai.server.time_to_first_token")
                .with_unit("s")
                .with_description("Time to the first byte of a streamed answer")
                .with_boundaries(SECONDS.to_vec())
                .build(),
            tokens: meter
                .u64_histogram("gen_ai.client.token.usage")
                .with_unit("{token}")
                .with_description("Tokens per request, by type (input, output)")
                .with_boundaries(TOKENS.to_vec())
                .build(),
            upstream: meter
                .f64_histogram("tollgate.upstream.duration")
                .with_unit("s")
                .with_description("Duration of upstream attempts, per deployment")
                .with_boundaries(SECONDS.to_vec())
                .build(),
            spend: meter
                .u64_counter("tollgate.spend.nano_usd")
                .with_description("Settled spend in nano-USD")
                .build(),
            remaining: meter
                .u64_gauge("tollgate.budget.remaining.nano_usd")
                .with_description("Budget left in the current period (opt-in per key alias / team)")
                .build(),
            rejections: meter
                .u64_counter("tollgate.admission.rejections")
                .with_description("Requests refused by a budget or rate limit")
                .build(),
            _provider: provider,
            bound_requests: BoundCache::new(),
            bound_spend: BoundCache::new(),
        })
    }

    /// Records a finished request. Probes are not passed here.
    pub fn request(&self, r: &RequestRecord) {
        if !self.enabled {
            return;
        }
        let key = RequestKey {
            status: r.status,
            route: id(r.route),
            model: id(&r.model),
            provider: id(r.provider),
            operation: r.operation.map(id),
            error: r.error.map(id),
        };
        self.bound_requests.record(
            key,
            || self.bind_request(r),
            |series| self.record(series, r),
        );
    }

    fn record(&self, series: &RequestSeries, r: &RequestRecord) {
        {
            let _shared = self.scrape.read().unwrap_or_else(|e| e.into_inner());
            series.requests.add(1);
            if let Some(failed) = &series.failed {
                failed.add(1);
            }
        }
        let Some(gen_ai) = &series.gen_ai else {
            return;
        };
        if let Some(ttft) = r.ttft {
            gen_ai.ttft.record(ttft.as_secs_f64());
        }
        if let Some(n) = r.input_tokens {
            gen_ai.input_tokens.record(n);
        }
        if let Some(n) = r.output_tokens {
            gen_ai.output_tokens.record(n);
        }
        gen_ai.duration.record(r.duration.as_secs_f64());
    }

    fn bind_request(&self, r: &RequestRecord) -> RequestSeries {
        let labels = [
            KeyValue::new("status_code", status_text(r.status)),
            KeyValue::new("route", r.route),
            KeyValue::new("model", r.model.clone()),
            KeyValue::new("provider", r.provider),
        ];
        let gen_ai = r.operation.map(|operation| {
            let base = [
                KeyValue::new("gen_ai.operation.name", operation),
                KeyValue::new("gen_ai.request.model", r.model.clone()),
                KeyValue::new("gen_ai.provider.name", r.provider),
            ];
            let tokens = |kind: &'static str| {
                let mut labels = base.to_vec();
                labels.push(KeyValue::new("gen_ai.token.type", kind));
                self.tokens.bind(&labels)
            };
            let mut with_error = base.to_vec();
            if let Some(error) = r.error {
                with_error.push(KeyValue::new("error.type", error));
            }
            GenAiSeries {
                duration: self.duration.bind(&with_error),
                ttft: self.ttft.bind(&base),
                input_tokens: tokens("input"),
                output_tokens: tokens("output"),
            }
        });
        RequestSeries {
            requests: self.requests.bind(&labels),
            failed: (r.status >= 400).then(|| self.failed.bind(&labels)),
            gen_ai,
        }
    }

    /// The count of requests being handled that `tollgate.requests.in_flight` reports: the
    /// node adds one when a request begins and subtracts it when it ends.
    pub fn in_flight_counter(&self) -> Arc<AtomicI64> {
        self.in_flight.clone()
    }

    /// The upstream-duration series of one deployment (serving the model group `model`), bound
    /// to its labels once: a deployment keeps it and records each attempt through it.
    pub fn upstream_series(
        &self,
        deployment: &Arc<str>,
        provider: &'static str,
        model: &Arc<str>,
    ) -> UpstreamSeries {
        if !self.enabled {
            return UpstreamSeries(None);
        }
        let bind = |outcome: &'static str| {
            self.upstream.bind(&[
                KeyValue::new("deployment", deployment.clone()),
                KeyValue::new("provider", provider),
                KeyValue::new("model", model.clone()),
                KeyValue::new("outcome", outcome),
            ])
        };
        UpstreamSeries(Some([bind("ok"), bind("error")]))
    }

    /// Settled spend; `tenant` holds the opted-in labels (`key_alias`, `team`).
    pub fn spend(
        &self,
        model: &Arc<str>,
        provider: &'static str,
        nanos: u64,
        tenant: &[(&'static str, String)],
    ) {
        if !self.enabled {
            return;
        }
        let labels = || {
            vec![
                KeyValue::new("model", model.clone()),
                KeyValue::new("provider", provider),
            ]
        };
        if !tenant.is_empty() {
            // Tenant labels are opt-in and vary per key: the SDK's own lookup.
            let mut labels = labels();
            labels.extend(tenant.iter().map(|(k, v)| KeyValue::new(*k, v.clone())));
            self.spend.add(nanos, &labels);
            return;
        }
        self.bound_spend.record(
            [id(model), id(provider)],
            || self.spend.bind(&labels()),
            |series| series.add(nanos),
        );
    }

    /// The budget left to one opted-in tenant (`key_alias` or `team`).
    pub fn remaining(&self, label: &'static str, value: &str, nanos: u64) {
        if !self.enabled {
            return;
        }
        self.remaining
            .record(nanos, &[KeyValue::new(label, value.to_owned())]);
    }

    /// A request refused at admission: `reason` is budget, rate_limit, parallel or
    /// ledger_unavailable; `entity` key, user, team or team_member.
    pub fn rejection(&self, reason: &'static str, entity: &'static str) {
        if !self.enabled {
            return;
        }
        self.rejections.add(
            1,
            &[
                KeyValue::new("reason", reason),
                KeyValue::new("entity", entity),
            ],
        );
    }

    /// Everything, in Prometheus' text format.
    pub fn render(&self) -> Result<String, MetricsError> {
        let families = {
            let _exclusive = self.scrape.write().unwrap_or_else(|e| e.into_inner());
            self.registry.gather()
        };
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new()
            .encode(&families, &mut out)
            .map_err(|e| MetricsError::Exporter(e.to_string()))?;
        String::from_utf8(out).map_err(|e| MetricsError::Exporter(e.to_string()))
    }
}

/// Pushes what `reader` collects, read under the scrape lock, as `plan` says; and where to,
/// for the log.
fn start_push(
    plan: PushPlan,
    reader: SharedReader,
    scrape: Arc<RwLock<()>>,
) -> Result<(Pusher, String), MetricsError> {
    let to = format!(
        "{} every {} s",
        plan.endpoint,
        plan.interval().as_secs_f64()
    );
    let pusher = Pusher::start(plan, move || {
        let mut collected = ResourceMetrics::default();
        {
            let _exclusive = scrape.write().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = reader.collect(&mut collected) {
                tracing::warn!(error = %e, "reading metrics for the OTLP push failed");
                return None;
            }
        }
        Some(ExportMetricsServiceRequest::from(&collected).encode_to_vec())
    })
    .map_err(|e| MetricsError::Push(e.to_string()))?;
    Ok((pusher, to))
}

/// The reader an OTLP push collects through, shared with the provider that feeds it.
#[derive(Clone, Debug)]
struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: std::sync::Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// A status code as a label: always three digits.
fn status_text(status: u16) -> &'static str {
    match status {
        200 => "200",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        413 => "413",
        429 => "429",
        499 => "499",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        _ => interned_status(status),
    }
}

/// Other statuses (an upstream's own 4xx/5xx) are interned once each; there are at most 900
/// three-digit codes.
fn interned_status(status: u16) -> &'static str {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static SEEN: OnceLock<Mutex<HashMap<u16, &'static str>>> = OnceLock::new();
    let status = status.clamp(100, 999);
    let mut seen = SEEN
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    seen.entry(status)
        .or_insert_with(|| Box::leak(status.to_string().into_boxed_str()))
}

#[cfg(test)]
mod tests;
