//! Durable state: entity definitions (keys, users, teams), the spend ledger per entity and
//! period, and usage rollups per entity × model × UTC day.
//!
//! [`Store`] is the one interface; [`RedbStore`] (an embedded, fsync-on-commit file under
//! `--data-dir`) is the single-node default, and the cluster's Redis store implements the same
//! trait. [`MemoryStore`] is a non-durable implementation for tests.
//!
//! Spend reaches the store in batches ([`Batch`]): the budget actors update memory at once and
//! a writer commits every flush window, so a crash loses at most one window (INV-2). Usage is
//! only ever kept as rollups, so usage queries read a bounded number of rows and never scan
//! per-request records.

mod memory;
mod redb_store;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tollgate_accounts::{EntityId, KeyRecord, TeamRecord, UserRecord};
use tollgate_ledger::Nanos;

pub use memory::MemoryStore;
pub use redb_store::RedbStore;

/// A store failure. The message names the operation, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {operation} failed: {detail}")]
    Backend {
        operation: &'static str,
        detail: String,
    },
}

impl StoreError {
    pub(crate) fn backend(operation: &'static str, detail: impl ToString) -> Self {
        Self::Backend {
            operation,
            detail: detail.to_string(),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Every entity definition, as loaded at startup.
#[derive(Clone, Debug, Default)]
pub struct Entities {
    pub keys: Vec<KeyRecord>,
    pub users: Vec<UserRecord>,
    pub teams: Vec<TeamRecord>,
}

/// One settled request as one entity sees it: its cost lands in the entity's ledger for the
/// period the request was admitted in, and in the entity's usage rollup for the day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settled {
    pub entity: EntityId,
    pub period_start: i64,
    /// Days since the Unix epoch (UTC) of the settlement.
    pub day: i64,
    pub model: Arc<str>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost: Nanos,
}

/// Settlements committed together, atomically.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub settled: Vec<Settled>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.settled.is_empty()
    }

    /// The batch summed per (entity, period) and per (entity, day, model).
    pub(crate) fn aggregate(&self) -> Aggregate {
        let mut agg = Aggregate::default();
        for s in &self.settled {
            let key = s.entity.storage_key();
            *agg.spend.entry((key.clone(), s.period_start)).or_default() += s.cost;
            let row = agg
                .usage
                .entry((key, s.day, s.model.to_string()))
                .or_default();
            row.requests += 1;
            row.input_tokens += s.input_tokens;
            row.output_tokens += s.output_tokens;
            row.spend += s.cost;
        }
        agg
    }
}

#[derive(Debug, Default)]
pub(crate) struct Aggregate {
    pub spend: BTreeMap<(String, i64), Nanos>,
    pub usage: BTreeMap<(String, i64, String), Totals>,
}

/// Request and token counts and spend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub spend: Nanos,
}

impl Totals {
    pub(crate) fn add(&mut self, other: Totals) {
        self.requests += other.requests;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.spend += other.spend;
    }
}

/// One rollup row: an entity's use of a model on a UTC day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRow {
    pub day: i64,
    pub model: String,
    pub totals: Totals,
}

/// The durable state behind the node. Every method is one atomic operation.
pub trait Store: Send + Sync + Debug {
    /// Every key, user and team (startup).
    fn load(&self) -> BoxFuture<'_, StoreResult<Entities>>;
    fn put_key(&self, key: KeyRecord) -> BoxFuture<'_, StoreResult<()>>;
    fn delete_key(&self, token: String) -> BoxFuture<'_, StoreResult<()>>;
    fn put_user(&self, user: UserRecord) -> BoxFuture<'_, StoreResult<()>>;
    fn delete_user(&self, user_id: String) -> BoxFuture<'_, StoreResult<()>>;
    fn put_team(&self, team: TeamRecord) -> BoxFuture<'_, StoreResult<()>>;
    fn delete_team(&self, team_id: String) -> BoxFuture<'_, StoreResult<()>>;
    /// The settled spend of `entity` in the period starting at `period_start`.
    fn spend(&self, entity: EntityId, period_start: i64) -> BoxFuture<'_, StoreResult<Nanos>>;
    /// Adds a batch of settlements to the ledgers and rollups, all or nothing, durably.
    fn commit(&self, batch: Batch) -> BoxFuture<'_, StoreResult<()>>;
    /// The rollup rows of `entity` for days `from_day..=to_day`, by day then model.
    fn usage(
        &self,
        entity: EntityId,
        from_day: i64,
        to_day: i64,
    ) -> BoxFuture<'_, StoreResult<Vec<UsageRow>>>;
}

/// Days since the Unix epoch of a unix-seconds instant (UTC).
pub fn day_of(unix: i64) -> i64 {
    unix.div_euclid(86_400)
}

#[cfg(test)]
mod tests;
