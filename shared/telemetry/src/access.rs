//! The access log: one line per request, in the log's format (text or JSON), under the target
//! `tollgate::access` at level INFO, so `TOLLGATE_LOG`/`RUST_LOG` filter it like any event.
//!
//! The line is written straight into the log buffer rather than through a `tracing` event:
//! formatting an event with eleven fields cost about 16,000 instructions, a seventh of all the
//! node's work on a small request; this costs a tenth of that. The text line has the same
//! shape as the other log lines.

use std::cell::Cell;
use std::io::Write as _;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::log_writer::BatchWriter;

/// Where access lines go once [`crate::init`] has set up logging. Without it (a node started
/// in-process by a test), access lines are not written.
static SINK: OnceLock<Sink> = OnceLock::new();

struct Sink {
    writer: BatchWriter,
    json: bool,
}

pub(crate) fn install(writer: BatchWriter, json: bool) {
    let _ = SINK.set(Sink { writer, json });
}

/// One finished request. Tokens are 0 when unknown; `error` is empty on success.
#[derive(Clone, Copy, Debug)]
pub struct AccessRecord<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub route: &'a str,
    pub model: &'a str,
    pub provider: &'a str,
    pub deployment: &'a str,
    pub status: u16,
    pub error: &'a str,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub latency_us: u64,
}

