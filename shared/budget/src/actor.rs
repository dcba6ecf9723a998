//! The actor of one entity: its ledger, rate windows and parallel count, serialized by its
//! mailbox.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::mpsc::UnboundedSender;
use tollgate_accounts::{Clock, EntityId, Limits};
use tollgate_ledger::{Gcra, Ledger, Nanos, Period, ReservationId};
use tollgate_store::{Settled, Store, day_of};

use crate::budgets::{Demand, Registry, SettleObserver, Usage};
use crate::refusal::{RateKind, Refusal};
use crate::writer::Command;

/// How often an actor checks whether it has been idle long enough to stop.
const TICK: Duration = Duration::from_secs(30);

pub(crate) enum Msg {
    Admit {
        id: ReservationId,
        demand: Demand,
        limits: Limits,
        reply: RpcReplyPort<Result<(), Refusal>>,
    },
    Settle {
        id: ReservationId,
        usage: Usage,
    },
    Release {
        id: ReservationId,
    },
    Snapshot {
        limits: Limits,
        reply: RpcReplyPort<EntitySnapshot>,
    },
    Tick,
}

/// What an entity's actor knows right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntitySnapshot {
    /// Settled spend in the current period.
    pub spend: Nanos,
    /// Held by in-flight requests.
    pub reserved: Nanos,
    pub max_budget: Option<Nanos>,
    pub period: Period,
    /// When the current period ends (`None`: the budget never resets).
    pub reset_at: Option<i64>,
    /// Spend beyond reservations in this period (a wrong price).
    pub overrun: Nanos,
    pub in_flight: u64,
    /// Whether `soft_budget` was crossed in this period (LiteLLM's `soft_budget_cooldown`).
    pub soft_budget_alerted: bool,
}

pub(crate) struct EntityActor;

pub(crate) struct Args {
    pub entity: EntityId,
    pub limits: Limits,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub writer: UnboundedSender<Command>,
    pub registry: Arc<Registry>,
    pub idle: Duration,
    pub observer: Option<Arc<dyn SettleObserver>>,
}

pub(crate) struct State {
    entity: EntityId,
    limits: Limits,
    ledger: Ledger,
    rpm: Option<Gcra>,
    tpm: Option<Gcra>,
    holds: HashMap<ReservationId, Hold>,
    soft_alerted: Option<i64>,
    last_active: i64,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    writer: UnboundedSender<Command>,
    registry: Arc<Registry>,
    idle: Duration,
    observer: Option<Arc<dyn SettleObserver>>,
}

/// What a live reservation took besides money.
#[derive(Clone, Copy, Debug)]
struct Hold {
    tokens: u64,
}

impl Actor for EntityActor {
    type Msg = Msg;
    type State = State;
    type Arguments = Args;

    async fn pre_start(
        &self,
        myself: ActorRef<Msg>,
        args: Args,
    ) -> Result<State, ActorProcessingErr> {
        let now = args.clock.now();
        let budget = args.limits.budget();
        let period = budget.period_at(now);
        let settled = args.store.spend(args.entity.clone(), period.start).await?;
        myself.send_interval(TICK, || Msg::Tick);
        Ok(State {
            ledger: Ledger::new(budget, settled, now),
            rpm: args.limits.rpm_limit.map(Gcra::per_minute),
            tpm: args.limits.tpm_limit.map(Gcra::per_minute),
            entity: args.entity,
            limits: args.limits,
            holds: HashMap::new(),
            soft_alerted: None,
            last_active: now,
            store: args.store,
            clock: args.clock,
            writer: args.writer,
            registry: args.registry,
            idle: args.idle,
            observer: args.observer,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Msg>,
        msg: Msg,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Admit {
                id,
                demand,
                limits,
                reply,
            } => {
                state.apply_limits(limits).await;
                let result = state.admit(id, demand);
                // The requester may have given up (timeout); the reservation then stays until
                // its ticket settles or releases it, which the ticket always does.
                let _ = reply.send(result);
            }
            Msg::Settle { id, usage } => state.settle(id, usage),
            Msg::Release { id } => state.release(id),
            Msg::Snapshot { limits, reply } => {
                state.apply_limits(limits).await;
                let _ = reply.send(state.snapshot());
            }
            Msg::Tick => {
                let idle_for = state.clock.now() - state.last_active;
                if state.holds.is_empty() && idle_for >= state.idle.as_secs() as i64 {
                    state.registry.remove(&state.entity, myself.get_id());
                    myself.stop(Some("idle".to_owned()));
                }
            }
        }
        Ok(())
    }
}

impl State {
    /// Applies limits that changed since the last message (an admin update). A changed budget
    /// period loads the new period's spend from the store.
    async fn apply_limits(&mut self, limits: Limits) {
        if limits == self.limits {
            return;
        }
        let now = self.clock.now();
        let budget = limits.budget();
        if budget != *self.ledger.budget() {
            let period = budget.period_at(now);
            let settled = if period == self.ledger.period() {
                self.ledger.snapshot().spend
            } else {
                match self.store.spend(self.entity.clone(), period.start).await {
                    Ok(spend) => spend,
                    Err(e) => {
                        tracing::error!(entity = %self.entity, error = %e,
                            "could not load the new period's spend; counting from the current");
                        self.ledger.snapshot().spend
                    }
                }
            };
            self.ledger.set_budget(budget, settled, now);
        }
        if limits.rpm_limit != self.limits.rpm_limit {
            self.rpm = limits.rpm_limit.map(Gcra::per_minute);
        }
        if limits.tpm_limit != self.limits.tpm_limit {
            self.tpm = limits.tpm_limit.map(Gcra::per_minute);
        }
        self.limits = limits;
    }

