//! One upstream attempt, run as a tracked task detached from the client's connection. It owns
//! the request's reservation ([`Ticket`]) and always settles it: with the cost the upstream
//! reported, at zero when the upstream refused the request, released when the upstream was
//! never reached, and at the full reservation when the cost is unknown (a timeout, a cut
//! stream, a response without usage). A stream whose client left is drained to its end (every
//! current provider bills tokens already generated, so the usage at the end is the only true
//! cost); the idle timeout bounds how long that takes.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use http::HeaderMap;
use tokio::sync::{mpsc, oneshot};
use tollgate_api::{ApiError, Endpoint, Usage};
use tollgate_budget::Ticket;
use tollgate_providers::sse::UsageFilter;
use tollgate_providers::{Call, ProviderError, Reply, TraceContext, collect, upstream_error};
use tollgate_telemetry::spans::{self, SpanHead};
use tollgate_telemetry::{Metrics, SpanClock, SpanIds};

use crate::models::Target;
use crate::outcome::token_attributes;

/// The largest non-stream upstream response the node will hold.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// The most of an upstream error body that is read to find its message.
const MAX_ERROR_BYTES: usize = 64 * 1024;
/// Stream pieces buffered between the upstream and a slow client.
const STREAM_BUFFER: usize = 16;
/// How many times one burst of upstream chunks may give the HTTP client's connection task a
/// turn to decode the next chunk it already read. Without these turns a 16-token stream took
/// ~20 writes to the client (3.6k streams/s at c=32 on the benchmark); with them, ~3.
const COALESCE_YIELDS: usize = 32;
/// Turns in a row that brought nothing end the burst: a slow (token-by-token) stream pays at
/// most this many turns per chunk.
const COALESCE_MISSES: usize = 2;
/// Ready upstream chunks are joined up to this size before they are handed to the client.
const COALESCE_BYTES: usize = 64 * 1024;

