//! The gRPC face of the management service: `tollgate.admin.v1.Admin`. Each call checks the
//! `authorization` metadata with the node's authenticator (master key or a `proxy_admin`
//! key), converts the typed request into the same inputs the HTTP routes use, and converts the
//! answer back. Money stays integer nano-USD end to end.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use serde_json::{Map, Value};
use tollgate_api::{ApiError, ErrorCode};
use tollgate_auth::Caller as AuthCaller;
use tollgate_proto::admin::v1 as pb;
use tonic::{Request, Response, Status};

use super::input::{KeyChanges, LimitChanges, MemberInput, TeamChanges, UserChanges};
use super::service::{Caller, UsageQuery};
use super::view::{KeyView, LimitsView, TeamView, UsageView, UserView};
use crate::Gateway;

/// The Admin service over the node's management layer.
#[derive(Debug, Clone)]
pub(crate) struct AdminGrpc {
    gateway: Arc<Gateway>,
}

impl AdminGrpc {
    pub(crate) fn new(gateway: Arc<Gateway>) -> Self {
        Self { gateway }
    }

    /// Only the master key or a `proxy_admin` key may call the admin API.
    fn admit<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let mut headers = HeaderMap::new();
        if let Some(value) = request.metadata().get("authorization")
            && let Ok(value) = HeaderValue::from_bytes(value.as_bytes())
        {
            headers.insert(http::header::AUTHORIZATION, value);
        }
        match self.gateway.auth.authenticate(&headers) {
            AuthCaller::Anonymous => Err(Status::unauthenticated(
                "no key: send `authorization: Bearer <master or admin key>` metadata",
            )),
            AuthCaller::Invalid(why) => Err(Status::unauthenticated(why)),
            AuthCaller::Authenticated(principal) if principal.is_admin() => Ok(()),
            AuthCaller::Authenticated(principal) => Err(Status::permission_denied(format!(
                "the admin API needs the proxy_admin role; this key has role {}",
                principal.role().as_str()
            ))),
        }
    }
}

/// The gRPC status for a management error; the message is the same the HTTP face sends.
fn status(e: ApiError) -> Status {
    let message = e.message;
    match e.code {
        ErrorCode::InvalidRequest | ErrorCode::RequestTooLarge | ErrorCode::UpstreamRejected => {
            Status::invalid_argument(message)
        }
        ErrorCode::BudgetExceeded => Status::failed_precondition(message),
        ErrorCode::InvalidApiKey => Status::unauthenticated(message),
        ErrorCode::ModelNotAllowed | ErrorCode::RouteNotAllowed => {
            Status::permission_denied(message)
        }
        ErrorCode::ModelNotFound | ErrorCode::RouteNotFound | ErrorCode::MethodNotAllowed => {
            Status::not_found(message)
        }
        ErrorCode::RateLimited | ErrorCode::QueueTimeout => Status::resource_exhausted(message),
        ErrorCode::Unavailable | ErrorCode::BudgetUnavailable => Status::unavailable(message),
        ErrorCode::UpstreamTimeout => Status::deadline_exceeded(message),
        ErrorCode::UpstreamError | ErrorCode::Internal => Status::internal(message),
    }
}

fn number(change: Option<pb::NumberChange>) -> Option<Option<u64>> {
    change.and_then(|c| c.change).map(|c| match c {
        pb::number_change::Change::Set(n) => Some(n),
        pb::number_change::Change::Clear(_) => None,
    })
}

fn text(change: Option<pb::TextChange>) -> Option<Option<String>> {
    change.and_then(|c| c.change).map(|c| match c {
        pb::text_change::Change::Set(s) => Some(s),
        pb::text_change::Change::Clear(_) => None,
    })
}

fn limits(changes: Option<pb::LimitChanges>) -> LimitChanges {
    let c = changes.unwrap_or_default();
    LimitChanges {
        max_budget: number(c.max_budget_nano_usd),
        budget_duration: text(c.budget_duration),
        soft_budget: number(c.soft_budget_nano_usd),
        rpm_limit: number(c.rpm_limit),
        tpm_limit: number(c.tpm_limit),
        max_parallel_requests: number(c.max_parallel_requests),
    }
}

fn metadata(json: Option<String>) -> Result<Option<Map<String, Value>>, Status> {
    json.map(|text| {
        serde_json::from_str::<Map<String, Value>>(&text).map_err(|e| {
            Status::invalid_argument(format!("metadata_json is not a JSON object: {e}"))
        })
    })
    .transpose()
}

