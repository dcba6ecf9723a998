//! Per-request knobs: the settings' timing, length and fault values, each overridable by an
//! `x-mock-*` request header.

use std::time::Duration;

use http::HeaderMap;

use crate::error::MockError;
use crate::fault::Faults;
use crate::settings::MockSettings;

/// Overrides [`MockSettings::completion_tokens`].
pub const COMPLETION_TOKENS_HEADER: &str = "x-mock-completion-tokens";
/// Overrides [`MockSettings::latency_ms`].
pub const LATENCY_HEADER: &str = "x-mock-latency-ms";
/// Overrides [`MockSettings::ttft_ms`].
pub const TTFT_HEADER: &str = "x-mock-ttft-ms";
/// Overrides [`MockSettings::tokens_per_second`].
pub const TOKENS_PER_SECOND_HEADER: &str = "x-mock-tokens-per-second";
/// Comma-separated fault kinds added to those of the settings.
pub const FAULT_HEADER: &str = "x-mock-fault";
/// Seconds announced by a `429` fault.
pub const RETRY_AFTER_HEADER: &str = "x-mock-retry-after";
/// Chunks sent before a `disconnect` fault aborts a stream.
pub const DISCONNECT_AFTER_HEADER: &str = "x-mock-disconnect-after";

/// `retry-after` of a `429` fault unless the request says otherwise.
pub const DEFAULT_RETRY_AFTER_SECS: u64 = 1;
/// Chunks a `disconnect` fault lets through unless the request says otherwise.
pub const DEFAULT_DISCONNECT_AFTER: u64 = 2;
/// Largest completion a request may ask for, so the mock cannot be made to allocate without
/// bound.
pub const MAX_COMPLETION_TOKENS: u64 = 1_000_000;

/// The knobs in effect for one request.
#[derive(Debug, Clone)]
pub(crate) struct Knobs {
    pub completion_tokens: u64,
    pub latency: Duration,
    pub ttft: Duration,
    pub tokens_per_second: u64,
    pub faults: Faults,
    pub retry_after_secs: u64,
    pub disconnect_after: u64,
}

impl Knobs {
    /// Settings overridden by headers; a malformed header is a 400, not silently ignored.
    pub fn resolve(settings: &MockSettings, headers: &HeaderMap) -> Result<Self, MockError> {
        let completion_tokens =
            number(headers, COMPLETION_TOKENS_HEADER)?.unwrap_or(settings.completion_tokens);
        if completion_tokens > MAX_COMPLETION_TOKENS {
            return Err(MockError::InvalidHeader(COMPLETION_TOKENS_HEADER));
        }
        let faults = match headers.get(FAULT_HEADER) {
            None => Faults::default(),
            Some(value) => Faults::from_header(
                value
                    .to_str()
                    .map_err(|_| MockError::InvalidHeader(FAULT_HEADER))?,
            )?,
        };
        let millis = |header, default| -> Result<Duration, MockError> {
            Ok(Duration::from_millis(
                number(headers, header)?.unwrap_or(default),
            ))
        };
        Ok(Self {
            completion_tokens,
            latency: millis(LATENCY_HEADER, settings.latency_ms)?,
            ttft: millis(TTFT_HEADER, settings.ttft_ms)?,
            tokens_per_second: number(headers, TOKENS_PER_SECOND_HEADER)?
                .unwrap_or(settings.tokens_per_second),
            faults,
            retry_after_secs: number(headers, RETRY_AFTER_HEADER)?
                .unwrap_or(DEFAULT_RETRY_AFTER_SECS),
            disconnect_after: number(headers, DISCONNECT_AFTER_HEADER)?
                .unwrap_or(DEFAULT_DISCONNECT_AFTER),
        })
    }
}

fn number(headers: &HeaderMap, name: &'static str) -> Result<Option<u64>, MockError> {
    headers
        .get(name)
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse().ok())
                .ok_or(MockError::InvalidHeader(name))
        })
        .transpose()
}
