//! Property tests of the budget ledger against a model: random interleavings of reserve,
//! shrink, settle, release, time passing (across period boundaries of every duration kind) and
//! budget updates, checking INV-1 and INV-3 after every step.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::collections::BTreeMap;

use proptest::prelude::*;
use tollgate_ledger::{Budget, BudgetDuration, Ledger, Nanos, Period, ReservationId};

/// 2026-01-01T00:00:00Z.
const START: i64 = 1_767_225_600;
const DAY: i64 = 86_400;

#[derive(Clone, Debug)]
enum Op {
    Reserve(Nanos),
    /// Lowers the `pick`-th live reservation to `permille`/1000 of itself.
    Shrink {
        pick: usize,
        permille: u64,
    },
    /// Settles the `pick`-th live reservation at `permille`/1000 of it (above 1000: overpriced).
    Settle {
        pick: usize,
        permille: u64,
    },
    Release {
        pick: usize,
    },
    /// Time passes by `permille`/1000 of a period's nominal length.
    Advance {
        permille: u64,
    },
    /// Time moves to one second before the current period's end, or to the end itself.
    ToBoundary {
        exactly: bool,
    },
    SetLimit(Nanos),
    SetDuration(BudgetDuration),
}

fn duration() -> impl Strategy<Value = BudgetDuration> {
    prop_oneof![
        (1u64..=7_200).prop_map(BudgetDuration::Seconds),
        (1u64..=7).prop_map(BudgetDuration::Days),
        (1u32..=3).prop_map(BudgetDuration::Months),
    ]
}

fn op(max_settle_permille: u64) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..=400).prop_map(Op::Reserve),
        2 => (any::<usize>(), 0u64..=1_000).prop_map(|(pick, permille)| Op::Shrink { pick, permille }),
        5 => (any::<usize>(), 0..=max_settle_permille)
            .prop_map(|(pick, permille)| Op::Settle { pick, permille }),
        2 => any::<usize>().prop_map(|pick| Op::Release { pick }),
        3 => (0u64..=1_500).prop_map(|permille| Op::Advance { permille }),
        1 => any::<bool>().prop_map(|exactly| Op::ToBoundary { exactly }),
        1 => (0u64..=2_000).prop_map(Op::SetLimit),
        1 => duration().prop_map(Op::SetDuration),
    ]
}

/// Nominal length of a period in seconds, to scale `Advance`.
fn nominal_length(duration: &BudgetDuration) -> i64 {
    match *duration {
        BudgetDuration::Seconds(n) => i64::try_from(n).unwrap(),
        BudgetDuration::Days(n) => i64::try_from(n).unwrap() * DAY,
        BudgetDuration::Months(n) => i64::from(n) * 31 * DAY,
    }
}

/// What the test believes, computed without the ledger.
struct Model {
    budget: Budget,
    now: i64,
    /// Live reservations: id → (amount, start of the period they belong to).
    live: BTreeMap<u64, (Nanos, i64)>,
    /// What the caller persisted per period (keyed by start): the sum of its settlements.
    store: BTreeMap<i64, Nanos>,
    /// Overrun per period.
    overrun: BTreeMap<i64, Nanos>,
    /// Overrun the ledger added to the current period since it entered it.
    overrun_since_entered: Nanos,
    total_settled: u128,
    next_id: u64,
    /// The limit was lowered below what was committed, and nothing has freed room since.
    lowered_below_committed: bool,
}

impl Model {
    fn period(&self) -> Period {
        self.budget.period_at(self.now)
    }

    fn spend(&self) -> Nanos {
        self.store.get(&self.period().start).copied().unwrap_or(0)
    }

    fn reserved(&self) -> Nanos {
        let current = self.period().start;
        self.live
            .values()
            .filter(|(_, period)| *period == current)
            .map(|(amount, _)| amount)
            .sum()
    }

    fn committed(&self) -> u128 {
        u128::from(self.spend()) + u128::from(self.reserved())
    }

    fn pick(&self, pick: usize) -> Option<u64> {
        if self.live.is_empty() {
            return None;
        }
        self.live.keys().nth(pick % self.live.len()).copied()
    }
}

fn run(initial: BudgetDuration, limit: Nanos, offset: i64, ops: Vec<Op>, honest_prices: bool) {
    let budget = Budget {
        limit: Some(limit),
        duration: Some(initial),
        anchor: START + offset,
    };
    let mut model = Model {
        budget: budget.clone(),
        now: START,
        live: BTreeMap::new(),
        store: BTreeMap::new(),
        overrun: BTreeMap::new(),
        overrun_since_entered: 0,
        total_settled: 0,
        next_id: 0,
        lowered_below_committed: false,
    };
    let mut ledger = Ledger::new(budget, 0, model.now);

    for op in ops {
        step(&mut ledger, &mut model, &op);
        check(&mut ledger, &mut model, &op, honest_prices);
    }
}

