use std::sync::Arc;

use serde_json::{Map, Value};
use tollgate_accounts::{
    Clock, Directory, EntityId, Identity, KeyRecord, Limits, Member, NewKey, Role, TeamRecord,
    UserRecord, generate_key, hash_key, key_name,
};
use tollgate_api::{ApiError, ErrorCode};
use tollgate_budget::{Budgets, EntitySnapshot};
use tollgate_ledger::{BudgetDuration, Nanos, days_from_civil};
use tollgate_store::{Store, StoreError, day_of};

use super::input::{KeyChanges, MemberInput, TeamChanges, UserChanges};
use super::view::{KeyView, TeamView, UsageRowView, UsageTotals, UsageView, UserView, date_text};
use crate::admission::refused;
use crate::respond::first_chars;

/// Who is asking: an admin (master key or a `proxy_admin` key) or an ordinary key, which may
/// only read about itself.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Caller<'a> {
    Admin,
    Key(&'a Identity),
}

/// `/usage` parameters: one entity, a day range (default: the last 30 days).
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub(crate) struct UsageQuery {
    pub(crate) key: Option<String>,
    pub(crate) user_id: Option<String>,
    pub(crate) team_id: Option<String>,
    pub(crate) start_date: Option<String>,
    pub(crate) end_date: Option<String>,
}

/// The management rules, shared by the HTTP and gRPC faces.
#[derive(Debug)]
pub(crate) struct Service {
    directory: Arc<Directory>,
    store: Arc<dyn Store>,
    budgets: Budgets,
    clock: Arc<dyn Clock>,
    /// Serializes read-modify-write of records, so concurrent updates are never lost.
    writes: tokio::sync::Mutex<()>,
}

fn not_found(what: &str, id: &str) -> ApiError {
    let shown = first_chars(id, 100);
    ApiError::new(ErrorCode::RouteNotFound, format!("no {what} `{shown}`"))
        .with_status(http::StatusCode::NOT_FOUND)
}

fn stored(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "store write failed");
    ApiError::new(
        ErrorCode::Unavailable,
        "the store could not be written; nothing was changed",
    )
}

fn missing(field: &str) -> ApiError {
    ApiError::invalid_field(field, format!("`{field}` is required"))
}

/// The token of a key given either as the key (`sk-...`) or as its token.
fn token_of(key_or_token: &str) -> String {
    if key_or_token.starts_with("sk-") {
        hash_key(key_or_token)
    } else {
        key_or_token.to_owned()
    }
}

fn parse_date(field: &str, text: &str) -> Result<i64, ApiError> {
    let bad = || ApiError::invalid_field(field, format!("`{field}` must be a date YYYY-MM-DD"));
    let mut parts = text.splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let y: i64 = y.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    let d: u32 = d.parse().map_err(|_| bad())?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1970..=9999).contains(&y) {
        return Err(bad());
    }
    Ok(days_from_civil(y, m, d))
}

/// `expires` as RFC 3339 (`2026-12-31T00:00:00Z`, or a date) or unix seconds.
fn parse_expires(value: &Value) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::invalid_field(
            "expires",
            "`expires` must be an RFC 3339 time (2026-12-31T00:00:00Z) or unix seconds",
        )
    };
    match value {
        Value::Number(n) => n.as_i64().ok_or_else(bad),
        Value::String(s) => {
            let (date, time) = s.split_once('T').unwrap_or((s.as_str(), "00:00:00Z"));
            let day = parse_date("expires", date).map_err(|_| bad())?;
            let time = time.trim_end_matches('Z');
            let time = time.split(['+', '.']).next().unwrap_or(time);
            let mut hms = time.split(':').map(|p| p.parse::<i64>());
            let (Some(Ok(h)), Some(Ok(m)), s) = (hms.next(), hms.next(), hms.next()) else {
                return Err(bad());
            };
            let s = s.and_then(Result::ok).unwrap_or(0);
            Ok(day * 86_400 + h * 3600 + m * 60 + s)
        }
        _ => Err(bad()),
    }
}

