use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The one source of wall-clock time for budgets, periods, rate windows and key expiry.
/// Production uses [`SystemClock`]; tests inject a [`ManualClock`] to cross period boundaries.
pub trait Clock: Send + Sync + Debug {
    /// Nanoseconds since the Unix epoch, UTC.
    fn now_nanos(&self) -> i64;

    /// Whole seconds since the Unix epoch, UTC.
    fn now(&self) -> i64 {
        self.now_nanos().div_euclid(1_000_000_000)
    }
}

/// The system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_nanos(&self) -> i64 {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock {
    nanos: AtomicI64,
}

impl ManualClock {
    /// A clock standing at `unix` seconds.
    pub fn at(unix: i64) -> Self {
        Self {
            nanos: AtomicI64::new(unix.saturating_mul(1_000_000_000)),
        }
    }

    pub fn set(&self, unix: i64) {
        self.nanos
            .store(unix.saturating_mul(1_000_000_000), Ordering::SeqCst);
    }

    pub fn advance_nanos(&self, nanos: i64) {
        self.nanos.fetch_add(nanos, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_nanos(&self) -> i64 {
        self.nanos.load(Ordering::SeqCst)
    }
}
