//! Anthropic Messages wire format: the `message` JSON and the SSE event sequence
//! (`message_start`, `content_block_start`, `ping`, `content_block_delta`*,
//! `content_block_stop`, `message_delta`, `message_stop`) as api.anthropic.com sends them.

use bytes::Bytes;
use serde::Serialize;

use crate::reply::{Count, Reply};
use crate::stream::{Frame, FrameWriter};

#[derive(Serialize)]
struct Usage {
    input_tokens: Count,
    output_tokens: Count,
}

#[derive(Serialize)]
struct Message<'a, C> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: C,
    stop_reason: Option<&'static str>,
    stop_sequence: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize)]
struct TextBlock<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

#[derive(Serialize)]
struct Event<T> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    fields: T,
}

#[derive(Serialize)]
struct Start<'a> {
    message: Message<'a, [TextBlock<'a>; 0]>,
}

#[derive(Serialize)]
struct BlockStart<'a> {
    index: u32,
    content_block: TextBlock<'a>,
}

#[derive(Serialize)]
struct BlockDelta<'a> {
    index: u32,
    delta: TextDelta<'a>,
}

#[derive(Serialize)]
struct TextDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

#[derive(Serialize)]
struct Index {
    index: u32,
}

#[derive(Serialize)]
struct MessageDelta {
    delta: StopDelta,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<OutputUsage>,
}

#[derive(Serialize)]
struct StopDelta {
    stop_reason: &'static str,
    stop_sequence: Option<&'static str>,
}

#[derive(Serialize)]
struct OutputUsage {
    output_tokens: Count,
}

#[derive(Serialize)]
struct Nothing {}

fn id(reply: &Reply<'_>) -> String {
    format!("msg_mock{:016x}", reply.seed)
}

fn usage(reply: &Reply<'_>, output_tokens: u64) -> Option<Usage> {
    reply.has_usage().then(|| Usage {
        input_tokens: reply.count(reply.prompt_tokens),
        output_tokens: reply.count(output_tokens),
    })
}

/// The `message` JSON.
pub(crate) fn message_json(reply: &Reply<'_>) -> Bytes {
    let id = id(reply);
    let message = Message {
        id: &id,
        kind: "message",
        role: "assistant",
        model: reply.model,
        content: [TextBlock {
            kind: "text",
            text: reply.completion.text(),
        }],
        stop_reason: Some(reply.stop_reason()),
        stop_sequence: None,
        usage: usage(reply, reply.completion_tokens()),
    };
    // Serializing the crate's own plain structs into a Vec cannot fail.
    Bytes::from(serde_json::to_vec(&message).unwrap_or_default())
}

/// The SSE events of a streamed message, one `content_block_delta` per token.
pub(crate) fn message_frames(reply: &Reply<'_>) -> Vec<Frame> {
    let id = id(reply);
    let tokens = usize::try_from(reply.completion_tokens()).unwrap_or(0);
    let mut out = FrameWriter::with_capacity(tokens + 6);
    let start = Start {
        message: Message {
            id: &id,
            kind: "message",
            role: "assistant",
            model: reply.model,
            content: [],
            stop_reason: None,
            stop_sequence: None,
            usage: usage(reply, 1),
        },
    };
    event(&mut out, "message_start", &start, 0);
    let block = BlockStart {
        index: 0,
        content_block: TextBlock {
            kind: "text",
            text: "",
        },
    };
    event(&mut out, "content_block_start", &block, 0);
    event(&mut out, "ping", &Nothing {}, 0);
    for piece in reply.completion.pieces() {
        let delta = BlockDelta {
            index: 0,
            delta: TextDelta {
                kind: "text_delta",
                text: piece,
            },
        };
        event(&mut out, "content_block_delta", &delta, 1);
    }
    event(&mut out, "content_block_stop", &Index { index: 0 }, 0);
    let delta = MessageDelta {
        delta: StopDelta {
            stop_reason: reply.stop_reason(),
            stop_sequence: None,
        },
        usage: reply.has_usage().then(|| OutputUsage {
            output_tokens: reply.count(reply.completion_tokens()),
        }),
    };
    event(&mut out, "message_delta", &delta, 0);
    event(&mut out, "message_stop", &Nothing {}, 0);
    out.finish()
}

fn event<T: Serialize>(out: &mut FrameWriter, kind: &'static str, fields: &T, tokens: u64) {
    out.event(Some(kind), &Event { kind, fields }, tokens);
}
