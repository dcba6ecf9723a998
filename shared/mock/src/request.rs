//! Reading request bodies: what each API's JSON asks for, reduced to what the mock needs (model,
//! prompt size, content hash, stream options, caps).
//!
//! Prompt tokens are counted the same way for every API: whitespace-separated words of every
//! text (message `content` strings, `text` parts/blocks, Anthropic `system`, `prompt`, `input`),
//! a token array counts its length, and chat/Anthropic add [`TOKENS_PER_MESSAGE`] per message.

use std::borrow::Cow;

use serde::Deserialize;

use crate::error::MockError;
use crate::generate::{ContentHash, count_words};

/// Overhead tokens counted for every chat or Anthropic message (role and framing).
pub const TOKENS_PER_MESSAGE: u64 = 3;
/// Embedding dimension when the request does not ask for one.
pub const DEFAULT_DIMENSIONS: usize = 8;
/// Largest `dimensions` accepted, so a request cannot make the mock allocate without bound.
pub const MAX_DIMENSIONS: u64 = 16_384;

/// A request for text (chat, legacy completion or Anthropic message), reduced.
#[derive(Debug)]
pub(crate) struct TextPrompt {
    pub model: String,
    pub prompt_tokens: u64,
    pub seed: u64,
    pub stream: bool,
    pub include_usage: bool,
    pub max_tokens: Option<u64>,
    pub script: Option<String>,
}

/// An embeddings request, reduced: one seed per input.
#[derive(Debug)]
pub(crate) struct EmbeddingPrompt {
    pub model: String,
    pub prompt_tokens: u64,
    pub seeds: Vec<u64>,
    pub dimensions: usize,
    pub base64: bool,
}

#[derive(Deserialize)]
struct ChatBody<'a> {
    model: Option<String>,
    #[serde(borrow)]
    messages: Option<Vec<Message<'a>>>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    mock_response: Option<String>,
}

#[derive(Deserialize)]
struct AnthropicBody<'a> {
    model: Option<String>,
    #[serde(borrow)]
    messages: Option<Vec<Message<'a>>>,
    #[serde(borrow)]
    system: Option<Content<'a>>,
    stream: Option<bool>,
    max_tokens: Option<u64>,
    mock_response: Option<String>,
}

#[derive(Deserialize)]
struct CompletionBody<'a> {
    model: Option<String>,
    #[serde(borrow)]
    prompt: Option<Input<'a>>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u64>,
    mock_response: Option<String>,
}

#[derive(Deserialize)]
struct EmbeddingBody<'a> {
    model: Option<String>,
    #[serde(borrow)]
    input: Option<Input<'a>>,
    dimensions: Option<u64>,
    encoding_format: Option<String>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow)]
    content: Option<Content<'a>>,
}

/// Message content: a string or an array of parts/blocks whose `text` counts.
#[derive(Deserialize)]
#[serde(untagged)]
enum Content<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Parts(#[serde(borrow)] Vec<Part<'a>>),
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
}

/// `prompt` / `input`: a string, strings, a token array or token arrays.
#[derive(Deserialize)]
#[serde(untagged)]
enum Input<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Texts(#[serde(borrow)] Vec<Cow<'a, str>>),
    Tokens(Vec<i64>),
    TokenLists(Vec<Vec<i64>>),
}

/// Hash and size of one text or token array.
struct Measured {
    seed: u64,
    tokens: u64,
}

impl Input<'_> {
    /// Each input item measured on its own (embeddings return one vector per item).
    fn items(&self) -> Vec<Measured> {
        match self {
            Input::Text(text) => vec![measure_text(text)],
            Input::Texts(texts) => texts.iter().map(|t| measure_text(t)).collect(),
            Input::Tokens(tokens) => vec![measure_tokens(tokens)],
            Input::TokenLists(lists) => lists.iter().map(|t| measure_tokens(t)).collect(),
        }
    }
}

fn measure_text(text: &str) -> Measured {
    let mut hash = ContentHash::new();
    hash.text(text);
    Measured {
        seed: hash.finish(),
        tokens: count_words(text),
    }
}

fn measure_tokens(tokens: &[i64]) -> Measured {
    let mut hash = ContentHash::new();
    tokens.iter().for_each(|t| hash.number(*t));
    Measured {
        seed: hash.finish(),
        tokens: tokens.len() as u64,
    }
}

impl Content<'_> {
    /// Feeds the texts into `hash` and returns their word count.
    fn measure(&self, hash: &mut ContentHash) -> u64 {
        match self {
            Content::Text(text) => {
                hash.text(text);
                count_words(text)
            }
            Content::Parts(parts) => parts
                .iter()
                .filter_map(|part| part.text.as_deref())
                .map(|text| {
                    hash.text(text);
                    count_words(text)
                })
                .sum(),
        }
    }
}

