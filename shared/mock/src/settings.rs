//! Settings of a mock provider: timing knobs, scripted faults, accepted keys and prices.
//!
//! Every knob that a request header can override has its default here; the header names live in
//! [`crate::knobs`].

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::fault::FaultKind;

/// Completion length when neither settings nor the request say otherwise.
pub const DEFAULT_COMPLETION_TOKENS: u64 = 16;
/// Price of one prompt token when no per-model price applies.
pub const DEFAULT_INPUT_PRICE_NANO: u64 = 1_000;
/// Price of one completion token when no per-model price applies.
pub const DEFAULT_OUTPUT_PRICE_NANO: u64 = 2_000;
/// Billing records kept by default before the oldest are discarded.
pub const DEFAULT_MAX_BILLING_RECORDS: usize = 1_000_000;
/// Model names listed by `GET /v1/models` by default.
pub const DEFAULT_MODELS: [&str; 4] =
    ["mock-gpt", "mock-gpt-mini", "mock-claude", "mock-embedding"];

/// Everything configurable about a [`crate::Mock`].
///
/// `Default` is the benchmark setting: no latency, no pacing, no faults, any key accepted.
/// Deserializes from the `mock.yaml` of the node (unknown keys are an error, so typos surface).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MockSettings {
    /// Ids listed by the models endpoint.
    pub models: Vec<String>,
    /// Completion length in tokens (words) before `max_tokens` caps it.
    pub completion_tokens: u64,
    /// Delay before a non-streamed response, in milliseconds.
    pub latency_ms: u64,
    /// Delay before the first chunk of a streamed response, in milliseconds.
    pub ttft_ms: u64,
    /// Pacing of streamed tokens; 0 streams as fast as the consumer reads.
    pub tokens_per_second: u64,
    /// Faults applied to requests for a model, in order (the first refusal wins).
    pub faults: Vec<FaultRule>,
    /// Accepted caller keys; empty accepts any key, including none.
    pub api_keys: Vec<String>,
    /// Nano-USD billed per prompt token.
    pub input_price_nano: u64,
    /// Nano-USD billed per completion token.
    pub output_price_nano: u64,
    /// Per-model prices overriding the two above.
    pub prices: BTreeMap<String, ModelPrice>,
    /// Billing records kept; beyond it the oldest are discarded (0 keeps none).
    pub max_billing_records: usize,
}

impl Default for MockSettings {
    fn default() -> Self {
        Self {
            models: DEFAULT_MODELS.iter().map(|m| (*m).to_owned()).collect(),
            completion_tokens: DEFAULT_COMPLETION_TOKENS,
            latency_ms: 0,
            ttft_ms: 0,
            tokens_per_second: 0,
            faults: Vec::new(),
            api_keys: Vec::new(),
            input_price_nano: DEFAULT_INPUT_PRICE_NANO,
            output_price_nano: DEFAULT_OUTPUT_PRICE_NANO,
            prices: BTreeMap::new(),
            max_billing_records: DEFAULT_MAX_BILLING_RECORDS,
        }
    }
}

impl MockSettings {
    /// The price billed for `model`: its override, else the global prices.
    pub fn price_for(&self, model: &str) -> ModelPrice {
        self.prices.get(model).copied().unwrap_or(ModelPrice {
            input_price_nano: self.input_price_nano,
            output_price_nano: self.output_price_nano,
        })
    }
}

/// A fault injected into requests for one model (or every model when `model` is absent).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// The request's model (or Azure deployment) this rule applies to; absent = all models.
    #[serde(default)]
    pub model: Option<String>,
    /// What goes wrong, spelled as in the `x-mock-fault` header (`429`, `disconnect`, ...).
    pub kind: FaultKind,
    /// Fire only for the first `times` matching requests (counted since the last reset), e.g.
    /// to let a retry succeed; absent = every matching request.
    #[serde(default)]
    pub times: Option<u64>,
}

/// Token prices of one model, in nano-USD per token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Per prompt token.
    pub input_price_nano: u64,
    /// Per completion token.
    pub output_price_nano: u64,
}

impl ModelPrice {
    /// The cost of a response; saturates instead of overflowing.
    pub fn cost(self, prompt_tokens: u64, completion_tokens: u64) -> u64 {
        prompt_tokens
            .saturating_mul(self.input_price_nano)
            .saturating_add(completion_tokens.saturating_mul(self.output_price_nano))
    }
}