impl Service {
    pub(crate) fn new(
        directory: Arc<Directory>,
        store: Arc<dyn Store>,
        budgets: Budgets,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            directory,
            store,
            budgets,
            clock,
            writes: tokio::sync::Mutex::new(()),
        }
    }

    async fn snapshot(
        &self,
        entity: EntityId,
        limits: &Limits,
    ) -> Result<EntitySnapshot, ApiError> {
        self.budgets
            .snapshot(&entity, limits.clone())
            .await
            .map_err(refused)
    }

    async fn key_view(&self, key: &KeyRecord) -> Result<KeyView, ApiError> {
        let snapshot = self
            .snapshot(EntityId::Key(Arc::from(key.token.as_str())), &key.limits)
            .await?;
        Ok(KeyView::new(key, &snapshot))
    }

    async fn user_view(&self, user: &UserRecord) -> Result<UserView, ApiError> {
        let snapshot = self
            .snapshot(
                EntityId::User(Arc::from(user.user_id.as_str())),
                &user.limits,
            )
            .await?;
        Ok(UserView::new(user, &snapshot))
    }

    async fn team_view(&self, team: &TeamRecord) -> Result<TeamView, ApiError> {
        let snapshot = self
            .snapshot(
                EntityId::Team(Arc::from(team.team_id.as_str())),
                &team.limits,
            )
            .await?;
        Ok(TeamView::new(team, &snapshot))
    }

    fn check_refs(&self, user_id: Option<&str>, team_id: Option<&str>) -> Result<(), ApiError> {
        if let Some(id) = user_id
            && self.directory.user(id).is_none()
        {
            return Err(ApiError::invalid_field(
                "user_id",
                format!("no user `{id}`"),
            ));
        }
        if let Some(id) = team_id
            && self.directory.team(id).is_none()
        {
            return Err(ApiError::invalid_field(
                "team_id",
                format!("no team `{id}`"),
            ));
        }
        Ok(())
    }

    fn apply_key(&self, key: &mut KeyRecord, c: &KeyChanges, now: i64) -> Result<(), ApiError> {
        if let Some(alias) = &c.key_alias {
            key.key_alias = alias.clone();
        }
        if let Some(models) = &c.models {
            key.models = models.clone();
        }
        c.limits.apply(&mut key.limits, now)?;
        if let Some(user) = &c.user_id {
            key.user_id = user.clone();
        }
        if let Some(team) = &c.team_id {
            key.team_id = team.clone();
        }
        self.check_refs(key.user_id.as_deref(), key.team_id.as_deref())?;
        if let Some(metadata) = &c.metadata {
            key.metadata = metadata.clone();
        }
        if let Some(expires) = &c.expires {
            key.expires = expires.as_ref().map(parse_expires).transpose()?;
        }
        if let Some(duration) = &c.duration {
            key.expires = duration
                .as_deref()
                .map(|text| relative_expiry(text, now))
                .transpose()?;
        }
        if let Some(blocked) = c.blocked {
            key.blocked = blocked;
        }
        Ok(())
    }

    /// `/key/generate`: the new key, shown this once.
    pub(crate) async fn generate_key(&self, c: KeyChanges) -> Result<(String, KeyView), ApiError> {
        let _writing = self.writes.lock().await;
        let NewKey { key, token } = match &c.key {
            Some(custom) => {
                if !custom.starts_with("sk-") || custom.len() < 12 {
                    return Err(ApiError::invalid_field(
                        "key",
                        "a chosen `key` must start with `sk-` and be at least 12 characters",
                    ));
                }
                NewKey {
                    key: custom.clone(),
                    token: hash_key(custom),
                }
            }
            None => generate_key(),
        };
        if self.directory.key(&token).is_some() {
            return Err(ApiError::invalid_field("key", "that key already exists"));
        }
        let now = self.clock.now();
        let mut record = KeyRecord {
            token: token.clone(),
            key_name: key_name(&key),
            key_alias: None,
            models: Vec::new(),
            limits: Limits::default(),
            user_id: None,
            team_id: None,
            metadata: Map::new(),
            expires: None,
            blocked: false,
            created_at: now,
        };
        self.apply_key(&mut record, &c, now)?;
        self.store.put_key(record.clone()).await.map_err(stored)?;
        self.directory.put_key(record.clone());
        Ok((key, self.key_view(&record).await?))
    }

    /// `/key/update`: only the fields present change; `null` removes a limit.
    pub(crate) async fn update_key(&self, c: KeyChanges) -> Result<KeyView, ApiError> {
        let _writing = self.writes.lock().await;
        let asked = c.key.as_deref().ok_or_else(|| missing("key"))?;
        let token = token_of(asked);
        let mut record = (*self
            .directory
            .key(&token)
            .ok_or_else(|| not_found("key", "(the given key)"))?)
        .clone();
        self.apply_key(&mut record, &c, self.clock.now())?;
        self.store.put_key(record.clone()).await.map_err(stored)?;
        self.directory.put_key(record.clone());
        self.key_view(&record).await
    }

    /// `/key/delete`: by key (or token) and by alias. Returns what was deleted, each as
    /// `(token, as given)`.
    pub(crate) async fn delete_keys(
        &self,
        keys: Vec<String>,
        aliases: Vec<String>,
    ) -> Result<Vec<(String, String)>, ApiError> {
        let _writing = self.writes.lock().await;
        let mut deleted = Vec::new();
        let mut tokens: Vec<(String, String)> =
            keys.into_iter().map(|k| (token_of(&k), k)).collect();
        for key in self.directory.keys() {
            if key.key_alias.as_ref().is_some_and(|a| aliases.contains(a)) {
                tokens.push((key.token.clone(), key.key_alias.clone().unwrap_or_default()));
            }
        }
        for (token, given) in tokens {
            if self.directory.key(&token).is_none() {
                continue;
            }
            self.store.delete_key(token.clone()).await.map_err(stored)?;
            self.directory.remove_key(&token);
            deleted.push((token, given));
        }
        Ok(deleted)
    }

    /// `/key/info`: about `key`, or about the caller's own key when none is given. A non-admin
    /// key may only ask about itself.
    pub(crate) async fn key_info(
        &self,
        caller: Caller<'_>,
        key: Option<&str>,
    ) -> Result<KeyView, ApiError> {
        let token = match (key, caller) {
            (Some(k), _) => token_of(k),
            (None, Caller::Key(identity)) => identity.key.token.clone(),
            (None, Caller::Admin) => return Err(missing("key")),
        };
        if let Caller::Key(identity) = caller
            && identity.role() != Role::ProxyAdmin
            && identity.key.token != token
        {
            return Err(ApiError::new(
                ErrorCode::RouteNotAllowed,
                "a key may only read its own /key/info; this needs the proxy_admin role",
            ));
        }
        let record = self
            .directory
            .key(&token)
            .ok_or_else(|| not_found("key", "(the given key)"))?;
        self.key_view(&record).await
    }

    /// `/key/list`, optionally filtered.
    pub(crate) async fn list_keys(
        &self,
        user_id: Option<&str>,
        team_id: Option<&str>,
        key_alias: Option<&str>,
    ) -> Result<Vec<KeyView>, ApiError> {
        let mut out = Vec::new();
        for key in self.directory.keys() {
            if user_id.is_some_and(|u| key.user_id.as_deref() != Some(u))
                || team_id.is_some_and(|t| key.team_id.as_deref() != Some(t))
                || key_alias.is_some_and(|a| key.key_alias.as_deref() != Some(a))
            {
                continue;
            }
            out.push(self.key_view(&key).await?);
        }
        Ok(out)
    }

    /// `/user/new`: the user, and (unless `auto_create_key: false`) a key for it.
    pub(crate) async fn new_user(
        &self,
        c: UserChanges,
    ) -> Result<(UserView, Option<(String, KeyView)>), ApiError> {
        let user = {
            let _writing = self.writes.lock().await;
            let user_id = c
                .user_id
                .clone()
                .unwrap_or_else(|| format!("user-{}", &generate_key().token[..16]));
            if self.directory.user(&user_id).is_some() {
                return Err(ApiError::invalid_field(
                    "user_id",
                    format!("user `{user_id}` already exists"),
                ));
            }
            let now = self.clock.now();
            let mut user = UserRecord {
                user_id,
                user_email: None,
                user_role: Role::InternalUser,
                models: Vec::new(),
                limits: Limits::default(),
                metadata: Map::new(),
                created_at: now,
            };
            apply_user(&mut user, &c, now)?;
            self.store.put_user(user.clone()).await.map_err(stored)?;
            self.directory.put_user(user.clone());
            user
        };
        let key = if c.auto_create_key.unwrap_or(true) {
            let changes = KeyChanges {
                user_id: Some(Some(user.user_id.clone())),
                ..KeyChanges::default()
            };
            Some(self.generate_key(changes).await?)
        } else {
            None
        };
        Ok((self.user_view(&user).await?, key))
    }

    pub(crate) async fn update_user(&self, c: UserChanges) -> Result<UserView, ApiError> {
        let _writing = self.writes.lock().await;
        let id = c.user_id.as_deref().ok_or_else(|| missing("user_id"))?;
        let mut user = (*self
            .directory
            .user(id)
            .ok_or_else(|| not_found("user", id))?)
        .clone();
        apply_user(&mut user, &c, self.clock.now())?;
        self.store.put_user(user.clone()).await.map_err(stored)?;
        self.directory.put_user(user.clone());
        self.user_view(&user).await
    }

    /// `/user/delete`: the users and their keys.
    /// Deletes every key `belongs` picks (a deleted user's or team's keys). The caller holds
    /// the write lock.
    async fn delete_keys_of(&self, belongs: impl Fn(&KeyRecord) -> bool) -> Result<(), ApiError> {
        for key in self.directory.keys() {
            if belongs(&key) {
                self.store
                    .delete_key(key.token.clone())
                    .await
                    .map_err(stored)?;
                self.directory.remove_key(&key.token);
            }
        }
        Ok(())
    }

    pub(crate) async fn delete_users(&self, ids: Vec<String>) -> Result<Vec<String>, ApiError> {
        let _writing = self.writes.lock().await;
        let mut deleted = Vec::new();
        for id in ids {
            if self.directory.user(&id).is_none() {
                continue;
            }
            self.delete_keys_of(|key| key.user_id.as_deref() == Some(&id))
                .await?;
            self.store.delete_user(id.clone()).await.map_err(stored)?;
            self.directory.remove_user(&id);
            deleted.push(id);
        }
        Ok(deleted)
    }

    pub(crate) async fn user_info(&self, id: &str) -> Result<(UserView, Vec<KeyView>), ApiError> {
        let user = self
            .directory
            .user(id)
            .ok_or_else(|| not_found("user", id))?;
        let keys = self.list_keys(Some(id), None, None).await?;
        Ok((self.user_view(&user).await?, keys))
    }

    pub(crate) async fn new_team(&self, c: TeamChanges) -> Result<TeamView, ApiError> {
        let _writing = self.writes.lock().await;
        let team_id = c
            .team_id
            .clone()
            .unwrap_or_else(|| format!("team-{}", &generate_key().token[..16]));
        if self.directory.team(&team_id).is_some() {
            return Err(ApiError::invalid_field(
                "team_id",
                format!("team `{team_id}` already exists"),
            ));
        }
        let now = self.clock.now();
        let mut team = TeamRecord {
            team_id,
            team_alias: None,
            models: Vec::new(),
            limits: Limits::default(),
            members: Vec::new(),
            metadata: Map::new(),
            blocked: false,
            created_at: now,
        };
        apply_team(&mut team, &c, now)?;
        self.store.put_team(team.clone()).await.map_err(stored)?;
        self.directory.put_team(team.clone());
        self.team_view(&team).await
    }

    pub(crate) async fn update_team(&self, c: TeamChanges) -> Result<TeamView, ApiError> {
        let _writing = self.writes.lock().await;
        let id = c.team_id.as_deref().ok_or_else(|| missing("team_id"))?;
        let mut team = (*self
            .directory
            .team(id)
            .ok_or_else(|| not_found("team", id))?)
        .clone();
        apply_team(&mut team, &c, self.clock.now())?;
        self.store.put_team(team.clone()).await.map_err(stored)?;
        self.directory.put_team(team.clone());
        self.team_view(&team).await
    }

    /// `/team/delete`: the teams and their keys.
    pub(crate) async fn delete_teams(&self, ids: Vec<String>) -> Result<Vec<String>, ApiError> {
        let _writing = self.writes.lock().await;
        let mut deleted = Vec::new();
        for id in ids {
            if self.directory.team(&id).is_none() {
                continue;
            }
            self.delete_keys_of(|key| key.team_id.as_deref() == Some(&id))
                .await?;
            self.store.delete_team(id.clone()).await.map_err(stored)?;
            self.directory.remove_team(&id);
            deleted.push(id);
        }
        Ok(deleted)
    }

    pub(crate) async fn team_info(&self, id: &str) -> Result<(TeamView, Vec<KeyView>), ApiError> {
        let team = self
            .directory
            .team(id)
            .ok_or_else(|| not_found("team", id))?;
        let keys = self.list_keys(None, Some(id), None).await?;
        Ok((self.team_view(&team).await?, keys))
    }

    /// `/team/member_add`: adds (or updates) members, with an optional budget inside the team.
    pub(crate) async fn member_add(
        &self,
        team_id: &str,
        members: Vec<MemberInput>,
        max_budget_in_team: Option<Nanos>,
    ) -> Result<TeamView, ApiError> {
        let _writing = self.writes.lock().await;
        let mut team = (*self
            .directory
            .team(team_id)
            .ok_or_else(|| not_found("team", team_id))?)
        .clone();
        let budget = max_budget_in_team;
        for m in members {
            let role = m.team_role()?;
            team.members.retain(|old| old.user_id != m.user_id);
            team.members.push(Member {
                user_id: m.user_id,
                role,
                max_budget_in_team: budget,
            });
        }
        self.store.put_team(team.clone()).await.map_err(stored)?;
        self.directory.put_team(team.clone());
        self.team_view(&team).await
    }

    pub(crate) async fn member_delete(
        &self,
        team_id: &str,
        user_ids: &[String],
    ) -> Result<TeamView, ApiError> {
        let _writing = self.writes.lock().await;
        let mut team = (*self
            .directory
            .team(team_id)
            .ok_or_else(|| not_found("team", team_id))?)
        .clone();
        team.members.retain(|m| !user_ids.contains(&m.user_id));
        self.store.put_team(team.clone()).await.map_err(stored)?;
        self.directory.put_team(team.clone());
        self.team_view(&team).await
    }

    /// `/usage`: the rollups of one entity over a day range. A non-admin key may only read
    /// its own usage.
    pub(crate) async fn usage(
        &self,
        caller: Caller<'_>,
        q: &UsageQuery,
    ) -> Result<UsageView, ApiError> {
        let entity = match (&q.key, &q.user_id, &q.team_id, caller) {
            (Some(k), None, None, _) => EntityId::Key(Arc::from(token_of(k).as_str())),
            (None, Some(u), None, _) => EntityId::User(Arc::from(u.as_str())),
            (None, None, Some(t), _) => EntityId::Team(Arc::from(t.as_str())),
            (None, None, None, Caller::Key(identity)) => {
                EntityId::Key(Arc::from(identity.key.token.as_str()))
            }
            _ => {
                return Err(ApiError::invalid_field(
                    "key",
                    "give exactly one of `key`, `user_id` or `team_id`",
                ));
            }
        };
        if let Caller::Key(identity) = caller
            && identity.role() != Role::ProxyAdmin
            && entity != EntityId::Key(Arc::from(identity.key.token.as_str()))
        {
            return Err(ApiError::new(
                ErrorCode::RouteNotAllowed,
                "a key may only read its own usage; this needs the proxy_admin role",
            ));
        }
        let today = day_of(self.clock.now());
        let to = q
            .end_date
            .as_deref()
            .map(|d| parse_date("end_date", d))
            .transpose()?
            .unwrap_or(today);
        let from = q
            .start_date
            .as_deref()
            .map(|d| parse_date("start_date", d))
            .transpose()?
            .unwrap_or(to - 29);
        if from > to || to - from > 366 {
            return Err(ApiError::invalid_field(
                "start_date",
                "the range must be at most 366 days, start_date ≤ end_date",
            ));
        }
        // Settled spend may still be in the flush window; commit it so the answer is current.
        self.budgets.flush().await;
        let rows = self
            .store
            .usage(entity.clone(), from, to)
            .await
            .map_err(stored)?;
        let mut totals = UsageTotals {
            requests: 0,
            input_tokens: 0,
            output_tokens: 0,
            spend: 0.0,
            spend_nano_usd: 0,
        };
        let results = rows
            .into_iter()
            .map(|row| {
                totals.requests += row.totals.requests;
                totals.input_tokens += row.totals.input_tokens;
                totals.output_tokens += row.totals.output_tokens;
                totals.spend_nano_usd += row.totals.spend;
                UsageRowView {
                    date: date_text(row.day),
                    model: row.model,
                    requests: row.totals.requests,
                    input_tokens: row.totals.input_tokens,
                    output_tokens: row.totals.output_tokens,
                    spend: row.totals.spend as f64 / 1e9,
                    spend_nano_usd: row.totals.spend,
                }
            })
            .collect();
        totals.spend = totals.spend_nano_usd as f64 / 1e9;
        Ok(UsageView {
            entity: entity.storage_key(),
            start_date: date_text(from),
            end_date: date_text(to),
            results,
            totals,
        })
    }
}

