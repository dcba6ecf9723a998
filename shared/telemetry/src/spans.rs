//! Request and upstream-attempt spans, written as OTLP protobuf straight into the export
//! thread's next batch (`otlp`) when they end.
//!
//! A span here is its ids ([`SpanIds`], fixed when the request starts, so the upstream call can
//! carry them in `traceparent`), its start, and a [`SpanTemplate`]: its kind, name and the
//! attributes every span of its sort carries, encoded once (per deployment and operation, for
//! the node's spans). The node keeps what it learns along the way in its own types and writes
//! the span in one go at the end ([`export`]): ids, times and status as one fixed-width piece,
//! the template as one copy, then the few attributes of this request. No buffer of its own per
//! span, no copy.
//!
//! Going through `tracing` spans and `tracing-opentelemetry` instead cost about 50,000
//! instructions per traced request (every field recorded through the subscriber's layers, the
//! span context resolved for propagation); holding attributes as OpenTelemetry `KeyValue`s (with
//! owned copies of the strings) until the end and encoding them then cost several thousand more
//! than writing them at once; and writing each span into a buffer of its own, copied into the
//! batch when it ended, a heap buffer and a copy per span more than this.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderName, HeaderValue};
use opentelemetry::InstrumentationScope;
use opentelemetry::trace::{SpanId, TraceId};
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};

use crate::otlp::{Queue, wire};

/// The W3C trace context headers, taken from clients and sent upstream.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The export queue, once [`crate::init`] has configured OTLP.
static QUEUE: OnceLock<Arc<Queue>> = OnceLock::new();
static SCOPE: OnceLock<InstrumentationScope> = OnceLock::new();

pub(crate) fn install(queue: Arc<Queue>) {
    let _ = QUEUE.set(queue);
}

pub(crate) fn exporting() -> bool {
    QUEUE.get().is_some()
}

/// Where a span sits in its trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanIds {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    /// `SpanId::INVALID` for a root span.
    pub(crate) parent: SpanId,
    pub(crate) parent_remote: bool,
}

/// A W3C `traceparent` a client sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Traceparent {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) sampled: bool,
}

impl SpanIds {
    /// A server span: the child of the client's span when it sent a valid `traceparent`,
    /// else the root of a new trace.
    pub(crate) fn server(parent: Option<Traceparent>) -> SpanIds {
        match parent {
            Some(p) => SpanIds {
                trace_id: p.trace_id,
                span_id: new_span_id(),
                parent: p.span_id,
                parent_remote: true,
            },
            None => SpanIds {
                trace_id: TraceId::from(random::<u128>().max(1)),
                span_id: new_span_id(),
                parent: SpanId::INVALID,
                parent_remote: false,
            },
        }
    }

    /// A child span of this one, in the same process.
    pub fn child(&self) -> SpanIds {
        SpanIds {
            trace_id: self.trace_id,
            span_id: new_span_id(),
            parent: self.span_id,
            parent_remote: false,
        }
    }

    /// The `traceparent` that makes a callee's spans children of this span.
    pub fn traceparent(&self) -> HeaderValue {
        // `00-<32 hex>-<16 hex>-01`, written without the formatting machinery: this runs for
        // every traced upstream call.
        let mut text = *b"00-00000000000000000000000000000000-0000000000000000-01";
        text[3..35].copy_from_slice(&hex::<16, 32>(self.trace_id.to_bytes()));
        text[36..52].copy_from_slice(&hex::<8, 16>(self.span_id.to_bytes()));
        HeaderValue::from_bytes(&text).unwrap_or(HeaderValue::from_static(""))
    }
}

/// `bytes` in lower-case hex (`M` is twice `N`), one table lookup per byte: for the ids the
/// node writes on every request (`traceparent` here, the node's own `x-request-id`).
pub fn hex<const N: usize, const M: usize>(bytes: [u8; N]) -> [u8; M] {
    let mut out = [0; M];
    for (i, byte) in bytes.into_iter().enumerate() {
        [out[2 * i], out[2 * i + 1]] = HEX_PAIRS[usize::from(byte)];
    }
    out
}

/// Each byte's two lower-case hex digits.
static HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        pairs[byte] = [HEX[byte >> 4], HEX[byte & 0xf]];
        byte += 1;
    }
    pairs
};

thread_local! {
    /// Where trace and span ids come from: a small fast generator per thread, seeded from the
    /// operating system, as the OpenTelemetry SDK's own id generator does. Ids need to be
    /// unique and unpredictable enough not to collide, not secret, and the thread's `rand`
    /// generator (a cryptographic one, with its reseeding checks) costs more per id.
    static IDS: RefCell<SmallRng> = RefCell::new(SmallRng::from_os_rng());
}

