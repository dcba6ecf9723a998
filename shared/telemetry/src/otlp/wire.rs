//! The protobuf wire format of `opentelemetry/proto/collector/trace/v1` and `trace/v1`, written
//! field by field: lengths are worked out up front where they are cheap to know, else the body
//! is written after a one-byte length slot that is widened when needed.

use opentelemetry::trace::SpanId;
use opentelemetry::{Array, InstrumentationScope, Value};
use opentelemetry_sdk::Resource;

use crate::spans::{Kind, SpanHead, SpanTime};

/// The resource and scope every request carries, encoded once.
pub(super) struct Head {
    pub(super) resource: Vec<u8>,
    pub(super) scope: Vec<u8>,
}

const LEN: u32 = 2;
const FIXED64: u32 = 1;
const FIXED32: u32 = 5;
const VARINT: u32 = 0;

#[inline]
fn key(out: &mut Vec<u8>, field: u32, wire: u32) {
    varint(out, u64::from(field << 3 | wire));
}

#[inline]
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
fn varint_len(v: u64) -> usize {
    // 1 byte per started 7 bits, at least 1.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

#[inline]
fn bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    key(out, field, LEN);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A length-delimited field whose body `write` appends: the body is written after a length
/// slot of `slot` bytes (the width its length is expected to need), moved along when its
/// length needs another width.
fn nested(out: &mut Vec<u8>, field: u32, slot: usize, write: impl FnOnce(&mut Vec<u8>)) {
    key(out, field, LEN);
    let at = out.len();
    out.resize(at + slot, 0);
    write(out);
    let len = out.len() - at - slot;
    let width = varint_len(len as u64);
    if width != slot {
        if width > slot {
            out.resize(out.len() + width - slot, 0);
        }
        out.copy_within(at + slot..at + slot + len, at + width);
        out.truncate(at + width + len);
    }
    let mut v = len as u64;
    for byte in &mut out[at..at + width] {
        *byte = v as u8 | 0x80;
        v >>= 7;
    }
    out[at + width - 1] &= 0x7f;
}

/// The body of an `InstrumentationScope`: name and version.
pub(super) fn encode_scope(scope: &InstrumentationScope) -> Vec<u8> {
    let mut out = Vec::new();
    bytes_field(&mut out, 1, scope.name().as_bytes());
    if let Some(version) = scope.version() {
        bytes_field(&mut out, 2, version.as_bytes());
    }
    out
}

/// The start of an `ExportTraceServiceRequest { resource_spans: [ResourceSpans { resource,
/// scope_spans: [ScopeSpans { scope, spans }] }] }` whose `spans`, `spans_len` bytes of
/// already encoded `ScopeSpans.spans` entries, follow it: every span this node makes has the
/// same resource and scope.
pub(super) fn request_prefix(head: &Head, spans_len: usize) -> Vec<u8> {
    let field_len = |len: usize| 1 + varint_len(len as u64) + len;
    let scope_spans = field_len(head.scope.len()) + spans_len;
    let resource_spans = field_len(head.resource.len()) + field_len(scope_spans);
    let mut out = Vec::with_capacity(field_len(resource_spans) - spans_len);
    key(&mut out, 1, LEN);
    varint(&mut out, resource_spans as u64);
    bytes_field(&mut out, 1, &head.resource);
    key(&mut out, 2, LEN);
    varint(&mut out, scope_spans as u64);
    bytes_field(&mut out, 1, &head.scope);
    out
}

/// An entry of `ScopeSpans.spans` (field 2) whose `Span` body `write` appends. The length
/// slot is two bytes: every span this node makes has 128 to 16,383 bytes.
pub(super) fn scope_span(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    nested(out, 2, 2, write);
}

/// A `Span` body: ids, start and end, status (ERROR when `failed`, else unset) and flags,
/// all of fixed width and written as one piece; then the head's template (name, kind and the
/// attributes every such span has); then the attributes `attributes` appends. Protobuf fields
/// may come in any order.
pub(crate) fn span(
    out: &mut Vec<u8>,
    head: &SpanHead<'_>,
    end: SpanTime,
    failed: bool,
    attributes: impl FnOnce(&mut Vec<u8>),
) {
    let ids = &head.ids;
    // At most: three ids (18 + 10 + 10), two times (9 each), flags (6) and status (4).
    let mut fixed = [0; 66];
    fixed[..2].copy_from_slice(&[tag(1, LEN), 16]);
    fixed[2..18].copy_from_slice(&ids.trace_id.to_bytes());
    fixed[18..20].copy_from_slice(&[tag(2, LEN), 8]);
    fixed[20..28].copy_from_slice(&ids.span_id.to_bytes());
    let mut at = 28;
    if ids.parent != SpanId::INVALID {
        fixed[28..30].copy_from_slice(&[tag(4, LEN), 8]);
        fixed[30..38].copy_from_slice(&ids.parent.to_bytes());
        at = 38;
    }
    fixed[at] = tag(7, FIXED64);
    fixed[at + 1..at + 9].copy_from_slice(&head.start.unix_nanos().to_le_bytes());
    fixed[at + 9] = tag(8, FIXED64);
    fixed[at + 10..at + 18].copy_from_slice(&end.unix_nanos().to_le_bytes());
    // Span flags (field 16, a two-byte tag): sampled, and whether the parent is remote.
    let flags: u32 = if ids.parent_remote { 0x301 } else { 0x101 };
    fixed[at + 18..at + 20].copy_from_slice(&[16 << 3 | FIXED32 as u8 | 0x80, 1]);
    fixed[at + 20..at + 24].copy_from_slice(&flags.to_le_bytes());
    // Status (field 15): ERROR (`code = 3: 2`) for a failure, else UNSET (an empty message).
    let status: &[u8] = if failed {
        &[tag(15, LEN), 2, tag(3, VARINT), 2]
    } else {
        &[tag(15, LEN), 0]
    };
    fixed[at + 24..at + 24 + status.len()].copy_from_slice(status);
    out.extend_from_slice(&fixed[..at + 24 + status.len()]);
    out.extend_from_slice(head.template.bytes());
    attributes(out);
}

/// A one-byte field tag (fields 1 to 15).
const fn tag(field: u32, wire: u32) -> u8 {
    (field << 3 | wire) as u8
}

/// A `Span`'s name (field 5), its parts joined, and kind (field 6).
pub(crate) fn name_and_kind(out: &mut Vec<u8>, name: &[&str], kind: Kind) {
    key(out, 5, LEN);
    varint(out, name.iter().map(|part| part.len() as u64).sum());
    for part in name {
        out.extend_from_slice(part.as_bytes());
    }
    key(out, 6, VARINT);
    varint(
        out,
        match kind {
            Kind::Server => 2,
            Kind::Client => 3,
        },
    );
}

/// A string attribute of a `Span` (`attributes = 9`). Inlined, as the next two are: the
/// callers' keys are literals, so their lengths and copies fold into a few moves.
#[inline(always)]
pub(crate) fn string_attribute(out: &mut Vec<u8>, name: &str, value: &str) {
    key_value_head(
        out,
        9,
        name,
        1 + varint_len(value.len() as u64) + value.len(),
    );
    bytes_field(out, 1, value.as_bytes());
}

/// An integer attribute of a `Span` (`attributes = 9`).
#[inline(always)]
pub(crate) fn int_attribute(out: &mut Vec<u8>, name: &str, value: i64) {
    key_value_head(out, 9, name, 1 + varint_len(value as u64));
    key(out, 3, VARINT);
    varint(out, value as u64);
}

/// A `KeyValue { key = 1, value = 2: AnyValue }` as field `field`, up to the `AnyValue`'s
/// body of `any_len` bytes, which the caller writes next.
#[inline(always)]
fn key_value_head(out: &mut Vec<u8>, field: u32, name: &str, any_len: usize) {
    let short_len = 4 + name.len() + any_len;
    if short_len < 128 && field < 16 {
        // Every tag and length fits one byte: the common case (all of the node's span
        // attributes), written without varint loops.
        out.reserve(short_len + 2);
        out.extend_from_slice(&[
            (field << 3 | LEN) as u8,
            short_len as u8,
            1 << 3 | LEN as u8,
            name.len() as u8,
        ]);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&[2 << 3 | LEN as u8, any_len as u8]);
        return;
    }
    let kv_len =
        1 + varint_len(name.len() as u64) + name.len() + 1 + varint_len(any_len as u64) + any_len;
    out.reserve(kv_len + 6);
    key(out, field, LEN);
    varint(out, kv_len as u64);
    bytes_field(out, 1, name.as_bytes());
    key(out, 2, LEN);
    varint(out, any_len as u64);
}

