//! Admission: budgets and rate limits held by one actor per active entity.
//!
//! Each budget-holding entity (key, user, team, team member) that is in use has an
//! [`EntityActor`](actor) (ractor). Its mailbox serializes everything that touches the
//! entity's money and windows: the [`Ledger`](tollgate_ledger::Ledger) of the current period,
//! the rpm/tpm GCRA windows and the parallel-request count. A request is admitted by
//! [`Budgets::admit`], which asks every entity that applies, in order, to reserve the request's
//! worst-case cost and take its rate units; if any refuses, the ones that granted are released,
//! so admission is all or nothing. The returned [`Ticket`] owns the reservations: it is settled
//! with the actual cost (or released when the upstream was never called), and if it is dropped
//! unsettled it settles at the full reservation — spend is never lost and never settled at zero
//! by accident (INV-1).
//!
//! Settled spend goes from the actors to the [`writer`] task, which commits it to the store in
//! one atomic batch per flush window (INV-2: a crash loses at most one window). Actors for idle
//! entities stop and are rebuilt from the store on demand; a crashed actor is removed by the
//! supervisor and likewise rebuilt.
//!
//! # Layout
//! - `budgets`: [`Budgets`] (the registry and the entry point), [`Ticket`], [`Demand`].
//! - `actor`: the entity actor and its messages.
//! - `refusal`: [`Refusal`], why a request was not admitted.
//! - `writer`: the batching store writer.

mod actor;
mod budgets;
mod refusal;
mod writer;

pub use actor::EntitySnapshot;
pub use budgets::{Budgets, BudgetsOptions, Demand, SettleObserver, Ticket, Usage};
pub use refusal::{RateKind, Refusal};

#[cfg(test)]
mod tests;
