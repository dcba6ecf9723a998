use super::*;

const SECOND: i64 = 1_000_000_000;

#[test]
fn a_burst_of_limit_is_admitted_then_denied_until_one_interval_passes() {
    let mut rpm = Gcra::per_minute(10);
    let t0 = 5 * SECOND;
    for i in 0..10 {
        let state = rpm.try_take(1, t0).unwrap();
        assert_eq!(state.remaining, 9 - i);
    }
    let denied = rpm.try_take(1, t0).unwrap_err();
    // One unit drains every 60 s / 10 = 6 s.
    assert_eq!(
        denied,
        RateDenied {
            limit: 10,
            retry_after_ns: 6 * SECOND,
            never: false
        }
    );
    assert!(rpm.try_take(1, t0 + 6 * SECOND - 1).is_err());
    let state = rpm.try_take(1, t0 + 6 * SECOND).unwrap();
    assert_eq!(state.remaining, 0);
    assert_eq!(state.reset_after_ns, 60 * SECOND);
    assert_eq!(
        rpm.try_take(1, t0 + 6 * SECOND).unwrap_err().retry_after_ns,
        6 * SECOND
    );
}

#[test]
fn a_denied_take_changes_nothing() {
    let mut tpm = Gcra::per_minute(100);
    tpm.try_take(90, 0).unwrap();
    let before = tpm.state(0);
    assert!(tpm.try_take(20, 0).is_err());
    assert_eq!(tpm.state(0), before);
    assert_eq!(before.remaining, 10);
    tpm.try_take(10, 0).unwrap();
}

#[test]
fn retry_after_is_exact_when_the_interval_is_not_a_whole_nanosecond() {
    let mut rpm = Gcra::per_minute(7);
    for _ in 0..7 {
        rpm.try_take(1, 0).unwrap();
    }
    // 60 s / 7 = 8,571,428,571.43 ns, rounded up.
    let retry = rpm.try_take(1, 0).unwrap_err().retry_after_ns;
    assert_eq!(retry, 8_571_428_572);
    assert!(rpm.try_take(1, retry - 1).is_err());
    rpm.try_take(1, retry).unwrap();
    // Seven intervals are exactly one minute: no rounding drift accumulates.
    let mut rpm = Gcra::per_minute(7);
    for _ in 0..7 {
        rpm.try_take(1, 0).unwrap();
    }
    assert_eq!(rpm.state(0).reset_after_ns, 60 * SECOND);
    assert_eq!(rpm.state(60 * SECOND).remaining, 7);
}

#[test]
fn sustained_rate_is_the_limit_per_minute_over_ten_minutes() {
    let limit = 60;
    let mut rpm = Gcra::per_minute(limit);
    let step = SECOND / 10;
    let mut admitted_per_minute = [0u64; 10];
    // A client trying every 100 ms for ten minutes: [0, 600 s).
    for i in 0..6_000 {
        let now = i * step;
        if rpm.try_take(1, now).is_ok() {
            admitted_per_minute[usize::try_from(now / (60 * SECOND)).unwrap()] += 1;
        }
    }
    let total: u64 = admitted_per_minute.iter().sum();
    // GCRA's bound: at most `limit` at once plus one per interval (1 s) elapsed. The last try
    // is at 599.9 s, so 599 intervals have elapsed: 60 + 599 = 659, and the bound is reached.
    assert_eq!(total, limit + 599);
    // After the first minute's burst, every minute admits exactly the limit.
    assert!(admitted_per_minute[1..].iter().all(|&n| n == limit));
    assert_eq!(admitted_per_minute[0], total - 9 * limit);
}

#[test]
fn refund_gives_back_units_but_never_credit_beyond_idle() {
    let mut tpm = Gcra::per_minute(1_000);
    tpm.try_take(1_000, 0).unwrap();
    assert!(tpm.try_take(300, SECOND).is_err());
    // The estimate was 1,000 tokens, the response used 400.
    tpm.refund(600, SECOND);
    let state = tpm.state(SECOND);
    // 600 refunded plus one second's worth (1000/60 = 16.67 units) drained.
    assert_eq!(state.remaining, 616);
    tpm.try_take(600, SECOND).unwrap();

    // Refunding more than was taken leaves the limiter idle, not with extra room.
    let mut idle = Gcra::per_minute(10);
    idle.refund(100, 0);
    assert_eq!(idle.state(0).remaining, 10);
    idle.try_take(10, 0).unwrap();
    assert!(idle.try_take(1, 0).is_err());
}

#[test]
fn charge_beyond_the_estimate_delays_later_requests() {
    let mut tpm = Gcra::per_minute(10);
    tpm.try_take(5, 0).unwrap();
    // The response used 20 tokens more than the 5 estimated: 25 units, 2.5 windows of work.
    tpm.charge(20, 0);
    let state = tpm.state(0);
    assert_eq!(state.remaining, 0);
    assert_eq!(state.reset_after_ns, 150 * SECOND);
    // One more unit fits once the backlog is back within one window: 150 + 6 − 60 = 96 s.
    let denied = tpm.try_take(1, 0).unwrap_err();
    assert_eq!(denied.retry_after_ns, 96 * SECOND);
    assert!(tpm.try_take(1, 96 * SECOND).is_ok());
}

#[test]
fn more_than_the_limit_never_fits() {
    let mut tpm = Gcra::per_minute(100);
    let denied = tpm.try_take(101, 0).unwrap_err();
    assert!(denied.never);
    assert_eq!(denied.retry_after_ns, i64::MAX);
    assert_eq!(
        denied.to_string(),
        "the request needs more than the whole limit of 100"
    );
    // Exactly the limit fits from idle.
    tpm.try_take(100, 0).unwrap();
}

#[test]
fn idle_state_and_messages() {
    let rpm = Gcra::per_minute(30);
    assert_eq!(
        rpm.state(123),
        RateState {
            limit: 30,
            remaining: 30,
            reset_after_ns: 0
        }
    );
    let denied = RateDenied {
        limit: 30,
        retry_after_ns: 1_500_000_000,
        never: false,
    };
    assert_eq!(
        denied.to_string(),
        "rate limit of 30 exceeded; retry after 2 s"
    );
    // Zero units always fit, and a zero limit is taken as 1.
    let mut tiny = Gcra::new(0, 0);
    assert_eq!(tiny.limit(), 1);
    tiny.try_take(0, i64::MIN).unwrap();
    tiny.try_take(1, i64::MIN).unwrap();
    assert!(tiny.try_take(1, i64::MIN).is_err());
}

#[test]
fn extreme_times_and_limits_do_not_overflow() {
    let mut huge = Gcra::new(u64::MAX, i64::MAX);
    huge.try_take(u64::MAX, i64::MAX).unwrap();
    huge.charge(u64::MAX, i64::MIN);
    let _ = huge.try_take(1, i64::MIN);
    huge.refund(u64::MAX, i64::MAX);
    let _ = huge.state(i64::MIN);
}
