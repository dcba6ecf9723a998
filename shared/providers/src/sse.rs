//! Passing an OpenAI-style SSE stream through with bounded buffering.
//!
//! Chunks are forwarded as soon as they hold complete events; only an incomplete trailing event
//! is held back (at most [`MAX_EVENT_BYTES`]). Events that carry a usage object are read so the
//! gateway always knows what the stream cost; the final usage-only chunk (`choices: []`) is
//! removed when the client did not ask for it, since the gateway forced
//! `stream_options.include_usage` upstream for its own accounting.

use std::sync::LazyLock;

use bytes::{Bytes, BytesMut};
use memchr::memmem;
use serde::Deserialize;
use serde::de::IgnoredAny;
use tollgate_api::Usage;

use crate::ProviderError;

/// The largest single event held while waiting for its end.
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// Filters one stream. Feed it chunks with [`UsageFilter::push`] in order.
#[derive(Debug)]
pub struct UsageFilter {
    pending: BytesMut,
    keep_usage_chunk: bool,
    usage: Option<Usage>,
    done: bool,
}

impl UsageFilter {
    /// `keep_usage_chunk`: the client asked for `stream_options.include_usage`.
    pub fn new(keep_usage_chunk: bool) -> Self {
        Self {
            pending: BytesMut::new(),
            keep_usage_chunk,
            usage: None,
            done: false,
        }
    }

    /// The last usage the stream reported, if any.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// Whether `data: [DONE]` was seen: the stream ended properly.
    pub fn done(&self) -> bool {
        self.done
    }

    /// Takes the next chunk from the upstream and returns the bytes to send to the client now
    /// (possibly empty when the chunk held no complete event).
    pub fn push(&mut self, chunk: Bytes) -> Result<Bytes, ProviderError> {
        if self.pending.is_empty() && ends_with_boundary(&chunk) && !has_usage_object(&chunk) {
            self.note_done(&chunk);
            return Ok(chunk);
        }
        self.pending.extend_from_slice(&chunk);
        let Some(end) = last_boundary_end(&self.pending) else {
            if self.pending.len() > MAX_EVENT_BYTES {
                return Err(ProviderError::EventTooLarge(MAX_EVENT_BYTES));
            }
            return Ok(Bytes::new());
        };
        let complete = self.pending.split_to(end).freeze();
        Ok(self.filter_events(complete))
    }

    /// The end of the upstream stream: whatever is left is passed on as it is.
    pub fn finish(&mut self) -> Bytes {
        let rest = self.pending.split().freeze();
        if !rest.is_empty() {
            self.inspect(&rest);
        }
        rest
    }

    fn filter_events(&mut self, complete: Bytes) -> Bytes {
        let mut kept: Option<BytesMut> = None;
        let mut start = 0;
        while start < complete.len() {
            let end = next_boundary_end(&complete[start..]).map_or(complete.len(), |e| start + e);
            let event = &complete[start..end];
            let keep = self.inspect(event);
            match (&mut kept, keep) {
                (None, true) => {}
                (None, false) => {
                    let mut buf = BytesMut::with_capacity(complete.len());
                    buf.extend_from_slice(&complete[..start]);
                    kept = Some(buf);
                }
                (Some(buf), true) => buf.extend_from_slice(event),
                (Some(_), false) => {}
            }
            start = end;
        }
        match kept {
            None => complete,
            Some(buf) => buf.freeze(),
        }
    }

    /// Reads usage from one event; returns whether the event goes to the client.
    fn inspect(&mut self, event: &[u8]) -> bool {
        self.note_done(event);
        if !has_usage_object(event) {
            return true;
        }
        let data = event_data(event);
        #[derive(Deserialize)]
        struct Chunk {
            choices: Option<Vec<IgnoredAny>>,
        }
        if let Some(usage) = Usage::from_response(&data) {
            self.usage = Some(usage);
        }
        let usage_only = serde_json::from_slice::<Chunk>(&data)
            .ok()
            .is_some_and(|c| c.choices.is_none_or(|c| c.is_empty()));
        self.keep_usage_chunk || !usage_only
    }

    fn note_done(&mut self, bytes: &[u8]) {
        if !self.done && DONE.find(bytes).is_some() {
            self.done = true;
        }
    }
}

// Searchers built once: constructing one per call showed up in stream profiles.
static DONE: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"data: [DONE]"));
static USAGE_KEY: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"usage\""));
static LF2: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b"\n\n"));
static CRLF2: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b"\n\r\n"));
static LF2_REV: LazyLock<memmem::FinderRev<'static>> =
    LazyLock::new(|| memmem::FinderRev::new(b"\n\n"));
static CRLF2_REV: LazyLock<memmem::FinderRev<'static>> =
    LazyLock::new(|| memmem::FinderRev::new(b"\n\r\n"));

/// Whether `bytes` holds `"usage"` with an object value (`"usage": null` does not count).
fn has_usage_object(bytes: &[u8]) -> bool {
    // `find` on the rest rather than `find_iter`, which clones the searcher on every call.
    let mut rest = bytes;
    while let Some(at) = USAGE_KEY.find(rest) {
        rest = &rest[at + b"\"usage\"".len()..];
        let mut it = rest.iter().skip_while(|b| b.is_ascii_whitespace());
        if it.next() == Some(&b':') && it.find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
            return true;
        }
    }
    false
}

/// The `data:` lines of one event, joined.
fn event_data(event: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(event.len());
    for line in event.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(rest) = line.strip_prefix(b"data:") {
            if !data.is_empty() {
                data.push(b'\n');
            }
            data.extend_from_slice(rest.strip_prefix(b" ").unwrap_or(rest));
        }
    }
    data
}

fn ends_with_boundary(bytes: &[u8]) -> bool {
    bytes.ends_with(b"\n\n") || bytes.ends_with(b"\r\n\r\n")
}

/// End (exclusive) of the first event in `bytes`: just past its blank line.
fn next_boundary_end(bytes: &[u8]) -> Option<usize> {
    let lf = LF2.find(bytes).map(|i| i + 2);
    let crlf = CRLF2.find(bytes).map(|i| i + 3);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// End (exclusive) of the last complete event in `bytes`.
fn last_boundary_end(bytes: &[u8]) -> Option<usize> {
    let lf = LF2_REV.rfind(bytes).map(|i| i + 2);
    let crlf = CRLF2_REV.rfind(bytes).map(|i| i + 3);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests;
