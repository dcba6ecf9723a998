//! OpenAI wire formats: chat completions and legacy completions (JSON and SSE chunks),
//! embeddings and the models list. Shapes follow api.openai.com, including `usage: null` on
//! every chunk when `stream_options.include_usage` is set and the final `choices: []` chunk.

use bytes::Bytes;
use serde::{Serialize, Serializer};

use crate::fault::UsageMode;
use crate::generate::{base64_f32, embedding};
use crate::reply::{CREATED, Count, Reply};
use crate::request::EmbeddingPrompt;
use crate::stream::{Frame, FrameWriter};

#[derive(Serialize)]
struct Usage {
    prompt_tokens: Count,
    completion_tokens: Count,
    total_tokens: Count,
}

fn usage(reply: &Reply<'_>) -> Option<Usage> {
    reply.has_usage().then(|| Usage {
        prompt_tokens: reply.count(reply.prompt_tokens),
        completion_tokens: reply.count(reply.completion_tokens()),
        total_tokens: reply.count(reply.total_tokens()),
    })
}

/// A chunk's `usage`: absent (no include_usage), `null`, or the totals.
enum ChunkUsage {
    Absent,
    Null,
    Totals(Usage),
}

impl ChunkUsage {
    fn is_absent(&self) -> bool {
        matches!(self, ChunkUsage::Absent)
    }
}

impl Serialize for ChunkUsage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ChunkUsage::Absent | ChunkUsage::Null => serializer.serialize_none(),
            ChunkUsage::Totals(usage) => usage.serialize(serializer),
        }
    }
}

#[derive(Serialize)]
struct Response<'a, C> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: C,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize)]
struct Chunk<'a, C> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: C,
    #[serde(skip_serializing_if = "ChunkUsage::is_absent")]
    usage: ChunkUsage,
}

#[derive(Serialize)]
struct ChatChoice<'a> {
    index: u32,
    message: Message<'a>,
    logprobs: (),
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct ChatDelta<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: (),
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
}

#[derive(Serialize)]
struct TextChoice<'a> {
    text: &'a str,
    index: u32,
    logprobs: (),
    finish_reason: Option<&'static str>,
}

/// What every chunk of one stream shares.
struct ChunkHead<'a> {
    id: &'a str,
    object: &'static str,
    reply: &'a Reply<'a>,
    include_usage: bool,
}

impl<'a> ChunkHead<'a> {
    fn chunk<C>(&self, choice: Option<C>) -> Chunk<'a, Choices<C>> {
        Chunk {
            id: self.id,
            object: self.object,
            created: CREATED,
            model: self.reply.model,
            choices: Choices(choice),
            usage: if self.include_usage {
                ChunkUsage::Null
            } else {
                ChunkUsage::Absent
            },
        }
    }
}

/// `[choice]` or `[]` without allocating a Vec per chunk.
struct Choices<T>(Option<T>);

impl<T: Serialize> Serialize for Choices<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter())
    }
}