/// Measures messages (and an optional system prompt) into `(seed, prompt_tokens)`.
fn measure_messages(system: Option<&Content<'_>>, messages: &[Message<'_>]) -> (u64, u64) {
    let mut hash = ContentHash::new();
    let mut tokens = system.map_or(0, |system| system.measure(&mut hash));
    for message in messages {
        hash.text(message.role.as_deref().unwrap_or(""));
        let words = message
            .content
            .as_ref()
            .map_or(0, |content| content.measure(&mut hash));
        tokens = tokens
            .saturating_add(words)
            .saturating_add(TOKENS_PER_MESSAGE);
    }
    (hash.finish(), tokens)
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, MockError> {
    serde_json::from_slice(body).map_err(|error| MockError::InvalidJson(error.to_string()))
}

/// The Azure deployment wins over the body's `model`; one of them is required.
fn model(deployment: Option<&str>, model: Option<String>) -> Result<String, MockError> {
    match (deployment, model) {
        (Some(deployment), _) if !deployment.is_empty() => Ok(deployment.to_owned()),
        (_, Some(model)) if !model.is_empty() => Ok(model),
        _ => Err(MockError::MissingField("model")),
    }
}

fn non_empty<T>(items: Option<Vec<T>>, field: &'static str) -> Result<Vec<T>, MockError> {
    match items {
        None => Err(MockError::MissingField(field)),
        Some(items) if items.is_empty() => Err(MockError::InvalidField {
            field,
            reason: "must not be empty",
        }),
        Some(items) => Ok(items),
    }
}

/// `POST /v1/chat/completions` (or the Azure deployment's).
pub(crate) fn chat(body: &[u8], deployment: Option<&str>) -> Result<TextPrompt, MockError> {
    let body: ChatBody<'_> = parse(body)?;
    let messages = non_empty(body.messages, "messages")?;
    let (seed, prompt_tokens) = measure_messages(None, &messages);
    let max_tokens = match (body.max_tokens, body.max_completion_tokens) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(TextPrompt {
        model: model(deployment, body.model)?,
        prompt_tokens,
        seed,
        stream: body.stream.unwrap_or(false),
        include_usage: body
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        max_tokens,
        script: body.mock_response,
    })
}

/// `POST /v1/messages` (Anthropic).
pub(crate) fn anthropic(body: &[u8]) -> Result<TextPrompt, MockError> {
    let body: AnthropicBody<'_> = parse(body)?;
    let messages = non_empty(body.messages, "messages")?;
    let (seed, prompt_tokens) = measure_messages(body.system.as_ref(), &messages);
    Ok(TextPrompt {
        model: model(None, body.model)?,
        prompt_tokens,
        seed,
        stream: body.stream.unwrap_or(false),
        include_usage: true,
        max_tokens: body.max_tokens,
        script: body.mock_response,
    })
}

/// `POST /v1/completions` (legacy); several prompts are answered as one.
pub(crate) fn completion(body: &[u8], deployment: Option<&str>) -> Result<TextPrompt, MockError> {
    let body: CompletionBody<'_> = parse(body)?;
    let prompt = body.prompt.ok_or(MockError::MissingField("prompt"))?;
    let mut hash = ContentHash::new();
    let mut prompt_tokens = 0u64;
    for item in prompt.items() {
        hash.number(item.seed as i64);
        prompt_tokens = prompt_tokens.saturating_add(item.tokens);
    }
    Ok(TextPrompt {
        model: model(deployment, body.model)?,
        prompt_tokens,
        seed: hash.finish(),
        stream: body.stream.unwrap_or(false),
        include_usage: body
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        max_tokens: body.max_tokens,
        script: body.mock_response,
    })
}

/// `POST /v1/embeddings`; each input gets the vector of its own content (batch order does not
/// matter).
pub(crate) fn embeddings(
    body: &[u8],
    deployment: Option<&str>,
) -> Result<EmbeddingPrompt, MockError> {
    let body: EmbeddingBody<'_> = parse(body)?;
    let input = body.input.ok_or(MockError::MissingField("input"))?;
    let items = input.items();
    if items.is_empty() {
        return Err(MockError::InvalidField {
            field: "input",
            reason: "must not be empty",
        });
    }
    let dimensions = match body.dimensions {
        None => DEFAULT_DIMENSIONS,
        Some(n) if (1..=MAX_DIMENSIONS).contains(&n) => {
            usize::try_from(n).unwrap_or(DEFAULT_DIMENSIONS)
        }
        Some(_) => {
            return Err(MockError::InvalidField {
                field: "dimensions",
                reason: "must be between 1 and 16384",
            });
        }
    };
    let base64 = match body.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(_) => {
            return Err(MockError::InvalidField {
                field: "encoding_format",
                reason: "must be `float` or `base64`",
            });
        }
    };
    Ok(EmbeddingPrompt {
        model: model(deployment, body.model)?,
        prompt_tokens: items
            .iter()
            .map(|item| item.tokens)
            .fold(0, u64::saturating_add),
        seeds: items.iter().map(|item| item.seed).collect(),
        dimensions,
        base64,
    })
}