fn step(ledger: &mut Ledger, model: &mut Model, op: &Op) {
    let now = model.now;
    match *op {
        Op::Reserve(amount) => {
            let id = model.next_id;
            model.next_id += 1;
            let limit = model.budget.limit.unwrap();
            let fits = model.committed() + u128::from(amount) <= u128::from(limit);
            let result = ledger.reserve(ReservationId(id), amount, now);
            assert_eq!(result.is_ok(), fits, "{op:?}: {result:?}");
            if let Err(denied) = result {
                assert_eq!(denied.spend, model.spend());
                assert_eq!(denied.reserved, model.reserved());
                assert_eq!(denied.reset_at, Some(model.period().end));
            } else {
                model.live.insert(id, (amount, model.period().start));
            }
        }
        Op::Shrink { pick, permille } => match model.pick(pick) {
            Some(id) => {
                let entry = model.live.get_mut(&id).unwrap();
                let lower = entry.0 * permille / 1_000;
                assert!(ledger.shrink(ReservationId(id), lower));
                entry.0 = lower;
            }
            None => assert!(!ledger.shrink(ReservationId(model.next_id), 0)),
        },
        Op::Settle { pick, permille } => match model.pick(pick) {
            Some(id) => {
                let (reserved, period) = model.live.remove(&id).unwrap();
                let actual = reserved * permille / 1_000;
                let settlement = ledger.settle(ReservationId(id), actual, now).unwrap();
                // INV-3: the spend lands in the period the reservation was admitted in.
                assert_eq!(settlement.period.start, period);
                assert_eq!(settlement.amount, actual);
                assert_eq!(settlement.overrun, actual.saturating_sub(reserved));
                *model.store.entry(period).or_default() += actual;
                *model.overrun.entry(period).or_default() += settlement.overrun;
                if period == model.period().start {
                    model.overrun_since_entered += settlement.overrun;
                }
                model.total_settled += u128::from(actual);
            }
            None => {
                assert!(ledger.settle(ReservationId(model.next_id), 1, now).is_err());
            }
        },
        Op::Release { pick } => match model.pick(pick) {
            Some(id) => {
                model.live.remove(&id);
                assert!(ledger.release(ReservationId(id)));
            }
            None => assert!(!ledger.release(ReservationId(model.next_id))),
        },
        Op::Advance { permille } => {
            let length = nominal_length(&model.budget.duration.unwrap());
            model.now += length * i64::try_from(permille).unwrap() / 1_000;
            roll(ledger, model);
        }
        Op::ToBoundary { exactly } => {
            model.now = model.period().end - i64::from(!exactly);
            roll(ledger, model);
        }
        Op::SetLimit(limit) => {
            let was_fitting = model.committed() <= u128::from(limit);
            model.budget.limit = Some(limit);
            ledger.set_budget(model.budget.clone(), 0, now);
            model.lowered_below_committed |= !was_fitting;
        }
        Op::SetDuration(duration) => set_duration(ledger, model, duration),
    }
}

fn roll(ledger: &mut Ledger, model: &mut Model) {
    let before = ledger.period();
    let rolled = ledger.roll(model.now);
    assert_eq!(rolled.is_some(), model.period() != before);
    if let Some(period) = rolled {
        assert_eq!(period, model.period());
        model.overrun_since_entered = 0;
    }
}

fn set_duration(ledger: &mut Ledger, model: &mut Model, duration: BudgetDuration) {
    let old = model.period();
    model.budget.duration = Some(duration);
    let new = model.period();
    // In-flight reservations of the current period follow it into its new definition.
    for (_, period) in model.live.values_mut() {
        if *period == old.start {
            *period = new.start;
        }
    }
    // What the caller loads from the store for the new period.
    let stored = model.store.get(&new.start).copied().unwrap_or(0);
    if new.start != old.start {
        model.overrun_since_entered = 0;
    }
    ledger.set_budget(model.budget.clone(), stored, model.now);
    let limit = model.budget.limit.unwrap();
    model.lowered_below_committed |= model.committed() > u128::from(limit);
}

fn check(ledger: &mut Ledger, model: &mut Model, op: &Op, honest_prices: bool) {
    let snapshot = ledger.snapshot();
    let current = model.period();
    assert_eq!(snapshot.period, current, "after {op:?}");
    // A period's spend is the sum of the settlements attributed to it.
    assert_eq!(snapshot.spend, model.spend(), "after {op:?}");
    // Reserved is the sum of the live reservations of the current period.
    assert_eq!(snapshot.reserved, model.reserved(), "after {op:?}");
    assert_eq!(snapshot.outstanding_reservations, model.live.len());
    assert_eq!(
        snapshot.overrun, model.overrun_since_entered,
        "after {op:?}"
    );
    // Every settled unit is in exactly one period.
    let stored: u128 = model.store.values().map(|&n| u128::from(n)).sum();
    assert_eq!(stored, model.total_settled);

    // INV-1: settled + outstanding ≤ limit, unless the limit was lowered below what was
    // already committed (or a price was wrong) and no room has been freed since.
    let limit = model.budget.limit.unwrap();
    let committed = model.committed();
    if committed <= u128::from(limit) {
        model.lowered_below_committed = false;
    }
    let overrun_now = model.overrun.get(&current.start).is_some_and(|&n| n > 0);
    assert!(
        committed <= u128::from(limit) || model.lowered_below_committed || overrun_now,
        "INV-1 broken after {op:?}: {snapshot:?}"
    );
    if honest_prices {
        assert!(model.overrun.values().all(|&n| n == 0));
    }
    let room = u128::from(limit).saturating_sub(committed);
    assert_eq!(ledger.remaining(model.now), Some(room.try_into().unwrap()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// INV-1 and INV-3 with right prices (settlements at most their reservation).
    #[test]
    fn ledger_keeps_inv1_and_inv3(
        initial in duration(),
        limit in 0u64..=2_000,
        offset in -40 * DAY..40 * DAY,
        ops in prop::collection::vec(op(1_000), 1..200),
    ) {
        run(initial, limit, offset, ops, true);
    }

    /// Overpriced settlements (actual up to 3× the reservation): the overrun is accounted
    /// exactly, per period, and admission stays exact.
    #[test]
    fn overrun_is_accounted_exactly(
        initial in duration(),
        limit in 0u64..=2_000,
        offset in -40 * DAY..40 * DAY,
        ops in prop::collection::vec(op(3_000), 1..200),
    ) {
        run(initial, limit, offset, ops, false);
    }
}