fn relative_expiry(text: &str, now: i64) -> Result<i64, ApiError> {
    let duration: BudgetDuration =
        text.parse()
            .map_err(|e: tollgate_ledger::ParseDurationError| {
                ApiError::invalid_field("duration", e.to_string())
            })?;
    let secs = match duration {
        BudgetDuration::Seconds(n) => i64::try_from(n).unwrap_or(i64::MAX),
        BudgetDuration::Days(n) => i64::try_from(n).unwrap_or(i64::MAX).saturating_mul(86_400),
        BudgetDuration::Months(n) => i64::from(n).saturating_mul(30 * 86_400),
    };
    Ok(now.saturating_add(secs))
}

fn apply_user(user: &mut UserRecord, c: &UserChanges, now: i64) -> Result<(), ApiError> {
    if let Some(email) = &c.user_email {
        user.user_email = email.clone();
    }
    if let Some(role) = c.role()? {
        user.user_role = role;
    }
    if let Some(models) = &c.models {
        user.models = models.clone();
    }
    c.limits.apply(&mut user.limits, now)?;
    if let Some(metadata) = &c.metadata {
        user.metadata = metadata.clone();
    }
    Ok(())
}

fn apply_team(team: &mut TeamRecord, c: &TeamChanges, now: i64) -> Result<(), ApiError> {
    if let Some(alias) = &c.team_alias {
        team.team_alias = alias.clone();
    }
    if let Some(models) = &c.models {
        team.models = models.clone();
    }
    c.limits.apply(&mut team.limits, now)?;
    if let Some(members) = &c.members_with_roles {
        let mut list = Vec::with_capacity(members.len());
        for m in members {
            list.push(Member {
                user_id: m.user_id.clone(),
                role: m.team_role()?,
                max_budget_in_team: team
                    .member(&m.user_id)
                    .and_then(|old| old.max_budget_in_team),
            });
        }
        team.members = list;
    }
    if let Some(metadata) = &c.metadata {
        team.metadata = metadata.clone();
    }
    if let Some(blocked) = c.blocked {
        team.blocked = blocked;
    }
    Ok(())
}
