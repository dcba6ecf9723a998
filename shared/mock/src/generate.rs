//! Deterministic generation: the content hash of a request, completion text (one word = one
//! token), token counting and embedding vectors.
//!
//! Everything derives from std's `DefaultHasher::new()`, whose keys are fixed, so the same
//! request gives the same bytes in every process.

use std::hash::{DefaultHasher, Hasher};

/// The words completions are made of; each is one token.
const WORDS: [&str; 32] = [
    "the",
    "gateway",
    "routes",
    "every",
    "request",
    "to",
    "a",
    "provider",
    "and",
    "counts",
    "tokens",
    "budget",
    "model",
    "stream",
    "answer",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "mock",
    "reply",
    "with",
    "deterministic",
    "text",
    "for",
    "tests",
    "only",
    "fast",
    "cheap",
];

/// Accumulates the content of a request into the seed of everything generated from it.
#[derive(Debug)]
pub(crate) struct ContentHash(DefaultHasher);

impl ContentHash {
    pub fn new() -> Self {
        Self(DefaultHasher::new())
    }

    /// Adds one piece of text; pieces are separated so `["ab","c"]` differs from `["a","bc"]`.
    pub fn text(&mut self, text: &str) {
        self.0.write(text.as_bytes());
        self.0.write_u8(0xff);
    }

    pub fn number(&mut self, n: i64) {
        self.0.write_i64(n);
    }

    pub fn finish(&self) -> u64 {
        self.0.finish()
    }
}

/// The number of tokens in `text`: its whitespace-separated words.
pub(crate) fn count_words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// Why a completion stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finish {
    /// The model said all it wanted to.
    Stop,
    /// `max_tokens` cut it short.
    Length,
}

/// A completion's text; its tokens are its words, each with the whitespace that follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Completion {
    text: String,
    tokens: u64,
    finish: Finish,
}

impl Completion {
    /// `wanted` words chosen by `seed`, capped by `max_tokens`.
    pub fn generated(seed: u64, wanted: u64, max_tokens: Option<u64>) -> Self {
        let (tokens, finish) = cap(wanted, max_tokens);
        let mut text = String::with_capacity(usize::try_from(tokens).unwrap_or(0) * 8);
        let mut state = seed;
        for i in 0..tokens {
            if i > 0 {
                text.push(' ');
            }
            let pick = splitmix(&mut state) % WORDS.len() as u64;
            text.push_str(WORDS[usize::try_from(pick).unwrap_or(0)]);
        }
        Self {
            text,
            tokens,
            finish,
        }
    }

    /// Exactly `script` when it fits in `max_tokens`, else its first `max_tokens` words.
    pub fn scripted(script: &str, max_tokens: Option<u64>) -> Self {
        let words = count_words(script);
        let (tokens, finish) = cap(words, max_tokens);
        let text = if tokens == words {
            script.to_owned()
        } else {
            let end = Pieces::new(script)
                .take(usize::try_from(tokens).unwrap_or(usize::MAX))
                .map(str::len)
                .sum();
            script.get(..end).unwrap_or_default().trim_end().to_owned()
        };
        Self {
            text,
            tokens,
            finish,
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    pub fn finish(&self) -> Finish {
        self.finish
    }

    /// The stream deltas: one per token, each a word with its trailing whitespace, so that
    /// concatenating them gives back [`Completion::text`].
    pub fn pieces(&self) -> Pieces<'_> {
        Pieces::new(&self.text)
    }
}

fn cap(wanted: u64, max_tokens: Option<u64>) -> (u64, Finish) {
    match max_tokens {
        Some(max) if max < wanted => (max, Finish::Length),
        _ => (wanted, Finish::Stop),
    }
}

/// Splits text after each run of whitespace that follows a word (leading whitespace stays with
/// the first word).
#[derive(Debug)]
pub(crate) struct Pieces<'a> {
    rest: &'a str,
}

impl<'a> Pieces<'a> {
    fn new(text: &'a str) -> Self {
        Self { rest: text }
    }
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        let leading = self.rest.len() - self.rest.trim_start().len();
        let after_word = self.rest[leading..]
            .find(char::is_whitespace)
            .map_or(self.rest.len(), |i| leading + i);
        let trailing = self.rest[after_word..].len() - self.rest[after_word..].trim_start().len();
        let (piece, rest) = self.rest.split_at(after_word + trailing);
        self.rest = rest;
        Some(piece)
    }
}

/// A unit-length vector of `dimensions` floats chosen by `seed`.
pub(crate) fn embedding(seed: u64, dimensions: usize) -> Vec<f32> {
    let mut state = seed;
    let mut vector: Vec<f32> = (0..dimensions)
        .map(|_| {
            let bits = splitmix(&mut state) >> 40; // 24 bits: exact in an f32
            (bits as f32 / (1u32 << 23) as f32) - 1.0
        })
        .collect();
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}

/// Standard base64 (with padding) of the little-endian bytes of `vector`, as OpenAI sends for
/// `encoding_format: "base64"`.
pub(crate) fn base64_f32(vector: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// SplitMix64: a tiny, well-mixed, deterministic sequence.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_text_is_deterministic_and_has_the_wanted_words() {
        let a = Completion::generated(42, 16, None);
        assert_eq!(a, Completion::generated(42, 16, None));
        assert_ne!(a.text(), Completion::generated(43, 16, None).text());
        assert_eq!(count_words(a.text()), 16);
        assert_eq!(a.tokens(), 16);
        assert_eq!(a.finish(), Finish::Stop);
        assert_eq!(a.pieces().count(), 16);
        assert_eq!(a.pieces().collect::<String>(), a.text());
    }

    #[test]
    fn max_tokens_caps_and_reports_length() {
        let capped = Completion::generated(1, 16, Some(5));
        assert_eq!((capped.tokens(), capped.finish()), (5, Finish::Length));
        assert_eq!(count_words(capped.text()), 5);
        let exact = Completion::generated(1, 16, Some(16));
        assert_eq!(exact.finish(), Finish::Stop);
        let none = Completion::generated(1, 16, Some(0));
        assert_eq!((none.text(), none.finish()), ("", Finish::Length));
    }

    #[test]
    fn scripts_are_kept_exactly_or_cut_at_a_word() {
        let script = "  Hello,  world\nand more ";
        let whole = Completion::scripted(script, None);
        assert_eq!((whole.text(), whole.tokens()), (script, 4));
        assert_eq!(
            whole.pieces().collect::<Vec<_>>(),
            ["  Hello,  ", "world\n", "and ", "more "]
        );
        let cut = Completion::scripted(script, Some(2));
        assert_eq!(
            (cut.text(), cut.tokens(), cut.finish()),
            ("  Hello,  world", 2, Finish::Length)
        );
    }

    #[test]
    fn embeddings_are_unit_vectors_and_deterministic() {
        let v = embedding(7, 8);
        assert_eq!(v, embedding(7, 8));
        assert_ne!(v, embedding(8, 8));
        let norm: f32 = v.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    }

    #[test]
    fn base64_matches_known_encodings() {
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
        assert_eq!(base64_f32(&[0.0, 0.0]), "AAAAAAAAAAA=");
        assert_eq!(base64_f32(&[]), "");
    }
}
