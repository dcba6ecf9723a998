//! `observability:` (ours): where metrics are served and who may scrape them, OTLP export of
//! traces, and the log format.

use std::net::SocketAddr;

use serde_json::Value;

use crate::tree::{Object, Walker, child};

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Labels that identify a tenant on spend and budget metrics; off by default to bound series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EntityLabels {
    pub key_alias: bool,
    pub team: bool,
}

/// `observability.metrics`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsSettings {
    /// `false` turns metrics off entirely (no `/metrics`; for overhead measurements).
    pub enabled: bool,
    /// The path `/metrics` is served at.
    pub path: String,
    /// A separate listener for metrics only (e.g. a cluster-internal port); `None` serves them
    /// on the main port.
    pub listen: Option<SocketAddr>,
    /// When true, any valid key may scrape; when false (the default), anyone may.
    pub require_auth: bool,
    pub entity_labels: EntityLabels,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            path: "/metrics".to_owned(),
            listen: None,
            require_auth: false,
            entity_labels: EntityLabels::default(),
        }
    }
}

/// `observability.otlp`: where traces go (OTLP over gRPC, `http://` or `https://`). The standard
/// `OTEL_EXPORTER_OTLP_*` variables are read by the exporter when no endpoint is configured here,
/// and for TLS files, headers, timeout and compression in any case.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OtlpSettings {
    /// e.g. `http://otel-collector:4317` (gRPC; `https://` with TLS).
    pub endpoint: Option<String>,
    /// The `service.name` resource attribute (default `tollgate`).
    pub service_name: Option<String>,
    /// The share of requests traced when the client sent no sampling decision of its own
    /// (0.0–1.0). `None`: `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG`, else every request.
    pub sample_ratio: Option<f64>,
    /// Metrics pushed to the same collector too (besides `/metrics`). `None`: when
    /// `OTEL_METRICS_EXPORTER` lists `otlp`.
    pub metrics: Option<bool>,
}

/// `observability:`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservabilitySettings {
    pub metrics: MetricsSettings,
    pub otlp: OtlpSettings,
    pub log_format: LogFormat,
}

const KEYS: &[&str] = &["metrics", "otlp", "logs"];
const METRICS_KEYS: &[&str] = &["enabled", "path", "listen", "require_auth", "entity_labels"];
const OTLP_KEYS: &[&str] = &["endpoint", "service_name", "sample_ratio", "metrics"];
const LOGS_KEYS: &[&str] = &["format"];

pub(crate) fn build(w: &mut Walker<'_>, value: Option<&Value>) -> ObservabilitySettings {
    const O: &str = "observability";
    let empty = Object::new();
    let map = w.object(value, O).unwrap_or(&empty);
    w.unknown_keys(map, O, KEYS);
    let mut out = ObservabilitySettings::default();

    let path = child(O, "metrics");
    let metrics = w.object(map.get("metrics"), &path).unwrap_or(&empty);
    w.unknown_keys(metrics, &path, METRICS_KEYS);
    if let Some(p) = w.string(metrics, "path", &path) {
        if p.starts_with('/') && !p.contains(['{', '}', '*', '?', '#']) && p.len() > 1 {
            out.metrics.path = p;
        } else {
            w.problem(
                &child(&path, "path"),
                format!("expected a path like /metrics, found `{p}`"),
            );
        }
    }
    if let Some(addr) = w.string(metrics, "listen", &path) {
        match addr.parse::<SocketAddr>() {
            Ok(addr) => out.metrics.listen = Some(addr),
            Err(_) => w.problem(
                &child(&path, "listen"),
                format!("expected HOST:PORT like 0.0.0.0:9464, found `{addr}`"),
            ),
        }
    }
    out.metrics.enabled = w.bool(metrics, "enabled", &path).unwrap_or(true);
    out.metrics.require_auth = w.bool(metrics, "require_auth", &path).unwrap_or(false);
    for label in w.string_list(metrics, "entity_labels", &path) {
        match label.as_str() {
            "key_alias" => out.metrics.entity_labels.key_alias = true,
            "team" => out.metrics.entity_labels.team = true,
            other => w.problem(
                &child(&path, "entity_labels"),
                format!("unknown label `{other}`; use key_alias and/or team"),
            ),
        }
    }

    let path = child(O, "otlp");
    let otlp = w.object(map.get("otlp"), &path).unwrap_or(&empty);
    w.unknown_keys(otlp, &path, OTLP_KEYS);
    if let Some(endpoint) = w.string(otlp, "endpoint", &path) {
        if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
            out.otlp.endpoint = Some(endpoint);
        } else {
            w.problem(
                &child(&path, "endpoint"),
                format!(
                    "expected an http:// or https:// URL like http://otel-collector:4317, \
                     found `{endpoint}`"
                ),
            );
        }
    }
    out.otlp.service_name = w.string(otlp, "service_name", &path);
    out.otlp.metrics = w.bool(otlp, "metrics", &path);
    if let Some(ratio) = w.number(otlp, "sample_ratio", &path) {
        if (0.0..=1.0).contains(&ratio) {
            out.otlp.sample_ratio = Some(ratio);
        } else {
            w.problem(
                &child(&path, "sample_ratio"),
                format!("expected a share between 0.0 and 1.0, found {ratio}"),
            );
        }
    }

    let path = child(O, "logs");
    let logs = w.object(map.get("logs"), &path).unwrap_or(&empty);
    w.unknown_keys(logs, &path, LOGS_KEYS);
    if let Some(format) = w.string(logs, "format", &path) {
        match format.as_str() {
            "text" => out.log_format = LogFormat::Text,
            "json" => out.log_format = LogFormat::Json,
            other => w.problem(
                &child(&path, "format"),
                format!("expected text or json, found `{other}`"),
            ),
        }
    }
    out
}
