use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::{mpsc, oneshot};
use tollgate_accounts::{Clock, EntityId, Limits};
use tollgate_ledger::{Nanos, ReservationId};
use tollgate_store::Store;

use crate::actor::{Args, EntityActor, EntitySnapshot, Msg};
use crate::refusal::Refusal;
use crate::writer::{self, Command};

/// How long an admission may wait for an entity's actor before it fails closed.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A request's worst case, reserved before the upstream call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Demand {
    /// Worst-case cost: prompt tokens (an upper bound) × input price + enforced max output
    /// tokens × output price.
    pub cost: Nanos,
    /// Tokens taken from tpm windows now; corrected to the actual count at settlement.
    pub tokens: u64,
}

/// What a request actually used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Usage {
    pub model: Arc<str>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost: Nanos,
}

/// Told about every settlement, e.g. to export the remaining budget as a metric.
pub trait SettleObserver: Send + Sync + std::fmt::Debug {
    /// `remaining` is the room left in the entity's current period (`None`: no limit).
    fn settled(&self, entity: &EntityId, remaining: Option<Nanos>);
}

/// Tuning of the admission layer.
#[derive(Clone, Debug)]
pub struct BudgetsOptions {
    /// How long settled spend may sit in memory before it is committed (INV-2's window).
    pub flush_window: Duration,
    /// An entity's actor stops after this long without requests.
    pub idle: Duration,
    pub observer: Option<Arc<dyn SettleObserver>>,
}

impl Default for BudgetsOptions {
    fn default() -> Self {
        Self {
            flush_window: Duration::from_millis(200),
            idle: Duration::from_secs(300),
            observer: None,
        }
    }
}

/// The live entity actors.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    actors: Mutex<HashMap<EntityId, ActorRef<Msg>>>,
}

impl Registry {
    fn get(&self, entity: &EntityId) -> Option<ActorRef<Msg>> {
        self.lock().get(entity).cloned()
    }

    /// Forgets `entity` if its actor is still `id` (a newer actor may have replaced it).
    pub(crate) fn remove(&self, entity: &EntityId, id: ActorId) {
        let mut actors = self.lock();
        if actors.get(entity).is_some_and(|a| a.get_id() == id) {
            actors.remove(entity);
        }
    }

    fn remove_cell(&self, id: ActorId) {
        self.lock().retain(|_, a| a.get_id() != id);
    }

