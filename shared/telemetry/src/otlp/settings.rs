//! Where and how spans (and, when asked for, metrics) are sent: config first, then the
//! standard `OTEL_EXPORTER_OTLP_*` variables.

use std::path::PathBuf;
use std::time::Duration;

use super::DEFAULT_TIMEOUT;

/// Where and how one signal is sent; see the module documentation for the variables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ExportSettings {
    pub(crate) endpoint: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) timeout: Duration,
    /// For `https://` endpoints: PEM files of the CA certificates to trust instead of the
    /// system's, and of a client certificate and its key (mutual TLS).
    pub(crate) certificate: Option<PathBuf>,
    pub(crate) client_certificate: Option<PathBuf>,
    pub(crate) client_key: Option<PathBuf>,
    /// `gzip` or `none` (lower case), when set.
    pub(crate) compression: Option<String>,
}

/// What is sent: the signal's own variables (`OTEL_EXPORTER_OTLP_TRACES_*`,
/// `OTEL_EXPORTER_OTLP_METRICS_*`) come before the general ones (`OTEL_EXPORTER_OTLP_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    Traces,
    Metrics,
}

impl Signal {
    fn prefix(self) -> &'static str {
        match self {
            Signal::Traces => "OTEL_EXPORTER_OTLP_TRACES_",
            Signal::Metrics => "OTEL_EXPORTER_OTLP_METRICS_",
        }
    }
}

impl ExportSettings {
    /// The settings for `signal` from config (`endpoint`) and the environment (`var`), or
    /// `None` when no endpoint is configured anywhere.
    pub(crate) fn resolve(
        signal: Signal,
        endpoint: Option<&str>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Option<ExportSettings> {
        let either = |name: &str| {
            let set = |full: String| var(&full).filter(|v| !v.trim().is_empty());
            set(format!("{}{name}", signal.prefix()))
                .or_else(|| set(format!("OTEL_EXPORTER_OTLP_{name}")))
        };
        let endpoint = endpoint.map(str::to_owned).or_else(|| either("ENDPOINT"))?;
        let headers = either("HEADERS")
            .map(|text| parse_headers(&text))
            .unwrap_or_default();
        let timeout = either("TIMEOUT")
            .and_then(|ms| ms.trim().parse::<u64>().ok())
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        let path = |name: &str| either(name).map(PathBuf::from);
        Some(ExportSettings {
            endpoint: endpoint.trim().to_owned(),
            headers,
            timeout,
            certificate: path("CERTIFICATE"),
            client_certificate: path("CLIENT_CERTIFICATE"),
            client_key: path("CLIENT_KEY"),
            compression: either("COMPRESSION").map(|v| v.trim().to_ascii_lowercase()),
        })
    }
}

/// Whether and how metrics are pushed over OTLP besides being served to Prometheus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PushSettings {
    pub(crate) export: ExportSettings,
    /// `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds), default 60 s.
    pub(crate) interval: Duration,
}

/// The default time between two metric pushes, as the OpenTelemetry SDKs have it.
const DEFAULT_PUSH_INTERVAL: Duration = Duration::from_secs(60);

impl PushSettings {
    /// On when `enabled` (`observability.otlp.metrics`) says so, else when
    /// `OTEL_METRICS_EXPORTER` lists `otlp`; then an endpoint must be set, in config
    /// (`endpoint`) or in `OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT`.
    pub(crate) fn resolve(
        endpoint: Option<&str>,
        enabled: Option<bool>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<PushSettings>, String> {
        let enabled = enabled.unwrap_or_else(|| {
            var("OTEL_METRICS_EXPORTER").is_some_and(|list| {
                list.split(',')
                    .any(|e| e.trim().eq_ignore_ascii_case("otlp"))
            })
        });
        if !enabled {
            return Ok(None);
        }
        let interval = var("OTEL_METRIC_EXPORT_INTERVAL")
            .and_then(|ms| ms.trim().parse::<u64>().ok())
            .filter(|&ms| ms > 0)
            .map_or(DEFAULT_PUSH_INTERVAL, Duration::from_millis);
        match ExportSettings::resolve(Signal::Metrics, endpoint, var) {
            Some(export) => Ok(Some(PushSettings { export, interval })),
            None => Err(
                "metrics are to be pushed over OTLP, but no endpoint is set \
                 (observability.otlp.endpoint or OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT)"
                    .to_owned(),
            ),
        }
    }
}

/// `k1=v1,k2=v2` with percent-encoded values; malformed pairs are skipped.
fn parse_headers(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            let (key, value) = (key.trim(), value.trim());
            let value = percent_decode(value).unwrap_or_else(|| value.to_owned());
            (!key.is_empty() && !value.is_empty()).then(|| (key.to_ascii_lowercase(), value))
        })
        .collect()
}

