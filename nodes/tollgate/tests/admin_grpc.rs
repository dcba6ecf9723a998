//! The gRPC admin API (`tollgate.admin.v1.Admin`) over the same management layer as the HTTP
//! routes: keys made over gRPC work over HTTP, spend agrees, limits clear, auth is enforced.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use common::*;
use serde_json::json;
use tollgate::{AdminListen, NodeOptions};
use tollgate_proto::admin::v1 as pb;
use tonic::Code;
use tonic::metadata::MetadataValue;

const YAML: &str = r#"
model_list:
  - model_name: priced
    litellm_params: { model: openai/mock-gpt, api_base: MOCK, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002 }
general_settings: { master_key: sk-test-master-key-0001 }
"#;

type Interceptor =
    Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>;
type Client = pb::admin_client::AdminClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Interceptor>,
>;

async fn client(node: &TestNode, key: Option<&str>) -> Client {
    let addr = node.admin.unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let bearer: Option<MetadataValue<_>> = key.map(|k| format!("Bearer {k}").parse().unwrap());
    let interceptor: Interceptor = Box::new(move |mut r: tonic::Request<()>| {
        if let Some(b) = &bearer {
            r.metadata_mut().insert("authorization", b.clone());
        }
        Ok(r)
    });
    pb::admin_client::AdminClient::with_interceptor(channel, interceptor)
}

fn set(n: u64) -> Option<pb::NumberChange> {
    Some(pb::NumberChange {
        change: Some(pb::number_change::Change::Set(n)),
    })
}

async fn setup() -> (Running, TestNode) {
    let mock = start_mock(mock_settings("completion_tokens: 5\n")).await;
    let options = NodeOptions {
        admin: AdminListen::At("127.0.0.1:0".parse().unwrap()),
        ..NodeOptions::default()
    };
    let node = start_node_with(YAML, Some(&mock), options).await;
    (mock, node)
}

