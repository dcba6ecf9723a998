//! The LiteLLM-compatible HTTP face of the management service: `/key/*`, `/user/*`,
//! `/team/*` and `/usage`, with LiteLLM's request and response shapes.

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tollgate_api::{ApiError, ErrorCode};
use tollgate_auth::{Manage, Principal};

use super::input::{KeyChanges, MemberInput, TeamChanges, UserChanges};
use super::service::{Caller, Service, UsageQuery};
use crate::respond;

/// Answers one management request. `body` is the request body (empty for GETs).
pub(crate) async fn handle(
    service: &Service,
    op: Manage,
    principal: &Principal,
    parts: &Parts,
    body: &[u8],
) -> Result<Response, ApiError> {
    let caller = match principal.identity() {
        Some(identity) if !principal.is_admin() => Caller::Key(identity),
        _ => Caller::Admin,
    };
    let value = match op {
        Manage::KeyGenerate => {
            let (key, view) = service.generate_key(parse(body)?).await?;
            let mut out = to_object(&view);
            out.insert("key".into(), Value::String(key));
            Value::Object(out)
        }
        Manage::KeyUpdate => to_value(&service.update_key(parse::<KeyChanges>(body)?).await?),
        Manage::KeyDelete => {
            #[derive(Deserialize)]
            struct Delete {
                #[serde(default)]
                keys: Vec<String>,
                #[serde(default)]
                key_aliases: Vec<String>,
            }
            let d: Delete = parse(body)?;
            if d.keys.is_empty() && d.key_aliases.is_empty() {
                return Err(ApiError::invalid_field(
                    "keys",
                    "give `keys` or `key_aliases`",
                ));
            }
            let deleted = service.delete_keys(d.keys, d.key_aliases).await?;
            // LiteLLM echoes what it was given.
            let given: Vec<String> = deleted.into_iter().map(|(_, given)| given).collect();
            json!({ "deleted_keys": given })
        }
        Manage::KeyInfo => {
            #[derive(Deserialize)]
            struct Q {
                key: Option<String>,
            }
            let q: Q = query(parts)?;
            let view = service.key_info(caller, q.key.as_deref()).await?;
            // LiteLLM echoes what was asked for; for "myself" that is the token, never the key.
            let asked = q
                .key
                .map_or_else(|| view.token.clone(), |k| redacted(&k, &view.token));
            json!({ "key": asked, "info": view })
        }
        Manage::KeyList => {
            #[derive(Deserialize)]
            struct Q {
                user_id: Option<String>,
                team_id: Option<String>,
                key_alias: Option<String>,
                #[serde(default)]
                return_full_object: bool,
                page: Option<usize>,
                size: Option<usize>,
            }
            let q: Q = query(parts)?;
            let all = service
                .list_keys(
                    q.user_id.as_deref(),
                    q.team_id.as_deref(),
                    q.key_alias.as_deref(),
                )
                .await?;
            let size = q.size.unwrap_or(100).clamp(1, 1000);
            let page = q.page.unwrap_or(1).max(1);
            let total = all.len();
            let keys: Vec<Value> = all
                .into_iter()
                .skip((page - 1) * size)
                .take(size)
                .map(|k| {
                    if q.return_full_object {
                        to_value(&k)
                    } else {
                        Value::String(k.token)
                    }
                })
                .collect();
            json!({
                "keys": keys,
                "total_count": total,
                "current_page": page,
                "total_pages": total.div_ceil(size).max(1),
            })
        }
        Manage::UserNew => {
            let (user, key) = service.new_user(parse::<UserChanges>(body)?).await?;
            let mut out = to_object(&user);
            if let Some((key, view)) = key {
                out.insert("key".into(), Value::String(key));
                out.insert("token".into(), Value::String(view.token));
            }
            Value::Object(out)
        }
        Manage::UserUpdate => to_value(&service.update_user(parse(body)?).await?),
        Manage::UserDelete => {
            #[derive(Deserialize)]
            struct Delete {
                user_ids: Vec<String>,
            }
            let d: Delete = parse(body)?;
            json!({ "deleted_users": service.delete_users(d.user_ids).await? })
        }
        Manage::UserInfo => {
            #[derive(Deserialize)]
            struct Q {
                user_id: Option<String>,
            }
            let q: Q = query(parts)?;
            let id = q
                .user_id
                .ok_or_else(|| ApiError::invalid_field("user_id", "`user_id` is required"))?;
            let (user, keys) = service.user_info(&id).await?;
            json!({ "user_id": id, "user_info": user, "keys": keys, "teams": [] })
        }
        Manage::TeamNew => to_value(&service.new_team(parse::<TeamChanges>(body)?).await?),
        Manage::TeamUpdate => to_value(&service.update_team(parse(body)?).await?),
        Manage::TeamDelete => {
            #[derive(Deserialize)]
            struct Delete {
                team_ids: Vec<String>,
            }
            let d: Delete = parse(body)?;
            json!({ "deleted_teams": service.delete_teams(d.team_ids).await? })
        }
        Manage::TeamInfo => {
            #[derive(Deserialize)]
            struct Q {
                team_id: Option<String>,
            }
            let q: Q = query(parts)?;
            let id = q
                .team_id
                .ok_or_else(|| ApiError::invalid_field("team_id", "`team_id` is required"))?;
            let (team, keys) = service.team_info(&id).await?;
            json!({ "team_id": id, "team_info": team, "keys": keys })
        }
        Manage::TeamMemberAdd => {
            #[derive(Deserialize)]
            #[serde(untagged)]
            enum OneOrMany {
                One(MemberInput),
                Many(Vec<MemberInput>),
            }
            #[derive(Deserialize)]
            struct Add {
                team_id: String,
                member: OneOrMany,
                max_budget_in_team: Option<f64>,
            }
            let a: Add = parse(body)?;
            let members = match a.member {
                OneOrMany::One(m) => vec![m],
                OneOrMany::Many(ms) => ms,
            };
            let budget = a
                .max_budget_in_team
                .map(|usd| super::input::usd_to_nanos("max_budget_in_team", usd))
                .transpose()?;
            to_value(&service.member_add(&a.team_id, members, budget).await?)
        }
        Manage::TeamMemberDelete => {
            #[derive(Deserialize)]
            struct Remove {
                team_id: String,
                user_id: Option<String>,
                #[serde(default)]
                user_ids: Vec<String>,
            }
            let r: Remove = parse(body)?;
            let mut ids = r.user_ids;
            ids.extend(r.user_id);
            to_value(&service.member_delete(&r.team_id, &ids).await?)
        }
        Manage::Usage => {
            let q: UsageQuery = query(parts)?;
            to_value(&service.usage(caller, &q).await?)
        }
    };
    let body = serde_json::to_vec(&value).unwrap_or_default();
    Ok(respond::json(StatusCode::OK, Bytes::from(body)))
}

