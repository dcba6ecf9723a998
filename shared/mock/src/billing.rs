//! The billing log: what the mock provider charged, the ground truth tests check the gateway's
//! accounting against.
//!
//! A response is billed through a [`PendingBill`] whose `Drop` writes the record, so a stream the
//! consumer abandons is still billed for the tokens it emitted.

use std::collections::VecDeque;
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

/// The shared list of records, oldest first, holding at most `capacity` (the oldest are
/// discarded beyond it, so week-long benchmarks do not grow without bound).
#[derive(Clone, Debug)]
pub(crate) struct Ledger {
    records: Arc<Mutex<VecDeque<BillingRecord>>>,
    capacity: usize,
}

impl Ledger {
    pub fn new(capacity: usize) -> Self {
        Self {
            records: Arc::default(),
            capacity,
        }
    }

    pub fn push(&self, record: BillingRecord) {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if records.len() >= self.capacity {
            records.pop_front();
        }
        if self.capacity > 0 {
            records.push_back(record);
        }
    }

    pub fn snapshot(&self) -> Vec<BillingRecord> {
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        records.iter().cloned().collect()
    }

    pub fn clear(&self) {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
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
        Self {
            ledger,
            price,
            record,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> BillingRecord {
        BillingRecord {
            request_id: id.into(),
            attempt: 1,
            key: "k".into(),
            model: "m".into(),
            api: Api::ChatCompletions,
            stream: false,
            prompt_tokens: 1,
            completion_tokens: 0,
            billed_nano_usd: 0,
            disconnected: false,
        }
    }

    #[test]
    fn ledger_keeps_the_newest_records_up_to_its_capacity() {
        let ledger = Ledger::new(2);
        for id in ["a", "b", "c"] {
            ledger.push(record(id));
        }
        let ids: Vec<String> = ledger
            .snapshot()
            .into_iter()
            .map(|r| r.request_id)
            .collect();
        assert_eq!(ids, ["b", "c"]);
        let off = Ledger::new(0);
        off.push(record("a"));
        assert!(off.snapshot().is_empty());
    }

    #[test]
    fn pending_bill_prices_what_it_counted_when_dropped() {
        let ledger = Ledger::new(10);
        let price = ModelPrice {
            input_price_nano: 5,
            output_price_nano: 7,
        };
        let mut bill = PendingBill::new(ledger.clone(), price, record("r"));
        bill.add_completion_tokens(3);
        drop(bill);
        let billed = ledger.snapshot();
        assert_eq!(
            (billed[0].billed_nano_usd, billed[0].disconnected),
            (5 + 21, true)
        );
    }
}
