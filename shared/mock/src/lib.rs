//! The mock LLM provider: deterministic OpenAI, Azure and Anthropic answers (JSON and SSE),
//! scripted faults and latency, per-key concurrency counts and a billing log. It owns every
//! wire-format detail so that the `tollgate-mock-provider` node (HTTP) and the gateway's
//! built-in `mock/` provider (in process) answer byte for byte alike, and tests can take its
//! billing log as ground truth. No network, no randomness: the same body gives the same bytes.
//!
//! # Layout
//!
//! - `settings`: [`MockSettings`], fault rules and prices, with their defaults.
//! - `knobs`: per-request overrides of the settings through `x-mock-*` headers.
//! - `caller`: the caller's key, request id and attempt, read from headers.
//! - `request`: parsing each API's request body; how prompt tokens are counted.
//! - `generate`: deterministic hashing, completion text (one word = one token), embeddings.
//! - `reply`: an answer independent of wire format; integer or fractional usage counts.
//! - `openai`: chat, completions, embeddings and models JSON and SSE chunks.
//! - `anthropic`: Messages JSON and SSE events.
//! - `stream`: SSE frames released with pacing, scripted disconnects and drop guards.
//! - `fault`: fault kinds, the `x-mock-fault` header and settings rules.
//! - `error`: the table from errors and refusals to status and error bodies per API.
//! - `billing`: [`BillingRecord`]s and the bill written when a response ends or is dropped.
//! - `stats`: per-key in-flight, peak and request counts.

mod anthropic;
mod billing;
mod caller;
mod error;
mod fault;
mod generate;
mod knobs;
mod openai;
mod reply;
mod request;
mod settings;
mod stats;
mod stream;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::stream::BoxStream;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};

pub use billing::BillingRecord;
pub use caller::{ANONYMOUS, ATTEMPT_HEADER, REQUEST_ID_HEADER};
pub use fault::{FaultKind, UnknownFault};
pub use knobs::{
    COMPLETION_TOKENS_HEADER, DEFAULT_DISCONNECT_AFTER, DEFAULT_RETRY_AFTER_SECS,
    DISCONNECT_AFTER_HEADER, FAULT_HEADER, LATENCY_HEADER, MAX_COMPLETION_TOKENS,
    RETRY_AFTER_HEADER, TOKENS_PER_SECOND_HEADER, TTFT_HEADER,
};
pub use request::{DEFAULT_DIMENSIONS, MAX_DIMENSIONS, TOKENS_PER_MESSAGE};
pub use settings::{
    DEFAULT_COMPLETION_TOKENS, DEFAULT_INPUT_PRICE_NANO, DEFAULT_MAX_BILLING_RECORDS,
    DEFAULT_MODELS, DEFAULT_OUTPUT_PRICE_NANO, FaultRule, MockSettings, ModelPrice,
};
pub use stats::KeyStats;

use billing::{Ledger, PendingBill};
use caller::Caller;
use error::MockError;
use fault::{FaultRules, Faults, Refusal};
use generate::Completion;
use knobs::Knobs;
use reply::Reply;
use request::TextPrompt;
use stats::{InFlight, KeyTable};
use stream::Pacing;

/// How long the `timeout` fault keeps a request waiting before giving up with a 504.
pub const TIMEOUT_FAULT: std::time::Duration = std::time::Duration::from_secs(3600);

/// The API a request was sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// `POST /v1/chat/completions`
    ChatCompletions,
    /// `POST /v1/completions`
    Completions,
    /// `POST /v1/embeddings`
    Embeddings,
    /// `GET /v1/models`
    Models,
    /// `POST /v1/messages`
    AnthropicMessages,
}

/// One request, as the HTTP node or the gateway's in-process provider hands it over.
#[derive(Debug, Clone)]
pub struct MockRequest {
    /// Which API was called.
    pub api: Api,
    /// The raw JSON body; may be empty for [`Api::Models`].
    pub body: Bytes,
    /// Fault and knob headers, auth headers, `x-request-id`, `x-tollgate-attempt`.
    pub headers: HeaderMap,
    /// Azure: the deployment named in the URL path; it is the model.
    pub deployment: Option<String>,
}

/// The mock's answer. `content-type` is always set.
#[derive(Debug)]
pub struct MockResponse {
    /// Response status.
    pub status: StatusCode,
    /// `content-type`, plus `retry-after`/`retry-after-ms` on 429.
    pub headers: HeaderMap,
    /// The body, whole or streamed.
    pub body: MockBody,
}

/// A response body.
pub enum MockBody {
    /// A complete body.
    Full(Bytes),
    /// A streamed body (SSE). An `Err(Disconnect)` item means: abort the connection here,
    /// without finishing the response.
    Stream(BoxStream<'static, Result<Bytes, Disconnect>>),
}

impl fmt::Debug for MockBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MockBody::Full(bytes) => f.debug_tuple("Full").field(bytes).finish(),
            MockBody::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

/// A scripted mid-body disconnect: the transport must abort the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnect;

impl fmt::Display for Disconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("mock provider disconnect (scripted fault)")
    }
}

