//! Where and how spans are sent: config first, then the standard `OTEL_EXPORTER_OTLP_*`
//! variables.

use std::path::PathBuf;
use std::time::Duration;

use super::DEFAULT_TIMEOUT;

/// Where and how spans are sent; see the module documentation for the variables.
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

impl ExportSettings {
    /// The settings from config (`endpoint`) and the environment (`var`), or `None` when no
    /// endpoint is configured anywhere.
    pub(crate) fn resolve(
        endpoint: Option<&str>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Option<ExportSettings> {
        let either = |signal: &str, general: &str| {
            var(signal)
                .filter(|v| !v.trim().is_empty())
                .or_else(|| var(general).filter(|v| !v.trim().is_empty()))
        };
        let endpoint = endpoint.map(str::to_owned).or_else(|| {
            either(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            )
        })?;
        let headers = either(
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "OTEL_EXPORTER_OTLP_HEADERS",
        )
        .map(|text| parse_headers(&text))
        .unwrap_or_default();
        let timeout = either(
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        )
        .and_then(|ms| ms.trim().parse::<u64>().ok())
        .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        let path = |signal: &str, general: &str| either(signal, general).map(PathBuf::from);
        Some(ExportSettings {
            endpoint: endpoint.trim().to_owned(),
            headers,
            timeout,
            certificate: path(
                "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
            ),
            client_certificate: path(
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            ),
            client_key: path(
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
                "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            ),
            compression: either(
                "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
                "OTEL_EXPORTER_OTLP_COMPRESSION",
            )
            .map(|v| v.trim().to_ascii_lowercase()),
        })
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

    #[test]
    fn settings_come_from_config_then_the_standard_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(ExportSettings::resolve(None, env(&[])), None);
        let general = ExportSettings::resolve(
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
            Some("http://127.0.0.1:4317"),
            env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")]),
        )
        .unwrap();
        assert_eq!(configured.endpoint, "http://127.0.0.1:4317");
    }
}