impl AccessRecord<'_> {
    /// The text fields, in line order.
    fn strings(&self) -> [(&'static str, &str); 6] {
        [
            ("request_id", self.request_id),
            ("method", self.method),
            ("route", self.route),
            ("model", self.model),
            ("provider", self.provider),
            ("deployment", self.deployment),
        ]
    }

    /// The counts after `error`, in line order.
    fn counts(&self) -> [(&'static str, u64); 3] {
        [
            ("input_tokens", self.input_tokens),
            ("output_tokens", self.output_tokens),
            ("latency_us", self.latency_us),
        ]
    }
}

/// Writes the access line of one request (when the log filter lets `tollgate::access` INFO
/// through).
pub fn access(record: &AccessRecord<'_>) {
    let Some(sink) = SINK.get() else {
        return;
    };
    if !tracing::enabled!(target: "tollgate::access", tracing::Level::INFO) {
        return;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    sink.writer.append(|out| {
        if sink.json {
            json_line(out, now, record);
        } else {
            text_line(out, now, record);
        }
    });
}

fn text_line(out: &mut Vec<u8>, now: std::time::Duration, r: &AccessRecord<'_>) {
    timestamp(out, now);
    out.extend_from_slice(b"  INFO tollgate::access: ");
    for (name, value) in r.strings() {
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        if name == "method" {
            out.extend_from_slice(value.as_bytes());
        } else {
            quoted(out, value);
        }
        out.push(b' ');
    }
    out.extend_from_slice(b"status=");
    digits(out, u64::from(r.status));
    out.extend_from_slice(b" error=");
    quoted(out, r.error);
    for (name, value) in r.counts() {
        out.push(b' ');
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        digits(out, value);
    }
    out.push(b'\n');
}

fn json_line(out: &mut Vec<u8>, now: std::time::Duration, r: &AccessRecord<'_>) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    timestamp(out, now);
    out.extend_from_slice(b"\",\"level\":\"INFO\"");
    for (name, value) in r.strings() {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, value);
    }
    out.extend_from_slice(b",\"status\":");
    digits(out, u64::from(r.status));
    out.extend_from_slice(b",\"error\":");
    let _ = serde_json::to_writer(&mut *out, r.error);
    for (name, value) in r.counts() {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        digits(out, value);
    }
    out.extend_from_slice(b",\"target\":\"tollgate::access\"}\n");
}

fn digits(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// A string as `tracing`'s text format shows it: quoted, escaped as Rust's `Debug` would.
fn quoted(out: &mut Vec<u8>, value: &str) {
    if value
        .bytes()
        .all(|b| (b.is_ascii_graphic() && b != b'"' && b != b'\\') || b == b' ')
    {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        let _ = write!(out, "{value:?}");
    }
}

/// RFC 3339 UTC with microseconds, as the log's other lines: `2026-12-02T16:55:22.232131Z`.
/// The date and time up to the second change once a second: they are formatted then and kept
/// per thread, so a line only formats its microseconds.
fn timestamp(out: &mut Vec<u8>, since_epoch: std::time::Duration) {
    thread_local! {
        static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
    }
    let secs = since_epoch.as_secs();
    let second = SECOND.with(|cached| match cached.get() {
        (at, text) if at == secs => text,
        _ => {
            let text = second_text(secs);
            cached.set((secs, text));
            text
        }
    });
    out.extend_from_slice(&second);
    let mut fraction = *b".000000Z";
    zero_padded(&mut fraction[1..7], u64::from(since_epoch.subsec_micros()));
    out.extend_from_slice(&fraction);
}

/// `YYYY-MM-DDTHH:MM:SS` of a second since the Unix epoch.
fn second_text(secs: u64) -> [u8; 19] {
    let (year, month, day) = tollgate_ledger::civil_from_days((secs / 86_400) as i64);
    let of_day = secs % 86_400;
    let mut text = *b"0000-00-00T00:00:00";
    zero_padded(&mut text[0..4], year.clamp(0, 9999) as u64);
    zero_padded(&mut text[5..7], u64::from(month));
    zero_padded(&mut text[8..10], u64::from(day));
    zero_padded(&mut text[11..13], of_day / 3600);
    zero_padded(&mut text[14..16], of_day / 60 % 60);
    zero_padded(&mut text[17..19], of_day % 60);
    text
}

/// The low decimal digits of `value`, zero-padded to fill `slots`.
fn zero_padded(slots: &mut [u8], mut value: u64) {
    for slot in slots.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AccessRecord<'static> {
        AccessRecord {
            request_id: "req-1",
            method: "POST",
            route: "/v1/chat/completions",
            model: "gpt-4o",
            provider: "openai",
            deployment: "gpt-4o-east",
            status: 429,
            error: "rate_limit_exceeded",
            input_tokens: 0,
            output_tokens: 7,
            latency_us: 1234,
        }
    }

    // 2026-12-02T16:55:22.232131Z
    const NOW: std::time::Duration = std::time::Duration::from_micros(1_796_230_522_232_131);

    #[test]
    fn text_lines_look_like_the_other_log_lines() {
        let mut out = Vec::new();
        text_line(&mut out, NOW, &record());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-12-02T16:55:22.232131Z  INFO tollgate::access: request_id=\"req-1\" method=POST \
             route=\"/v1/chat/completions\" model=\"gpt-4o\" provider=\"openai\" \
             deployment=\"gpt-4o-east\" status=429 error=\"rate_limit_exceeded\" input_tokens=0 \
             output_tokens=7 latency_us=1234\n"
        );
    }

    #[test]
    fn json_lines_parse_and_escape_what_they_must() {
        let mut out = Vec::new();
        let mut r = record();
        r.request_id = "a\"b\\c";
        json_line(&mut out, NOW, &r);
        assert_eq!(out.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["timestamp"], "2026-12-02T16:55:22.232131Z");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "tollgate::access");
        assert_eq!(v["request_id"], "a\"b\\c");
        assert_eq!(v["status"], 429);
        assert_eq!(v["error"], "rate_limit_exceeded");
        assert_eq!(v["output_tokens"], 7);
        assert_eq!(v["latency_us"], 1234);
    }

    #[test]
    fn timestamps_across_seconds_and_days() {
        let text = |micros: u64| {
            let mut out = Vec::new();
            timestamp(&mut out, std::time::Duration::from_micros(micros));
            String::from_utf8(out).unwrap()
        };
        // The same second twice (the cached date), then the next second, then the next day.
        assert_eq!(text(1_796_230_522_232_131), "2026-12-02T16:55:22.232131Z");
        assert_eq!(text(1_796_230_522_000_007), "2026-12-02T16:55:22.000007Z");
        assert_eq!(text(1_796_230_523_999_999), "2026-12-02T16:55:23.999999Z");
        assert_eq!(text(1_796_256_000_000_000), "2026-12-03T00:00:00.000000Z");
        assert_eq!(text(0), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn odd_characters_are_escaped_in_text() {
        let mut out = Vec::new();
        quoted(&mut out, "x\"y\nz");
        assert_eq!(out, b"\"x\\\"y\\nz\"");
        let mut out = Vec::new();
        quoted(&mut out, "plain words");
        assert_eq!(out, b"\"plain words\"");
    }
}