pub(crate) struct Attempt {
    pub(crate) target: Arc<Target>,
    pub(crate) model: Arc<str>,
    pub(crate) endpoint: Endpoint,
    pub(crate) body: Bytes,
    pub(crate) stream: bool,
    pub(crate) include_usage: bool,
    pub(crate) request_id: String,
    pub(crate) ticket: Option<Ticket>,
    pub(crate) metrics: Arc<Metrics>,
    /// Opted-in tenant labels for the spend counter.
    pub(crate) tenant: Vec<(&'static str, String)>,
    /// The W3C trace headers sent upstream.
    pub(crate) trace: TraceContext,
    /// The attempt's span, when the request is traced; exported when the attempt ends.
    pub(crate) span: Option<AttemptSpan>,
}

/// The span of one upstream attempt, `ids` a child of the request's span: what it learns along
/// the way, written when the attempt ends ([`Attempt`]'s `Drop`), named and labelled after the
/// GenAI conventions (`chat gpt-4o-2024-08-06`, the deployment's own model name). It lasts
/// from the upstream call's start to its end, the duration the upstream latency metric records.
#[derive(Debug)]
pub(crate) struct AttemptSpan {
    pub(crate) ids: SpanIds,
    /// The request's clock.
    clock: SpanClock,
    /// When the upstream call started and ended.
    start: Option<Instant>,
    end: Option<Instant>,
    /// The upstream's HTTP status, once it answered.
    status: Option<u16>,
    /// Why the attempt failed (`error.type`), when it did: the first reason found.
    error: Option<&'static str>,
    /// Input and output tokens, once known.
    tokens: Option<(u64, u64)>,
}

impl AttemptSpan {
    pub(crate) fn new(ids: SpanIds, clock: SpanClock) -> Self {
        Self {
            ids,
            clock,
            start: None,
            end: None,
            status: None,
            error: None,
            tokens: None,
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        let Some(span) = self.span.take() else {
            return;
        };
        // Both are known unless the attempt was given up before its call ended.
        let start = span.clock.wall(span.start.unwrap_or_else(Instant::now));
        let end = span.clock.wall(span.end.unwrap_or_else(Instant::now));
        let head = SpanHead {
            ids: span.ids,
            start,
            template: self.target.spans.attempt(self.endpoint),
        };
        spans::export(&head, end, span.error.is_some(), |writer| {
            if let Some(status) = span.status {
                writer.int("http.response.status_code", i64::from(status));
            }
            if let Some(error) = span.error {
                writer.str("error.type", error);
            }
            if let Some((input, output)) = span.tokens {
                token_attributes(writer, input, output);
            }
        });
    }
}

/// Lets every task that is ready to run (the HTTP client's connection task, say) have its turn
/// before this one goes on. Unlike `tokio::task::yield_now`, which on the single-threaded
/// runtime also polls the I/O driver (an `epoll_wait` and a pass over the timers each time;
/// ~19k instructions per streamed response here), this wakes the task at once and so only
/// sends it to the back of the run queue.
async fn let_ready_tasks_run() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}

/// The start of a successful answer.
pub(crate) enum Head {
    Full {
        headers: HeaderMap,
        body: Bytes,
        usage: Option<Usage>,
    },
    Stream {
        headers: HeaderMap,
        pieces: mpsc::Receiver<Piece>,
    },
}

/// What the relay receives of a stream.
pub(crate) enum Piece {
    Data(Bytes),
    /// The stream ended: cleanly, or with the failure that cut it.
    End {
        usage: Option<Usage>,
        failure: Option<ApiError>,
    },
}

/// How a finished attempt is settled.
enum Cost {
    Known(Usage),
    /// The upstream refused the request; providers do not bill refusals.
    Refused,
    /// The upstream was never reached.
    NotSent,
    /// The outcome is unknown: presumed to have cost the full reservation.
    Unknown,
}

impl Attempt {
    pub(crate) async fn run(mut self, head: oneshot::Sender<Result<Head, ApiError>>) {
        let id = self.target.id.clone();
        let trace = std::mem::take(&mut self.trace);
        let call = Call {
            endpoint: self.endpoint,
            body: self.body.clone(),
            stream: self.stream,
            request_id: &self.request_id,
            attempt: 1,
            trace,
        };
        let started = Instant::now();
        if let Some(span) = &mut self.span {
            span.start = Some(started);
        }
        let reply = match self.target.upstream.send(call).await {
            Ok(reply) => reply,
            Err(e) => {
                self.upstream_done(false, started);
                self.span_failed(e.code().code());
                let cost = match e {
                    ProviderError::Connect => Cost::NotSent,
                    _ => Cost::Unknown,
                };
                self.settle(cost);
                let _ = head.send(Err(e.to_api_error(&id)));
                return;
            }
        };
        if let Some(span) = &mut self.span {
            span.status = Some(reply.status.as_u16());
        }
        if !reply.status.is_success() {
            self.upstream_done(false, started);
            let error = refusal(reply, &id).await;
            self.span_failed(error.code.code());
            self.settle(Cost::Refused);
            let _ = head.send(Err(error));
            return;
        }
        if self.stream {
            self.relay(reply, head, started).await;
            return;
        }
        let collected = collect(reply.body, MAX_RESPONSE_BYTES).await;
        self.upstream_done(collected.is_ok(), started);
        match collected {
            Ok(body) => {
                let usage = Usage::from_response(&body);
                self.settle(usage.map_or(Cost::Unknown, Cost::Known));
                let _ = head.send(Ok(Head::Full {
                    headers: reply.headers,
                    body,
                    usage,
                }));
            }
            Err(e) => {
                self.settle(Cost::Unknown);
                let _ = head.send(Err(e.to_api_error(&id)));
            }
        }
    }

