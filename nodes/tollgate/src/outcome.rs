//! The outcome point: the one place where every request's ending is recorded.
//!
//! [`Outcomes::begin`] is the first thing `dispatch` does with a request and returns an
//! [`Outcome`]. It is finished with the status the client got, or, if it is dropped unfinished
//! (the client went away, or a handler panicked), its `Drop` records it anyway: 499 or 500.
//! Rejections before routing (no key, bad body, 413, 404) pass through the same point, so a
//! request cannot end without being counted exactly once. Metrics and spend build on this.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use tollgate_api::{ApiError, Endpoint, ErrorCode, Usage};
use tollgate_providers::TraceContext;
use tollgate_telemetry::spans::{
    self, Kind, SpanHead, SpanTemplate, SpanWriter, TRACEPARENT, TRACESTATE,
};
use tollgate_telemetry::{AccessRecord, Metrics, RequestRecord, SpanClock, SpanIds, trace_request};

use crate::models::{SHOWN_CHARS, Target};
use crate::respond::{REQUEST_ID, first_chars};

/// nginx's code for "the client closed the request before the response".
pub const CLIENT_CLOSED: u16 = 499;
/// The label value of a dimension a request never reached (no route, no model, no provider).
pub const UNKNOWN: &str = "unknown";

/// The dimensions an outcome is counted under. Every value is bounded: `route` is a route
/// pattern of the table, `model` a configured model group, `provider` a provider name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutcomeKey {
    pub status: u16,
    pub route: &'static str,
    pub model: Arc<str>,
    pub provider: &'static str,
}

/// All outcomes of this node so far.
#[derive(Debug)]
pub struct Outcomes {
    /// Keys come from the route table, the config and status codes, never from a client's
    /// text, so a fast hash is safe here.
    counts: Mutex<HashMap<OutcomeKey, u64, foldhash::fast::RandomState>>,
    /// Requests begun and not yet recorded: the metrics' in-flight gauge reads it.
    in_flight: Arc<AtomicI64>,
    next_id: AtomicU64,
    id_prefix: u64,
    unknown: Arc<str>,
    metrics: Option<Arc<Metrics>>,
}

impl Default for Outcomes {
    fn default() -> Self {
        Self::new(None)
    }
}

impl Outcomes {
    /// Outcomes that also feed `metrics` (the Prometheus/OTel instruments).
    pub(crate) fn new(metrics: Option<Arc<Metrics>>) -> Self {
        Self {
            counts: Mutex::default(),
            in_flight: metrics
                .as_ref()
                .map_or_else(Arc::default, |m| m.in_flight_counter()),
            next_id: AtomicU64::new(1),
            id_prefix: rand::random(),
            unknown: Arc::from(UNKNOWN),
            metrics,
        }
    }

    /// Starts the outcome of a new request. Takes the client's `x-request-id` when it is a
    /// sane token, else makes one.
    pub(crate) fn begin(self: &Arc<Self>, method: &Method, headers: &HeaderMap) -> Outcome {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let request_id = headers
            .get(&REQUEST_ID)
            .filter(|v| is_sane_id(v.as_bytes()))
            .cloned()
            .unwrap_or_else(|| self.new_id());
        let client_trace = headers.get(TRACEPARENT);
        let started = Instant::now();
        Outcome {
            trace: trace_request(client_trace).map(|ids| (ids, SpanClock::starting_at(started))),
            client_trace: client_trace.cloned(),
            client_tracestate: headers.get(TRACESTATE).cloned(),
            sink: self.clone(),
            request_id,
            method: method.clone(),
            started,
            route: UNKNOWN,
            counted: true,
            model: None,
            unknown_model: None,
            target: None,
            usage: None,
            error: None,
            endpoint: None,
            first_byte: None,
            finished: false,
        }
    }

