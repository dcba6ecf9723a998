use super::*;

/// Unix seconds of `y-m-d hh:mm:ss` UTC.
fn at(y: i64, m: u32, d: u32, hh: i64, mm: i64, ss: i64) -> i64 {
    days_from_civil(y, m, d) * SECONDS_PER_DAY + hh * 3_600 + mm * 60 + ss
}

fn midnight(y: i64, m: u32, d: u32) -> i64 {
    at(y, m, d, 0, 0, 0)
}

#[test]
fn parses_every_unit_and_displays_canonically() {
    let cases = [
        ("1s", BudgetDuration::Seconds(1), "1s"),
        ("45s", BudgetDuration::Seconds(45), "45s"),
        ("30s", BudgetDuration::Seconds(30), "30s"),
        ("60s", BudgetDuration::Seconds(60), "1m"),
        ("5m", BudgetDuration::Seconds(300), "5m"),
        ("30m", BudgetDuration::Seconds(1_800), "30m"),
        ("90m", BudgetDuration::Seconds(5_400), "90m"),
        ("2h", BudgetDuration::Seconds(7_200), "2h"),
        ("12h", BudgetDuration::Seconds(43_200), "12h"),
        ("1d", BudgetDuration::Days(1), "1d"),
        ("7d", BudgetDuration::Days(7), "7d"),
        ("30d", BudgetDuration::Days(30), "30d"),
        ("1mo", BudgetDuration::Months(1), "1mo"),
        ("3mo", BudgetDuration::Months(3), "3mo"),
    ];
    for (text, duration, canonical) in cases {
        assert_eq!(text.parse::<BudgetDuration>(), Ok(duration), "{text}");
        assert_eq!(duration.to_string(), canonical, "{text}");
        assert_eq!(canonical.parse::<BudgetDuration>(), Ok(duration), "{text}");
    }
}

#[test]
fn rejects_what_is_not_a_positive_duration() {
    for text in [
        "",
        "0s",
        "0mo",
        "s",
        "30",
        "1w",
        "1y",
        "1M",
        "1 d",
        " 1d",
        "1d ",
        "+1d",
        "-1d",
        "1.5h",
        "1dd",
        "mo",
        "99999999999999999999s",
        "9223372036854775807m",
        "4294967296mo",
    ] {
        let error = text.parse::<BudgetDuration>().unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("expected a duration like 30s"),
            "{text}: {error}"
        );
    }
}

#[test]
fn deserializes_from_its_string() {
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error, StrDeserializer};
    let good: StrDeserializer<'_, Error> = "30m".into_deserializer();
    assert_eq!(
        BudgetDuration::deserialize(good).unwrap(),
        BudgetDuration::Seconds(1_800)
    );
    let bad: StrDeserializer<'_, Error> = "1w".into_deserializer();
    let error = BudgetDuration::deserialize(bad).unwrap_err();
    assert!(error.to_string().contains("1d, 7d or 1mo"), "{error}");
}

#[test]
fn civil_conversions_round_trip() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(civil_from_days(-1), (1969, 12, 31));
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    for days in (-800_000..800_000).step_by(997) {
        let (y, m, d) = civil_from_days(days);
        assert_eq!(days_from_civil(y, m, d), days);
    }
}

#[test]
fn formats_rfc3339() {
    assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(
        format_rfc3339(at(2026, 11, 30, 23, 59, 59)),
        "2026-11-30T23:59:59Z"
    );
    assert_eq!(format_rfc3339(1_764_547_200), "2025-12-01T00:00:00Z");
    assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59Z");
    assert_eq!(
        format_rfc3339(at(2028, 2, 29, 12, 0, 0)),
        "2028-02-29T12:00:00Z"
    );
}

#[test]
fn month_lengths_follow_the_calendar() {
    let monthly = BudgetDuration::Months(1);
    let anchor = at(2027, 5, 17, 8, 30, 0);
    let length_days = |y, m| {
        let p = monthly.period_at(anchor, at(y, m, 15, 12, 0, 0));
        assert_eq!(p.start, midnight(y, m, 1));
        (p.end - p.start) / SECONDS_PER_DAY
    };
    assert_eq!(length_days(2028, 1), 31);
    assert_eq!(length_days(2028, 2), 29); // leap year
    assert_eq!(length_days(2027, 2), 28);
    assert_eq!(length_days(2100, 2), 28); // divisible by 100, not by 400
    assert_eq!(length_days(2000, 2), 29); // divisible by 400
    assert_eq!(length_days(2028, 4), 30);
    assert_eq!(length_days(2028, 12), 31);
}

#[test]
fn december_rolls_over_to_january() {
    let monthly = BudgetDuration::Months(1);
    let anchor = midnight(2026, 1, 1);
    let december = monthly.period_at(anchor, at(2026, 12, 31, 23, 59, 59));
    assert_eq!(
        december,
        Period {
            start: midnight(2026, 12, 1),
            end: midnight(2027, 1, 1)
        }
    );
    let january = monthly.period_at(anchor, midnight(2027, 1, 1));
    assert_eq!(january.start, december.end);
    assert_eq!(january.end, midnight(2027, 2, 1));
}

