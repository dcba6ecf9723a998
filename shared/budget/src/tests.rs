use std::sync::Arc;
use std::time::Duration;

use tollgate_accounts::{Clock, EntityId, Limits, ManualClock};
use tollgate_ledger::BudgetDuration;
use tollgate_store::{MemoryStore, Store};

use super::*;

/// 2026-11-30T23:59:50Z: ten seconds before a month ends.
const MONTH_END: i64 = 1_796_083_190;

async fn budgets(clock: Arc<ManualClock>) -> (Budgets, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::default());
    let budgets = Budgets::start(
        store.clone(),
        clock,
        BudgetsOptions {
            flush_window: Duration::from_millis(10),
            idle: Duration::from_secs(300),
            observer: None,
        },
    )
    .await
    .unwrap();
    (budgets, store)
}

fn key(name: &str) -> EntityId {
    EntityId::Key(Arc::from(name))
}

fn budget(nanos: u64) -> Limits {
    Limits {
        max_budget: Some(nanos),
        ..Limits::default()
    }
}

fn usage(cost: u64) -> Usage {
    Usage {
        model: Arc::from("m"),
        input_tokens: 1,
        output_tokens: 1,
        cost,
    }
}

#[tokio::test]
async fn admission_is_all_or_nothing() {
    let (b, _) = budgets(Arc::new(ManualClock::at(MONTH_END))).await;
    let team = EntityId::Team(Arc::from("t"));
    let demand = Demand {
        cost: 60,
        tokens: 1,
    };
    let refused = b
        .admit(
            vec![(key("k"), budget(100)), (team.clone(), budget(50))],
            demand,
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, Refusal::Budget { ref entity, .. } if *entity == team));
    let k = b.snapshot(&key("k"), budget(100)).await.unwrap();
    assert_eq!(k.reserved, 0, "the key's reservation was released");
    let ticket = b
        .admit(
            vec![(key("k"), budget(100)), (team.clone(), budget(60))],
            demand,
        )
        .await
        .unwrap();
    ticket.settle(usage(40));
    let t = b.snapshot(&team, budget(60)).await.unwrap();
    assert_eq!((t.spend, t.reserved), (40, 0));
}

#[tokio::test]
async fn concurrent_admissions_never_exceed_the_budget() {
    let (b, store) = budgets(Arc::new(ManualClock::at(MONTH_END))).await;
    let demand = Demand {
        cost: 10,
        tokens: 1,
    };
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            b.admit(vec![(key("k"), budget(100))], demand).await
        }));
    }
    let mut tickets = Vec::new();
    for task in tasks {
        if let Ok(ticket) = task.await.unwrap() {
            tickets.push(ticket);
        }
    }
    assert_eq!(tickets.len(), 10);
    for ticket in tickets {
        ticket.settle(usage(10));
    }
    b.flush().await;
    let snapshot = b.snapshot(&key("k"), budget(100)).await.unwrap();
    assert_eq!(snapshot.spend, 100);
    let period = snapshot.period.start;
    assert_eq!(store.spend(key("k"), period).await.unwrap(), 100);
}

#[tokio::test]
async fn spend_lands_in_the_period_it_was_admitted_in() {
    let clock = Arc::new(ManualClock::at(MONTH_END));
    let (b, store) = budgets(clock.clone()).await;
    let limits = Limits {
        max_budget: Some(100),
        budget_duration: Some(BudgetDuration::Months(1)),
        ..Limits::default()
    };
    let november = limits.budget().period_at(clock.now());
    let before = b
        .admit(
            vec![(key("k"), limits.clone())],
            Demand {
                cost: 80,
                tokens: 1,
            },
        )
        .await
        .unwrap();
    clock.set(MONTH_END + 20); // 2026-12-01T00:00:10Z
    let after = b
        .admit(
            vec![(key("k"), limits.clone())],
            Demand {
                cost: 90,
                tokens: 1,
            },
        )
        .await
        .expect("the new period has room: November's reservation does not count");
    before.settle(usage(70));
    after.settle(usage(5));
    b.flush().await;
    let december = limits.budget().period_at(clock.now());
    assert_ne!(november, december);
    assert_eq!(store.spend(key("k"), november.start).await.unwrap(), 70);
    assert_eq!(store.spend(key("k"), december.start).await.unwrap(), 5);
    let snapshot = b.snapshot(&key("k"), limits).await.unwrap();
    assert_eq!(snapshot.spend, 5);
    assert_eq!(snapshot.reset_at, Some(december.end));
}

#[tokio::test]
async fn a_dropped_ticket_is_presumed_spent() {
    let (b, _) = budgets(Arc::new(ManualClock::at(MONTH_END))).await;
    let ticket = b
        .admit(
            vec![(key("k"), budget(100))],
            Demand {
                cost: 30,
                tokens: 1,
            },
        )
        .await
        .unwrap();
    drop(ticket);
    let s = b.snapshot(&key("k"), budget(100)).await.unwrap();
    assert_eq!((s.spend, s.reserved), (30, 0));
}

#[tokio::test]
async fn rpm_and_parallel_limits_refuse_with_retry_after() {
    let clock = Arc::new(ManualClock::at(MONTH_END));
    let (b, _) = budgets(clock.clone()).await;
    let limits = Limits {
        rpm_limit: Some(2),
        max_parallel_requests: Some(5),
        ..Limits::default()
    };
    let d = Demand { cost: 0, tokens: 1 };
    let one = b.admit(vec![(key("k"), limits.clone())], d).await.unwrap();
    let two = b.admit(vec![(key("k"), limits.clone())], d).await.unwrap();
    let refused = b
        .admit(vec![(key("k"), limits.clone())], d)
        .await
        .unwrap_err();
    match refused {
        Refusal::Rate {
            kind: RateKind::Requests,
            retry_after,
            limit: 2,
            ..
        } => assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(60)),
        other => panic!("{other:?}"),
    }
    one.settle(usage(0));
    two.settle(usage(0));
    clock.advance_nanos(60_000_000_000);
    let parallel = Limits {
        max_parallel_requests: Some(1),
        ..Limits::default()
    };
    let held = b
        .admit(vec![(key("p"), parallel.clone())], d)
        .await
        .unwrap();
    let refused = b
        .admit(vec![(key("p"), parallel.clone())], d)
        .await
        .unwrap_err();
    assert!(matches!(
        refused,
        Refusal::Rate {
            kind: RateKind::Parallel,
            ..
        }
    ));
    held.release();
    b.admit(vec![(key("p"), parallel)], d)
        .await
        .unwrap()
        .release();
}

#[tokio::test]
async fn removing_a_limit_takes_effect_on_the_next_request() {
    let (b, _) = budgets(Arc::new(ManualClock::at(MONTH_END))).await;
    let d = Demand {
        cost: 60,
        tokens: 1,
    };
    b.admit(vec![(key("k"), budget(100))], d)
        .await
        .unwrap()
        .settle(usage(60));
    assert!(b.admit(vec![(key("k"), budget(100))], d).await.is_err());
    let ticket = b
        .admit(vec![(key("k"), Limits::default())], d)
        .await
        .expect("max_budget: null removes the limit");
    ticket.settle(usage(60));
    let s = b.snapshot(&key("k"), Limits::default()).await.unwrap();
    assert_eq!(s.spend, 120);
}