/// `KeyValue` of any value as field `field` of the enclosing message (the resource's
/// attributes). Strings and numbers have their lengths worked out up front.
fn encode_key_value(out: &mut Vec<u8>, field: u32, name: &str, value: &Value) {
    match scalar_len(value) {
        Some(any_len) => {
            key_value_head(out, field, name, any_len);
            encode_any_value(out, value);
        }
        None => nested(out, field, 1, |kv| {
            bytes_field(kv, 1, name.as_bytes());
            nested(kv, 2, 1, |any| encode_any_value(any, value));
        }),
    }
}

/// The encoded length of an `AnyValue` holding a string, bool or number.
fn scalar_len(value: &Value) -> Option<usize> {
    Some(match value {
        Value::String(s) => 1 + varint_len(s.as_str().len() as u64) + s.as_str().len(),
        Value::Bool(_) => 2,
        Value::I64(i) => 1 + varint_len(*i as u64),
        Value::F64(_) => 9,
        _ => return None,
    })
}

/// The body of an `AnyValue`: `string_value = 1, bool_value = 2, int_value = 3,
/// double_value = 4, array_value = 5`.
fn encode_any_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::String(s) => bytes_field(out, 1, s.as_str().as_bytes()),
        Value::Bool(b) => {
            key(out, 2, VARINT);
            varint(out, u64::from(*b));
        }
        Value::I64(i) => {
            key(out, 3, VARINT);
            varint(out, *i as u64);
        }
        Value::F64(f) => {
            key(out, 4, FIXED64);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::Array(array) => nested(out, 5, 1, |values| match array {
            Array::Bool(items) => items.iter().for_each(|&b| {
                nested(values, 1, 1, |any| encode_any_value(any, &Value::Bool(b)));
            }),
            Array::I64(items) => items.iter().for_each(|&i| {
                nested(values, 1, 1, |any| encode_any_value(any, &Value::I64(i)));
            }),
            Array::F64(items) => items.iter().for_each(|&f| {
                nested(values, 1, 1, |any| encode_any_value(any, &Value::F64(f)));
            }),
            Array::String(items) => items.iter().for_each(|s| {
                nested(values, 1, 1, |any| {
                    bytes_field(any, 1, s.as_str().as_bytes())
                });
            }),
            _ => {}
        }),
        // `Value` is non-exhaustive; a kind this code does not know is sent as its text.
        other => bytes_field(out, 1, other.to_string().as_bytes()),
    }
}

