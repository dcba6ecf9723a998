//! The pure, synchronous state machines of admission: money as integers, budget periods, the
//! per-entity budget ledger and sliding-window rate limits. No async, no I/O and no clock: the
//! caller passes the time in, so every transition is a plain function the tests (unit and
//! property) drive directly, and the actors and store scripts built on top implement the same
//! rules.
//!
//! # Layout
//! - `money`: [`Nanos`] (nano-USD), per-token [`Price`]s and [`format_usd`] for messages.
//! - `period`: [`BudgetDuration`] (`30s` … `1mo`) and the UTC arithmetic that puts every
//!   instant in exactly one [`Period`] (INV-3).
//! - `ledger`: [`Ledger`], one entity's spend and reservations; admission keeps INV-1.
//! - `rate`: [`Gcra`], `rpm`/`tpm` limits over a sliding window.

pub mod ledger;
pub mod money;
pub mod period;
pub mod rate;

pub use ledger::{Budget, Denied, Ledger, ReservationId, Settlement, Snapshot, UnknownReservation};
pub use money::{Nanos, Price, format_usd};
pub use period::{
    BudgetDuration, ParseDurationError, Period, civil_from_days, days_from_civil, format_rfc3339,
};
pub use rate::{Gcra, RateDenied, RateState};
