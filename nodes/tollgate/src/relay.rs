//! A streamed response: pieces from the upstream attempt (already through the usage filter)
//! go to the client as they arrive. A failure after the first byte ends the stream with an SSE
//! error event (no `[DONE]`), and the outcome is recorded when the stream ends, however it
//! ends; if the client leaves first, the outcome's drop records 499.

use std::convert::Infallible;

use axum::body::Body;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::sync::mpsc;
use tollgate_api::{ApiError, ErrorCode};

use crate::attempt::Piece;
use crate::outcome::Outcome;
use crate::respond::REQUEST_ID;

/// A stream ready to be relayed.
pub(crate) struct Relay {
    pieces: mpsc::Receiver<Piece>,
    headers: HeaderMap,
}

impl Relay {
    pub(crate) fn new(pieces: mpsc::Receiver<Piece>, headers: HeaderMap) -> Self {
        Self { pieces, headers }
    }

    /// The response whose body relays the stream; `outcome` is finished when it ends.
    pub(crate) fn into_response(self, outcome: Outcome) -> Response {
        let request_id = outcome.request_id().clone();
        let mut headers = self.headers;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(REQUEST_ID.clone(), request_id);
        let state = Flow {
            pieces: self.pieces,
            outcome: Some(outcome),
            held: None,
        };
        let body = futures::stream::unfold(state, Flow::next).map(Ok::<_, Infallible>);
        let mut response = Response::new(Body::from_stream(body));
        *response.status_mut() = StatusCode::OK;
        *response.headers_mut() = headers;
        response
    }
}

struct Flow {
    pieces: mpsc::Receiver<Piece>,
    /// `None` once the stream has ended and the outcome is recorded.
    outcome: Option<Outcome>,
    /// The end, received while joining data that was already waiting.
    held: Option<Piece>,
}

/// Waiting pieces are joined up to this size into one write to the client.
const JOIN_BYTES: usize = 64 * 1024;

impl Flow {
    /// `first` and whatever data is already waiting, as one buffer (one write to the client
    /// when the client is slower than the upstream).
    fn join_waiting(&mut self, first: Bytes) -> Bytes {
        let mut joined: Option<BytesMut> = None;
        while joined.as_ref().map_or(first.len(), BytesMut::len) < JOIN_BYTES {
            match self.pieces.try_recv() {
                Ok(Piece::Data(more)) => joined
                    .get_or_insert_with(|| BytesMut::from(&first[..]))
                    .extend_from_slice(&more),
                Ok(end) => {
                    self.held = Some(end);
                    break;
                }
                Err(_) => break,
            }
        }
        joined.map_or(first, BytesMut::freeze)
    }

    async fn next(mut self) -> Option<(Bytes, Flow)> {
        let mut outcome = self.outcome.take()?;
        let next = match self.held.take() {
            Some(piece) => Some(piece),
            None => self.pieces.recv().await,
        };
        let (usage, failure) = match next {
            Some(Piece::Data(bytes)) => {
                outcome.first_byte();
                self.outcome = Some(outcome);
                return Some((self.join_waiting(bytes), self));
            }
            Some(Piece::End { usage, failure }) => (usage, failure),
            None => (
                None,
                Some(ApiError::new(
                    ErrorCode::Internal,
                    "the stream ended unexpectedly; the details are in the node's log",
                )),
            ),
        };
        outcome.set_usage(usage);
        let Some(error) = failure else {
            outcome.finish(StatusCode::OK, None);
            return None;
        };
        tracing::warn!(error = %error, "stream failed after its first byte");
        outcome.set_error(error.code);
        outcome.finish(StatusCode::OK, None);
        let mut event = Vec::with_capacity(128);
        event.extend_from_slice(b"data: ");
        event.extend_from_slice(&error.openai_body());
        event.extend_from_slice(b"\n\n");
        Some((Bytes::from(event), self))
    }
}
