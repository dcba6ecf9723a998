//! The budget ledger of one entity (a key, user, team...): settled spend and in-flight
//! reservations of the current period, and the admission rule that keeps them under the limit.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::money::{Nanos, format_usd};
use crate::period::{BudgetDuration, Period, format_rfc3339};

/// An entity's budget as configured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// The most the entity may spend per period; `None` is unlimited.
    pub limit: Option<Nanos>,
    /// How long a period lasts; `None` is a single period covering all of time.
    pub duration: Option<BudgetDuration>,
    /// Unix seconds (UTC) the periods are counted from, usually when the budget was set.
    pub anchor: i64,
}

impl Budget {
    /// The period containing `now`: [`BudgetDuration::period_at`], or [`Period::FOREVER`]
    /// without a duration.
    pub fn period_at(&self, now: i64) -> Period {
        match &self.duration {
            Some(duration) => duration.period_at(self.anchor, now),
            None => Period::FOREVER,
        }
    }
}

/// Names one reservation, chosen by the caller and unique among the ledger's live ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReservationId(pub u64);

/// One admitted, not yet settled reservation.
#[derive(Clone, Copy, Debug)]
struct Reservation {
    amount: Nanos,
    /// The period it was admitted in; its spend belongs there (INV-3). Compared by `start`,
    /// the period's identity, since a budget update may redefine the period's end.
    period: Period,
}

/// The budget state machine of one entity. Pure and synchronous: the caller supplies the time
/// (unix seconds, UTC) and persists what [`Ledger::settle`] reports.
///
/// INV-1: for the current period, `settled + reserved ≤ limit` whenever prices are right
/// (settlements never exceed their reservations) and the limit was not lowered below what was
/// already committed; [`Ledger::reserve`] is where it is enforced.
#[derive(Clone, Debug)]
pub struct Ledger {
    budget: Budget,
    /// The current period. Only moves forward with time (see [`Ledger::roll`]).
    period: Period,
    /// Spend settled in the current period.
    settled: Nanos,
    /// What settlements added to the current period cost beyond their reservations.
    overrun: Nanos,
    /// Sum of the live reservations of the current period, wide enough to never overflow.
    reserved: u128,
    reservations: HashMap<ReservationId, Reservation>,
}

impl Ledger {
    /// A ledger for `budget` at `now`. `settled` is what the store holds for the period
    /// containing `now`.
    pub fn new(budget: Budget, settled: Nanos, now: i64) -> Ledger {
        let period = budget.period_at(now);
        Ledger {
            budget,
            period,
            settled,
            overrun: 0,
            reserved: 0,
            reservations: HashMap::new(),
        }
    }

    /// The current period (as of the last roll).
    pub fn period(&self) -> Period {
        self.period
    }

    /// The budget in force.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// Moves to the period containing `now` if that is a later one, and returns it. The new
    /// period's spend starts at 0; reservations admitted earlier stay outstanding but no longer
    /// count against it (their spend belongs to their own period, INV-3).
    ///
    /// The ledger's clock is kept monotonic: an instant before the current period (a wall clock
    /// stepped back) counts as the current period, so a period is never entered twice and its
    /// spend never forgotten.
    pub fn roll(&mut self, now: i64) -> Option<Period> {
        let period = self.budget.period_at(now);
        if period.start <= self.period.start {
            return None;
        }
        self.enter(period, 0);
        Some(period)
    }

    /// Room left in the current period after settled spend and reservations (`None` is
    /// unlimited); rolls first. 0 when the limit was lowered below what is committed.
    pub fn remaining(&mut self, now: i64) -> Option<Nanos> {
        self.roll(now);
        let committed = u128::from(self.settled) + self.reserved;
        self.budget
            .limit
            .map(|limit| saturate(u128::from(limit).saturating_sub(committed)))
    }

    /// Admits a reservation of `amount` if it fits in the current period:
    /// `settled + reserved + amount ≤ limit` (equal is allowed). This is the check that keeps
    /// INV-1. Rolls first.
    ///
    /// A duplicate `id` is the caller's bug: debug builds panic, release builds deny it.
    pub fn reserve(&mut self, id: ReservationId, amount: Nanos, now: i64) -> Result<(), Denied> {
        self.roll(now);
        let duplicate = self.reservations.contains_key(&id);
        debug_assert!(!duplicate, "reservation {id:?} is already outstanding");
        let committed = u128::from(self.settled) + self.reserved + u128::from(amount);
        let fits = self
            .budget
            .limit
            .is_none_or(|limit| committed <= u128::from(limit));
        if !fits || duplicate {
            return Err(self.denied(amount));
        }
        self.reserved += u128::from(amount);
        let period = self.period;
        self.reservations.insert(id, Reservation { amount, period });
        Ok(())
    }

    /// Lowers reservation `id` to `amount` (never raises it), giving the difference back to its
    /// period. Returns whether the reservation exists; an unknown id is a no-op.
    pub fn shrink(&mut self, id: ReservationId, amount: Nanos) -> bool {
        let Some(reservation) = self.reservations.get_mut(&id) else {
            return false;
        };
        if amount < reservation.amount {
            if reservation.period.start == self.period.start {
                self.reserved -= u128::from(reservation.amount - amount);
            }
            reservation.amount = amount;
        }
        true
    }

