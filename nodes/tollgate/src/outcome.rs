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
use tollgate_telemetry::{Metrics, RequestRecord};

use crate::respond::REQUEST_ID;

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
    counts: Mutex<HashMap<OutcomeKey, u64>>,
    in_flight: AtomicI64,
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
            in_flight: AtomicI64::new(0),
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
        if let Some(metrics) = &self.metrics {
            metrics.in_flight(1);
        }
        let request_id = headers
            .get(&REQUEST_ID)
            .filter(|v| is_sane_id(v.as_bytes()))
            .cloned()
            .unwrap_or_else(|| self.new_id());
        Outcome {
            sink: self.clone(),
            request_id,
            method: method.clone(),
            started: Instant::now(),
            route: UNKNOWN,
            counted: true,
            model: None,
            provider: UNKNOWN,
            deployment: None,
            usage: None,
            error: None,
            endpoint: None,
            first_byte: None,
            finished: false,
        }
    }

    fn new_id(&self) -> HeaderValue {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = format!("{:016x}{:016x}", self.id_prefix, n);
        HeaderValue::try_from(id).unwrap_or(HeaderValue::from_static("0"))
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

    fn record(&self, outcome: &Outcome, status: u16) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let latency = outcome.started.elapsed();
        log_access(outcome, status, latency);
        if let Some(metrics) = &self.metrics {
            metrics.in_flight(-1);
        }
        if !outcome.counted {
            return;
        }
        if let Some(metrics) = &self.metrics {
            metrics.request(&RequestRecord {
                status,
                route: outcome.route,
                model: outcome.model.as_deref().unwrap_or(UNKNOWN),
                provider: outcome.provider,
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
            provider: outcome.provider,
        };
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry(key).or_insert(0) += 1;
    }
}

/// The GenAI conventions' `gen_ai.operation.name`.
fn operation_name(endpoint: Endpoint) -> &'static str {
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
    tracing::debug!(
        target: "tollgate::access",
        request_id = o.request_id.to_str().unwrap_or("-"),
        method = %o.method,
        route = o.route,
        model = o.model.as_deref().unwrap_or(UNKNOWN),
        provider = o.provider,
        deployment = o.deployment.as_deref().unwrap_or(UNKNOWN),
        status,
        error = o.error.map_or("", ErrorCode::code),
        input_tokens = o.usage.map_or(0, |u| u.input_tokens),
        output_tokens = o.usage.map_or(0, |u| u.output_tokens),
        latency_us = latency.as_micros() as u64,
    );
}

/// How one request is ending; see the module docs.
#[derive(Debug)]
pub(crate) struct Outcome {
    sink: Arc<Outcomes>,
    request_id: HeaderValue,
    method: Method,
    started: Instant,
    route: &'static str,
    counted: bool,
    model: Option<Arc<str>>,
    provider: &'static str,
    deployment: Option<Arc<str>>,
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

    pub(crate) fn set_deployment(&mut self, provider: &'static str, deployment: Arc<str>) {
        self.provider = provider;
        self.deployment = Some(deployment);
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
        self.sink.clone().record(&self, status.as_u16());
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
