use super::*;

const JAN_1_2026: i64 = 1_767_225_600;
const NOV_15_2026: i64 = 1_794_700_800;
const DEC_1_2026: i64 = 1_796_083_200;
const JAN_1_2027: i64 = 1_798_761_600;

fn monthly(limit: Nanos) -> Budget {
    Budget {
        limit: Some(limit),
        duration: Some(BudgetDuration::Months(1)),
        anchor: JAN_1_2026,
    }
}

const A: ReservationId = ReservationId(1);
const B: ReservationId = ReservationId(2);
const C: ReservationId = ReservationId(3);

#[test]
fn admits_up_to_the_limit_inclusive() {
    let mut ledger = Ledger::new(monthly(1_000), 400, NOV_15_2026);
    assert_eq!(ledger.remaining(NOV_15_2026), Some(600));
    ledger.reserve(A, 600, NOV_15_2026).unwrap();
    assert_eq!(ledger.remaining(NOV_15_2026), Some(0));
    let denied = ledger.reserve(B, 1, NOV_15_2026).unwrap_err();
    assert_eq!(
        denied,
        Denied {
            spend: 400,
            reserved: 600,
            limit: 1_000,
            requested: 1,
            reset_at: Some(DEC_1_2026),
        }
    );
    // A zero-cost reservation still fits at the limit.
    ledger.reserve(B, 0, NOV_15_2026).unwrap();
}

#[test]
fn denial_message_names_spend_in_flight_request_limit_and_reset() {
    let mut ledger = Ledger::new(monthly(400_000), 0, NOV_15_2026);
    ledger.reserve(A, 120_000, NOV_15_2026).unwrap();
    ledger.settle(A, 120_000, NOV_15_2026).unwrap();
    ledger.reserve(B, 10_000, NOV_15_2026).unwrap();
    let denied = ledger.reserve(C, 300_000, NOV_15_2026).unwrap_err();
    assert_eq!(
        denied.to_string(),
        "budget exceeded: spend $0.000120 + in-flight $0.000010 + this request up to $0.000300 \
         > limit $0.000400; resets at 2026-12-01T00:00:00Z"
    );
    let forever = Budget {
        duration: None,
        ..monthly(1)
    };
    let denied = Ledger::new(forever, 1, 0).reserve(A, 1, 0).unwrap_err();
    assert_eq!(denied.reset_at, None);
    assert!(!denied.to_string().contains("resets"));
}

#[test]
fn settle_replaces_the_reservation_by_the_actual_cost() {
    let mut ledger = Ledger::new(monthly(1_000), 0, NOV_15_2026);
    ledger.reserve(A, 700, NOV_15_2026).unwrap();
    let settlement = ledger.settle(A, 250, NOV_15_2026).unwrap();
    assert_eq!(
        settlement,
        Settlement {
            period: ledger.period(),
            amount: 250,
            overrun: 0
        }
    );
    let snapshot = ledger.snapshot();
    assert_eq!((snapshot.spend, snapshot.reserved), (250, 0));
    assert_eq!(snapshot.outstanding_reservations, 0);
    assert_eq!(ledger.remaining(NOV_15_2026), Some(750));
    assert_eq!(ledger.settle(A, 1, NOV_15_2026), Err(UnknownReservation));
}

#[test]
fn a_wrong_price_shows_as_overrun_and_blocks_further_spend() {
    let mut ledger = Ledger::new(monthly(1_000), 0, NOV_15_2026);
    ledger.reserve(A, 900, NOV_15_2026).unwrap();
    let settlement = ledger.settle(A, 1_300, NOV_15_2026).unwrap();
    assert_eq!(settlement.overrun, 400);
    let snapshot = ledger.snapshot();
    assert_eq!((snapshot.spend, snapshot.overrun), (1_300, 400));
    assert_eq!(ledger.remaining(NOV_15_2026), Some(0));
    assert!(ledger.reserve(B, 0, NOV_15_2026).is_err());
}

