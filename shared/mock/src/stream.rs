//! Streamed bodies: SSE frames written into one buffer, then released one by one with the
//! requested pacing, an optional scripted disconnect, and the guards that bill the emitted
//! tokens and end the request's in-flight count when the stream ends or is dropped.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use serde::Serialize;
use tokio::time::Instant;

use crate::Disconnect;
use crate::billing::PendingBill;
use crate::stats::InFlight;

/// One SSE event and the completion tokens it carries.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub bytes: Bytes,
    pub tokens: u64,
}

/// Writes SSE events into a single buffer (one allocation per stream), then cuts it into frames.
#[derive(Debug, Default)]
pub(crate) struct FrameWriter {
    buffer: Vec<u8>,
    ends: Vec<(usize, u64)>,
}

impl FrameWriter {
    pub fn with_capacity(frames: usize) -> Self {
        Self {
            buffer: Vec::with_capacity(frames * 160),
            ends: Vec::with_capacity(frames),
        }
    }

    /// `event: <name>\n` (when named) `data: <json>\n\n`, carrying `tokens` completion tokens.
    pub fn event(&mut self, name: Option<&str>, data: &impl Serialize, tokens: u64) {
        if let Some(name) = name {
            self.buffer.extend_from_slice(b"event: ");
            self.buffer.extend_from_slice(name.as_bytes());
            self.buffer.push(b'\n');
        }
        self.buffer.extend_from_slice(b"data: ");
        // Serializing the crate's own plain structs into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.buffer, data);
        self.buffer.extend_from_slice(b"\n\n");
        self.ends.push((self.buffer.len(), tokens));
    }

    /// OpenAI's terminator, `data: [DONE]\n\n`.
    pub fn done(&mut self) {
        self.buffer.extend_from_slice(b"data: [DONE]\n\n");
        self.ends.push((self.buffer.len(), 0));
    }

    pub fn finish(self) -> Vec<Frame> {
        let all = Bytes::from(self.buffer);
        let mut start = 0;
        self.ends
            .into_iter()
            .map(|(end, tokens)| {
                let bytes = all.slice(start..end);
                start = end;
                Frame { bytes, tokens }
            })
            .collect()
    }
}

/// How a stream is released: all zero means no timer is ever created.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pacing {
    /// Delay before the first frame.
    pub ttft: Duration,
    /// Time per token-carrying frame; `None` = unpaced.
    pub per_token: Option<Duration>,
    /// Abort (`Err(Disconnect)`) after this many frames.
    pub disconnect_after: Option<u64>,
}

impl Pacing {
    pub fn new(ttft: Duration, tokens_per_second: u64, disconnect_after: Option<u64>) -> Self {
        let per_token = (tokens_per_second > 0)
            .then(|| Duration::from_nanos(1_000_000_000 / tokens_per_second))
            .filter(|per_token| !per_token.is_zero());
        Self {
            ttft,
            per_token,
            disconnect_after,
        }
    }
}

struct State {
    frames: std::vec::IntoIter<Frame>,
    pacing: Pacing,
    sent: u64,
    next_token_at: Option<Instant>,
    ended: bool,
    bill: PendingBill,
    _in_flight: InFlight,
}

/// The body stream of a streamed answer. The bill is written and the request leaves the
/// in-flight count when the stream ends or is dropped, whichever comes first.
pub(crate) fn sse(
    frames: Vec<Frame>,
    pacing: Pacing,
    bill: PendingBill,
    in_flight: InFlight,
) -> BoxStream<'static, Result<Bytes, Disconnect>> {
    let state = State {
        frames: frames.into_iter(),
        pacing,
        sent: 0,
        next_token_at: None,
        ended: false,
        bill,
        _in_flight: in_flight,
    };
    stream::unfold(state, next_frame).boxed()
}

async fn next_frame(mut state: State) -> Option<(Result<Bytes, Disconnect>, State)> {
    if state.ended {
        return None;
    }
    if state
        .pacing
        .disconnect_after
        .is_some_and(|limit| state.sent >= limit)
    {
        state.ended = true;
        return Some((Err(Disconnect), state));
    }
    let Some(frame) = state.frames.next() else {
        // Only reached with a disconnect pending: it aborts after the last frame instead.
        state.ended = true;
        return state
            .pacing
            .disconnect_after
            .map(|_| (Err(Disconnect), state));
    };
    if state.sent == 0 && !state.pacing.ttft.is_zero() {
        tokio::time::sleep(state.pacing.ttft).await;
    }
    if let Some(per_token) = state.pacing.per_token.filter(|_| frame.tokens > 0) {
        let due = state.next_token_at.unwrap_or_else(Instant::now) + per_token;
        tokio::time::sleep_until(due).await;
        state.next_token_at = Some(due);
    }
    state.sent += 1;
    state.bill.add_completion_tokens(frame.tokens);
    if state.frames.len() == 0 && state.pacing.disconnect_after.is_none() {
        state.bill.completed();
        state.ended = true;
    }
    Some((Ok(frame.bytes), state))
}

/// The body of a non-streamed answer under the `disconnect` fault: aborts before any byte.
pub(crate) fn aborted() -> BoxStream<'static, Result<Bytes, Disconnect>> {
    stream::iter([Err(Disconnect)]).boxed()
}