    /// Replaces reservation `id` by the `actual` cost. Rolls first.
    ///
    /// The spend belongs to the period the reservation was admitted in (INV-3): if that is the
    /// current period it is added to the settled spend, otherwise it is only reported back and
    /// the caller persists it to that period. `actual` above the reservation is an overrun (a
    /// wrong price), reported and counted in the period's overrun total.
    pub fn settle(
        &mut self,
        id: ReservationId,
        actual: Nanos,
        now: i64,
    ) -> Result<Settlement, UnknownReservation> {
        self.roll(now);
        let reservation = self.reservations.remove(&id).ok_or(UnknownReservation)?;
        let overrun = actual.saturating_sub(reservation.amount);
        let mut period = reservation.period;
        if period.start == self.period.start {
            self.reserved -= u128::from(reservation.amount);
            self.settled = self.settled.saturating_add(actual);
            self.overrun = self.overrun.saturating_add(overrun);
            period = self.period;
        }
        Ok(Settlement {
            period,
            amount: actual,
            overrun,
        })
    }

    /// Drops reservation `id` without spend (the upstream was never called). Returns whether it
    /// existed.
    pub fn release(&mut self, id: ReservationId) -> bool {
        let Some(reservation) = self.reservations.remove(&id) else {
            return false;
        };
        if reservation.period.start == self.period.start {
            self.reserved -= u128::from(reservation.amount);
        }
        true
    }

    /// Records spend that no reservation covered (a settlement whose reservation was lost
    /// when an actor was rebuilt). It lands in the current period and counts as overrun; the
    /// money is never dropped.
    pub fn record(&mut self, actual: Nanos, now: i64) -> Settlement {
        self.roll(now);
        self.settled = self.settled.saturating_add(actual);
        self.overrun = self.overrun.saturating_add(actual);
        Settlement {
            period: self.period,
            amount: actual,
            overrun: actual,
        }
    }

    /// The amount reservation `id` currently holds, if it is outstanding.
    pub fn reservation(&self, id: ReservationId) -> Option<Nanos> {
        self.reservations.get(&id).map(|r| r.amount)
    }

    /// Applies a new limit, duration or anchor (an admin update).
    ///
    /// If the current period's identity (its start) changes, its settled spend becomes
    /// `settled_in_new_period`, which the caller loads from the store (usually 0). Reservations
    /// are kept; those of the current period were admitted now, so they move to the current
    /// period under the new definition and keep counting against it.
    pub fn set_budget(&mut self, budget: Budget, settled_in_new_period: Nanos, now: i64) {
        // Under the old budget first, so reservations of a period that already ended stay there.
        self.roll(now);
        let old = self.period;
        self.budget = budget;
        let new = self.budget.period_at(now);
        if new == old {
            return;
        }
        for reservation in self.reservations.values_mut() {
            if reservation.period.start == old.start {
                reservation.period = new;
            }
        }
        if new.start == old.start {
            // Same identity, new end: the spend carries over.
            self.period = new;
        } else {
            self.enter(new, settled_in_new_period);
        }
    }

    /// The ledger's state for `/key/info`, metrics and tests.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            limit: self.budget.limit,
            spend: self.settled,
            reserved: saturate(self.reserved),
            period: self.period,
            outstanding_reservations: self.reservations.len(),
            overrun: self.overrun,
        }
    }

    /// Makes `period` the current one with `settled` spend already in it.
    fn enter(&mut self, period: Period, settled: Nanos) {
        self.period = period;
        self.settled = settled;
        self.overrun = 0;
        self.reserved = self
            .reservations
            .values()
            .filter(|r| r.period.start == period.start)
            .map(|r| u128::from(r.amount))
            .sum();
    }

    fn denied(&self, requested: Nanos) -> Denied {
        Denied {
            spend: self.settled,
            reserved: saturate(self.reserved),
            limit: self.budget.limit.unwrap_or(Nanos::MAX),
            requested,
            reset_at: self.budget.duration.map(|_| self.period.end),
        }
    }
}

/// Sums beyond `Nanos` (only reachable with absurd in-flight totals) are shown as `Nanos::MAX`.
fn saturate(n: u128) -> Nanos {
    Nanos::try_from(n).unwrap_or(Nanos::MAX)
}

/// A reservation did not fit in the current period. The numbers are the period's state when it
/// was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    /// Settled spend of the current period.
    pub spend: Nanos,
    /// In-flight reservations of the current period.
    pub reserved: Nanos,
    /// The period's limit (`Nanos::MAX` for an unlimited budget, which refuses only a duplicate
    /// id).
    pub limit: Nanos,
    /// The refused reservation.
    pub requested: Nanos,
    /// Unix seconds (UTC) when the period ends; `None` for a budget without a duration.
    pub reset_at: Option<i64>,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "budget exceeded: spend {} + in-flight {} + this request up to {} > limit {}",
            format_usd(self.spend),
            format_usd(self.reserved),
            format_usd(self.requested),
            format_usd(self.limit),
        )?;
        if let Some(reset_at) = self.reset_at {
            write!(f, "; resets at {}", format_rfc3339(reset_at))?;
        }
        Ok(())
    }
}

impl std::error::Error for Denied {}

/// What a settlement spent and where it belongs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settlement {
    /// The period the reservation was admitted in: the caller persists `amount` there.
    pub period: Period,
    /// The actual cost.
    pub amount: Nanos,
    /// How much `amount` exceeded the reservation (a wrong price); 0 normally.
    pub overrun: Nanos,
}

/// [`Ledger::settle`] was given an id with no outstanding reservation (already settled or
/// released, or never admitted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown reservation")]
pub struct UnknownReservation;

/// A ledger's state at one point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// The limit per period; `None` is unlimited.
    pub limit: Option<Nanos>,
    /// Settled spend of the current period.
    pub spend: Nanos,
    /// In-flight reservations of the current period.
    pub reserved: Nanos,
    /// The current period.
    pub period: Period,
    /// Every outstanding reservation, including those admitted in earlier periods.
    pub outstanding_reservations: usize,
    /// Total overrun of the settlements this ledger added to the current period (since it was
    /// created or entered the period).
    pub overrun: Nanos,
}

#[cfg(test)]
mod tests;
