//! Budget periods: `budget_duration` values and the UTC arithmetic that maps an instant to the
//! one period it belongs to (INV-3).
//!
//! Every function here is a pure function of its arguments (unix seconds, UTC), so every node
//! computes the same period for the same instant; nothing depends on a local time zone.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const SECONDS_PER_MINUTE: u64 = 60;
const SECONDS_PER_HOUR: u64 = 3_600;
const SECONDS_PER_DAY: i64 = 86_400;

/// How long a budget period lasts, as written in `budget_duration`.
///
/// Shorter-than-a-day durations (`30s`, `5m`, `2h`) are [`Seconds`](Self::Seconds) and count
/// from the budget's anchor; `d` durations are aligned to UTC midnight and `mo` durations to the
/// first of a calendar month, UTC (see [`BudgetDuration::period_at`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BudgetDuration {
    /// A fixed number of seconds (`s`, `m`, `h` units), counted from the anchor.
    Seconds(u64),
    /// Whole UTC days (`d`), starting at the UTC midnight of the anchor's day.
    Days(u64),
    /// Calendar months (`mo`), starting on the first of the anchor's month, UTC.
    Months(u32),
}

/// A `budget_duration` that is not a positive number followed by `s`, `m`, `h`, `d` or `mo`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected a duration like 30s, 30m, 12h, 1d, 7d or 1mo, found {0:?}")]
pub struct ParseDurationError(pub String);

impl FromStr for BudgetDuration {
    type Err = ParseDurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = || ParseDurationError(s.to_owned());
        let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(digits);
        // `u64::from_str` alone would accept a leading `+`; `digits` has none.
        let n: u64 = number.parse().map_err(|_| fail())?;
        if n == 0 {
            return Err(fail());
        }
        let seconds = |per: u64| {
            n.checked_mul(per)
                .filter(|&total| i64::try_from(total).is_ok())
                .map(BudgetDuration::Seconds)
        };
        let duration = match unit {
            "s" => seconds(1),
            "m" => seconds(SECONDS_PER_MINUTE),
            "h" => seconds(SECONDS_PER_HOUR),
            "d" => n
                .checked_mul(SECONDS_PER_DAY.unsigned_abs())
                .filter(|&total| i64::try_from(total).is_ok())
                .map(|_| BudgetDuration::Days(n)),
            "mo" => u32::try_from(n).ok().map(BudgetDuration::Months),
            _ => None,
        };
        duration.ok_or_else(fail)
    }
}

impl fmt::Display for BudgetDuration {
    /// The canonical spelling, which parses back to the same value: `Seconds(1800)` is `30m`,
    /// `Seconds(43200)` is `12h`, `Seconds(45)` is `45s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BudgetDuration::Seconds(n) if n != 0 && n % SECONDS_PER_HOUR == 0 => {
                write!(f, "{}h", n / SECONDS_PER_HOUR)
            }
            BudgetDuration::Seconds(n) if n != 0 && n % SECONDS_PER_MINUTE == 0 => {
                write!(f, "{}m", n / SECONDS_PER_MINUTE)
            }
            BudgetDuration::Seconds(n) => write!(f, "{n}s"),
            BudgetDuration::Days(n) => write!(f, "{n}d"),
            BudgetDuration::Months(n) => write!(f, "{n}mo"),
        }
    }
}

impl Serialize for BudgetDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BudgetDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One budget period: the unix seconds (UTC) `[start, end)`. `start` is the period's identity
/// (the store keys a period's spend by it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Period {
    pub start: i64,
    pub end: i64,
}

impl Period {
    /// The single period of a budget without a duration: all of time.
    pub const FOREVER: Period = Period {
        start: i64::MIN,
        end: i64::MAX,
    };

    /// Whether `t` (unix seconds) lies in `[start, end)`.
    pub fn contains(&self, t: i64) -> bool {
        self.start <= t && t < self.end
    }
}

impl BudgetDuration {
    /// The period containing `now` for a budget anchored at `anchor` (both unix seconds, UTC).
    ///
    /// - `Seconds(n)`: `[anchor + k·n, anchor + (k+1)·n)`, with `k` negative before the anchor.
    /// - `Days(n)`: the same with `n` days, counted from the UTC midnight of the anchor's day.
    /// - `Months(n)`: from the first of month `a + k·n` to the first of month `a + (k+1)·n`,
    ///   where `a` is the anchor's month, UTC.
    ///
    /// A zero length (only constructible directly, never parsed) counts as 1. Bounds beyond the
    /// range of `i64` are clamped to it.
    pub fn period_at(&self, anchor: i64, now: i64) -> Period {
        match *self {
            BudgetDuration::Seconds(n) => fixed_period(anchor.into(), i128::from(n), now),
            BudgetDuration::Days(n) => {
                let day = i128::from(SECONDS_PER_DAY);
                let midnight = i128::from(anchor).div_euclid(day) * day;
                fixed_period(midnight, i128::from(n) * day, now)
            }
            BudgetDuration::Months(n) => {
                let n = i64::from(n.max(1));
                let first = month_index(anchor);
                let k = (month_index(now) - first).div_euclid(n);
                let start = first + k * n;
                Period {
                    start: first_of_month(start),
                    end: first_of_month(start + n),
                }
            }
        }
    }
}

/// Periods of a fixed `length` (seconds) counted from `origin`.
fn fixed_period(origin: i128, length: i128, now: i64) -> Period {
    let length = length.max(1);
    let k = (i128::from(now) - origin).div_euclid(length);
    let start = origin + k * length;
    Period {
        start: clamp(start),
        end: clamp(start + length),
    }
}

fn clamp(t: i128) -> i64 {
    i64::try_from(t).unwrap_or(if t < 0 { i64::MIN } else { i64::MAX })
}

/// Months since January of year 0 of the UTC date of `unix`.
fn month_index(unix: i64) -> i64 {
    let (year, month, _) = civil_from_days(unix.div_euclid(SECONDS_PER_DAY));
    year * 12 + i64::from(month) - 1
}

/// Unix seconds of 00:00:00 UTC on the first of month `index` (see [`month_index`]).
fn first_of_month(index: i64) -> i64 {
    let year = index.div_euclid(12);
    let month = u32::try_from(index.rem_euclid(12) + 1).unwrap_or(1);
    clamp(i128::from(days_from_civil(year, month, 1)) * i128::from(SECONDS_PER_DAY))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
/// `month` is 1..=12, `day` 1..=31.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400; // [0, 399]
    let month_from_march = i64::from((month + 9) % 12); // March = 0
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date `(year, month, day)` of a day counted from 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097; // [0, 146096]
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153; // March = 0
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both are in range by construction (1..=31 and 1..=12).
    let day = u32::try_from(day).unwrap_or(1);
    let month = u32::try_from(month).unwrap_or(1);
    (year, month, day)
}

/// Formats unix seconds as an RFC 3339 UTC timestamp: `2026-11-30T23:59:59Z`.
pub fn format_rfc3339(unix: i64) -> String {
    let (year, month, day) = civil_from_days(unix.div_euclid(SECONDS_PER_DAY));
    let second_of_day = unix.rem_euclid(SECONDS_PER_DAY);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3_600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

#[cfg(test)]
mod tests;