/// A draw from this thread's id generator ([`IDS`]).
pub(crate) fn random<T>() -> T
where
    rand::distr::StandardUniform: rand::distr::Distribution<T>,
{
    IDS.with_borrow_mut(|rng| rng.random())
}

fn new_span_id() -> SpanId {
    SpanId::from(random::<u64>().max(1))
}

/// The kind of a span this node makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A request the node served.
    Server,
    /// A call the node made upstream.
    Client,
}

/// A span's start or end as OTLP writes it: nanoseconds since the Unix epoch. Kept as the
/// integer it is sent as, so working out a span's times is integer additions, not `SystemTime`
/// arithmetic and conversions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SpanTime(u64);

impl SpanTime {
    /// `time` (the epoch itself for a time before it).
    pub fn of(time: SystemTime) -> Self {
        Self(nanos(
            time.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default(),
        ))
    }

    /// The time `by` after this one.
    pub fn after(self, by: Duration) -> Self {
        Self(self.0.saturating_add(nanos(by)))
    }

    pub(crate) fn unix_nanos(self) -> u64 {
        self.0
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A request's wall-clock start paired with the monotonic reading the node took at the same
/// moment: the times of its spans are worked out from the monotonic readings the node takes
/// anyway (for its latency metrics) instead of reading the wall clock again for each, so a
/// span lasts exactly the duration the metrics recorded.
#[derive(Clone, Copy, Debug)]
pub struct SpanClock {
    wall: SpanTime,
    monotonic: Instant,
}

impl SpanClock {
    /// The clock of a request that started at `monotonic` (now).
    pub fn starting_at(monotonic: Instant) -> Self {
        Self {
            wall: SpanTime::of(SystemTime::now()),
            monotonic,
        }
    }

    /// The request's start.
    pub fn start(&self) -> SpanTime {
        self.wall
    }

    /// The wall-clock time of the monotonic reading `at`.
    pub fn wall(&self, at: Instant) -> SpanTime {
        self.wall
            .after(at.saturating_duration_since(self.monotonic))
    }
}

/// Where a span sits and when it started, and its [`SpanTemplate`].
#[derive(Clone, Copy, Debug)]
pub struct SpanHead<'a> {
    pub ids: SpanIds,
    pub start: SpanTime,
    pub template: &'a SpanTemplate,
}

/// Adds attributes to a span as it is written into the export batch.
#[derive(Debug)]
pub struct SpanWriter<'a>(&'a mut Vec<u8>);

impl SpanWriter<'_> {
    /// A string attribute.
    #[inline]
    pub fn str(&mut self, key: &str, value: &str) {
        wire::string_attribute(self.0, key, value);
    }

    /// An integer attribute.
    #[inline]
    pub fn int(&mut self, key: &str, value: i64) {
        wire::int_attribute(self.0, key, value);
    }
}

/// What every span of one kind made for one deployment and operation has in common -- its
/// kind, its name (its parts joined: `["chat", " ", model]`) and string attributes such as the
/// deployment's model, provider and id -- encoded once: writing such a span copies it whole
/// instead of encoding each part again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanTemplate(Box<[u8]>);