    /// Relays a stream through the usage filter into a bounded channel. If the client is gone
    /// the stream is still read to its end, for its usage.
    async fn relay(
        mut self,
        reply: Reply,
        head: oneshot::Sender<Result<Head, ApiError>>,
        started: Instant,
    ) {
        let (tx, pieces) = mpsc::channel(STREAM_BUFFER);
        let mut client = head
            .send(Ok(Head::Stream {
                headers: reply.headers,
                pieces,
            }))
            .is_ok()
            .then_some(tx);
        let idle = self.target.upstream.deployment.timeout;
        let mut filter = UsageFilter::new(self.include_usage);
        let mut upstream = reply.body;
        let failure = loop {
            let next = tokio::time::timeout(idle, upstream.next()).await;
            let mut out = match next {
                Ok(Some(Ok(chunk))) => match filter.push(chunk) {
                    Ok(out) => BytesMut::from(out),
                    Err(e) => break Some(e),
                },
                Ok(Some(Err(e))) => break Some(e),
                Ok(None) => {
                    let tail = filter.finish();
                    if !tail.is_empty() {
                        send(&mut client, Piece::Data(tail)).await;
                    }
                    break None;
                }
                Err(_) => break Some(ProviderError::IdleTimeout(idle)),
            };
            // Chunks that are already here go out together: fewer hand-offs and writes. The
            // HTTP client hands over one decoded chunk at a time, so give its connection task a
            // turn to decode what it has already read before deciding nothing is waiting.
            let mut ended = None;
            let (mut yields, mut misses) = (0, 0);
            while out.len() < COALESCE_BYTES {
                let ready = match upstream.next().now_or_never() {
                    None if yields < COALESCE_YIELDS && misses < COALESCE_MISSES => {
                        yields += 1;
                        let_ready_tasks_run().await;
                        let ready = upstream.next().now_or_never();
                        misses = if ready.is_some() { 0 } else { misses + 1 };
                        ready
                    }
                    ready => ready,
                };
                match ready {
                    Some(Some(Ok(chunk))) => match filter.push(chunk) {
                        Ok(more) => out.extend_from_slice(&more),
                        Err(e) => {
                            ended = Some(Some(e));
                            break;
                        }
                    },
                    Some(Some(Err(e))) => {
                        ended = Some(Some(e));
                        break;
                    }
                    Some(None) => {
                        out.extend_from_slice(&filter.finish());
                        ended = Some(None);
                        break;
                    }
                    None => break,
                }
            }
            if !out.is_empty() {
                send(&mut client, Piece::Data(out.freeze())).await;
            }
            if let Some(end) = ended {
                break end;
            }
        };
        self.upstream_done(failure.is_none(), started);
        if let Some(failure) = &failure {
            self.span_failed(failure.code().code());
        }
        let usage = filter.usage();
        self.settle(usage.map_or(Cost::Unknown, Cost::Known));
        let failure = failure.map(|e| e.to_api_error(&self.target.id));
        send(&mut client, Piece::End { usage, failure }).await;
    }

    fn span_failed(&mut self, error_type: &'static str) {
        if let Some(span) = &mut self.span {
            span.error.get_or_insert(error_type);
        }
    }

    /// Records the attempt's duration for its deployment, and where its span ends.
    fn upstream_done(&mut self, ok: bool, started: Instant) {
        let elapsed = started.elapsed();
        let series = self.target.upstream_series.get_or_init(|| {
            let provider = self.target.upstream.deployment.provider.name();
            self.metrics
                .upstream_series(&self.target.id, provider, &self.model)
        });
        series.record(ok, elapsed);
        if let Some(span) = &mut self.span {
            span.end = Some(started + elapsed);
        }
    }

    /// Settles the reservation (when the caller has one) and counts the spend.
    fn settle(&mut self, cost: Cost) {
        let ticket = self.ticket.take();
        let model = self.model.clone();
        let usage = match cost {
            Cost::NotSent => {
                if let Some(ticket) = ticket {
                    ticket.release();
                }
                return;
            }
            Cost::Refused => tollgate_budget::Usage {
                model,
                input_tokens: 0,
                output_tokens: 0,
                cost: 0,
            },
            Cost::Known(usage) => {
                let price = self.target.price.unwrap_or_default();
                tollgate_budget::Usage {
                    model,
                    input_tokens: usage.input_tokens,
                    output_tokens: usage.output_tokens,
                    cost: price.cost(usage.input_tokens, usage.output_tokens),
                }
            }
            Cost::Unknown => {
                // Without a reservation there is no bound to presume; the warning still says
                // the cost is unknown.
                let reserved = ticket.as_ref().map_or(0, |t| t.demand().cost);
                tracing::warn!(
                    deployment = &*self.target.id,
                    nano_usd = reserved,
                    "the upstream's usage is unknown; settling at the full reservation"
                );
                tollgate_budget::Usage {
                    model,
                    input_tokens: 0,
                    output_tokens: 0,
                    cost: reserved,
                }
            }
        };
        if usage.input_tokens + usage.output_tokens > 0
            && let Some(span) = &mut self.span
        {
            span.tokens = Some((usage.input_tokens, usage.output_tokens));
        }
        if usage.cost > 0 {
            let provider = self.target.upstream.deployment.provider.name();
            self.metrics
                .spend(&self.model, provider, usage.cost, &self.tenant);
        }
        if let Some(ticket) = ticket {
            ticket.settle(usage);
        }
    }
}

/// Sends to the client's relay; once the client is gone, stops trying.
async fn send(client: &mut Option<mpsc::Sender<Piece>>, piece: Piece) {
    if let Some(tx) = client
        && tx.send(piece).await.is_err()
    {
        *client = None;
    }
}

/// An upstream's non-2xx answer as the client's error.
async fn refusal(reply: Reply, deployment: &Arc<str>) -> ApiError {
    let body = collect(reply.body, MAX_ERROR_BYTES)
        .await
        .unwrap_or_default();
    upstream_error(reply.status, &reply.headers, &body, deployment)
}