impl std::error::Error for Disconnect {}

/// A mock provider. Cheap to clone; clones share billing log and stats.
#[derive(Clone)]
pub struct Mock {
    inner: Arc<Inner>,
}

struct Inner {
    settings: MockSettings,
    rules: FaultRules,
    ledger: Ledger,
    keys: KeyTable,
    request_seq: AtomicU64,
}

impl fmt::Debug for Mock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mock")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

/// The text-generating APIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TextApi {
    Chat,
    Completions,
    Anthropic,
}

impl TextApi {
    fn api(self) -> Api {
        match self {
            TextApi::Chat => Api::ChatCompletions,
            TextApi::Completions => Api::Completions,
            TextApi::Anthropic => Api::AnthropicMessages,
        }
    }
}

impl Mock {
    /// A mock with `settings`, an empty billing log and no stats.
    pub fn new(settings: MockSettings) -> Self {
        let inner = Inner {
            rules: FaultRules::new(&settings.faults),
            ledger: Ledger::new(settings.max_billing_records),
            settings,
            keys: KeyTable::default(),
            request_seq: AtomicU64::new(0),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The settings this mock was built with.
    pub fn settings(&self) -> &MockSettings {
        &self.inner.settings
    }

    /// Answers one request. Never panics; invalid input is a 400 in the API's error shape.
    pub async fn handle(&self, request: MockRequest) -> MockResponse {
        let caller = Caller::from_headers(&request.headers);
        let in_flight = self.inner.keys.enter(caller.key);
        let api = request.api;
        match self.respond(&request, caller, in_flight).await {
            Ok(response) => response,
            Err(error) => error.into_response(api),
        }
    }

    /// Every record billed since the last reset, in order.
    pub fn billing(&self) -> Vec<BillingRecord> {
        self.inner.ledger.snapshot()
    }

    /// Per caller key: requests in flight, their peak and the request count.
    pub fn key_stats(&self) -> BTreeMap<String, KeyStats> {
        self.inner.keys.snapshot()
    }

    /// Clears the billing log, stats (requests still in flight stay counted) and the counters
    /// of fault rules with `times`.
    pub fn reset(&self) {
        self.inner.ledger.clear();
        self.inner.keys.reset();
        self.inner.rules.reset();
    }

    async fn respond(
        &self,
        request: &MockRequest,
        caller: Caller<'_>,
        in_flight: InFlight,
    ) -> Result<MockResponse, MockError> {
        let settings = &self.inner.settings;
        if !settings.api_keys.is_empty() && !settings.api_keys.iter().any(|k| k == caller.key) {
            return Err(MockError::InvalidApiKey);
        }
        let knobs = Knobs::resolve(settings, &request.headers)?;
        let deployment = request.deployment.as_deref();
        let (api, prompt) = match request.api {
            Api::Models => {
                self.refuse(&knobs, "").await?;
                return Ok(json(openai::models_json(&settings.models)));
            }
            Api::Embeddings => return self.embeddings(request, caller, knobs).await,
            Api::ChatCompletions => (TextApi::Chat, request::chat(&request.body, deployment)?),
            Api::Completions => {
                let prompt = request::completion(&request.body, deployment)?;
                (TextApi::Completions, prompt)
            }
            Api::AnthropicMessages => (TextApi::Anthropic, request::anthropic(&request.body)?),
        };
        self.text(api, prompt, caller, knobs, in_flight).await
    }

    /// Chat, completion or Anthropic answers: faults, generation, then a streamed or whole body.
    async fn text(
        &self,
        api: TextApi,
        prompt: TextPrompt,
        caller: Caller<'_>,
        knobs: Knobs,
        in_flight: InFlight,
    ) -> Result<MockResponse, MockError> {
        let faults = self.refuse(&knobs, &prompt.model).await?;
        let completion = match &prompt.script {
            Some(script) => Completion::scripted(script, prompt.max_tokens),
            None => Completion::generated(prompt.seed, knobs.completion_tokens, prompt.max_tokens),
        };
        let reply = Reply {
            seed: prompt.seed,
            model: &prompt.model,
            completion: &completion,
            prompt_tokens: prompt.prompt_tokens,
            usage: faults.usage(),
        };
        let bill = self.pending_bill(
            api.api(),
            &caller,
            &prompt.model,
            prompt.stream,
            prompt.prompt_tokens,
        );
        if prompt.stream {
            let frames = match api {
                TextApi::Chat => openai::chat_frames(&reply, prompt.include_usage),
                TextApi::Completions => openai::completion_frames(&reply, prompt.include_usage),
                TextApi::Anthropic => anthropic::message_frames(&reply),
            };
            Ok(stream_answer(frames, &knobs, faults, bill, in_flight))
        } else {
            // `in_flight` lives until the answer is ready, latency included.
            let answer = self.full_answer(api, &reply, &knobs, faults, bill).await;
            drop(in_flight);
            answer
        }
    }

    /// Collects the faults for `model` and turns a refusal into its error (the `timeout`
    /// fault first waits [`TIMEOUT_FAULT`]).
    async fn refuse(&self, knobs: &Knobs, model: &str) -> Result<Faults, MockError> {
        let mut faults = knobs.faults;
        self.inner.rules.apply(model, &mut faults);
        match faults.refusal {
            None => Ok(faults),
            Some(Refusal::RateLimit) => Err(MockError::RateLimited {
                retry_after_secs: knobs.retry_after_secs,
            }),
            Some(Refusal::ServerError) => Err(MockError::ServerError),
            Some(Refusal::Unavailable) => Err(MockError::Unavailable),
            Some(Refusal::ModelNotFound) => Err(MockError::ModelNotFound(model.to_owned())),
            Some(Refusal::Timeout) => {
                tokio::time::sleep(TIMEOUT_FAULT).await;
                Err(MockError::Timeout)
            }
        }
    }

    /// A bill for this request, written when dropped.
    fn pending_bill(
        &self,
        api: Api,
        caller: &Caller<'_>,
        model: &str,
        stream: bool,
        prompt_tokens: u64,
    ) -> PendingBill {
        let request_id = match caller.request_id {
            Some(id) => id.to_owned(),
            None => format!(
                "mock-{}",
                self.inner.request_seq.fetch_add(1, Ordering::Relaxed) + 1
            ),
        };
        let record = BillingRecord {
            request_id,
            attempt: caller.attempt,
            key: caller.key.to_owned(),
            model: model.to_owned(),
            api,
            stream,
            prompt_tokens,
            completion_tokens: 0,
            billed_nano_usd: 0,
            disconnected: true,
        };
        let price = self.inner.settings.price_for(model);
        PendingBill::new(self.inner.ledger.clone(), price, record)
    }

    /// A non-streamed answer after `latency`. Billed in full even if the caller leaves during
    /// the wait (the provider "generated" it); the `disconnect` fault aborts the body.
    async fn full_answer(
        &self,
        api: TextApi,
        reply: &Reply<'_>,
        knobs: &Knobs,
        faults: Faults,
        mut bill: PendingBill,
    ) -> Result<MockResponse, MockError> {
        bill.add_completion_tokens(reply.completion_tokens());
        if !knobs.latency.is_zero() {
            tokio::time::sleep(knobs.latency).await;
        }
        if faults.disconnect {
            return Ok(aborted());
        }
        bill.completed();
        let body = match api {
            TextApi::Chat => openai::chat_json(reply),
            TextApi::Completions => openai::completion_json(reply),
            TextApi::Anthropic => anthropic::message_json(reply),
        };
        Ok(json(body))
    }

    async fn embeddings(
        &self,
        request: &MockRequest,
        caller: Caller<'_>,
        knobs: Knobs,
    ) -> Result<MockResponse, MockError> {
        let prompt = request::embeddings(&request.body, request.deployment.as_deref())?;
        let faults = self.refuse(&knobs, &prompt.model).await?;
        let mut bill = self.pending_bill(
            Api::Embeddings,
            &caller,
            &prompt.model,
            false,
            prompt.prompt_tokens,
        );
        if !knobs.latency.is_zero() {
            tokio::time::sleep(knobs.latency).await;
        }
        if faults.disconnect {
            return Ok(aborted());
        }
        bill.completed();
        Ok(json(openai::embeddings_json(&prompt, faults.usage())))
    }
}

/// A streamed answer: headers now, frames paced by the knobs.
fn stream_answer(
    frames: Vec<stream::Frame>,
    knobs: &Knobs,
    faults: Faults,
    bill: PendingBill,
    in_flight: InFlight,
) -> MockResponse {
    let disconnect_after = faults.disconnect.then_some(knobs.disconnect_after);
    let pacing = Pacing::new(knobs.ttft, knobs.tokens_per_second, disconnect_after);
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    MockResponse {
        status: StatusCode::OK,
        headers,
        body: MockBody::Stream(stream::sse(frames, pacing, bill, in_flight)),
    }
}

fn json(body: Bytes) -> MockResponse {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    MockResponse {
        status: StatusCode::OK,
        headers,
        body: MockBody::Full(body),
    }
}

fn aborted() -> MockResponse {
    MockResponse {
        body: MockBody::Stream(stream::aborted()),
        ..json(Bytes::new())
    }
}