#[tokio::test]
async fn a_key_made_over_grpc_works_over_http_and_spend_agrees() {
    let (_mock, node) = setup().await;
    let mut admin = client(&node, Some(MASTER)).await;
    let made = admin
        .generate_key(pb::GenerateKeyRequest {
            key: None,
            settings: Some(pb::KeySettings {
                key_alias: Some(pb::TextChange {
                    change: Some(pb::text_change::Change::Set("grpc-key".into())),
                }),
                limits: Some(pb::LimitChanges {
                    max_budget_nano_usd: set(5_000_000_000),
                    budget_duration: Some(pb::TextChange {
                        change: Some(pb::text_change::Change::Set("1mo".into())),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let key = made.key;
    let info = made.info.unwrap();
    assert_eq!(
        info.limits.as_ref().unwrap().max_budget_nano_usd,
        Some(5_000_000_000)
    );

    let response = common::client()
        .post(node.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&json!({"model": "priced", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let over_grpc = admin
        .get_key(pb::GetKeyRequest { key: key.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(
        !format!("{over_grpc:?}").contains(&key),
        "only GenerateKey shows the key"
    );
    let spend = over_grpc.limits.unwrap().spend_nano_usd;
    assert!(spend > 0);
    let over_http: serde_json::Value = common::client()
        .get(node.url("/key/info"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http["info"]["spend_nano_usd"].as_u64(), Some(spend));

    // Unset leaves the budget; clear removes it.
    let updated = admin
        .update_key(pb::UpdateKeyRequest {
            key: key.clone(),
            settings: Some(pb::KeySettings {
                limits: Some(pb::LimitChanges {
                    rpm_limit: set(100),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let limits = updated.limits.unwrap();
    assert_eq!(
        (limits.max_budget_nano_usd, limits.rpm_limit),
        (Some(5_000_000_000), Some(100))
    );
    let cleared = admin
        .update_key(pb::UpdateKeyRequest {
            key: info.token.clone(),
            settings: Some(pb::KeySettings {
                limits: Some(pb::LimitChanges {
                    max_budget_nano_usd: Some(pb::NumberChange {
                        change: Some(pb::number_change::Change::Clear(true)),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cleared.limits.unwrap().max_budget_nano_usd, None);

    let usage = admin
        .get_usage(pb::GetUsageRequest {
            entity: Some(pb::get_usage_request::Entity::Key(key.clone())),
            start_date: None,
            end_date: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((usage.requests, usage.spend_nano_usd), (1, spend));

    let deleted = admin
        .delete_keys(pb::DeleteKeysRequest {
            keys: vec![key.clone()],
            key_aliases: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        deleted.deleted_tokens,
        vec![info.token.clone()],
        "tokens, not keys"
    );
    let err = admin
        .delete_keys(pb::DeleteKeysRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "nothing to delete");
    let status = common::client()
        .get(node.url("/v1/models"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_admin_api_needs_an_admin_key() {
    let (_mock, node) = setup().await;
    let mut anonymous = client(&node, None).await;
    let err = anonymous
        .list_keys(pb::ListKeysRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let mut wrong = client(&node, Some("sk-not-a-real-key-1")).await;
    let err = wrong
        .list_keys(pb::ListKeysRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(!err.message().contains("sk-not-a-real-key-1"));

    let mut admin = client(&node, Some(MASTER)).await;
    let internal = admin
        .create_user(pb::CreateUserRequest {
            user_id: Some("dev".into()),
            settings: None,
            auto_create_key: None,
        })
        .await
        .unwrap()
        .into_inner();
    let internal_key = internal.key.unwrap();
    let mut as_internal = client(&node, Some(&internal_key)).await;
    let err = as_internal
        .list_keys(pb::ListKeysRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(!err.message().contains(&internal_key));

    let ops = admin
        .create_user(pb::CreateUserRequest {
            user_id: Some("ops".into()),
            settings: Some(pb::UserSettings {
                user_role: Some("proxy_admin".into()),
                ..Default::default()
            }),
            auto_create_key: None,
        })
        .await
        .unwrap()
        .into_inner();
    let mut as_ops = client(&node, Some(&ops.key.unwrap())).await;
    let listed = as_ops
        .list_keys(pb::ListKeysRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.keys.len(), 2, "the two users' keys");

    let err = admin
        .get_team(pb::GetTeamRequest {
            team_id: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = admin
        .generate_key(pb::GenerateKeyRequest {
            key: None,
            settings: Some(pb::KeySettings {
                limits: Some(pb::LimitChanges {
                    budget_duration: Some(pb::TextChange {
                        change: Some(pb::text_change::Change::Set("fortnight".into())),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn the_admin_api_stops_taking_calls_at_the_shutdown_signal() {
    // The chat answer takes 1.5 s, so the node is still draining it while we look.
    let mock = start_mock(mock_settings("latency_ms: 1500")).await;
    let options = NodeOptions {
        admin: AdminListen::At("127.0.0.1:0".parse().unwrap()),
        ..NodeOptions::default()
    };
    let mut node = start_node_with(YAML, Some(&mock), options).await;
    let addr = node.admin.unwrap();
    client(&node, Some(MASTER))
        .await
        .list_keys(pb::ListKeysRequest::default())
        .await
        .unwrap();
    let request = common::client()
        .post(node.url("/v1/chat/completions"))
        .bearer_auth(MASTER)
        .json(&chat_body("priced"))
        .send();
    let in_flight = tokio::spawn(async move { request.await.unwrap().status() });
    eventually(|| node.outcomes.in_flight() == 1).await;
    let scraped = common::client()
        .get(node.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let gauge = scraped
        .lines()
        .find(|line| line.starts_with("tollgate_requests_in_flight "))
        .unwrap_or_else(|| panic!("no in-flight gauge in {scraped}"));
    assert_eq!(
        gauge, "tollgate_requests_in_flight 2",
        "the chat and this scrape"
    );

    node.server.signal_stop();
    let refused = async {
        loop {
            let connected = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect()
                .await;
            if connected.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(1), refused)
        .await
        .expect("the admin listener closes at the signal, not after the drain");
    assert_eq!(node.outcomes.in_flight(), 1, "still draining");
    assert_eq!(in_flight.await.unwrap(), 200);
    let result = node.server.task.take().unwrap().await.unwrap();
    assert!(result.is_ok(), "{result:?}");
}

fn text(s: &str) -> Option<pb::TextChange> {
    Some(pb::TextChange {
        change: Some(pb::text_change::Change::Set(s.into())),
    })
}

fn clear() -> Option<pb::NumberChange> {
    Some(pb::NumberChange {
        change: Some(pb::number_change::Change::Clear(true)),
    })
}

#[tokio::test]
async fn users_and_teams_round_trip_over_grpc_and_agree_with_http() {
    let (_mock, node) = setup().await;
    let mut admin = client(&node, Some(MASTER)).await;
    let made = admin
        .create_user(pb::CreateUserRequest {
            user_id: Some("ann".into()),
            settings: Some(pb::UserSettings {
                user_email: text("ann@example.com"),
                limits: Some(pb::LimitChanges {
                    max_budget_nano_usd: set(2_000_000_000),
                    tpm_limit: set(1000),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            auto_create_key: Some(false),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((made.key, made.key_info), (None, None), "no key asked for");
    let user = made.user.unwrap();
    assert_eq!(user.user_role, "internal_user");
    assert_eq!(user.user_email.as_deref(), Some("ann@example.com"));

    let team = admin
        .create_team(pb::CreateTeamRequest {
            team_id: Some("core".into()),
            settings: Some(pb::TeamSettings {
                team_alias: text("Core"),
                models: Some(pb::StringList {
                    values: vec!["priced".into()],
                }),
                limits: Some(pb::LimitChanges {
                    max_budget_nano_usd: set(9_000_000_000),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            members: vec![pb::Member {
                user_id: "ann".into(),
                role: "admin".into(),
                max_budget_in_team_nano_usd: Some(1_500_000_000),
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        team.members,
        [pb::Member {
            user_id: "ann".into(),
            role: "admin".into(),
            max_budget_in_team_nano_usd: Some(1_500_000_000),
        }]
    );
    let team = admin
        .add_team_members(pb::AddTeamMembersRequest {
            team_id: "core".into(),
            members: vec![pb::Member {
                user_id: "bob".into(),
                role: String::new(),
                max_budget_in_team_nano_usd: None,
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(team.members.len(), 2);
    assert_eq!(team.members[1].role, "user", "the default role");

    // What HTTP shows is what gRPC shows.
    let http: serde_json::Value = common::client()
        .get(node.url("/team/info?team_id=core"))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let info = &http["team_info"];
    assert_eq!(info["max_budget_nano_usd"], 9_000_000_000u64);
    assert_eq!(
        info["members_with_roles"][0]["max_budget_in_team_nano_usd"],
        1_500_000_000u64
    );
    assert_eq!(info["team_alias"], "Core");

    let team = admin
        .update_team(pb::UpdateTeamRequest {
            team_id: "core".into(),
            settings: Some(pb::TeamSettings {
                limits: Some(pb::LimitChanges {
                    max_budget_nano_usd: clear(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let limits = team.limits.unwrap();
    assert_eq!(limits.max_budget_nano_usd, None, "cleared");
    assert_eq!(team.models, ["priced"], "unchanged");
    let team = admin
        .remove_team_members(pb::RemoveTeamMembersRequest {
            team_id: "core".into(),
            user_ids: vec!["bob".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(team.members.len(), 1);

    let user = admin
        .update_user(pb::UpdateUserRequest {
            user_id: "ann".into(),
            settings: Some(pb::UserSettings {
                limits: Some(pb::LimitChanges {
                    tpm_limit: clear(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let limits = user.limits.unwrap();
    assert_eq!(
        (limits.max_budget_nano_usd, limits.tpm_limit),
        (Some(2_000_000_000), None)
    );
    let got = admin
        .get_user(pb::GetUserRequest {
            user_id: "ann".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.user.unwrap().limits, Some(limits));

    let deleted = admin
        .delete_teams(pb::DeleteTeamsRequest {
            team_ids: vec!["core".into(), "never-was".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.deleted, ["core"]);
    let deleted = admin
        .delete_users(pb::DeleteUsersRequest {
            user_ids: vec!["ann".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.deleted, ["ann"]);
    let err = admin
        .get_user(pb::GetUserRequest {
            user_id: "ann".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn a_bad_member_adds_nobody() {
    let (_mock, node) = setup().await;
    let mut admin = client(&node, Some(MASTER)).await;
    admin
        .create_team(pb::CreateTeamRequest {
            team_id: Some("t".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let member = |id: &str, role: &str| pb::Member {
        user_id: id.into(),
        role: role.into(),
        max_budget_in_team_nano_usd: None,
    };
    let err = admin
        .add_team_members(pb::AddTeamMembersRequest {
            team_id: "t".into(),
            members: vec![member("a", "user"), member("b", "owner")],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("owner"), "{}", err.message());
    let team = admin
        .get_team(pb::GetTeamRequest {
            team_id: "t".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .team
        .unwrap();
    assert!(team.members.is_empty(), "{:?}", team.members);
    let err = admin
        .add_team_members(pb::AddTeamMembersRequest {
            team_id: "nope".into(),
            members: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}