fn to_bytes(value: &impl Serialize) -> Bytes {
    // Serializing the crate's own plain structs into a Vec cannot fail.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// `chat.completion` JSON.
pub(crate) fn chat_json(reply: &Reply<'_>) -> Bytes {
    let id = format!("chatcmpl-{:016x}", reply.seed);
    let choice = ChatChoice {
        index: 0,
        message: Message {
            role: "assistant",
            content: reply.completion.text(),
        },
        logprobs: (),
        finish_reason: reply.finish_reason(),
    };
    to_bytes(&Response {
        id: &id,
        object: "chat.completion",
        created: CREATED,
        model: reply.model,
        choices: [choice],
        usage: usage(reply),
    })
}

/// `chat.completion.chunk` SSE: role chunk, one chunk per token, finish chunk, optional usage
/// chunk, `[DONE]`.
pub(crate) fn chat_frames(reply: &Reply<'_>, include_usage: bool) -> Vec<Frame> {
    let id = format!("chatcmpl-{:016x}", reply.seed);
    // Without usage (the `no-usage` fault) the stream looks as if usage was never asked for.
    let include_usage = include_usage && reply.has_usage();
    let tokens = usize::try_from(reply.completion_tokens()).unwrap_or(0);
    let mut out = FrameWriter::with_capacity(tokens + 4);
    let head = ChunkHead {
        id: &id,
        object: "chat.completion.chunk",
        reply,
        include_usage,
    };
    let delta = |role, content, finish_reason| ChatDelta {
        index: 0,
        delta: Delta { role, content },
        logprobs: (),
        finish_reason,
    };
    out.event(
        None,
        &head.chunk(Some(delta(Some("assistant"), Some(""), None))),
        0,
    );
    for piece in reply.completion.pieces() {
        out.event(None, &head.chunk(Some(delta(None, Some(piece), None))), 1);
    }
    out.event(
        None,
        &head.chunk(Some(delta(None, None, Some(reply.finish_reason())))),
        0,
    );
    if let Some(totals) = usage(reply).filter(|_| include_usage) {
        out.event(
            None,
            &Chunk {
                usage: ChunkUsage::Totals(totals),
                ..head.chunk(None::<ChatDelta<'_>>)
            },
            0,
        );
    }
    out.done();
    out.finish()
}

/// `text_completion` JSON (legacy completions).
pub(crate) fn completion_json(reply: &Reply<'_>) -> Bytes {
    let id = format!("cmpl-{:016x}", reply.seed);
    let choice = TextChoice {
        text: reply.completion.text(),
        index: 0,
        logprobs: (),
        finish_reason: Some(reply.finish_reason()),
    };
    to_bytes(&Response {
        id: &id,
        object: "text_completion",
        created: CREATED,
        model: reply.model,
        choices: [choice],
        usage: usage(reply),
    })
}

/// `text_completion` SSE: one chunk per token, a finish chunk, optional usage chunk, `[DONE]`.
pub(crate) fn completion_frames(reply: &Reply<'_>, include_usage: bool) -> Vec<Frame> {
    let id = format!("cmpl-{:016x}", reply.seed);
    // Without usage (the `no-usage` fault) the stream looks as if usage was never asked for.
    let include_usage = include_usage && reply.has_usage();
    let tokens = usize::try_from(reply.completion_tokens()).unwrap_or(0);
    let mut out = FrameWriter::with_capacity(tokens + 3);
    let head = ChunkHead {
        id: &id,
        object: "text_completion",
        reply,
        include_usage,
    };
    let choice = |text, finish_reason| TextChoice {
        text,
        index: 0,
        logprobs: (),
        finish_reason,
    };
    for piece in reply.completion.pieces() {
        out.event(None, &head.chunk(Some(choice(piece, None))), 1);
    }
    out.event(
        None,
        &head.chunk(Some(choice("", Some(reply.finish_reason())))),
        0,
    );
    if let Some(totals) = usage(reply).filter(|_| include_usage) {
        out.event(
            None,
            &Chunk {
                usage: ChunkUsage::Totals(totals),
                ..head.chunk(None::<TextChoice<'_>>)
            },
            0,
        );
    }
    out.done();
    out.finish()
}

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<EmbeddingItem>,
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<EmbeddingUsage>,
}

#[derive(Serialize)]
struct EmbeddingItem {
    object: &'static str,
    index: usize,
    embedding: Vector,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector {
    Floats(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: Count,
    total_tokens: Count,
}

/// The embeddings `list`, one vector per input.
pub(crate) fn embeddings_json(prompt: &EmbeddingPrompt, mode: UsageMode) -> Bytes {
    let data = prompt
        .seeds
        .iter()
        .enumerate()
        .map(|(index, seed)| {
            let vector = embedding(*seed, prompt.dimensions);
            let embedding = if prompt.base64 {
                Vector::Base64(base64_f32(&vector))
            } else {
                Vector::Floats(vector)
            };
            EmbeddingItem {
                object: "embedding",
                index,
                embedding,
            }
        })
        .collect();
    let usage = (mode != UsageMode::Omitted).then(|| EmbeddingUsage {
        prompt_tokens: Count::new(prompt.prompt_tokens, mode),
        total_tokens: Count::new(prompt.prompt_tokens, mode),
    });
    to_bytes(&EmbeddingList {
        object: "list",
        data,
        model: &prompt.model,
        usage,
    })
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<ModelEntry<'a>>,
}

#[derive(Serialize)]
struct ModelEntry<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

/// The models `list` of the configured model ids.
pub(crate) fn models_json(models: &[String]) -> Bytes {
    let data = models
        .iter()
        .map(|id| ModelEntry {
            id,
            object: "model",
            created: 0,
            owned_by: "tollgate-mock",
        })
        .collect();
    to_bytes(&ModelList {
        object: "list",
        data,
    })
}
