use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::access::{ALL_TEAM_MODELS, AccessGroups};
use crate::entity::EntityId;
use crate::record::{KeyRecord, Limits, Role, TeamRecord, UserRecord};
use crate::secret::hash_key;

/// Why a presented key was refused. The message never names the key or its hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Unknown,
    Expired,
    Blocked,
    TeamBlocked,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Self::Unknown => "the API key is not valid (no such key)",
            Self::Expired => "the API key has expired",
            Self::Blocked => "the API key is blocked",
            Self::TeamBlocked => "the API key's team is blocked",
        }
    }
}

/// Every key, user and team this node knows, in memory. The store is the durable copy; the
/// management service writes the store first, then here.
#[derive(Debug, Default)]
pub struct Directory {
    maps: RwLock<Maps>,
}

#[derive(Debug, Default)]
struct Maps {
    keys: HashMap<String, Arc<KeyRecord>>,
    users: HashMap<String, Arc<UserRecord>>,
    teams: HashMap<String, Arc<TeamRecord>>,
}

/// A caller resolved from its key: the key and the user and team it belongs to.
#[derive(Clone, Debug)]
pub struct Identity {
    pub key: Arc<KeyRecord>,
    pub user: Option<Arc<UserRecord>>,
    pub team: Option<Arc<TeamRecord>>,
}

impl Directory {
    pub fn new(keys: Vec<KeyRecord>, users: Vec<UserRecord>, teams: Vec<TeamRecord>) -> Self {
        let maps = Maps {
            keys: keys
                .into_iter()
                .map(|k| (k.token.clone(), Arc::new(k)))
                .collect(),
            users: users
                .into_iter()
                .map(|u| (u.user_id.clone(), Arc::new(u)))
                .collect(),
            teams: teams
                .into_iter()
                .map(|t| (t.team_id.clone(), Arc::new(t)))
                .collect(),
        };
        Self {
            maps: RwLock::new(maps),
        }
    }

    /// The identity behind a presented key, or why it is refused.
    pub fn authenticate(&self, key: &str, now: i64) -> Result<Identity, Refusal> {
        let identity = self.identity(&hash_key(key)).ok_or(Refusal::Unknown)?;
        if identity.key.blocked {
            return Err(Refusal::Blocked);
        }
        if identity.key.expires.is_some_and(|at| now >= at) {
            return Err(Refusal::Expired);
        }
        if identity.team.as_ref().is_some_and(|t| t.blocked) {
            return Err(Refusal::TeamBlocked);
        }
        Ok(identity)
    }

    /// The identity of the key with this token, without checks.
    pub fn identity(&self, token: &str) -> Option<Identity> {
        let maps = self.read();
        let key = maps.keys.get(token)?.clone();
        let user = key
            .user_id
            .as_deref()
            .and_then(|id| maps.users.get(id))
            .cloned();
        let team = key
            .team_id
            .as_deref()
            .and_then(|id| maps.teams.get(id))
            .cloned();
        Some(Identity { key, user, team })
    }

    pub fn key(&self, token: &str) -> Option<Arc<KeyRecord>> {
        self.read().keys.get(token).cloned()
    }

    pub fn put_key(&self, key: KeyRecord) {
        self.write().keys.insert(key.token.clone(), Arc::new(key));
    }

    pub fn remove_key(&self, token: &str) -> Option<Arc<KeyRecord>> {
        self.write().keys.remove(token)
    }

    /// Every key, oldest first.
    pub fn keys(&self) -> Vec<Arc<KeyRecord>> {
        let mut keys: Vec<_> = self.read().keys.values().cloned().collect();
        keys.sort_by(|a, b| (a.created_at, &a.token).cmp(&(b.created_at, &b.token)));
        keys
    }

    pub fn user(&self, id: &str) -> Option<Arc<UserRecord>> {
        self.read().users.get(id).cloned()
    }

    pub fn put_user(&self, user: UserRecord) {
        self.write()
            .users
            .insert(user.user_id.clone(), Arc::new(user));
    }

    pub fn remove_user(&self, id: &str) -> Option<Arc<UserRecord>> {
        self.write().users.remove(id)
    }

    pub fn users(&self) -> Vec<Arc<UserRecord>> {
        let mut users: Vec<_> = self.read().users.values().cloned().collect();
        users.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        users
    }

    pub fn team(&self, id: &str) -> Option<Arc<TeamRecord>> {
        self.read().teams.get(id).cloned()
    }

    pub fn put_team(&self, team: TeamRecord) {
        self.write()
            .teams
            .insert(team.team_id.clone(), Arc::new(team));
    }

    pub fn remove_team(&self, id: &str) -> Option<Arc<TeamRecord>> {
        self.write().teams.remove(id)
    }

    pub fn teams(&self) -> Vec<Arc<TeamRecord>> {
        let mut teams: Vec<_> = self.read().teams.values().cloned().collect();
        teams.sort_by(|a, b| a.team_id.cmp(&b.team_id));
        teams
    }

    // A poisoned lock only means a writer panicked between whole-record inserts; the maps are
    // still consistent, so keep serving.
    fn read(&self) -> RwLockReadGuard<'_, Maps> {
        self.maps.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Maps> {
        self.maps.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Identity {
    /// The key's role: its user's role, `internal_user` when it has no user.
    pub fn role(&self) -> Role {
        self.user
            .as_ref()
            .map_or(Role::InternalUser, |u| u.user_role)
    }

    /// Whether this caller may use the model group `model`. Every level that has a list must
    /// admit it: the key's own list (`all-team-models` defers to the team), the team's list for
    /// a team key, the user's list for a personal key.
    pub fn may_use(&self, model: &str, groups: &AccessGroups) -> bool {
        let key_models: &[String] = if self.key.models.iter().any(|m| m == ALL_TEAM_MODELS) {
            &[]
        } else {
            &self.key.models
        };
        if !groups.allows(key_models, model) {
            return false;
        }
        match (&self.team, &self.user) {
            (Some(team), _) => groups.allows(&team.models, model),
            (None, Some(user)) => groups.allows(&user.models, model),
            (None, None) => true,
        }
    }

    /// The budgets a request of this caller must fit, all of them: the key's; for a team key
    /// the team's and the member's budget in the team; for a personal key the user's (as in
    /// LiteLLM, a team key is not charged to the user's personal budget).
    pub fn budgets(&self) -> Vec<(EntityId, Limits)> {
        let mut out = Vec::with_capacity(3);
        out.push((
            EntityId::Key(Arc::from(self.key.token.as_str())),
            self.key.limits.clone(),
        ));
        match (&self.team, &self.user) {
            (Some(team), user) => {
                let team_id: Arc<str> = Arc::from(team.team_id.as_str());
                out.push((EntityId::Team(team_id.clone()), team.limits.clone()));
                let member = user.as_ref().and_then(|u| team.member(&u.user_id));
                if let Some(member) = member
                    && member.max_budget_in_team.is_some()
                {
                    let limits = Limits {
                        max_budget: member.max_budget_in_team,
                        budget_duration: team.limits.budget_duration,
                        budget_anchor: team.limits.budget_anchor,
                        ..Limits::default()
                    };
                    out.push((
                        EntityId::Member {
                            team: team_id,
                            user: Arc::from(member.user_id.as_str()),
                        },
                        limits,
                    ));
                }
            }
            (None, Some(user)) => {
                out.push((
                    EntityId::User(Arc::from(user.user_id.as_str())),
                    user.limits.clone(),
                ));
            }
            (None, None) => {}
        }
        out
    }
}

#[cfg(test)]
mod tests;
