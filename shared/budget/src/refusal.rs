use std::time::Duration;

use tollgate_accounts::EntityId;
use tollgate_ledger::Denied;

/// Which rate limit refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateKind {
    Requests,
    Tokens,
    Parallel,
}

impl RateKind {
    pub fn field(self) -> &'static str {
        match self {
            Self::Requests => "rpm_limit",
            Self::Tokens => "tpm_limit",
            Self::Parallel => "max_parallel_requests",
        }
    }
}

/// Why a request was not admitted.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Refusal {
    /// A budget has no room for the request's worst-case cost.
    #[error("{} budget exceeded: {denied}", entity.kind())]
    Budget { entity: EntityId, denied: Denied },
    /// A rate limit is exhausted until `retry_after`.
    #[error(
        "{} {} of {limit} reached; retry after {}s",
        entity.kind(),
        kind.field(),
        retry_after.as_secs_f64().ceil()
    )]
    Rate {
        entity: EntityId,
        kind: RateKind,
        limit: u64,
        remaining: u64,
        retry_after: Duration,
        /// The request alone exceeds the limit; waiting will not help.
        never: bool,
    },
    /// The ledger could not be read (store failure): fail closed.
    #[error("the budget ledger is unavailable: {0}")]
    Unavailable(String),
}