    fn all(&self) -> Vec<ActorRef<Msg>> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<EntityId, ActorRef<Msg>>> {
        self.actors.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Supervises the entity actors: a failed one is forgotten, so the next request rebuilds it
/// from the store.
struct Supervisor;

impl Actor for Supervisor {
    type Msg = ();
    type State = Arc<Registry>;
    type Arguments = Arc<Registry>;

    async fn pre_start(
        &self,
        _: ActorRef<()>,
        registry: Arc<Registry>,
    ) -> Result<Arc<Registry>, ActorProcessingErr> {
        Ok(registry)
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<()>,
        event: SupervisionEvent,
        registry: &mut Arc<Registry>,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, error) => {
                tracing::error!(error = %error, "a budget actor failed; it is rebuilt from the store on next use");
                registry.remove_cell(cell.get_id());
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => registry.remove_cell(cell.get_id()),
            _ => {}
        }
        Ok(())
    }
}

/// The admission layer of a node.
#[derive(Debug, Clone)]
pub struct Budgets {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Arc<Registry>,
    supervisor: ActorCell,
    spawn_lock: tokio::sync::Mutex<()>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    writer: mpsc::UnboundedSender<Command>,
    next_id: AtomicU64,
    options: BudgetsOptions,
}

impl Budgets {
    /// Starts the supervisor and the store writer. Must run inside a Tokio runtime.
    pub async fn start(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        options: BudgetsOptions,
    ) -> Result<Budgets, Refusal> {
        let registry = Arc::new(Registry::default());
        let (supervisor, _) = Actor::spawn(None, Supervisor, registry.clone())
            .await
            .map_err(|e| Refusal::Unavailable(e.to_string()))?;
        let (writer, commands) = mpsc::unbounded_channel();
        tokio::spawn(writer::run(store.clone(), commands, options.flush_window));
        Ok(Budgets {
            inner: Arc::new(Inner {
                registry,
                supervisor: supervisor.get_cell(),
                spawn_lock: tokio::sync::Mutex::new(()),
                store,
                clock,
                writer,
                next_id: AtomicU64::new(1),
                options,
            }),
        })
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Admits a request against every entity in `entities` (all or nothing) and returns the
    /// ticket that owns its reservations.
    pub async fn admit(
        &self,
        entities: Vec<(EntityId, Limits)>,
        demand: Demand,
    ) -> Result<Ticket, Refusal> {
        let id = ReservationId(self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let mut ticket = Ticket {
            id,
            demand,
            holders: Vec::with_capacity(entities.len()),
            armed: false,
            done: false,
        };
        for (entity, limits) in entities {
            match self.admit_one(&entity, limits, id, demand).await {
                Ok(actor) => ticket.holders.push(actor),
                Err(refusal) => {
                    ticket.release();
                    return Err(refusal);
                }
            }
        }
        ticket.armed = true;
        Ok(ticket)
    }

    async fn admit_one(
        &self,
        entity: &EntityId,
        limits: Limits,
        id: ReservationId,
        demand: Demand,
    ) -> Result<ActorRef<Msg>, Refusal> {
        // An actor may stop (idle) between lookup and call; then build a new one and retry.
        for _ in 0..3 {
            let actor = self.actor(entity, &limits).await?;
            let limits = limits.clone();
            let answer = actor
                .call(
                    |reply| Msg::Admit {
                        id,
                        demand,
                        limits,
                        reply,
                    },
                    Some(CALL_TIMEOUT),
                )
                .await;
            match answer {
                Ok(ractor::rpc::CallResult::Success(result)) => return result.map(|()| actor),
                Ok(ractor::rpc::CallResult::Timeout) => {
                    // It may still admit after we gave up: release whatever it holds for us.
                    let _ = actor.cast(Msg::Release { id });
                    return Err(Refusal::Unavailable(format!(
                        "the {} ledger did not answer in time",
                        entity.kind()
                    )));
                }
                Ok(ractor::rpc::CallResult::SenderError) | Err(_) => {
                    self.inner.registry.remove(entity, actor.get_id());
                }
            }
        }
        Err(Refusal::Unavailable(format!(
            "the {} ledger is restarting",
            entity.kind()
        )))
    }

    /// The live actor of `entity`, built from the store if there is none.
    async fn actor(&self, entity: &EntityId, limits: &Limits) -> Result<ActorRef<Msg>, Refusal> {
        if let Some(actor) = self.inner.registry.get(entity) {
            return Ok(actor);
        }
        let _spawning = self.inner.spawn_lock.lock().await;
        if let Some(actor) = self.inner.registry.get(entity) {
            return Ok(actor);
        }
        let args = Args {
            entity: entity.clone(),
            limits: limits.clone(),
            store: self.inner.store.clone(),
            clock: self.inner.clock.clone(),
            writer: self.inner.writer.clone(),
            registry: self.inner.registry.clone(),
            idle: self.inner.options.idle,
            observer: self.inner.options.observer.clone(),
        };
        let (actor, _) =
            Actor::spawn_linked(None, EntityActor, args, self.inner.supervisor.clone())
                .await
                .map_err(|e| Refusal::Unavailable(e.to_string()))?;
        self.inner
            .registry
            .lock()
            .insert(entity.clone(), actor.clone());
        Ok(actor)
    }

    /// What `entity`'s ledger holds now (its actor is built if needed).
    pub async fn snapshot(
        &self,
        entity: &EntityId,
        limits: Limits,
    ) -> Result<EntitySnapshot, Refusal> {
        let actor = self.actor(entity, &limits).await?;
        match actor
            .call(|reply| Msg::Snapshot { limits, reply }, Some(CALL_TIMEOUT))
            .await
        {
            Ok(ractor::rpc::CallResult::Success(snapshot)) => Ok(snapshot),
            _ => Err(Refusal::Unavailable(format!(
                "the {} ledger did not answer",
                entity.kind()
            ))),
        }
    }

    /// Waits until every settlement sent so far is committed to the store. Used at shutdown
    /// and by tests; normal operation commits every flush window on its own.
    pub async fn flush(&self) {
        // A snapshot round trip through every actor puts their earlier settlements in the
        // writer's queue first.
        for actor in self.inner.registry.all() {
            let _ = actor
                .call(
                    |reply| Msg::Snapshot {
                        limits: Limits::default(),
                        reply,
                    },
                    Some(CALL_TIMEOUT),
                )
                .await;
        }
        let (done, wait) = oneshot::channel();
        if self.inner.writer.send(Command::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

impl Budgets {
    /// Commits everything, stops every actor and the writer, and releases the store. Called
    /// once, when the node stops; admissions after it fail closed.
    pub async fn shutdown(&self) {
        self.flush().await;
        for actor in self.inner.registry.all() {
            let _ = actor
                .stop_and_wait(Some("shutdown".to_owned()), Some(CALL_TIMEOUT))
                .await;
        }
        self.inner.registry.lock().clear();
        self.inner.supervisor.stop(Some("shutdown".to_owned()));
        let (done, wait) = oneshot::channel();
        if self.inner.writer.send(Command::Stop(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

/// Holds a request's reservations at every entity until it is settled or released. Dropping
/// it unsettled settles at the full reservation: an unknown outcome is presumed spent. (While
/// admission is still under way, a drop — the client went away — releases instead: no
/// upstream was called yet.)
#[derive(Debug)]
pub struct Ticket {
    id: ReservationId,
    demand: Demand,
    holders: Vec<ActorRef<Msg>>,
    /// Admission finished; from now on the upstream may be called.
    armed: bool,
    done: bool,
}

impl Ticket {
    /// The reserved worst case.
    pub fn demand(&self) -> Demand {
        self.demand
    }

    /// Replaces the reservation by what the request actually cost.
    pub fn settle(mut self, usage: Usage) {
        self.done = true;
        for actor in &self.holders {
            let _ = actor.cast(Msg::Settle {
                id: self.id,
                usage: usage.clone(),
            });
        }
    }

    /// Gives the reservation back: the upstream was never called, or refused the request
    /// without doing work.
    pub fn release(mut self) {
        self.done = true;
        self.release_all();
    }

    fn release_all(&self) {
        for actor in &self.holders {
            let _ = actor.cast(Msg::Release { id: self.id });
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if !self.armed {
            self.release_all();
            return;
        }
        tracing::warn!("a reservation was dropped unsettled; settling it at its worst case");
        for actor in &self.holders {
            let _ = actor.cast(Msg::Settle {
                id: self.id,
                usage: Usage {
                    model: Arc::from("unknown"),
                    input_tokens: 0,
                    output_tokens: 0,
                    cost: self.demand.cost,
                },
            });
        }
    }
}
