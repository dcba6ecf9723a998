//! The billing log: what the mock provider charged, the ground truth tests check the gateway's
//! accounting against.
//!
//! A response is billed through a [`PendingBill`] whose `Drop` writes the record, so a stream the
//! consumer abandons is still billed for the tokens it emitted.

use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::Api;
use crate::settings::ModelPrice;

/// One billed response.
///
/// Non-streamed answers are billed in full once the mock has decided to answer, even when the
/// caller hangs up before reading them (`disconnected: true`), like a real provider that
/// finished generating. Streams bill the completion tokens actually emitted. Refusals (429,
/// 500, 503, 404, timeout) and invalid requests bill nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingRecord {
    /// `x-request-id` of the request, or `mock-<n>` when it had none.
    pub request_id: String,
    /// `x-tollgate-attempt` of the request (1 when absent).
    pub attempt: u32,
    /// The caller's key (`anonymous` when none was sent).
    pub key: String,
    /// The model (or Azure deployment) the request named.
    pub model: String,
    /// Which API was called.
    pub api: Api,
    /// Whether the answer was streamed.
    pub stream: bool,
    /// Prompt tokens, counted as documented in the `request` module.
    pub prompt_tokens: u64,
    /// Completion tokens generated (streams: emitted).
    pub completion_tokens: u64,
    /// `prompt_tokens × input price + completion_tokens × output price`, in nano-USD.
    pub billed_nano_usd: u64,
    /// The answer did not reach its end: aborted by a fault or dropped by the consumer.
    pub disconnected: bool,
}

/// The shared, append-only (until reset) list of records.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ledger(Arc<Mutex<Vec<BillingRecord>>>);

impl Ledger {
    pub fn push(&self, record: BillingRecord) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(record);
    }

    pub fn snapshot(&self) -> Vec<BillingRecord> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

/// A record being accumulated; written to the ledger when dropped.
#[derive(Debug)]
pub(crate) struct PendingBill {
    ledger: Ledger,
    price: ModelPrice,
    record: BillingRecord,
}

impl PendingBill {
    /// Starts a bill with no completion tokens that counts as disconnected until
    /// [`PendingBill::completed`] says otherwise.
    pub fn new(ledger: Ledger, price: ModelPrice, mut record: BillingRecord) -> Self {
        record.completion_tokens = 0;
        record.disconnected = true;
        Self { ledger, price, record }
    }

    /// Counts completion tokens generated or emitted.
    pub fn add_completion_tokens(&mut self, tokens: u64) {
        self.record.completion_tokens = self.record.completion_tokens.saturating_add(tokens);
    }

    /// The answer reached its end.
    pub fn completed(&mut self) {
        self.record.disconnected = false;
    }
}

impl Drop for PendingBill {
    fn drop(&mut self) {
        let r = &mut self.record;
        let record = BillingRecord {
            request_id: std::mem::take(&mut r.request_id),
            attempt: r.attempt,
            key: std::mem::take(&mut r.key),
            model: std::mem::take(&mut r.model),
            api: r.api,
            stream: r.stream,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            billed_nano_usd: self.price.cost(r.prompt_tokens, r.completion_tokens),
            disconnected: r.disconnected,
        };
        self.ledger.push(record);
    }
}
