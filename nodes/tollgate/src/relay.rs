//! A streamed response: upstream chunks go to the client as they arrive, through the usage
//! filter, with at most one incomplete event buffered. A failure after the first byte ends the
//! stream with an SSE error event (no `[DONE]`), and the outcome is recorded when the stream
//! ends, however it ends.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use tollgate_api::ApiError;
use tollgate_providers::sse::UsageFilter;
use tollgate_providers::{Body as UpstreamBody, ProviderError};

use crate::outcome::Outcome;
use crate::respond::REQUEST_ID;

/// A stream ready to be relayed.
pub(crate) struct Relay {
    upstream: UpstreamBody,
    headers: HeaderMap,
    filter: UsageFilter,
    /// The longest gap allowed between two upstream chunks.
    idle: Duration,
}

impl Relay {
    pub(crate) fn new(
        upstream: UpstreamBody,
        headers: HeaderMap,
        include_usage: bool,
        idle: Duration,
    ) -> Self {
        Self {
            upstream,
            headers,
            filter: UsageFilter::new(include_usage),
            idle,
        }
    }

    /// The response whose body relays the stream; `outcome` is finished when it ends.
    pub(crate) fn into_response(self, outcome: Outcome) -> Response {
        let request_id = outcome.request_id().clone();
        let mut headers = self.headers;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(REQUEST_ID.clone(), request_id);
        let state = Flow {
            upstream: self.upstream,
            filter: self.filter,
            idle: self.idle,
            outcome: Some(outcome),
        };
        let body = futures::stream::unfold(state, Flow::next).map(Ok::<_, Infallible>);
        let mut response = Response::new(Body::from_stream(body));
        *response.status_mut() = StatusCode::OK;
        *response.headers_mut() = headers;
        response
    }
}

struct Flow {
    upstream: UpstreamBody,
    filter: UsageFilter,
    idle: Duration,
    /// `None` once the stream has ended and the outcome is recorded.
    outcome: Option<Outcome>,
}

impl Flow {
    async fn next(mut self) -> Option<(Bytes, Flow)> {
        loop {
            self.outcome.as_ref()?;
            let next = tokio::time::timeout(self.idle, self.upstream.next()).await;
            let failure = match next {
                Ok(Some(Ok(chunk))) => match self.filter.push(chunk) {
                    Ok(out) if out.is_empty() => continue,
                    Ok(out) => return Some((out, self)),
                    Err(e) => e,
                },
                Ok(Some(Err(e))) => e,
                Ok(None) => {
                    let tail = self.filter.finish();
                    self.end(None);
                    return (!tail.is_empty()).then_some((tail, self));
                }
                Err(_) => ProviderError::IdleTimeout(self.idle),
            };
            let event = self.end(Some(failure));
            return Some((event, self));
        }
    }

    /// Records the outcome; on failure returns the error event that ends the client's stream.
    fn end(&mut self, failure: Option<ProviderError>) -> Bytes {
        let Some(mut outcome) = self.outcome.take() else {
            return Bytes::new();
        };
        outcome.set_usage(self.filter.usage());
        let Some(failure) = failure else {
            outcome.finish(StatusCode::OK, None);
            return Bytes::new();
        };
        let error: ApiError = failure.to_api_error("upstream");
        tracing::warn!(error = %error, "stream failed after its first byte");
        outcome.set_error(error.code);
        outcome.finish(StatusCode::OK, None);
        let mut event = Vec::with_capacity(128);
        event.extend_from_slice(b"data: ");
        event.extend_from_slice(&error.openai_body());
        event.extend_from_slice(b"\n\n");
        Bytes::from(event)
    }
}
