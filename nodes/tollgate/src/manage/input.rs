//! What management requests may change, in LiteLLM's field names. Absent fields leave a value
//! unchanged; an explicit `null` removes it (`"max_budget": null` lifts the limit). Money
//! arrives in USD, as in LiteLLM, and becomes integer nano-USD here, once.

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use tollgate_accounts::{Limits, Role, TeamRole};
use tollgate_api::ApiError;
use tollgate_ledger::{BudgetDuration, Nanos};

/// `Some(None)` for an explicit `null`, `None` for an absent field.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// USD as LiteLLM sends it, to nano-USD at once; `null` stays "remove".
fn nullable_usd<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Nanos>>, D::Error> {
    let usd = Option::<f64>::deserialize(d)?;
    usd.map(|usd| usd_to_nanos("amount", usd).map_err(|e| serde::de::Error::custom(e.message)))
        .transpose()
        .map(Some)
}

/// The limits of any entity. Money is already nano-USD here.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct LimitChanges {
    #[serde(default, deserialize_with = "nullable_usd")]
    pub(crate) max_budget: Option<Option<Nanos>>,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) budget_duration: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable_usd")]
    pub(crate) soft_budget: Option<Option<Nanos>>,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) rpm_limit: Option<Option<u64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) tpm_limit: Option<Option<u64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) max_parallel_requests: Option<Option<u64>>,
}

impl LimitChanges {
    /// Applies the changes; `now` anchors a newly set `budget_duration`.
    pub(crate) fn apply(&self, limits: &mut Limits, now: i64) -> Result<(), ApiError> {
        if let Some(v) = self.max_budget {
            limits.max_budget = v;
        }
        if let Some(v) = self.soft_budget {
            limits.soft_budget = v;
        }
        if let Some(v) = &self.budget_duration {
            limits.budget_duration = v
                .as_deref()
                .map(|text| {
                    text.parse::<BudgetDuration>()
                        .map_err(|e| ApiError::invalid_field("budget_duration", e.to_string()))
                })
                .transpose()?;
            limits.budget_anchor = now;
        }
        if let Some(v) = self.rpm_limit {
            limits.rpm_limit = v;
        }
        if let Some(v) = self.tpm_limit {
            limits.tpm_limit = v;
        }
        if let Some(v) = self.max_parallel_requests {
            limits.max_parallel_requests = v;
        }
        Ok(())
    }
}

/// USD (as LiteLLM's API sends it) to nano-USD; negative, non-finite or absurd amounts are a
/// 400 naming the field.
pub(crate) fn usd_to_nanos(field: &str, usd: f64) -> Result<Nanos, ApiError> {
    if !usd.is_finite() || !(0.0..=1e9).contains(&usd) {
        return Err(ApiError::invalid_field(
            field,
            format!("{field} must be a number of USD between 0 and 1e9, found {usd}"),
        ));
    }
    Ok((usd * 1e9).round() as Nanos)
}

/// `/key/generate` and `/key/update`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct KeyChanges {
    /// generate: a caller-chosen key (`sk-...`); update: the key (or its token) to change.
    pub(crate) key: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) key_alias: Option<Option<String>>,
    pub(crate) models: Option<Vec<String>>,
    #[serde(flatten)]
    pub(crate) limits: LimitChanges,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) user_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) team_id: Option<Option<String>>,
    pub(crate) metadata: Option<Map<String, Value>>,
    /// An absolute expiry: RFC 3339 (`2026-12-31T00:00:00Z`) or unix seconds; null = never.
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) expires: Option<Option<Value>>,
    /// A relative expiry, LiteLLM's `duration` (`30d`, `12h`); null = never.
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) duration: Option<Option<String>>,
    pub(crate) blocked: Option<bool>,
}

/// `/user/new` and `/user/update`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct UserChanges {
    pub(crate) user_id: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) user_email: Option<Option<String>>,
    pub(crate) user_role: Option<String>,
    pub(crate) models: Option<Vec<String>>,
    #[serde(flatten)]
    pub(crate) limits: LimitChanges,
    pub(crate) metadata: Option<Map<String, Value>>,
    /// `/user/new` only: also issue a key for the user (LiteLLM's default: true).
    pub(crate) auto_create_key: Option<bool>,
}

impl UserChanges {
    pub(crate) fn role(&self) -> Result<Option<Role>, ApiError> {
        self.user_role
            .as_deref()
            .map(|name| {
                Role::parse(name).ok_or_else(|| {
                    ApiError::invalid_field(
                        "user_role",
                        format!("unknown user_role `{name}`; use proxy_admin or internal_user"),
                    )
                })
            })
            .transpose()
    }
}

/// A member as LiteLLM's `members_with_roles` / `member` lists them.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct MemberInput {
    pub(crate) user_id: String,
    #[serde(default)]
    pub(crate) role: Option<String>,
}

impl MemberInput {
    pub(crate) fn team_role(&self) -> Result<TeamRole, ApiError> {
        match self.role.as_deref() {
            None | Some("user") => Ok(TeamRole::User),
            Some("admin") => Ok(TeamRole::Admin),
            Some(other) => Err(ApiError::invalid_field(
                "role",
                format!("unknown team role `{other}`; use admin or user"),
            )),
        }
    }
}

/// `/team/new` and `/team/update`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct TeamChanges {
    pub(crate) team_id: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) team_alias: Option<Option<String>>,
    pub(crate) models: Option<Vec<String>>,
    #[serde(flatten)]
    pub(crate) limits: LimitChanges,
    pub(crate) members_with_roles: Option<Vec<MemberInput>>,
    pub(crate) metadata: Option<Map<String, Value>>,
    pub(crate) blocked: Option<bool>,
}