#[test]
fn the_last_second_of_a_month_and_the_next_midnight_are_different_periods() {
    let anchor = at(2026, 3, 9, 14, 0, 0);
    for duration in [BudgetDuration::Months(1), BudgetDuration::Days(1)] {
        let before = duration.period_at(anchor, at(2026, 11, 30, 23, 59, 59));
        let after = duration.period_at(anchor, midnight(2026, 12, 1));
        assert_ne!(before, after, "{duration}");
        assert_eq!(before.end, midnight(2026, 12, 1), "{duration}");
        assert_eq!(after.start, midnight(2026, 12, 1), "{duration}");
        assert!(before.contains(at(2026, 11, 30, 23, 59, 59)));
        assert!(!before.contains(midnight(2026, 12, 1)));
    }
}

#[test]
fn multi_month_periods_count_from_the_anchor_month() {
    let quarterly = BudgetDuration::Months(3);
    let anchor = at(2026, 2, 20, 0, 0, 0);
    let p = quarterly.period_at(anchor, at(2026, 7, 4, 0, 0, 0));
    assert_eq!(p.start, midnight(2026, 5, 1));
    assert_eq!(p.end, midnight(2026, 8, 1));
    // Before the anchor: k is negative, the grid is the same.
    let p = quarterly.period_at(anchor, at(2025, 12, 31, 0, 0, 0));
    assert_eq!(p.start, midnight(2025, 11, 1));
    assert_eq!(p.end, midnight(2026, 2, 1));
}

#[test]
fn second_periods_count_from_the_anchor_also_backwards() {
    let half_hour = BudgetDuration::Seconds(1_800);
    let anchor = 1_000_000;
    let p = half_hour.period_at(anchor, anchor);
    assert_eq!(
        p,
        Period {
            start: anchor,
            end: anchor + 1_800
        }
    );
    let p = half_hour.period_at(anchor, anchor + 1_799);
    assert_eq!(p.start, anchor);
    let p = half_hour.period_at(anchor, anchor + 1_800);
    assert_eq!(p.start, anchor + 1_800);
    // Negative k uses floor division: one second before the anchor is the previous period.
    let p = half_hour.period_at(anchor, anchor - 1);
    assert_eq!(
        p,
        Period {
            start: anchor - 1_800,
            end: anchor
        }
    );
    let p = half_hour.period_at(anchor, anchor - 1_801);
    assert_eq!(p.start, anchor - 3_600);
}

#[test]
fn day_periods_are_aligned_to_utc_midnight_of_the_anchor_day() {
    let weekly = BudgetDuration::Days(7);
    let anchor = at(2026, 3, 4, 17, 45, 12); // a Wednesday afternoon
    let p = weekly.period_at(anchor, anchor);
    assert_eq!(p.start, midnight(2026, 3, 4));
    assert_eq!(p.end, midnight(2026, 3, 11));
    let p = weekly.period_at(anchor, at(2026, 3, 25, 0, 0, 0));
    assert_eq!(p.start, midnight(2026, 3, 25));
    let p = weekly.period_at(anchor, at(2026, 3, 24, 23, 59, 59));
    assert_eq!(p.start, midnight(2026, 3, 18));
    // Earlier the same day as the anchor is already in the first period.
    let p = weekly.period_at(anchor, midnight(2026, 3, 4));
    assert_eq!(p.start, midnight(2026, 3, 4));
    let p = weekly.period_at(anchor, midnight(2026, 3, 4) - 1);
    assert_eq!(p.start, midnight(2026, 2, 25));
}

#[test]
fn every_instant_is_in_the_period_computed_for_it() {
    let anchor = at(2024, 1, 31, 10, 0, 0);
    let durations = [
        BudgetDuration::Seconds(1),
        BudgetDuration::Seconds(7_200),
        BudgetDuration::Days(1),
        BudgetDuration::Days(30),
        BudgetDuration::Months(1),
        BudgetDuration::Months(12),
    ];
    for duration in durations {
        for now in (anchor - 90_000_000..anchor + 90_000_000).step_by(3_600_017) {
            let p = duration.period_at(anchor, now);
            assert!(p.contains(now), "{duration} at {now}: {p:?}");
            // Neighbouring periods tile time: the next one starts where this one ends.
            assert_eq!(duration.period_at(anchor, p.end).start, p.end);
            assert_eq!(duration.period_at(anchor, p.start - 1).end, p.start);
        }
    }
}

#[test]
fn extreme_values_do_not_overflow() {
    let p = BudgetDuration::Seconds(u64::MAX).period_at(0, i64::MAX);
    assert!(p.contains(i64::MAX) || p.end == i64::MAX);
    let p = BudgetDuration::Days(u64::MAX).period_at(i64::MIN, 0);
    assert!(p.start <= 0);
    let p = BudgetDuration::Months(u32::MAX).period_at(i64::MAX, i64::MIN);
    assert!(p.start <= p.end);
    assert_eq!(BudgetDuration::Seconds(0).period_at(5, 9).start, 9);
}
