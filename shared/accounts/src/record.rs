use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tollgate_ledger::{Budget, BudgetDuration, Nanos};

/// A role, as LiteLLM names them. Held by users; a key has its user's role (`internal_user`
/// when it has no user). The master key is always `proxy_admin`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    ProxyAdmin,
    #[default]
    InternalUser,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProxyAdmin => "proxy_admin",
            Self::InternalUser => "internal_user",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "proxy_admin" => Some(Self::ProxyAdmin),
            "internal_user" => Some(Self::InternalUser),
            _ => None,
        }
    }
}

/// The limits any budget-holding entity may carry. `None` means "no limit".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub max_budget: Option<Nanos>,
    pub budget_duration: Option<BudgetDuration>,
    /// When `budget_duration` was last set (unix seconds): periods shorter than a day start
    /// here; longer ones are aligned to UTC midnight / the first of the month.
    pub budget_anchor: i64,
    /// Crossing it logs one warning (and event) per period; it never refuses a request.
    pub soft_budget: Option<Nanos>,
    pub rpm_limit: Option<u64>,
    pub tpm_limit: Option<u64>,
    pub max_parallel_requests: Option<u64>,
}

impl Limits {
    /// The ledger's view of these limits.
    pub fn budget(&self) -> Budget {
        Budget {
            limit: self.max_budget,
            duration: self.budget_duration,
            anchor: self.budget_anchor,
        }
    }

    /// Whether admission has anything to enforce or account for beyond spend tracking.
    pub fn is_unlimited(&self) -> bool {
        self.max_budget.is_none()
            && self.rpm_limit.is_none()
            && self.tpm_limit.is_none()
            && self.max_parallel_requests.is_none()
    }
}

/// A virtual key. Identified by `token`, the SHA-256 of the key; the key itself is not kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub token: String,
    /// `sk-...` and the key's last four characters, for people to recognise it.
    pub key_name: String,
    pub key_alias: Option<String>,
    /// Models this key may use; empty = whatever its team (or user) may use.
    pub models: Vec<String>,
    pub limits: Limits,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub metadata: Map<String, Value>,
    /// Unix seconds after which the key is refused.
    pub expires: Option<i64>,
    pub blocked: bool,
    pub created_at: i64,
}

/// A user of the gateway (a person or a service).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub user_id: String,
    pub user_email: Option<String>,
    pub user_role: Role,
    pub models: Vec<String>,
    pub limits: Limits,
    pub metadata: Map<String, Value>,
    pub created_at: i64,
}

/// A member's role inside a team (LiteLLM's `admin` / `user`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeamRole {
    Admin,
    #[default]
    User,
}

/// A user's membership of a team, with an optional budget inside the team (counted in the
/// team's `budget_duration` periods).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: String,
    pub role: TeamRole,
    pub max_budget_in_team: Option<Nanos>,
}

/// A team: shared limits and a model list for its members' keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TeamRecord {
    pub team_id: String,
    pub team_alias: Option<String>,
    pub models: Vec<String>,
    pub limits: Limits,
    pub members: Vec<Member>,
    pub metadata: Map<String, Value>,
    pub blocked: bool,
    pub created_at: i64,
}

impl TeamRecord {
    pub fn member(&self, user_id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.user_id == user_id)
    }
}
