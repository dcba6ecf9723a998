//! Sliding-window rate limits (requests or tokens per minute) with the generic cell rate
//! algorithm: no clock-minute boundaries at which a client could send twice the limit.
//!
//! GCRA keeps one number, the theoretical arrival time (TAT): the instant at which everything
//! taken so far would have drained at `limit` units per window. Taking `n` units pushes it
//! `n × window / limit` later; they fit while it stays at most one window ahead of now. So an
//! idle limiter admits a burst of `limit` units at once, then `limit` per window sustained.

use std::fmt;

/// Nanoseconds in the window of `rpm`/`tpm` limits.
const MINUTE_NS: i64 = 60_000_000_000;

/// A GCRA limiter of `limit` units per window. Time is monotonic nanoseconds supplied by the
/// caller (any origin, the same for every call).
///
/// Times are kept multiplied by `limit` so that the interval between units, `window / limit`,
/// is exact: in these scaled units one unit costs `window_ns` and the window is
/// `window_ns × limit`.
#[derive(Clone, Debug)]
pub struct Gcra {
    limit: u64,
    window_ns: i64,
    /// The theoretical arrival time, scaled by `limit`. At or before now means idle.
    tat: i128,
}

/// The limiter's state after a call, for `x-ratelimit-*` headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateState {
    /// Units per window.
    pub limit: u64,
    /// Units that could be taken right now.
    pub remaining: u64,
    /// Nanoseconds until the limiter is fully replenished (idle).
    pub reset_after_ns: i64,
}

/// Units did not fit now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateDenied {
    /// Units per window.
    pub limit: u64,
    /// Nanoseconds until the same request would fit (`i64::MAX` when `never`).
    pub retry_after_ns: i64,
    /// The request asks for more than `limit` units, so it can never fit.
    pub never: bool,
}

impl fmt::Display for RateDenied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.never {
            write!(
                f,
                "the request needs more than the whole limit of {}",
                self.limit
            )
        } else {
            let seconds = u64::try_from(self.retry_after_ns)
                .unwrap_or(0)
                .div_ceil(1_000_000_000);
            write!(
                f,
                "rate limit of {} exceeded; retry after {seconds} s",
                self.limit
            )
        }
    }
}

impl std::error::Error for RateDenied {}

impl Gcra {
    /// `limit` units per minute (`rpm`, `tpm`).
    pub fn per_minute(limit: u64) -> Gcra {
        Gcra::new(limit, MINUTE_NS)
    }

    /// `limit` units per `window_ns` nanoseconds, starting idle. A `limit` or window below 1 is
    /// taken as 1.
    pub fn new(limit: u64, window_ns: i64) -> Gcra {
        Gcra {
            limit: limit.max(1),
            window_ns: window_ns.max(1),
            tat: i128::MIN,
        }
    }

    /// Units per window.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Takes `n` units at `now_ns` if they fit now; otherwise changes nothing and says how long
    /// until they would. More than `limit` units never fit (`never: true`).
    pub fn try_take(&mut self, n: u64, now_ns: i64) -> Result<RateState, RateDenied> {
        if n > self.limit {
            return Err(RateDenied {
                limit: self.limit,
                retry_after_ns: i64::MAX,
                never: true,
            });
        }
        let now = self.scaled(now_ns);
        let tat = self.tat.max(now).saturating_add(self.cost(n));
        let allowed_at = tat.saturating_sub(self.capacity());
        if allowed_at > now {
            return Err(RateDenied {
                limit: self.limit,
                retry_after_ns: self.unscaled(allowed_at.saturating_sub(now)),
                never: false,
            });
        }
        self.tat = tat;
        Ok(self.state(now_ns))
    }

    /// Gives back `n` units taken earlier (the estimate was higher than the actual use). Never
    /// below idle: units not used in the past are not credited to the future.
    pub fn refund(&mut self, n: u64, now_ns: i64) {
        let now = self.scaled(now_ns);
        self.tat = self.tat.saturating_sub(self.cost(n)).max(now);
    }

    /// Adds `n` units without checking (the actual use exceeded the estimate). Later requests
    /// wait until the excess has drained.
    pub fn charge(&mut self, n: u64, now_ns: i64) {
        let now = self.scaled(now_ns);
        self.tat = self.tat.max(now).saturating_add(self.cost(n));
    }

    /// The state at `now_ns`, without taking anything.
    pub fn state(&self, now_ns: i64) -> RateState {
        let now = self.scaled(now_ns);
        let backlog = self.tat.max(now).saturating_sub(now);
        let room = (self.capacity() - backlog).max(0) / i128::from(self.window_ns);
        RateState {
            limit: self.limit,
            remaining: u64::try_from(room).unwrap_or(0).min(self.limit),
            reset_after_ns: self.unscaled(backlog),
        }
    }

    /// `now_ns` in scaled units. Cannot overflow: |i64| × u64 < 2¹²⁷.
    fn scaled(&self, now_ns: i64) -> i128 {
        i128::from(now_ns) * i128::from(self.limit)
    }

    /// A scaled duration in nanoseconds, rounded up, clamped to `i64`.
    fn unscaled(&self, scaled: i128) -> i64 {
        let limit = i128::from(self.limit);
        let ns = scaled.max(0).saturating_add(limit - 1) / limit;
        i64::try_from(ns).unwrap_or(i64::MAX)
    }

    /// What `n` units cost in scaled time.
    fn cost(&self, n: u64) -> i128 {
        i128::from(n).saturating_mul(i128::from(self.window_ns))
    }

    /// The scaled window: how far ahead of now the TAT may be.
    fn capacity(&self) -> i128 {
        i128::from(self.limit) * i128::from(self.window_ns)
    }
}

#[cfg(test)]
mod tests;