#[test]
fn shrink_lowers_and_never_raises() {
    let mut ledger = Ledger::new(monthly(1_000), 0, NOV_15_2026);
    ledger.reserve(A, 800, NOV_15_2026).unwrap();
    assert!(ledger.shrink(A, 300));
    assert_eq!(ledger.reservation(A), Some(300));
    assert!(ledger.shrink(A, 900));
    assert_eq!(ledger.reservation(A), Some(300));
    assert_eq!(ledger.snapshot().reserved, 300);
    assert!(!ledger.shrink(B, 0));
    ledger.reserve(B, 700, NOV_15_2026).unwrap();
}

#[test]
fn release_gives_the_room_back_without_spend() {
    let mut ledger = Ledger::new(monthly(1_000), 0, NOV_15_2026);
    ledger.reserve(A, 1_000, NOV_15_2026).unwrap();
    assert!(ledger.release(A));
    assert!(!ledger.release(A));
    assert_eq!(ledger.snapshot().spend, 0);
    ledger.reserve(B, 1_000, NOV_15_2026).unwrap();
}

#[test]
fn a_new_period_starts_empty_and_late_settlements_go_to_their_own_period() {
    let mut ledger = Ledger::new(monthly(1_000), 0, NOV_15_2026);
    let november = ledger.period();
    ledger.reserve(A, 600, DEC_1_2026 - 1).unwrap();
    ledger.reserve(B, 300, DEC_1_2026 - 1).unwrap();
    assert_eq!(ledger.roll(DEC_1_2026 - 1), None);

    let december = ledger.roll(DEC_1_2026).unwrap();
    assert_eq!(december.start, DEC_1_2026);
    assert_eq!(december.end, JAN_1_2027);
    assert_eq!(ledger.roll(DEC_1_2026 + 10), None);
    // November's in-flight reservations no longer count against December.
    assert_eq!(ledger.remaining(DEC_1_2026), Some(1_000));
    assert_eq!(ledger.snapshot().outstanding_reservations, 2);

    // Settled in December, spent in November (INV-3): reported, not added to December.
    let settlement = ledger.settle(A, 500, DEC_1_2026 + 5).unwrap();
    assert_eq!(settlement.period, november);
    assert_eq!(ledger.snapshot().spend, 0);
    assert!(ledger.release(B));
    ledger.reserve(C, 1_000, DEC_1_2026 + 5).unwrap();
}

#[test]
fn a_clock_stepping_back_does_not_reenter_an_earlier_period() {
    let mut ledger = Ledger::new(monthly(1_000), 0, NOV_15_2026);
    ledger.roll(DEC_1_2026);
    ledger.reserve(A, 400, DEC_1_2026).unwrap();
    ledger.settle(A, 400, DEC_1_2026).unwrap();
    assert_eq!(ledger.roll(DEC_1_2026 - 1), None);
    assert_eq!(ledger.period().start, DEC_1_2026);
    ledger.reserve(B, 600, DEC_1_2026 - 1).unwrap();
    assert!(ledger.reserve(C, 1, DEC_1_2026 - 1).is_err());
}