fn key_changes(key: Option<String>, s: Option<pb::KeySettings>) -> Result<KeyChanges, Status> {
    let s = s.unwrap_or_default();
    Ok(KeyChanges {
        key,
        key_alias: text(s.key_alias),
        models: s.models.map(|m| m.values),
        limits: limits(s.limits),
        user_id: text(s.user_id),
        team_id: text(s.team_id),
        metadata: metadata(s.metadata_json)?,
        expires: text(s.expires).map(|e| e.map(Value::String)),
        duration: text(s.duration),
        blocked: s.blocked,
    })
}

fn user_changes(
    user_id: Option<String>,
    s: Option<pb::UserSettings>,
) -> Result<UserChanges, Status> {
    let s = s.unwrap_or_default();
    Ok(UserChanges {
        user_id,
        user_email: text(s.user_email),
        user_role: s.user_role,
        models: s.models.map(|m| m.values),
        limits: limits(s.limits),
        metadata: metadata(s.metadata_json)?,
        auto_create_key: None,
    })
}

fn team_changes(
    team_id: Option<String>,
    s: Option<pb::TeamSettings>,
    members: Option<Vec<MemberInput>>,
) -> Result<TeamChanges, Status> {
    let s = s.unwrap_or_default();
    Ok(TeamChanges {
        team_id,
        team_alias: text(s.team_alias),
        models: s.models.map(|m| m.values),
        limits: limits(s.limits),
        members_with_roles: members,
        metadata: metadata(s.metadata_json)?,
        blocked: s.blocked,
    })
}

fn limits_out(v: &LimitsView) -> pb::Limits {
    pb::Limits {
        max_budget_nano_usd: v.max_budget_nano_usd,
        budget_duration: v.budget_duration.clone(),
        soft_budget_nano_usd: v.soft_budget_nano_usd,
        rpm_limit: v.rpm_limit,
        tpm_limit: v.tpm_limit,
        max_parallel_requests: v.max_parallel_requests,
        spend_nano_usd: v.spend_nano_usd,
        reserved_nano_usd: v.reserved_nano_usd,
        budget_reset_at: v.budget_reset_at.clone(),
        soft_budget_crossed: v.soft_budget_cooldown,
    }
}

fn json_text(map: &Map<String, Value>) -> String {
    Value::Object(map.clone()).to_string()
}

fn key_out(v: KeyView) -> pb::Key {
    pb::Key {
        limits: Some(limits_out(&v.limits)),
        metadata_json: json_text(&v.metadata),
        token: v.token,
        key_name: v.key_name,
        key_alias: v.key_alias,
        models: v.models,
        user_id: v.user_id,
        team_id: v.team_id,
        expires: v.expires,
        blocked: v.blocked,
        created_at: v.created_at,
    }
}

fn user_out(v: UserView) -> pb::User {
    pb::User {
        limits: Some(limits_out(&v.limits)),
        metadata_json: json_text(&v.metadata),
        user_id: v.user_id,
        user_email: v.user_email,
        user_role: v.user_role.to_owned(),
        models: v.models,
        created_at: v.created_at,
    }
}

fn team_out(v: TeamView) -> pb::Team {
    pb::Team {
        limits: Some(limits_out(&v.limits)),
        metadata_json: json_text(&v.metadata),
        members: v
            .members_with_roles
            .into_iter()
            .map(|m| pb::Member {
                user_id: m.user_id,
                role: m.role.to_owned(),
                max_budget_in_team_nano_usd: m.max_budget_in_team_nano_usd,
            })
            .collect(),
        team_id: v.team_id,
        team_alias: v.team_alias,
        models: v.models,
        blocked: v.blocked,
        created_at: v.created_at,
    }
}

fn usage_out(v: UsageView) -> pb::Usage {
    pb::Usage {
        entity: v.entity,
        start_date: v.start_date,
        end_date: v.end_date,
        requests: v.totals.requests,
        input_tokens: v.totals.input_tokens,
        output_tokens: v.totals.output_tokens,
        spend_nano_usd: v.totals.spend_nano_usd,
        rows: v
            .results
            .into_iter()
            .map(|r| pb::UsageRow {
                date: r.date,
                model: r.model,
                requests: r.requests,
                input_tokens: r.input_tokens,
                output_tokens: r.output_tokens,
                spend_nano_usd: r.spend_nano_usd,
            })
            .collect(),
    }
}

