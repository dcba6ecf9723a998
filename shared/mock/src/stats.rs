//! Per-key concurrency: how many requests of each caller key are in flight, the peak, and the
//! total, so tests can check the gateway's per-key concurrency limits from the provider's side.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// Counters of one caller key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyStats {
    /// Requests started and not yet finished (a stream finishes when fully read or dropped).
    pub in_flight: u64,
    /// The highest `in_flight` seen since the last reset.
    pub peak_in_flight: u64,
    /// Requests started since the last reset.
    pub requests: u64,
}

/// The shared table of counters, keyed by caller key.
#[derive(Clone, Debug, Default)]
pub(crate) struct KeyTable(Arc<Mutex<HashMap<Arc<str>, KeyStats>>>);

impl KeyTable {
    /// Counts a request of `key` as started; the returned guard counts it as finished on drop.
    pub fn enter(&self, key: &str) -> InFlight {
        let mut table = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let key = match table.get_key_value(key) {
            Some((known, _)) => Arc::clone(known),
            None => Arc::from(key),
        };
        let stats = table.entry(Arc::clone(&key)).or_default();
        stats.in_flight += 1;
        stats.requests += 1;
        stats.peak_in_flight = stats.peak_in_flight.max(stats.in_flight);
        InFlight {
            table: self.clone(),
            key,
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, KeyStats> {
        let table = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        table
            .iter()
            .map(|(key, stats)| (key.to_string(), *stats))
            .collect()
    }

    /// Forgets history but keeps counting what is still in flight, so guards alive across a
    /// reset still balance.
    pub fn reset(&self) {
        let mut table = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        table.retain(|_, stats| stats.in_flight > 0);
        for stats in table.values_mut() {
            stats.requests = 0;
            stats.peak_in_flight = stats.in_flight;
        }
    }
}

/// One request in flight for a key; dropping it ends the request.
#[derive(Debug)]
pub(crate) struct InFlight {
    table: KeyTable,
    key: Arc<str>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut table = self.table.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(stats) = table.get_mut(&*self.key) {
            stats.in_flight = stats.in_flight.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_in_flight_and_peak() {
        let table = KeyTable::default();
        let a = table.enter("k");
        let b = table.enter("k");
        let _other = table.enter("j");
        drop(a);
        let k = table.snapshot()["k"];
        assert_eq!(
            k,
            KeyStats {
                in_flight: 1,
                peak_in_flight: 2,
                requests: 2
            }
        );
        drop(b);
        assert_eq!(table.snapshot()["k"].in_flight, 0);
    }

    #[test]
    fn reset_keeps_live_requests_balanced() {
        let table = KeyTable::default();
        let live = table.enter("k");
        drop(table.enter("gone"));
        table.reset();
        assert_eq!(table.snapshot().len(), 1);
        assert_eq!(
            table.snapshot()["k"],
            KeyStats {
                in_flight: 1,
                peak_in_flight: 1,
                requests: 0
            }
        );
        drop(live);
        assert_eq!(table.snapshot()["k"].in_flight, 0);
    }
}