#[test]
fn limit_changes_apply_to_the_current_period() {
    let mut ledger = Ledger::new(monthly(1_000), 0, NOV_15_2026);
    ledger.reserve(A, 800, NOV_15_2026).unwrap();
    ledger.set_budget(monthly(2_000), 0, NOV_15_2026);
    ledger.reserve(B, 1_200, NOV_15_2026).unwrap();

    // Lowered below what is committed: nothing is admitted until it fits again.
    ledger.set_budget(monthly(500), 12_345, NOV_15_2026);
    assert_eq!(ledger.snapshot().reserved, 2_000);
    assert_eq!(ledger.remaining(NOV_15_2026), Some(0));
    assert!(ledger.reserve(C, 0, NOV_15_2026).is_err());
    ledger.settle(A, 100, NOV_15_2026).unwrap();
    ledger.release(B);
    assert_eq!(ledger.remaining(NOV_15_2026), Some(400));
    ledger.reserve(C, 400, NOV_15_2026).unwrap();

    let unlimited = Budget {
        limit: None,
        ..monthly(0)
    };
    ledger.set_budget(unlimited, 0, NOV_15_2026);
    assert_eq!(ledger.remaining(NOV_15_2026), None);
    ledger
        .reserve(ReservationId(9), Nanos::MAX, NOV_15_2026)
        .unwrap();
    ledger
        .reserve(ReservationId(10), Nanos::MAX, NOV_15_2026)
        .unwrap();
    assert_eq!(ledger.snapshot().reserved, Nanos::MAX);
}

#[test]
fn a_new_period_definition_loads_its_spend_and_keeps_in_flight_reservations() {
    let nov_1 = NOV_15_2026 - 14 * 86_400;
    let now = nov_1 + 3_600;
    let mut ledger = Ledger::new(monthly(1_000), 0, now);
    ledger.reserve(A, 100, now).unwrap();
    ledger.settle(A, 100, now).unwrap();
    ledger.reserve(B, 300, now).unwrap();

    // Weekly from November 1st: the same start, so the same identity. The spend so far carries
    // over and the 50 offered for a new period is not used.
    let weekly = Budget {
        duration: Some(BudgetDuration::Days(7)),
        anchor: nov_1 + 7_200,
        ..monthly(1_000)
    };
    ledger.set_budget(weekly, 50, now);
    let period = ledger.period();
    assert_eq!((period.start, period.end), (nov_1, nov_1 + 7 * 86_400));
    let snapshot = ledger.snapshot();
    assert_eq!((snapshot.spend, snapshot.reserved), (100, 300));

    // Hourly from 00:30: a new identity, whose spend the caller loaded (200).
    let hourly = Budget {
        duration: Some(BudgetDuration::Seconds(3_600)),
        anchor: nov_1 + 1_800,
        ..monthly(1_000)
    };
    ledger.set_budget(hourly, 200, now);
    assert_eq!(ledger.period().start, nov_1 + 1_800);
    let snapshot = ledger.snapshot();
    assert_eq!((snapshot.spend, snapshot.reserved), (200, 300));
    assert_eq!(ledger.remaining(now), Some(500));
    // The in-flight reservation was admitted now: it belongs to the new period and settles
    // into it.
    let settlement = ledger.settle(B, 300, now).unwrap();
    assert_eq!(settlement.period, ledger.period());
    assert_eq!(ledger.snapshot().spend, 500);
}

#[test]
fn without_duration_there_is_one_period_forever() {
    let budget = Budget {
        limit: Some(10),
        duration: None,
        anchor: 0,
    };
    let mut ledger = Ledger::new(budget, 4, i64::MIN);
    assert_eq!(ledger.period(), Period::FOREVER);
    assert_eq!(ledger.roll(i64::MAX), None);
    assert_eq!(ledger.remaining(i64::MAX), Some(6));
}

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "already outstanding")]
fn a_duplicate_id_is_a_bug_caught_in_debug_builds() {
    let mut ledger = Ledger::new(monthly(1_000), 0, NOV_15_2026);
    ledger.reserve(A, 1, NOV_15_2026).unwrap();
    let _ = ledger.reserve(A, 1, NOV_15_2026);
}

#[cfg(not(debug_assertions))]
#[test]
fn a_duplicate_id_is_denied_in_release_builds() {
    let mut ledger = Ledger::new(monthly(1_000), 0, NOV_15_2026);
    ledger.reserve(A, 1, NOV_15_2026).unwrap();
    assert!(ledger.reserve(A, 1, NOV_15_2026).is_err());
    assert_eq!(ledger.reservation(A), Some(1));
}