    /// 32 hex digits: this node's random prefix, then a counter.
    fn new_id(&self) -> HeaderValue {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&self.id_prefix.to_be_bytes());
        bytes[8..].copy_from_slice(&n.to_be_bytes());
        HeaderValue::from_bytes(&spans::hex::<16, 32>(bytes))
            .unwrap_or(HeaderValue::from_static("0"))
    }

    /// Counts per outcome key, sorted.
    pub fn snapshot(&self) -> Vec<(OutcomeKey, u64)> {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = counts.iter().map(|(k, v)| (k.clone(), *v)).collect();
        all.sort();
        all
    }

    /// Requests counted so far.
    pub fn total(&self) -> u64 {
        self.snapshot().iter().map(|(_, n)| n).sum()
    }

    /// Requests begun and not yet recorded (including uncounted probes).
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    fn record(&self, outcome: &mut Outcome, status: u16) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let latency = outcome.started.elapsed();
        trace_outcome(outcome, status, latency);
        log_access(outcome, status, latency);
        if !outcome.counted {
            return;
        }
        if let Some(metrics) = &self.metrics {
            metrics.request(&RequestRecord {
                status,
                route: outcome.route,
                model: outcome
                    .model
                    .clone()
                    .unwrap_or_else(|| self.unknown.clone()),
                provider: outcome.provider(),
                operation: outcome.endpoint.map(operation_name),
                duration: latency,
                ttft: outcome.first_byte,
                input_tokens: outcome.usage.map(|u| u.input_tokens),
                output_tokens: outcome.usage.map(|u| u.output_tokens),
                error: outcome.error.map(ErrorCode::code),
            });
        }
        let key = OutcomeKey {
            status,
            route: outcome.route,
            model: outcome
                .model
                .clone()
                .unwrap_or_else(|| self.unknown.clone()),
            provider: outcome.provider(),
        };
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry(key).or_insert(0) += 1;
    }
}

/// Exports the request's span, when it is traced: it lasts `latency`, the duration the
/// metrics record.
fn trace_outcome(o: &Outcome, status: u16, latency: Duration) {
    let Some((ids, clock)) = o.trace else {
        return;
    };
    // The clock started when the request did.
    let start = clock.start();
    let refused;
    let template = match o.target.as_ref().and_then(|t| t.spans.request(o.route)) {
        // The deployment's: the operation, the model group, the provider, the deployment, the
        // method and the route.
        Some(template) => template,
        // Refused before a deployment was chosen: the GenAI conventions' name once the model is
        // known (`chat gpt-4o`), else the route's.
        None => {
            let operation = o.endpoint.map(operation_name);
            let model = o.model.as_deref().or(o.unknown_model.as_deref());
            let name = match (operation, model) {
                (Some(operation), Some(model)) => [operation, " ", model],
                _ => [o.method.as_str(), " ", o.route],
            };
            let mut attributes = vec![
                ("http.request.method", o.method.as_str()),
                ("http.route", o.route),
            ];
            if let Some(operation) = operation {
                attributes.push(("gen_ai.operation.name", operation));
            }
            if let Some(model) = model {
                attributes.push(("gen_ai.request.model", model));
                attributes.push(("gen_ai.provider.name", UNKNOWN));
            }
            refused = SpanTemplate::new(Kind::Server, &name, &attributes);
            &refused
        }
    };
    let head = SpanHead {
        ids,
        start,
        template,
    };
    let failed = status >= 500 || o.error.is_some();
    spans::export(&head, start.after(latency), failed, |span| {
        span.int("http.response.status_code", i64::from(status));
        if let Some(usage) = o.usage {
            token_attributes(span, usage.input_tokens, usage.output_tokens);
        }
        if let Some(error) = o.error {
            span.str("error.type", error.code());
        }
        span.str(
            "tollgate.request_id",
            o.request_id.to_str().unwrap_or_default(),
        );
    });
}

/// The GenAI conventions' token attributes (OTel integers are signed).
pub(crate) fn token_attributes(span: &mut SpanWriter<'_>, input: u64, output: u64) {
    let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    span.int("gen_ai.usage.input_tokens", int(input));
    span.int("gen_ai.usage.output_tokens", int(output));
}

/// The GenAI conventions' `gen_ai.operation.name`.
pub(crate) fn operation_name(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::ChatCompletions => "chat",
        Endpoint::Completions => "text_completion",
        Endpoint::Embeddings => "embeddings",
    }
}

fn is_sane_id(id: &[u8]) -> bool {
    (1..=128).contains(&id.len()) && id.iter().all(|b| b.is_ascii_graphic())
}

fn log_access(o: &Outcome, status: u16, latency: Duration) {
    tollgate_telemetry::access(&AccessRecord {
        request_id: o.request_id.to_str().unwrap_or("-"),
        method: o.method.as_str(),
        route: o.route,
        model: o
            .model
            .as_deref()
            .or(o.unknown_model.as_deref())
            .unwrap_or(UNKNOWN),
        provider: o.provider(),
        deployment: o.target.as_ref().map_or(UNKNOWN, |t| &t.id),
        status,
        error: o.error.map_or("", ErrorCode::code),
        input_tokens: o.usage.map_or(0, |u| u.input_tokens),
        output_tokens: o.usage.map_or(0, |u| u.output_tokens),
        latency_us: u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
    });
}