/// A key given in a query is echoed only as its display form.
fn redacted(asked: &str, token: &str) -> String {
    if asked.starts_with("sk-") {
        tollgate_accounts::key_name(asked)
    } else {
        token.to_owned()
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "the request body is empty; expected a JSON object",
        ));
    }
    let object: serde_json::Map<String, Value> = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("the request body is not a JSON object: {e}"),
        )
    })?;
    serde_json::from_value(Value::Object(object.clone())).map_err(|e| {
        // serde cannot name a field inside a flattened group; find it by trying each field on
        // its own (every management field is optional or checked elsewhere).
        let culprit = object.iter().find(|(name, value)| {
            let alone = serde_json::Map::from_iter([((*name).clone(), (*value).clone())]);
            serde_json::from_value::<T>(Value::Object(alone))
                .is_err_and(|e| !e.to_string().starts_with("missing field"))
        });
        let detail = tollgate_api::redact::scrub(&e.to_string()).into_owned();
        match culprit {
            Some((name, _)) => ApiError::invalid_field(
                name.clone(),
                format!("`{name}` has the wrong type or value: {detail}"),
            ),
            None => ApiError::new(
                ErrorCode::InvalidRequest,
                format!("the request body is not valid: {detail}"),
            ),
        }
    })
}

fn query<T: DeserializeOwned>(parts: &Parts) -> Result<T, ApiError> {
    let raw = parts.uri.query().unwrap_or("");
    serde_urlencoded::from_str(raw).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("the query string is not valid: {e}"),
        )
    })
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn to_object<T: serde::Serialize>(v: &T) -> serde_json::Map<String, Value> {
    match to_value(v) {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}
