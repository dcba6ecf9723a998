//! Virtual keys with budgets and limits, end to end through HTTP: admission holds under
//! concurrency and disconnects (INV-1), spend lands in the right period (INV-3), survives a
//! restart (INV-2), and every refusal says what was wrong.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use serde_json::{Value, json};
use tollgate::NodeOptions;
use tollgate_accounts::ManualClock;

/// Deployments priced exactly like the mock bills (1000 / 2000 nano-USD per token), so the
/// mock's billing log is the ground truth for spend.
const PRICED_YAML: &str = r#"
model_list:
  - model_name: priced
    litellm_params:
      model: openai/mock-gpt
      api_base: MOCK
      api_key: os.environ/UPSTREAM_KEY
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
  - model_name: other
    litellm_params: { model: openai/mock-other, api_base: MOCK, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002 }
    model_info: { access_groups: [beta] }
  - model_name: unpriced
    litellm_params: { model: openai/mock-unpriced, api_base: MOCK }
general_settings: { master_key: sk-test-master-key-0001 }
"#;

const MOCK_PLAIN: &str = "completion_tokens: 5\n";

/// One request as `key`: status, headers, JSON body (Null when not JSON).
async fn call(
    node: &TestNode,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = client().request(method.parse().unwrap(), node.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// `/key/generate` with the master key; returns the key and the response.
async fn generate(node: &TestNode, body: Value) -> (String, Value) {
    let (status, _, out) = call(node, "POST", "/key/generate", Some(MASTER), Some(&body)).await;
    assert_eq!(status, 200, "{out}");
    (out["key"].as_str().unwrap().to_owned(), out)
}

async fn info(node: &TestNode, key: &str) -> Value {
    let (status, _, out) = call(node, "GET", "/key/info", Some(key), None).await;
    assert_eq!(status, 200, "{out}");
    out["info"].clone()
}

fn priced_chat() -> Value {
    json!({"model": "priced", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 5})
}

/// The nano-USD amount written as `$0.000087` after `prefix` in `message`.
fn usd_in(message: &str, prefix: &str) -> u64 {
    let start = message.find(prefix).unwrap() + prefix.len();
    let text: String = message[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let (whole, micros) = text.split_once('.').unwrap();
    whole.parse::<u64>().unwrap() * 1_000_000_000 + micros.parse::<u64>().unwrap() * 1_000
}

async fn billing(mock: &Running) -> Vec<Value> {
    client()
        .get(mock.url("/mock/billing"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn billed_total(mock: &Running) -> (usize, u64) {
    let records = billing(mock).await;
    let sum = records
        .iter()
        .map(|r| r["billed_nano_usd"].as_u64().unwrap())
        .sum();
    (records.len(), sum)
}

async fn setup() -> (Running, TestNode) {
    let mock = start_mock(mock_settings(MOCK_PLAIN)).await;
    let node = start_node(PRICED_YAML, Some(&mock)).await;
    (mock, node)
}

/// The cost of one `priced_chat()`, measured with an unlimited key.
async fn cost_of_one(mock: &Running, node: &TestNode) -> u64 {
    let (probe, _) = generate(node, json!({})).await;
    let (status, _, _) = call(
        node,
        "POST",
        "/v1/chat/completions",
        Some(&probe),
        Some(&priced_chat()),
    )
    .await;
    assert_eq!(status, 200);
    let records = billing(mock).await;
    let cost = records.last().unwrap()["billed_nano_usd"].as_u64().unwrap();
    client().post(mock.url("/mock/reset")).send().await.unwrap();
    cost
}

#[tokio::test]
async fn two_hundred_concurrent_requests_never_overspend() {
    let (mock, node) = setup().await;
    let cost = cost_of_one(&mock, &node).await;
    let budget = 10 * cost;
    let (key, _) = generate(&node, json!({"max_budget": budget as f64 / 1e9})).await;

    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let url = node.url("/v1/chat/completions");
            let key = key.clone();
            tokio::spawn(async move {
                let r = client()
                    .post(url)
                    .bearer_auth(key)
                    .json(&priced_chat())
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            200 => ok += 1,
            400 => {
                assert_eq!(body["error"]["code"], "budget_exceeded", "{body}");
                let message = body["error"]["message"].as_str().unwrap();
                assert!(message.contains("spend $"), "{message}");
                assert!(message.contains("limit $"), "{message}");
                assert!(message.contains("does not reset"), "{message}");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let (calls, billed) = billed_total(&mock).await;
    assert!(ok >= 1, "some requests fit");
    assert_eq!(
        calls, ok,
        "every admitted request reached the upstream once"
    );
    assert!(
        calls <= 10,
        "{calls} upstream calls for a budget that pays for 10"
    );
    assert!(billed <= budget, "billed {billed} > budget {budget}");
    let spend = info(&node, &key).await["spend_nano_usd"].as_u64().unwrap();
    assert_eq!(
        spend, billed,
        "the ledger holds exactly what the provider billed"
    );
}

#[tokio::test]
async fn streams_with_random_disconnects_never_overspend_and_are_all_settled() {
    let (mock, node) = setup().await;
    let cost = cost_of_one(&mock, &node).await;
    let budget = 10 * cost;
    let (key, _) = generate(&node, json!({"max_budget": budget as f64 / 1e9})).await;
    let mut body = priced_chat();
    body["stream"] = json!(true);

    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let url = node.url("/v1/chat/completions");
            let key = key.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let r = client()
                    .post(url)
                    .bearer_auth(key)
                    .header("x-mock-ttft-ms", "30")
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                if status == 200 && i % 2 == 0 {
                    // Hang up after the first chunk (or at once): the gateway must still
                    // settle what the upstream generates.
                    let mut stream = r.bytes_stream();
                    if i % 4 == 0 {
                        let _ = stream.next().await;
                    }
                    return status;
                }
                let _ = r.bytes().await;
                status
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            200 => ok += 1,
            400 => {}
            other => panic!("unexpected {other}"),
        }
    }
    // Settlement of abandoned streams finishes in the background: wait until nothing is held.
    let mut held = u64::MAX;
    for _ in 0..200 {
        let now = info(&node, &key).await;
        held = now["reserved_nano_usd"].as_u64().unwrap();
        if held == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(held, 0, "every reservation settled");
    let (calls, billed) = billed_total(&mock).await;
    assert_eq!(calls, ok);
    assert!(calls <= 10, "{calls} upstream calls");
    let spend = info(&node, &key).await["spend_nano_usd"].as_u64().unwrap();
    assert!(
        spend >= billed,
        "no settlement lost: spend {spend} < billed {billed}"
    );
    assert!(spend <= budget, "spend {spend} > budget {budget}");
}

#[tokio::test]
async fn a_month_boundary_starts_a_new_period_and_each_request_counts_once() {
    // 2026-11-30T23:59:50Z, ten seconds before December.
    let clock = Arc::new(ManualClock::at(1_796_083_190));
    let mock = start_mock(mock_settings(MOCK_PLAIN)).await;
    let options = NodeOptions {
        clock: clock.clone(),
        ..NodeOptions::default()
    };
    let node = start_node_with(PRICED_YAML, Some(&mock), options).await;
    let cost = cost_of_one(&mock, &node).await;
    let body = json!({"model": "priced", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5});
    // Learn the request's worst case from a refusal, then allow one request per period (its
    // worst case fits; a second one on top of the first's spend does not).
    let (key, _) = generate(&node, json!({"max_budget": 0, "budget_duration": "1mo"})).await;
    let (status, _, out) = call(
        &node,
        "POST",
        "/v1/chat/completions",
        Some(&key),
        Some(&body),
    )
    .await;
    assert_eq!(status, 400, "{out}");
    let message = out["error"]["message"].as_str().unwrap();
    let worst = usd_in(message, "this request up to $");
    let budget = worst + cost / 2;
    let (status, _, out) = call(
        &node,
        "POST",
        "/key/update",
        Some(MASTER),
        Some(&json!({"key": key, "max_budget": budget as f64 / 1e9})),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let (status, _, out) = call(
        &node,
        "POST",
        "/v1/chat/completions",
        Some(&key),
        Some(&body),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let november = info(&node, &key).await;
    assert_eq!(november["budget_reset_at"], "2026-12-01T00:00:00Z");
    let first = november["spend_nano_usd"].as_u64().unwrap();
    assert!(first > 0);

    // Still November: the same request no longer fits.
    let (status, _, out) = call(
        &node,
        "POST",
        "/v1/chat/completions",
        Some(&key),
        Some(&body),
    )
    .await;
    assert_eq!(status, 400, "{out}");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("resets at 2026-12-01T00:00:00Z"),
        "{out}"
    );

    clock.set(1_796_083_210); // 2026-12-01T00:00:10Z
    assert_eq!(info(&node, &key).await["spend_nano_usd"], 0, "a new period");
    let (status, _, out) = call(
        &node,
        "POST",
        "/v1/chat/completions",
        Some(&key),
        Some(&body),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let december = info(&node, &key).await;
    assert_eq!(december["spend_nano_usd"].as_u64().unwrap(), first);
    assert_eq!(december["budget_reset_at"], "2027-01-01T00:00:00Z");

    let (status, _, usage) = call(
        &node,
        "GET",
        "/usage?start_date=2026-11-30&end_date=2026-12-01",
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, 200, "{usage}");
    let rows = usage["results"].as_array().unwrap();
    let per_day: Vec<(&str, u64)> = rows
        .iter()
        .map(|r| (r["date"].as_str().unwrap(), r["requests"].as_u64().unwrap()))
        .collect();
    assert_eq!(per_day, [("2026-11-30", 1), ("2026-12-01", 1)]);
    assert_eq!(
        usage["totals"]["spend_nano_usd"].as_u64().unwrap(),
        2 * first
    );
}

#[tokio::test]
async fn spend_and_keys_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mock = start_mock(mock_settings(MOCK_PLAIN)).await;
    let options = || NodeOptions {
        data_dir: Some(dir.path().to_owned()),
        ..NodeOptions::default()
    };
    let node = start_node_with(PRICED_YAML, Some(&mock), options()).await;
    let (key, _) = generate(&node, json!({"max_budget": 1.0, "key_alias": "durable"})).await;
    for _ in 0..3 {
        let (status, _, _) = call(
            &node,
            "POST",
            "/v1/chat/completions",
            Some(&key),
            Some(&priced_chat()),
        )
        .await;
        assert_eq!(status, 200);
    }
    let before = info(&node, &key).await;
    node.server.stop().await.unwrap();

    let node = start_node_with(PRICED_YAML, Some(&mock), options()).await;
    let after = info(&node, &key).await;
    assert_eq!(after["spend_nano_usd"], before["spend_nano_usd"]);
    assert_eq!(after["key_alias"], "durable");
    let (_, billed) = billed_total(&mock).await;
    assert_eq!(after["spend_nano_usd"].as_u64().unwrap(), billed);
}

#[tokio::test]
async fn model_access_is_the_same_for_listing_and_calling() {
    let (_mock, node) = setup().await;
    let (key, _) = generate(&node, json!({"models": ["priced"]})).await;
    let (status, _, list) = call(&node, "GET", "/v1/models", Some(&key), None).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["priced"]);
    let (status, _, _) = call(&node, "GET", "/v1/models/priced", Some(&key), None).await;
    assert_eq!(status, 200, "read-only model route works for a normal key");
    let (status, _, body) = call(&node, "GET", "/v1/models/other", Some(&key), None).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "model_not_allowed");
    let mut chat = priced_chat();
    chat["model"] = json!("other");
    let (status, _, body) = call(
        &node,
        "POST",
        "/v1/chat/completions",
        Some(&key),
        Some(&chat),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.to_string().contains(&key));

    // An access group grants its models.
    let (group_key, _) = generate(&node, json!({"models": ["beta"]})).await;
    let (_, _, list) = call(&node, "GET", "/v1/models", Some(&group_key), None).await;
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["other"]);
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_and_ratelimit_headers() {
    let (_mock, node) = setup().await;
    let (key, _) = generate(&node, json!({"rpm_limit": 2})).await;
    for _ in 0..2 {
        let (status, _, _) = call(
            &node,
            "POST",
            "/v1/chat/completions",
            Some(&key),
            Some(&priced_chat()),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, headers, body) = call(
        &node,
        "POST",
        "/v1/chat/completions",
        Some(&key),
        Some(&priced_chat()),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(headers["x-ratelimit-limit-requests"], "2");
    assert_eq!(headers["x-ratelimit-remaining-requests"], "0");
    assert!(headers.contains_key("x-ratelimit-reset-requests"));

    let (key, _) = generate(&node, json!({"tpm_limit": 10})).await;
    let (status, headers, body) = call(
        &node,
        "POST",
        "/v1/chat/completions",
        Some(&key),
        Some(&priced_chat()),
    )
    .await;
    assert_eq!(
        status, 429,
        "a request estimated above the tpm limit: {body}"
    );
    assert_eq!(headers["x-ratelimit-limit-tokens"], "10");
}

#[tokio::test]
async fn removing_a_budget_with_null_lifts_it() {
    let (_mock, node) = setup().await;
    let (key, _) = generate(&node, json!({"max_budget": 0.0})).await;
    let (status, _, body) = call(
        &node,
        "POST",
        "/v1/chat/completions",
        Some(&key),
        Some(&priced_chat()),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // Omitting max_budget leaves it.
    let (status, _, _) = call(
        &node,
        "POST",
        "/key/update",
        Some(MASTER),
        Some(&json!({"key": key, "key_alias": "x"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = call(
        &node,
        "POST",
        "/v1/chat/completions",
        Some(&key),
        Some(&priced_chat()),
    )
    .await;
    assert_eq!(status, 400);
    // null removes it.
    let (status, _, out) = call(
        &node,
        "POST",
        "/key/update",
        Some(MASTER),
        Some(&json!({"key": key, "max_budget": null})),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["max_budget"], Value::Null);
    let (status, _, _) = call(
        &node,
        "POST",
        "/v1/chat/completions",
        Some(&key),
        Some(&priced_chat()),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_key_with_a_budget_cannot_use_an_unpriced_model() {
    let (mock, node) = setup().await;
    let (key, _) = generate(&node, json!({"max_budget": 10.0})).await;
    let mut chat = priced_chat();
    chat["model"] = json!("unpriced");
    let (status, _, body) = call(
        &node,
        "POST",
        "/v1/chat/completions",
        Some(&key),
        Some(&chat),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no price is known")
    );
    assert_eq!(billed_total(&mock).await.0, 0, "never sent upstream");
    // Without a budget it is allowed (and metered at zero).
    let (free, _) = generate(&node, json!({})).await;
    let (status, _, _) = call(
        &node,
        "POST",
        "/v1/chat/completions",
        Some(&free),
        Some(&chat),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn management_routes_are_admin_only_but_a_key_reads_itself() {
    let (_mock, node) = setup().await;
    let (key, out) = generate(&node, json!({"key_alias": "mine"})).await;
    let token = out["token"].as_str().unwrap().to_owned();
    let (other, _) = generate(&node, json!({})).await;
    // Its own info, with or without naming itself.
    let me = info(&node, &key).await;
    assert_eq!(me["key_alias"], "mine");
    let (status, _, own) = call(
        &node,
        "GET",
        &format!("/key/info?key={key}"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(!own.to_string().contains(&key), "the key is never echoed");
    assert!(!own.to_string().contains(&other));
    // Not someone else's.
    let (status, _, body) = call(
        &node,
        "GET",
        &format!("/key/info?key={other}"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    for (method, path) in [
        ("POST", "/key/generate"),
        ("POST", "/key/update"),
        ("POST", "/key/delete"),
        ("GET", "/key/list"),
        ("POST", "/user/new"),
        ("GET", "/user/info?user_id=x"),
        ("POST", "/team/new"),
        ("POST", "/team/delete"),
    ] {
        let (status, _, body) = call(&node, method, path, Some(&key), Some(&json!({}))).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "route_not_allowed");
        assert!(!body.to_string().contains(&key) && !body.to_string().contains(&token));
    }
    // The master key sees it in the list; deleting makes it 401.
    let (_, _, list) = call(&node, "GET", "/key/list", Some(MASTER), None).await;
    assert!(
        list["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k == &json!(token))
    );
    let (status, _, out) = call(
        &node,
        "POST",
        "/key/delete",
        Some(MASTER),
        Some(&json!({"keys": [key]})),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let (status, _, body) = call(&node, "GET", "/v1/models", Some(&key), None).await;
    assert_eq!(status, 401);
    assert!(!body.to_string().contains(&key));
}

#[tokio::test]
async fn a_proxy_admin_users_key_may_manage() {
    let (_mock, node) = setup().await;
    let (status, _, user) = call(
        &node,
        "POST",
        "/user/new",
        Some(MASTER),
        Some(&json!({"user_id": "ops", "user_role": "proxy_admin"})),
    )
    .await;
    assert_eq!(status, 200, "{user}");
    let admin_key = user["key"].as_str().unwrap();
    let (status, _, out) = call(
        &node,
        "POST",
        "/key/generate",
        Some(admin_key),
        Some(&json!({})),
    )
    .await;
    assert_eq!(status, 200, "{out}");
}

#[tokio::test]
async fn expired_and_blocked_keys_are_refused() {
    let clock = Arc::new(ManualClock::at(1_800_000_000));
    let mock = start_mock(mock_settings(MOCK_PLAIN)).await;
    let node = start_node_with(
        PRICED_YAML,
        Some(&mock),
        NodeOptions {
            clock: clock.clone(),
            ..NodeOptions::default()
        },
    )
    .await;
    let (key, out) = generate(&node, json!({"duration": "1h"})).await;
    assert_eq!(out["expires"], "2027-01-15T09:00:00Z");
    assert_eq!(
        call(&node, "GET", "/v1/models", Some(&key), None).await.0,
        200
    );
    clock.set(1_800_000_000 + 3600);
    let (status, _, body) = call(&node, "GET", "/v1/models", Some(&key), None).await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );

    let (key, _) = generate(&node, json!({"blocked": true})).await;
    let (status, _, body) = call(&node, "GET", "/v1/models", Some(&key), None).await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("blocked")
    );
}

#[tokio::test]
async fn team_budgets_apply_to_team_keys_and_soft_budget_is_flagged() {
    let (mock, node) = setup().await;
    let cost = cost_of_one(&mock, &node).await;
    let (status, _, team) = call(
        &node,
        "POST",
        "/team/new",
        Some(MASTER),
        Some(&json!({"team_id": "t1", "team_alias": "Team One", "max_budget": 0.0})),
    )
    .await;
    assert_eq!(status, 200, "{team}");
    let (key, _) = generate(&node, json!({"team_id": "t1", "max_budget": 10.0})).await;
    let (status, _, body) = call(
        &node,
        "POST",
        "/v1/chat/completions",
        Some(&key),
        Some(&priced_chat()),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("team budget exceeded"),
        "{body}"
    );
    // Lift the team budget; the key's soft budget is crossed by one request.
    let (status, _, _) = call(
        &node,
        "POST",
        "/team/update",
        Some(MASTER),
        Some(&json!({"team_id": "t1", "max_budget": null})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = call(
        &node,
        "POST",
        "/key/update",
        Some(MASTER),
        Some(&json!({"key": key, "soft_budget": (cost / 2) as f64 / 1e9})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(info(&node, &key).await["soft_budget_cooldown"], false);
    let (status, _, _) = call(
        &node,
        "POST",
        "/v1/chat/completions",
        Some(&key),
        Some(&priced_chat()),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(info(&node, &key).await["soft_budget_cooldown"], true);
    let (status, _, team) = call(&node, "GET", "/team/info?team_id=t1", Some(MASTER), None).await;
    assert_eq!(status, 200);
    assert_eq!(team["team_info"]["spend_nano_usd"].as_u64().unwrap(), cost);
}

#[tokio::test]
async fn bad_management_input_gets_a_clear_400() {
    let (_mock, node) = setup().await;
    for (body, needle) in [
        (json!({"max_budget": -1}), "max_budget"),
        (json!({"budget_duration": "fortnight"}), "duration"),
        (json!({"rpm_limit": "lots"}), "rpm_limit"),
        (json!({"team_id": "nope"}), "no team"),
    ] {
        let (status, _, out) =
            call(&node, "POST", "/key/generate", Some(MASTER), Some(&body)).await;
        assert_eq!(status, 400, "{body}: {out}");
        assert!(
            out["error"]["message"].as_str().unwrap().contains(needle),
            "{out}"
        );
    }
    let response = client()
        .post(node.url("/key/generate"))
        .bearer_auth(MASTER)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}
