//! What management routes answer, in LiteLLM's field names. Money appears twice: as USD
//! (`spend`, `max_budget`, what LiteLLM clients read) and exactly, as integer nano-USD
//! (`spend_nano_usd`, ...).

use serde::Serialize;
use serde_json::{Map, Value};
use tollgate_accounts::{KeyRecord, Limits, TeamRecord, TeamRole, UserRecord};
use tollgate_budget::EntitySnapshot;
use tollgate_ledger::{Nanos, format_rfc3339};

fn usd(n: Nanos) -> f64 {
    n as f64 / 1e9
}

/// The budget and limit fields every entity shows.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct LimitsView {
    pub(crate) spend: f64,
    pub(crate) max_budget: Option<f64>,
    pub(crate) budget_duration: Option<String>,
    pub(crate) budget_reset_at: Option<String>,
    pub(crate) soft_budget: Option<f64>,
    pub(crate) soft_budget_cooldown: bool,
    pub(crate) rpm_limit: Option<u64>,
    pub(crate) tpm_limit: Option<u64>,
    pub(crate) max_parallel_requests: Option<u64>,
    pub(crate) spend_nano_usd: Nanos,
    pub(crate) reserved_nano_usd: Nanos,
    pub(crate) max_budget_nano_usd: Option<Nanos>,
    pub(crate) soft_budget_nano_usd: Option<Nanos>,
}

impl LimitsView {
    pub(crate) fn new(limits: &Limits, snapshot: &EntitySnapshot) -> Self {
        Self {
            spend: usd(snapshot.spend),
            max_budget: limits.max_budget.map(usd),
            budget_duration: limits.budget_duration.map(|d| d.to_string()),
            budget_reset_at: limits
                .budget_duration
                .and(snapshot.reset_at)
                .map(format_rfc3339),
            soft_budget: limits.soft_budget.map(usd),
            soft_budget_cooldown: snapshot.soft_budget_alerted,
            rpm_limit: limits.rpm_limit,
            tpm_limit: limits.tpm_limit,
            max_parallel_requests: limits.max_parallel_requests,
            spend_nano_usd: snapshot.spend,
            reserved_nano_usd: snapshot.reserved,
            max_budget_nano_usd: limits.max_budget,
            soft_budget_nano_usd: limits.soft_budget,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct KeyView {
    pub(crate) token: String,
    pub(crate) key_name: String,
    pub(crate) key_alias: Option<String>,
    pub(crate) models: Vec<String>,
    #[serde(flatten)]
    pub(crate) limits: LimitsView,
    pub(crate) user_id: Option<String>,
    pub(crate) team_id: Option<String>,
    pub(crate) metadata: Map<String, Value>,
    pub(crate) expires: Option<String>,
    pub(crate) blocked: bool,
    pub(crate) created_at: String,
}

impl KeyView {
    pub(crate) fn new(key: &KeyRecord, snapshot: &EntitySnapshot) -> Self {
        Self {
            token: key.token.clone(),
            key_name: key.key_name.clone(),
            key_alias: key.key_alias.clone(),
            models: key.models.clone(),
            limits: LimitsView::new(&key.limits, snapshot),
            user_id: key.user_id.clone(),
            team_id: key.team_id.clone(),
            metadata: key.metadata.clone(),
            expires: key.expires.map(format_rfc3339),
            blocked: key.blocked,
            created_at: format_rfc3339(key.created_at),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct UserView {
    pub(crate) user_id: String,
    pub(crate) user_email: Option<String>,
    pub(crate) user_role: &'static str,
    pub(crate) models: Vec<String>,
    #[serde(flatten)]
    pub(crate) limits: LimitsView,
    pub(crate) metadata: Map<String, Value>,
    pub(crate) created_at: String,
}

impl UserView {
    pub(crate) fn new(user: &UserRecord, snapshot: &EntitySnapshot) -> Self {
        Self {
            user_id: user.user_id.clone(),
            user_email: user.user_email.clone(),
            user_role: user.user_role.as_str(),
            models: user.models.clone(),
            limits: LimitsView::new(&user.limits, snapshot),
            metadata: user.metadata.clone(),
            created_at: format_rfc3339(user.created_at),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct MemberView {
    pub(crate) user_id: String,
    pub(crate) role: &'static str,
    pub(crate) max_budget_in_team: Option<f64>,
    pub(crate) max_budget_in_team_nano_usd: Option<Nanos>,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct TeamView {
    pub(crate) team_id: String,
    pub(crate) team_alias: Option<String>,
    pub(crate) models: Vec<String>,
    #[serde(flatten)]
    pub(crate) limits: LimitsView,
    pub(crate) members_with_roles: Vec<MemberView>,
    pub(crate) metadata: Map<String, Value>,
    pub(crate) blocked: bool,
    pub(crate) created_at: String,
}

impl TeamView {
    pub(crate) fn new(team: &TeamRecord, snapshot: &EntitySnapshot) -> Self {
        Self {
            team_id: team.team_id.clone(),
            team_alias: team.team_alias.clone(),
            models: team.models.clone(),
            limits: LimitsView::new(&team.limits, snapshot),
            members_with_roles: team
                .members
                .iter()
                .map(|m| MemberView {
                    user_id: m.user_id.clone(),
                    role: match m.role {
                        TeamRole::Admin => "admin",
                        TeamRole::User => "user",
                    },
                    max_budget_in_team: m.max_budget_in_team.map(usd),
                    max_budget_in_team_nano_usd: m.max_budget_in_team,
                })
                .collect(),
            metadata: team.metadata.clone(),
            blocked: team.blocked,
            created_at: format_rfc3339(team.created_at),
        }
    }
}

/// One rollup row of `/usage`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct UsageRowView {
    pub(crate) date: String,
    pub(crate) model: String,
    pub(crate) requests: u64,
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    pub(crate) spend: f64,
    pub(crate) spend_nano_usd: Nanos,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct UsageTotals {
    pub(crate) requests: u64,
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    pub(crate) spend: f64,
    pub(crate) spend_nano_usd: Nanos,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct UsageView {
    /// `key:<token>`, `user:<id>` or `team:<id>`.
    pub(crate) entity: String,
    pub(crate) start_date: String,
    pub(crate) end_date: String,
    pub(crate) results: Vec<UsageRowView>,
    pub(crate) totals: UsageTotals,
}

/// `YYYY-MM-DD` of a day number.
pub(crate) fn date_text(day: i64) -> String {
    let (y, m, d) = tollgate_ledger::civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}