fn percent_decode(text: &str) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An environment holding `pairs`.
    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn settings_come_from_config_then_the_standard_variables() {
        assert_eq!(
            ExportSettings::resolve(Signal::Traces, None, env(&[])),
            None
        );
        let general = ExportSettings::resolve(
            Signal::Traces,
            None,
            env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "api-key=s%20ecret, X-Team=ml ,broken",
                ),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem"),
                ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/etc/me.pem"),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/me.key"),
                ("OTEL_EXPORTER_OTLP_COMPRESSION", " GZIP"),
            ]),
        )
        .unwrap();
        assert_eq!(general.certificate, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(
            general.client_certificate,
            Some(PathBuf::from("/etc/me.pem"))
        );
        assert_eq!(general.client_key, Some(PathBuf::from("/etc/me.key")));
        assert_eq!(general.compression.as_deref(), Some("gzip"));
        assert_eq!(general.endpoint, "http://collector:4317");
        assert_eq!(
            general.headers,
            vec![
                ("api-key".to_owned(), "s ecret".to_owned()),
                ("x-team".to_owned(), "ml".to_owned())
            ]
        );
        assert_eq!(general.timeout, Duration::from_millis(2500));
        let specific = ExportSettings::resolve(
            Signal::Traces,
            None,
            env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
                ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "not a number"),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem"),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                    "/etc/traces-ca.pem",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(
            specific.certificate,
            Some(PathBuf::from("/etc/traces-ca.pem"))
        );
        assert_eq!(specific.client_key, None);
        assert_eq!(specific.endpoint, "http://traces:4317");
        assert_eq!(specific.timeout, DEFAULT_TIMEOUT);
        let configured = ExportSettings::resolve(
            Signal::Traces,
            Some("http://127.0.0.1:4317"),
            env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")]),
        )
        .unwrap();
        assert_eq!(configured.endpoint, "http://127.0.0.1:4317");
    }

    #[test]
    fn metrics_are_pushed_only_when_asked_for_and_then_need_an_endpoint() {
        let endpoint = Some("http://collector:4317");
        // A trace endpoint alone does not turn metrics on, nor does another exporter.
        assert_eq!(PushSettings::resolve(endpoint, None, env(&[])), Ok(None));
        assert_eq!(
            PushSettings::resolve(
                endpoint,
                None,
                env(&[("OTEL_METRICS_EXPORTER", "prometheus")])
            ),
            Ok(None)
        );
        // Config decides over the variable, both ways.
        assert_eq!(
            PushSettings::resolve(
                endpoint,
                Some(false),
                env(&[("OTEL_METRICS_EXPORTER", "otlp")])
            ),
            Ok(None)
        );
        let on = PushSettings::resolve(endpoint, Some(true), env(&[]))
            .unwrap()
            .unwrap();
        assert_eq!(on.export.endpoint, "http://collector:4317");
        assert_eq!(on.interval, DEFAULT_PUSH_INTERVAL);
        // From the variables alone: the metrics endpoint and timeout before the general ones.
        let listed = PushSettings::resolve(
            None,
            None,
            env(&[
                ("OTEL_METRICS_EXPORTER", "prometheus, OTLP"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
                ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://metrics:4317"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
                ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "1500"),
                ("OTEL_METRIC_EXPORT_INTERVAL", "15000"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(listed.export.endpoint, "http://metrics:4317");
        assert_eq!(listed.export.timeout, Duration::from_millis(1500));
        assert_eq!(listed.interval, Duration::from_secs(15));
        let bad_interval = PushSettings::resolve(
            endpoint,
            Some(true),
            env(&[("OTEL_METRIC_EXPORT_INTERVAL", "0")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(bad_interval.interval, DEFAULT_PUSH_INTERVAL);
        // Asked for with nowhere to send: an error naming what to set.
        let err = PushSettings::resolve(None, Some(true), env(&[])).unwrap_err();
        assert!(
            err.contains("OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT"),
            "{err}"
        );
    }
}
