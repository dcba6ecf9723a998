//! What a request must fit before its upstream call: the budgets and rate limits of every
//! entity that applies (key, team, team member or user), and the request's worst-case cost.
//!
//! The worst case is real because the gateway enforces it: the prompt is bounded by its size
//! in bytes (a token is at least one byte of the body), and the output by an enforced
//! `max_tokens` (the client's value, capped by the model's maximum; the model's maximum, or
//! [`DEFAULT_MAX_OUTPUT`], when the client sends none) that is written into the upstream body.

use std::time::Duration;

use tollgate_accounts::{EntityId, Identity, Limits};
use tollgate_api::{ApiError, Endpoint, ErrorCode, LlmRequest};
use tollgate_budget::{Demand, RateKind, Refusal};

use crate::models::Group;

/// The output bound enforced when neither the client nor the model's metadata gives one.
pub(crate) const DEFAULT_MAX_OUTPUT: u64 = 4096;

/// A request's admission plan.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) entities: Vec<(EntityId, Limits)>,
    pub(crate) demand: Demand,
    /// The output bound to write into the upstream body, when it differs from the client's.
    pub(crate) max_tokens: Option<(&'static str, u64)>,
}

/// Plans the admission of `request` for `identity` on `group`. `None` when nothing applies
/// (no limit on any entity): the request is still accounted, but its body is untouched.
pub(crate) fn plan(
    identity: &Identity,
    group: &Group,
    request: &LlmRequest<'_>,
    body_len: usize,
) -> Result<Plan, ApiError> {
    let entities = identity.budgets();
    let budgeted = entities.iter().any(|(_, l)| l.max_budget.is_some());
    let limited = entities.iter().any(|(_, l)| !l.is_unlimited());
    let price = match group.worst_price {
        Some(price) => price,
        None if budgeted => {
            return Err(ApiError {
                param: Some("model".into()),
                ..ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!(
                        "no price is known for model `{}`, and this key has a budget: set \
                         input_cost_per_token and output_cost_per_token for it in the config",
                        group.name
                    ),
                )
            });
        }
        None => Default::default(),
    };
    let choices = request
        .field("n")
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(1)
        .max(1);
    let (output_bound, max_tokens) = if request.endpoint == Endpoint::Embeddings {
        (0, None)
    } else {
        let enforced = match (request.max_tokens, group.max_output_tokens) {
            (Some(client), Some(model)) => client.min(model),
            (Some(client), None) => client,
            (None, Some(model)) => model,
            (None, None) => DEFAULT_MAX_OUTPUT,
        };
        let field = if request.field("max_completion_tokens").is_some() {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        let rewrite =
            (limited && request.max_tokens != Some(enforced)).then_some((field, enforced));
        (enforced.saturating_mul(choices), rewrite)
    };
    let prompt_bound = body_len as u64;
    let demand = Demand {
        cost: price.cost(prompt_bound, output_bound),
        tokens: prompt_bound
            .div_ceil(4)
            .saturating_add(request.max_tokens.unwrap_or(0).saturating_mul(choices)),
    };
    Ok(Plan {
        entities,
        demand,
        max_tokens,
    })
}

/// The `reason` and `entity` labels of a refusal on `tollgate_admission_rejections_total`.
pub(crate) fn labels(refusal: &Refusal) -> (&'static str, &'static str) {
    let entity = |e: &EntityId| match e {
        EntityId::Key(_) => "key",
        EntityId::User(_) => "user",
        EntityId::Team(_) => "team",
        EntityId::Member { .. } => "team_member",
    };
    match refusal {
        Refusal::Budget { entity: e, .. } => ("budget", entity(e)),
        Refusal::Rate {
            entity: e,
            kind: RateKind::Parallel,
            ..
        } => ("parallel", entity(e)),
        Refusal::Rate { entity: e, .. } => ("rate_limit", entity(e)),
        Refusal::Unavailable(_) => ("ledger_unavailable", "key"),
    }
}

/// A refusal as the client sees it: 400 `budget_exceeded` with spend, limit and reset time;
/// 429 with `Retry-After` and OpenAI's `x-ratelimit-*` headers; 503 when the ledger is down.
pub(crate) fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::Budget { entity, denied } => {
            let mut message = format!("{} {denied}", entity.kind());
            if denied.reset_at.is_none() {
                message.push_str("; this budget does not reset");
            }
            ApiError::new(ErrorCode::BudgetExceeded, message)
        }
        Refusal::Rate {
            entity,
            kind,
            limit,
            remaining,
            retry_after,
            never,
        } => {
            let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            let message = if never {
                format!(
                    "this request alone exceeds the {} {} of {limit}",
                    entity.kind(),
                    kind.field()
                )
            } else {
                format!(
                    "{} {} of {limit} reached; retry in {secs}s",
                    entity.kind(),
                    kind.field()
                )
            };
            let unit = match kind {
                RateKind::Tokens => "tokens",
                RateKind::Requests | RateKind::Parallel => "requests",
            };
            let (limit_h, remaining_h, reset_h) = match unit {
                "tokens" => (
                    "x-ratelimit-limit-tokens",
                    "x-ratelimit-remaining-tokens",
                    "x-ratelimit-reset-tokens",
                ),
                _ => (
                    "x-ratelimit-limit-requests",
                    "x-ratelimit-remaining-requests",
                    "x-ratelimit-reset-requests",
                ),
            };
            ApiError::new(ErrorCode::RateLimited, message)
                .with_retry_after(Duration::from_secs(secs))
                .with_header(limit_h, limit)
                .with_header(remaining_h, remaining)
                .with_header(reset_h, format!("{secs}s"))
        }
        Refusal::Unavailable(why) => {
            tracing::error!(error = %why, "budget ledger unavailable; refusing (fail closed)");
            ApiError::new(
                ErrorCode::BudgetUnavailable,
                "the budget ledger is unavailable; the request was not sent",
            )
            .with_retry_after(Duration::from_secs(1))
        }
    }
}