/// The body of a `Resource`: its attributes.
pub(super) fn encode_resource(resource: &Resource) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in resource.iter() {
        encode_key_value(&mut out, 1, key.as_str(), value);
    }
    out
}

#[cfg(test)]
pub(in crate::otlp) mod tests {
    use super::*;
    use crate::spans::{SpanIds, SpanTemplate};
    use opentelemetry::KeyValue;
    use opentelemetry::trace::{SpanContext, SpanKind, Status, TraceFlags, TraceId, TraceState};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value;
    use opentelemetry_sdk::trace::SpanData;
    use prost::Message as _;
    use std::borrow::Cow;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    const END: u64 = 1_700_000_000_223_456_789;

    /// A span as the test describes it, to be written by [`super::span`] and by the SDK.
    pub(in crate::otlp) struct TestSpan {
        ids: SpanIds,
        kind: Kind,
        name: Vec<&'static str>,
        start: SystemTime,
        attributes: Vec<KeyValue>,
        error: bool,
    }

    pub(in crate::otlp) fn span(
        name: &'static str,
        parent: u64,
        remote: bool,
        error: bool,
        attributes: Vec<KeyValue>,
    ) -> TestSpan {
        TestSpan {
            ids: SpanIds {
                trace_id: TraceId::from(0x0af7651916cd43dd8448eb211c80319c),
                span_id: SpanId::from(0xb7ad6b7169203331 + parent),
                parent: SpanId::from(parent),
                parent_remote: remote,
            },
            kind: if parent == 0 {
                Kind::Server
            } else {
                Kind::Client
            },
            name: name.split_inclusive(' ').collect(),
            start: UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789),
            attributes,
            error,
        }
    }

    impl TestSpan {
        /// The `Span` body [`super::span`] writes, ended at [`END`].
        pub(in crate::otlp) fn ours(&self) -> Vec<u8> {
            let template = SpanTemplate::new(self.kind, &self.name, &[]);
            let head = SpanHead {
                ids: self.ids,
                start: SpanTime::of(self.start),
                template: &template,
            };
            let end = SpanTime::of(UNIX_EPOCH + Duration::from_nanos(END));
            let mut out = Vec::new();
            super::span(&mut out, &head, end, self.error, |out| {
                for attribute in &self.attributes {
                    let name = attribute.key.as_str();
                    match &attribute.value {
                        Value::String(s) => string_attribute(out, name, s.as_str()),
                        Value::I64(i) => int_attribute(out, name, *i),
                        other => panic!("spans carry strings and integers, not {other:?}"),
                    }
                }
            });
            out
        }

        /// The same span as the OpenTelemetry SDK's span data.
        fn data(&self) -> SpanData {
            SpanData {
                span_context: SpanContext::new(
                    self.ids.trace_id,
                    self.ids.span_id,
                    TraceFlags::SAMPLED,
                    false,
                    TraceState::NONE,
                ),
                parent_span_id: self.ids.parent,
                parent_span_is_remote: self.ids.parent_remote,
                span_kind: match self.kind {
                    Kind::Server => SpanKind::Server,
                    Kind::Client => SpanKind::Client,
                },
                name: Cow::Owned(self.name.concat()),
                start_time: self.start,
                end_time: UNIX_EPOCH + Duration::from_nanos(END),
                attributes: self.attributes.clone(),
                dropped_attributes_count: 0,
                events: Default::default(),
                links: Default::default(),
                status: if self.error {
                    Status::error("")
                } else {
                    Status::Unset
                },
                instrumentation_scope: crate::spans::scope().clone(),
            }
        }
    }

    /// What `opentelemetry-otlp` sends for the same spans: the SDK's own conversion, encoded
    /// by prost.
    fn reference(resource: &Resource, spans: &[TestSpan]) -> ExportTraceServiceRequest {
        use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
        use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
        ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                spans.iter().map(TestSpan::data).collect(),
                &ResourceAttributesWithSchema::from(resource),
            ),
        }
    }

    /// A whole request as the export thread sends it.
    pub(in crate::otlp) fn request(head: &Head, spans: &[u8]) -> Vec<u8> {
        let mut out = request_prefix(head, spans.len());
        out.extend_from_slice(spans);
        out
    }

    fn ours(resource: &Resource, spans: &[TestSpan]) -> Vec<u8> {
        let mut encoded = Vec::new();
        for span in spans {
            scope_span(&mut encoded, |out| out.extend_from_slice(&span.ours()));
        }
        let head = Head {
            resource: encode_resource(resource),
            scope: encode_scope(crate::spans::scope()),
        };
        request(&head, &encoded)
    }

    #[test]
    fn the_bytes_decode_to_what_the_sdk_conversion_would_send() {
        let long = "x".repeat(300); // a length that needs a two-byte varint
        let spans = vec![
            span(
                "chat gpt-4o",
                0,
                false,
                false,
                vec![
                    KeyValue::new("http.route", "/v1/chat/completions"),
                    KeyValue::new("gen_ai.usage.input_tokens", 12_i64),
                    KeyValue::new("negative", -3_i64),
                    KeyValue::new("zero", 0_i64),
                    KeyValue::new("one varint byte", 127_i64),
                    KeyValue::new("two varint bytes", 128_i64),
                    KeyValue::new("max", i64::MAX),
                    KeyValue::new("long", long.clone()),
                    KeyValue::new("", ""),
                    // 127 and 128 bytes as a `KeyValue`: the last with one-byte lengths, and
                    // the first without.
                    KeyValue::new("edge", "y".repeat(117)),
                    KeyValue::new("edge", "y".repeat(118)),
                    KeyValue::new("min", i64::MIN),
                    KeyValue::new("k".repeat(112), i64::MIN),
                    KeyValue::new("k".repeat(113), i64::MIN),
                ],
            ),
            span(
                "POST",
                0x1234,
                true,
                true,
                (0..40)
                    .map(|i| KeyValue::new(format!("k{i}"), long.clone()))
                    .collect(),
            ),
            // Batch entries of under 128 bytes and of 16 KiB or more: lengths of one and three
            // bytes where two were expected.
            span("m", 0, false, false, vec![]),
            span(
                "big",
                0,
                false,
                false,
                vec![KeyValue::new("big", "z".repeat(20_000))],
            ),
        ];
        // The resource's attributes go through the general encoding: every kind of value.
        let resource = Resource::builder()
            .with_service_name("tollgate-test")
            .with_attributes([
                KeyValue::new("ok", true),
                KeyValue::new("ratio", 0.25),
                KeyValue::new("n", 7_i64),
                KeyValue::new("long", long.clone()),
                KeyValue::new(
                    "names",
                    Value::Array(vec![opentelemetry::StringValue::from("stop")].into()),
                ),
                KeyValue::new("counts", Value::Array(vec![1_i64, 2].into())),
                KeyValue::new("flags", Value::Array(vec![true, false].into())),
                KeyValue::new("ratios", Value::Array(vec![0.5, 1.5].into())),
            ])
            .build();
        let decoded =
            ExportTraceServiceRequest::decode(ours(&resource, &spans).as_slice()).unwrap();
        assert_eq!(decoded, reference(&resource, &spans));
        let span = &decoded.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.name, "chat gpt-4o");
        assert_eq!(span.start_time_unix_nano, 1_700_000_000_123_456_789);
        assert!(matches!(
            span.attributes[0].value.as_ref().unwrap().value,
            Some(any_value::Value::StringValue(ref s)) if s == "/v1/chat/completions"
        ));
        assert_eq!(
            decoded.resource_spans[0]
                .resource
                .as_ref()
                .unwrap()
                .attributes
                .len(),
            resource.len(),
            "every resource attribute arrives"
        );
    }

    #[test]
    fn varint_lengths_match_the_encoding() {
        for v in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
            assert_eq!(
                prost::encoding::decode_varint(&mut out.as_slice()).unwrap(),
                v
            );
        }
    }
}