/// How one request is ending; see the module docs.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The request's span and its start, when it is traced; exported when the outcome is
    /// recorded.
    trace: Option<(SpanIds, SpanClock)>,
    /// The client's own `traceparent` (the span's parent), forwarded upstream as it came when
    /// the request is not traced; and its `tracestate`, always forwarded.
    client_trace: Option<HeaderValue>,
    client_tracestate: Option<HeaderValue>,
    sink: Arc<Outcomes>,
    request_id: HeaderValue,
    method: Method,
    started: Instant,
    route: &'static str,
    counted: bool,
    /// The model group: a label value, from the config.
    model: Option<Arc<str>>,
    /// A model the client asked for that no group has (its first [`SHOWN_CHARS`]): the
    /// request's span and access line name it; metrics say `unknown` (bounded labels).
    unknown_model: Option<Box<str>>,
    /// The deployment the request went to, once chosen.
    target: Option<Arc<Target>>,
    usage: Option<Usage>,
    error: Option<ErrorCode>,
    /// The LLM operation, once the route is known to be one.
    endpoint: Option<Endpoint>,
    /// Streams: when the first byte went to the client, after the start.
    first_byte: Option<Duration>,
    finished: bool,
}

impl Outcome {
    pub(crate) fn request_id(&self) -> &HeaderValue {
        &self.request_id
    }

    /// The request span's ids and clock, when it is traced.
    pub(crate) fn trace(&self) -> Option<(SpanIds, SpanClock)> {
        self.trace
    }

    /// The trace headers for the upstream call of an attempt whose span is `attempt` (when
    /// traced): its own `traceparent`, else the client's as it came; the client's
    /// `tracestate`.
    pub(crate) fn upstream_trace(&self, attempt: Option<&SpanIds>) -> TraceContext {
        TraceContext {
            traceparent: match attempt {
                Some(ids) => Some(ids.traceparent()),
                None => self.client_trace.clone(),
            },
            tracestate: self.client_tracestate.clone(),
        }
    }

    /// The matched route; `counted: false` for probes (health), which are not API traffic.
    pub(crate) fn set_route(&mut self, route: &'static str, counted: bool) {
        self.route = route;
        self.counted = counted;
    }

    pub(crate) fn set_endpoint(&mut self, endpoint: Endpoint) {
        self.endpoint = Some(endpoint);
    }

    /// Marks the first byte of a streamed answer (time to first token).
    pub(crate) fn first_byte(&mut self) {
        if self.first_byte.is_none() {
            self.first_byte = Some(self.started.elapsed());
        }
    }

    pub(crate) fn set_model(&mut self, group: Arc<str>) {
        self.model = Some(group);
    }

    /// A model no group has, for the request's span.
    pub(crate) fn set_unknown_model(&mut self, requested: &str) {
        self.unknown_model = Some(first_chars(requested, SHOWN_CHARS).into());
    }

    /// The deployment the request went to.
    pub(crate) fn set_target(&mut self, target: &Arc<Target>) {
        self.target = Some(target.clone());
    }

    /// The chosen deployment's provider, else `unknown`.
    fn provider(&self) -> &'static str {
        self.target
            .as_ref()
            .map_or(UNKNOWN, |t| t.upstream.deployment.provider.name())
    }

    pub(crate) fn set_usage(&mut self, usage: Option<Usage>) {
        self.usage = usage;
    }

    /// The request failed after its status went out (a stream cut midway).
    pub(crate) fn set_error(&mut self, error: ErrorCode) {
        self.error = Some(error);
    }

    /// Records the status the client received.
    pub(crate) fn finish(mut self, status: StatusCode, error: Option<&ApiError>) {
        if let Some(e) = error {
            self.error = Some(e.code);
        }
        self.finished = true;
        self.sink.clone().record(&mut self, status.as_u16());
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let status = if std::thread::panicking() {
            self.error = Some(ErrorCode::Internal);
            StatusCode::INTERNAL_SERVER_ERROR.as_u16()
        } else {
            CLIENT_CLOSED
        };
        self.finished = true;
        self.sink.clone().record(self, status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_request_ids_are_the_nodes_prefix_then_a_counter_in_hex() {
        let outcomes = Outcomes::default();
        let prefix = format!("{:016x}", outcomes.id_prefix);
        for n in 1..=3_u64 {
            let id = outcomes.new_id();
            assert_eq!(id.to_str().unwrap(), format!("{prefix}{n:016x}"));
        }
    }
}