fn members(list: Vec<pb::Member>) -> Vec<MemberInput> {
    list.into_iter()
        .map(|m| MemberInput {
            user_id: m.user_id,
            role: (!m.role.is_empty()).then_some(m.role),
        })
        .collect()
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminGrpc {
    async fn generate_key(
        &self,
        request: Request<pb::GenerateKeyRequest>,
    ) -> Reply<pb::GenerateKeyResponse> {
        self.admit(&request)?;
        let r = request.into_inner();
        let changes = key_changes(r.key, r.settings)?;
        let (key, view) = self
            .gateway
            .manage
            .generate_key(changes)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GenerateKeyResponse {
            key,
            info: Some(key_out(view)),
        }))
    }

    async fn update_key(&self, request: Request<pb::UpdateKeyRequest>) -> Reply<pb::Key> {
        self.admit(&request)?;
        let r = request.into_inner();
        let changes = key_changes(Some(r.key), r.settings)?;
        let view = self
            .gateway
            .manage
            .update_key(changes)
            .await
            .map_err(status)?;
        Ok(Response::new(key_out(view)))
    }

    async fn delete_keys(
        &self,
        request: Request<pb::DeleteKeysRequest>,
    ) -> Reply<pb::DeleteKeysResponse> {
        self.admit(&request)?;
        let r = request.into_inner();
        if r.keys.is_empty() && r.key_aliases.is_empty() {
            return Err(Status::invalid_argument("give `keys` or `key_aliases`"));
        }
        let deleted = self
            .gateway
            .manage
            .delete_keys(r.keys, r.key_aliases)
            .await
            .map_err(status)?;
        // Tokens only: a response never repeats a key.
        Ok(Response::new(pb::DeleteKeysResponse {
            deleted_tokens: deleted.into_iter().map(|(token, _)| token).collect(),
        }))
    }

    async fn get_key(&self, request: Request<pb::GetKeyRequest>) -> Reply<pb::Key> {
        self.admit(&request)?;
        let r = request.into_inner();
        let view = self
            .gateway
            .manage
            .key_info(Caller::Admin, Some(&r.key))
            .await
            .map_err(status)?;
        Ok(Response::new(key_out(view)))
    }

    async fn list_keys(
        &self,
        request: Request<pb::ListKeysRequest>,
    ) -> Reply<pb::ListKeysResponse> {
        self.admit(&request)?;
        let r = request.into_inner();
        let keys = self
            .gateway
            .manage
            .list_keys(
                r.user_id.as_deref(),
                r.team_id.as_deref(),
                r.key_alias.as_deref(),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListKeysResponse {
            keys: keys.into_iter().map(key_out).collect(),
        }))
    }

    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Reply<pb::CreateUserResponse> {
        self.admit(&request)?;
        let r = request.into_inner();
        let mut changes = user_changes(r.user_id, r.settings)?;
        changes.auto_create_key = r.auto_create_key;
        let (user, key) = self
            .gateway
            .manage
            .new_user(changes)
            .await
            .map_err(status)?;
        let (key, key_info) = match key {
            Some((key, view)) => (Some(key), Some(key_out(view))),
            None => (None, None),
        };
        Ok(Response::new(pb::CreateUserResponse {
            user: Some(user_out(user)),
            key,
            key_info,
        }))
    }

    async fn update_user(&self, request: Request<pb::UpdateUserRequest>) -> Reply<pb::User> {
        self.admit(&request)?;
        let r = request.into_inner();
        let changes = user_changes(Some(r.user_id), r.settings)?;
        let view = self
            .gateway
            .manage
            .update_user(changes)
            .await
            .map_err(status)?;
        Ok(Response::new(user_out(view)))
    }

    async fn delete_users(
        &self,
        request: Request<pb::DeleteUsersRequest>,
    ) -> Reply<pb::DeleteUsersResponse> {
        self.admit(&request)?;
        let r = request.into_inner();
        let deleted = self
            .gateway
            .manage
            .delete_users(r.user_ids)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::DeleteUsersResponse { deleted }))
    }

    async fn get_user(&self, request: Request<pb::GetUserRequest>) -> Reply<pb::GetUserResponse> {
        self.admit(&request)?;
        let r = request.into_inner();
        let (user, keys) = self
            .gateway
            .manage
            .user_info(&r.user_id)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetUserResponse {
            user: Some(user_out(user)),
            keys: keys.into_iter().map(key_out).collect(),
        }))
    }

    async fn create_team(&self, request: Request<pb::CreateTeamRequest>) -> Reply<pb::Team> {
        self.admit(&request)?;
        let r = request.into_inner();
        let list = (!r.members.is_empty()).then(|| members(r.members.clone()));
        let changes = team_changes(r.team_id, r.settings, list)?;
        let view = self
            .gateway
            .manage
            .new_team(changes)
            .await
            .map_err(status)?;
        // Member budgets come with the members.
        let budgets: Vec<_> = r
            .members
            .into_iter()
            .filter(|m| m.max_budget_in_team_nano_usd.is_some())
            .collect();
        if budgets.is_empty() {
            return Ok(Response::new(team_out(view)));
        }
        let mut last = view;
        for m in budgets {
            let budget = m.max_budget_in_team_nano_usd;
            last = self
                .gateway
                .manage
                .member_add(&last.team_id.clone(), members(vec![m]), budget)
                .await
                .map_err(status)?;
        }
        Ok(Response::new(team_out(last)))
    }

    async fn update_team(&self, request: Request<pb::UpdateTeamRequest>) -> Reply<pb::Team> {
        self.admit(&request)?;
        let r = request.into_inner();
        let changes = team_changes(Some(r.team_id), r.settings, None)?;
        let view = self
            .gateway
            .manage
            .update_team(changes)
            .await
            .map_err(status)?;
        Ok(Response::new(team_out(view)))
    }

    async fn delete_teams(
        &self,
        request: Request<pb::DeleteTeamsRequest>,
    ) -> Reply<pb::DeleteTeamsResponse> {
        self.admit(&request)?;
        let r = request.into_inner();
        let deleted = self
            .gateway
            .manage
            .delete_teams(r.team_ids)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::DeleteTeamsResponse { deleted }))
    }

    async fn get_team(&self, request: Request<pb::GetTeamRequest>) -> Reply<pb::GetTeamResponse> {
        self.admit(&request)?;
        let r = request.into_inner();
        let (team, keys) = self
            .gateway
            .manage
            .team_info(&r.team_id)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetTeamResponse {
            team: Some(team_out(team)),
            keys: keys.into_iter().map(key_out).collect(),
        }))
    }

    async fn add_team_members(
        &self,
        request: Request<pb::AddTeamMembersRequest>,
    ) -> Reply<pb::Team> {
        self.admit(&request)?;
        let r = request.into_inner();
        // The team and every role are checked first, so a bad member changes nothing. Members
        // are added one by one because each brings its own in-team budget.
        let (mut view, _) = self
            .gateway
            .manage
            .team_info(&r.team_id)
            .await
            .map_err(status)?;
        for m in members(r.members.clone()) {
            m.team_role().map_err(status)?;
        }
        for m in r.members {
            let budget = m.max_budget_in_team_nano_usd;
            view = self
                .gateway
                .manage
                .member_add(&r.team_id, members(vec![m]), budget)
                .await
                .map_err(status)?;
        }
        Ok(Response::new(team_out(view)))
    }

    async fn remove_team_members(
        &self,
        request: Request<pb::RemoveTeamMembersRequest>,
    ) -> Reply<pb::Team> {
        self.admit(&request)?;
        let r = request.into_inner();
        let view = self
            .gateway
            .manage
            .member_delete(&r.team_id, &r.user_ids)
            .await
            .map_err(status)?;
        Ok(Response::new(team_out(view)))
    }

    async fn get_usage(&self, request: Request<pb::GetUsageRequest>) -> Reply<pb::Usage> {
        self.admit(&request)?;
        let r = request.into_inner();
        let mut query = UsageQuery {
            start_date: r.start_date,
            end_date: r.end_date,
            ..UsageQuery::default()
        };
        match r.entity {
            Some(pb::get_usage_request::Entity::Key(k)) => query.key = Some(k),
            Some(pb::get_usage_request::Entity::UserId(u)) => query.user_id = Some(u),
            Some(pb::get_usage_request::Entity::TeamId(t)) => query.team_id = Some(t),
            None => {
                return Err(Status::invalid_argument(
                    "give one of key, user_id or team_id",
                ));
            }
        }
        let view = self
            .gateway
            .manage
            .usage(Caller::Admin, &query)
            .await
            .map_err(status)?;
        Ok(Response::new(usage_out(view)))
    }
}

/// Serves the Admin API on `listener` until `shutdown`.
pub(crate) async fn serve(
    gateway: Arc<Gateway>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = pb::admin_server::AdminServer::new(AdminGrpc::new(gateway));
    let app = tonic::service::Routes::new(service)
        .prepare()
        .into_axum_router();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