    fn admit(&mut self, id: ReservationId, demand: Demand) -> Result<(), Refusal> {
        let now = self.clock.now();
        let now_ns = self.clock.now_nanos();
        self.last_active = now;
        if let Some(limit) = self.limits.max_parallel_requests
            && self.holds.len() as u64 >= limit
        {
            return Err(Refusal::Rate {
                entity: self.entity.clone(),
                kind: RateKind::Parallel,
                limit,
                remaining: 0,
                retry_after: Duration::from_secs(1),
                never: limit == 0,
            });
        }
        self.ledger
            .reserve(id, demand.cost, now)
            .map_err(|denied| Refusal::Budget {
                entity: self.entity.clone(),
                denied,
            })?;
        if let Some(rpm) = &mut self.rpm
            && let Err(denied) = rpm.try_take(1, now_ns)
        {
            self.ledger.release(id);
            return Err(self.rate_refusal(RateKind::Requests, &denied));
        }
        if let Some(tpm) = &mut self.tpm
            && let Err(denied) = tpm.try_take(demand.tokens, now_ns)
        {
            self.ledger.release(id);
            if let Some(rpm) = &mut self.rpm {
                rpm.refund(1, now_ns);
            }
            return Err(self.rate_refusal(RateKind::Tokens, &denied));
        }
        self.holds.insert(
            id,
            Hold {
                tokens: demand.tokens,
            },
        );
        Ok(())
    }

    fn rate_refusal(&self, kind: RateKind, denied: &tollgate_ledger::RateDenied) -> Refusal {
        Refusal::Rate {
            entity: self.entity.clone(),
            kind,
            limit: denied.limit,
            remaining: 0,
            retry_after: Duration::from_nanos(u64::try_from(denied.retry_after_ns).unwrap_or(0)),
            never: denied.never,
        }
    }

    fn settle(&mut self, id: ReservationId, usage: Usage) {
        let now = self.clock.now();
        let now_ns = self.clock.now_nanos();
        self.last_active = now;
        let hold = self.holds.remove(&id);
        let settlement = match self.ledger.settle(id, usage.cost, now) {
            Ok(settlement) => settlement,
            Err(_) => {
                // Not ours (the actor was rebuilt after a crash): the spend still counts, in
                // the current period. Never lose settled money.
                tracing::warn!(entity = %self.entity, "settling a reservation this actor does not hold");
                self.ledger.record(usage.cost, now)
            }
        };
        if settlement.overrun > 0 {
            tracing::error!(
                entity = %self.entity,
                overrun_nano_usd = settlement.overrun,
                "a request cost more than its reservation: the model's price is wrong"
            );
        }
        if let (Some(tpm), Some(hold)) = (&mut self.tpm, hold) {
            let actual = usage.input_tokens.saturating_add(usage.output_tokens);
            if actual < hold.tokens {
                tpm.refund(hold.tokens - actual, now_ns);
            } else {
                tpm.charge(actual - hold.tokens, now_ns);
            }
        }
        let _ = self.writer.send(Command::Settled(Settled {
            entity: self.entity.clone(),
            period_start: settlement.period.start,
            day: day_of(now),
            model: usage.model,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cost: usage.cost,
        }));
        self.check_soft_budget();
        if let Some(observer) = &self.observer {
            observer.settled(&self.entity, self.ledger.remaining(now));
        }
    }

    fn release(&mut self, id: ReservationId) {
        let now_ns = self.clock.now_nanos();
        self.ledger.release(id);
        if let Some(hold) = self.holds.remove(&id) {
            if let Some(rpm) = &mut self.rpm {
                rpm.refund(1, now_ns);
            }
            if let Some(tpm) = &mut self.tpm {
                tpm.refund(hold.tokens, now_ns);
            }
        }
    }

    /// One warning (and event) per period when spend crosses `soft_budget`.
    fn check_soft_budget(&mut self) {
        let Some(soft) = self.limits.soft_budget else {
            return;
        };
        let snapshot = self.ledger.snapshot();
        let period = snapshot.period.start;
        if snapshot.spend >= soft && self.soft_alerted != Some(period) {
            self.soft_alerted = Some(period);
            tracing::warn!(
                target: "tollgate::budget",
                event = "soft_budget_crossed",
                entity = %self.entity,
                spend = %tollgate_ledger::format_usd(snapshot.spend),
                soft_budget = %tollgate_ledger::format_usd(soft),
                "soft budget crossed"
            );
        }
    }

    fn snapshot(&mut self) -> EntitySnapshot {
        let now = self.clock.now();
        self.ledger.roll(now);
        let s = self.ledger.snapshot();
        let reset_at = (s.period.end != i64::MAX).then_some(s.period.end);
        EntitySnapshot {
            spend: s.spend,
            reserved: s.reserved,
            max_budget: s.limit,
            period: s.period,
            reset_at,
            overrun: s.overrun,
            in_flight: self.holds.len() as u64,
            soft_budget_alerted: self.soft_alerted == Some(s.period.start),
        }
    }
}