impl SpanTemplate {
    pub fn new(kind: Kind, name: &[&str], attributes: &[(&str, &str)]) -> Self {
        let mut bytes = Vec::new();
        wire::name_and_kind(&mut bytes, name, kind);
        for (key, value) in attributes {
            wire::string_attribute(&mut bytes, key, value);
        }
        Self(bytes.into_boxed_slice())
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Writes a span that ended at `end`, `attributes` adding its attributes, straight into the
/// next export batch (nothing happens when traces are off); `failed` marks a span that
/// describes a failure (status ERROR). Never blocks on the network: while the collector is
/// behind, newer spans are dropped.
pub fn export(
    head: &SpanHead<'_>,
    end: SpanTime,
    failed: bool,
    attributes: impl FnOnce(&mut SpanWriter<'_>),
) {
    if let Some(queue) = QUEUE.get() {
        queue.push(|out| {
            wire::span(out, head, end, failed, |out| {
                attributes(&mut SpanWriter(out))
            });
        });
    }
}

/// The instrumentation scope of every span this node makes.
pub(crate) fn scope() -> &'static InstrumentationScope {
    SCOPE.get_or_init(|| {
        InstrumentationScope::builder("tollgate")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build()
    })
}

/// Parses a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`); `None` when it is not a
/// valid one (it is then ignored).
pub(crate) fn parse_traceparent(value: &[u8]) -> Option<Traceparent> {
    let text = std::str::from_utf8(value).ok()?;
    let mut parts = text.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !(hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && hex(span, 16)
        && hex(flags, 2)
        && (version != "00" || parts.next().is_none()))
    {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    (trace_id != TraceId::INVALID && span_id != SpanId::INVALID).then_some(Traceparent {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_templates_attributes_are_the_bytes_of_adding_each() {
        let ids = SpanIds {
            trace_id: TraceId::from_bytes([7; 16]),
            span_id: SpanId::from_bytes([9; 8]),
            parent: SpanId::INVALID,
            parent_remote: false,
        };
        let start = SpanTime::of(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        let pairs = [
            ("gen_ai.operation.name", "chat"),
            ("gen_ai.request.model", "gpt-4o"),
            ("tollgate.deployment", &*"d".repeat(200)), // past one-byte lengths
        ];
        let name = ["chat", " ", "gpt-4o"];
        let written = |template: &SpanTemplate, attributes: &dyn Fn(&mut SpanWriter<'_>)| {
            let head = SpanHead {
                ids,
                start,
                template,
            };
            let mut out = Vec::new();
            wire::span(&mut out, &head, start, false, |out| {
                attributes(&mut SpanWriter(out));
            });
            out
        };
        let each = written(&SpanTemplate::new(Kind::Client, &name, &[]), &|span| {
            for (key, value) in pairs {
                span.str(key, value);
            }
            span.int("n", 1);
        });
        let once = written(&SpanTemplate::new(Kind::Client, &name, &pairs), &|span| {
            span.int("n", 1);
        });
        assert_eq!(once, each);
    }

    #[test]
    fn span_times_are_the_clocks_start_plus_the_monotonic_time_since() {
        let started = Instant::now();
        let clock = SpanClock::starting_at(started);
        let start = clock.start().unix_nanos();
        let now = SpanTime::of(SystemTime::now()).unix_nanos();
        assert!(
            start <= now && now - start < 60_000_000_000,
            "{start} vs {now}"
        );
        let later = started + Duration::from_millis(40);
        assert_eq!(clock.wall(later).unix_nanos(), start + 40_000_000);
        assert_eq!(clock.wall(started).unix_nanos(), start);
        assert_eq!(
            clock.start().after(Duration::new(2, 5)).unix_nanos(),
            start + 2_000_000_005
        );
        assert_eq!(
            SpanTime::of(SystemTime::UNIX_EPOCH - Duration::from_secs(1)).unix_nanos(),
            0
        );
    }

    #[test]
    fn ids_differ_between_draws_and_between_threads() {
        let draw = || (0..1000).map(|_| SpanIds::server(None)).collect::<Vec<_>>();
        let mut ids = draw();
        ids.extend(std::thread::spawn(draw).join().unwrap());
        let mut span_ids: Vec<_> = ids.iter().map(|ids| ids.span_id).collect();
        let mut trace_ids: Vec<_> = ids.iter().map(|ids| ids.trace_id).collect();
        span_ids.sort_by_key(|id| id.to_bytes());
        span_ids.dedup();
        trace_ids.sort_by_key(|id| id.to_bytes());
        trace_ids.dedup();
        assert_eq!((span_ids.len(), trace_ids.len()), (2000, 2000));
        assert!(!span_ids.contains(&SpanId::INVALID) && !trace_ids.contains(&TraceId::INVALID));
    }

    #[test]
    fn a_valid_traceparent_is_read_and_anything_else_ignored() {
        let tp = |s: &str| parse_traceparent(s.as_bytes());
        let parsed = tp("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        assert_eq!(
            parsed.trace_id.to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(parsed.span_id.to_string(), "b7ad6b7169203331");
        assert!(parsed.sampled);
        let unsampled = tp("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00").unwrap();
        assert!(!unsampled.sampled);
        assert!(
            tp("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03")
                .unwrap()
                .sampled,
            "other flag bits do not matter"
        );
        for invalid in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-0af7651916cd43dd8448eb211c80319z-b7ad6b7169203331-01",
        ] {
            assert_eq!(tp(invalid), None, "{invalid:?}");
        }
        assert!(
            tp("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-future").is_some(),
            "a later version may carry more fields"
        );
    }

    #[test]
    fn server_spans_join_the_clients_trace_and_children_follow() {
        let parent = parse_traceparent(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        let server = SpanIds::server(parent);
        assert_eq!(
            server.trace_id.to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(server.parent.to_string(), "b7ad6b7169203331");
        assert!(server.parent_remote);
        let child = server.child();
        assert_eq!(child.trace_id, server.trace_id);
        assert_eq!(child.parent, server.span_id);
        assert_ne!(child.span_id, server.span_id);
        assert!(!child.parent_remote);
        assert_eq!(
            child.traceparent().to_str().unwrap(),
            format!("00-{}-{}-01", server.trace_id, child.span_id)
        );
        let root = SpanIds::server(None);
        assert_eq!(root.parent, SpanId::INVALID);
        assert_ne!(root.trace_id, TraceId::INVALID);
    }
}
