use std::sync::{Arc, RwLock};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, MeterProvider as _, UpDownCounter};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Encoder, TextEncoder};

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
}

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
    _provider: SdkMeterProvider,
    /// Recording the two request counters takes it shared; a scrape takes it exclusive.
    scrape: RwLock<()>,
    requests: Counter<u64>,
    failed: Counter<u64>,
    in_flight: UpDownCounter<i64>,
    duration: Histogram<f64>,
    ttft: Histogram<f64>,
    tokens: Histogram<u64>,
    upstream: Histogram<f64>,
    spend: Counter<u64>,
    remaining: Gauge<u64>,
    rejections: Counter<u64>,
}

impl Metrics {
    /// Instruments that record nothing (`observability.metrics.enabled: false`).
    pub fn disabled() -> Result<Metrics, MetricsError> {
        let mut metrics = Self::new("tollgate")?;
        metrics.enabled = false;
        Ok(metrics)
    }

    pub fn new(service_name: &str) -> Result<Metrics, MetricsError> {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .scope_info_enabled(false)
            .build()
            .map_err(|e| MetricsError::Exporter(e.to_string()))?;
        let provider = SdkMeterProvider::builder()
            .with_reader(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name(service_name.to_owned())
                    .build(),
            )
            .build();
        let meter = provider.meter("tollgate");
        Ok(Metrics {
            enabled: true,
            registry,
            scrape: RwLock::new(()),
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
            in_flight: meter
                .i64_up_down_counter("tollgate.requests.in_flight")
                .with_description("Requests being handled now")
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
        })
    }

    /// Records a finished request. Probes are not passed here.
    pub fn request(&self, r: &RequestRecord) {
        if !self.enabled {
            return;
        }
        let labels = [
            KeyValue::new("status_code", status_text(r.status)),
            KeyValue::new("route", r.route),
            KeyValue::new("model", r.model.clone()),
            KeyValue::new("provider", r.provider),
        ];
        {
            let _shared = self.scrape.read().unwrap_or_else(|e| e.into_inner());
            self.requests.add(1, &labels);
            if r.status >= 400 {
                self.failed.add(1, &labels);
            }
        }
        let Some(operation) = r.operation else {
            return;
        };
        let operation = KeyValue::new("gen_ai.operation.name", operation);
        let model = KeyValue::new("gen_ai.request.model", r.model.clone());
        let provider = KeyValue::new("gen_ai.provider.name", r.provider);
        if let Some(ttft) = r.ttft {
            self.ttft.record(
                ttft.as_secs_f64(),
                &[operation.clone(), model.clone(), provider.clone()],
            );
        }
        for (kind, count) in [("input", r.input_tokens), ("output", r.output_tokens)] {
            if let Some(count) = count {
                self.tokens.record(
                    count,
                    &[
                        operation.clone(),
                        model.clone(),
                        provider.clone(),
                        KeyValue::new("gen_ai.token.type", kind),
                    ],
                );
            }
        }
        match r.error {
            Some(error) => self.duration.record(
                r.duration.as_secs_f64(),
                &[
                    operation,
                    model,
                    provider,
                    KeyValue::new("error.type", error),
                ],
            ),
            None => self
                .duration
                .record(r.duration.as_secs_f64(), &[operation, model, provider]),
        }
    }

    pub fn in_flight(&self, delta: i64) {
        if !self.enabled {
            return;
        }
        self.in_flight.add(delta, &[]);
    }

    /// One upstream attempt.
    pub fn upstream(
        &self,
        deployment: &Arc<str>,
        provider: &'static str,
        model: &Arc<str>,
        ok: bool,
        took: Duration,
    ) {
        if !self.enabled {
            return;
        }
        self.upstream.record(
            took.as_secs_f64(),
            &[
                KeyValue::new("deployment", deployment.clone()),
                KeyValue::new("provider", provider),
                KeyValue::new("model", model.clone()),
                KeyValue::new("outcome", if ok { "ok" } else { "error" }),
            ],
        );
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
        let mut labels = Vec::with_capacity(2 + tenant.len());
        labels.push(KeyValue::new("model", model.clone()));
        labels.push(KeyValue::new("provider", provider));
        labels.extend(tenant.iter().map(|(k, v)| KeyValue::new(*k, v.clone())));
        self.spend.add(nanos, &labels);
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
