//! Config-defined pass-through endpoints: who may call them, what goes upstream (never the
//! caller's gateway key), what comes back (streamed), and how each call is recorded.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use common::*;
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// `ECHO` is the echo server's base URL, `MOCK` the mock provider's (`.../v1`).
const YAML: &str = r#"
router_settings: { timeout: 1 }
general_settings:
  master_key: sk-test-master-key-0001
  max_request_size_mb: 1
  pass_through_endpoints:
    - path: /vendor/echo
      target: "ECHO/base?fixed=1"
      include_subpath: true
      auth: true
      forward_headers: true
      headers:
        Authorization: "Bearer os.environ/UPSTREAM_KEY"
        x-vendor-key: os.environ/UPSTREAM_KEY
    - { path: /open/echo, target: "ECHO/open", auth: false }
    - path: /vendor/chat
      target: "MOCK/chat/completions"
      auth: true
      headers: { authorization: "Bearer os.environ/UPSTREAM_KEY" }
    - { path: /dead, target: "http://127.0.0.1:1/x?key=dead-target-secret", headers: { x-k: dead-header-secret } }
    - { path: /slow, target: "ECHO/slow" }
"#;

/// The gateway keys a caller may present, in every header the gateway reads one from.
const KEY_HEADERS: [&str; 4] = ["authorization", "x-api-key", "api-key", "x-litellm-api-key"];

/// A server that answers every request with what it received, as JSON. `/status/N` answers
/// status N with a marker header; `/slow` answers after 5 s.
async fn start_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(echo);
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn echo(request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    if path.ends_with("/slow") {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    if let Some(code) = path.rsplit_once("/status/").map(|(_, c)| c) {
        let mut response = Response::new(Body::from("custom body"));
        *response.status_mut() = code.parse::<u16>().unwrap().try_into().unwrap();
        response
            .headers_mut()
            .insert("x-upstream-marker", "kept".parse().unwrap());
        return response;
    }
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &parts.headers {
        headers
            .entry(name.to_string())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        let mut response = Response::new(Body::from("incomplete body"));
        *response.status_mut() = axum::http::StatusCode::BAD_REQUEST;
        return response;
    };
    let echoed = json!({
        "method": parts.method.as_str(),
        "path": path,
        "query": parts.uri.query(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let mut response = Response::new(Body::from(echoed.to_string()));
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}

async fn setup() -> (Running, TestNode) {
    let echo = start_echo().await;
    let mock = start_mock(mock_settings(&format!(
        "api_keys: [{UPSTREAM_KEY}]\ntokens_per_second: 40"
    )))
    .await;
    let yaml = YAML.replace("ECHO", &format!("http://{echo}"));
    let node = start_node(&yaml, Some(&mock)).await;
    (mock, node)
}

/// Sends `method path` with `key` (if any) in `Authorization: Bearer`; returns status,
/// headers and the body as JSON (`Value::String` when it is not JSON).
async fn call(
    node: &TestNode,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut builder = client().request(method, node.url(path));
    if let Some(key) = key {
        builder = builder.bearer_auth(key);
    }
    if let Some(body) = body {
        builder = builder.body(body.to_owned());
    }
    let response = builder.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, headers, body)
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn an_auth_endpoint_wants_a_valid_key() {
    let (_mock, node) = setup().await;
    let (status, _, body) = call(&node, Method::GET, "/vendor/echo", None, None).await;
    assert_eq!((status, error_code(&body)), (401, "invalid_api_key"));
    let (status, _, body) = call(
        &node,
        Method::GET,
        "/vendor/echo/x",
        Some("sk-not-a-key-00"),
        None,
    )
    .await;
    assert_eq!((status, error_code(&body)), (401, "invalid_api_key"));
    assert!(!body.to_string().contains("sk-not-a-key-00"), "{body}");
    let (status, _, body) = call(&node, Method::GET, "/vendor/echo", Some(MASTER), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["path"], "/base");

    // Any valid key, not only admin (LiteLLM made these admin-only).
    let (status, _, generated) = call(
        &node,
        Method::POST,
        "/key/generate",
        Some(MASTER),
        Some(r#"{"key_alias": "plain-user"}"#),
    )
    .await;
    assert_eq!(status, 200, "{generated}");
    let user_key = generated["key"].as_str().unwrap().to_owned();
    let (status, _, body) = call(&node, Method::GET, "/vendor/echo", Some(&user_key), None).await;
    assert_eq!(
        status, 200,
        "a non-admin key may call an auth: true endpoint: {body}"
    );
    assert!(
        !body.to_string().contains(&user_key),
        "the caller's key never goes upstream"
    );
    let (status, _, _) = call(
        &node,
        Method::POST,
        "/key/generate",
        Some(&user_key),
        Some("{}"),
    )
    .await;
    assert_eq!(status, 403, "while management stays admin-only");
}

#[tokio::test]
async fn the_upstream_gets_the_configured_headers_and_never_the_callers_key() {
    let (_mock, node) = setup().await;
    let mut builder = client()
        .put(node.url("/vendor/echo/sub/path?a=1&b=two"))
        .header("x-custom", "forwarded")
        .header("content-type", "text/plain")
        .body("the body");
    for header in KEY_HEADERS {
        let value = if header == "authorization" {
            format!("Bearer {MASTER}")
        } else {
            MASTER.to_owned()
        };
        builder = builder.header(header, value);
    }
    let response = builder.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    let echoed: Value = response.json().await.unwrap();

    assert_eq!(echoed["method"], "PUT");
    assert_eq!(echoed["path"], "/base/sub/path");
    assert_eq!(echoed["query"], "fixed=1&a=1&b=two");
    assert_eq!(echoed["body"], "the body");
    let headers = &echoed["headers"];
    assert_eq!(
        headers["authorization"],
        json!([format!("Bearer {UPSTREAM_KEY}")]),
        "the configured header, resolved from the environment, replaces the caller's"
    );
    assert_eq!(headers["x-vendor-key"], json!([UPSTREAM_KEY]));
    assert_eq!(headers["x-custom"], json!(["forwarded"]));
    assert_eq!(headers["content-type"], json!(["text/plain"]));
    assert_eq!(headers["content-length"], json!(["8"]));
    for header in &KEY_HEADERS[1..] {
        assert!(headers.get(header).is_none(), "{header} went upstream");
    }
    assert!(
        !echoed.to_string().contains(MASTER),
        "the gateway key went upstream: {echoed}"
    );
}

#[tokio::test]
async fn every_method_is_forwarded_and_the_upstream_status_and_headers_come_back() {
    let (_mock, node) = setup().await;
    for method in [
        Method::GET,
        Method::POST,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ] {
        let (status, _, body) =
            call(&node, method.clone(), "/vendor/echo/m", Some(MASTER), None).await;
        assert_eq!(status, 200);
        assert_eq!(body["method"], method.as_str());
    }
    let (status, headers, _) = call(&node, Method::HEAD, "/vendor/echo", Some(MASTER), None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");

    let (status, headers, body) = call(
        &node,
        Method::POST,
        "/vendor/echo/status/418",
        Some(MASTER),
        None,
    )
    .await;
    assert_eq!(status, 418);
    assert_eq!(headers["x-upstream-marker"], "kept");
    assert_eq!(body, "custom body");
    let (status, _, _) = call(
        &node,
        Method::GET,
        "/vendor/echo/status/204",
        Some(MASTER),
        None,
    )
    .await;
    assert_eq!(status, 204);
    eventually(|| node.outcomes.total() == 8 && node.outcomes.in_flight() == 0).await;
    let mut recorded: BTreeMap<u16, u64> = BTreeMap::new();
    for (key, n) in node.outcomes.snapshot() {
        *recorded.entry(key.status).or_default() += n;
    }
    assert_eq!(
        recorded,
        BTreeMap::from([(200, 6), (204, 1), (418, 1)]),
        "bodiless answers (HEAD, 204) are recorded with their status, not as hang-ups"
    );
}

#[tokio::test]
async fn a_public_endpoint_needs_no_key() {
    let (_mock, node) = setup().await;
    let (status, _, body) = call(&node, Method::POST, "/open/echo", None, Some("{}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["path"], "/open");
    assert_eq!(body["body"], "{}");
    // Without forward_headers only the body's own description goes upstream.
    let (status, _, body) = call(&node, Method::GET, "/open/echo", Some(MASTER), None).await;
    assert_eq!(status, 200);
    assert!(body["headers"].get("authorization").is_none(), "{body}");
    let (status, _, _) = call(&node, Method::GET, "/open/echo/below", None, None).await;
    assert_eq!(status, 404, "no include_subpath: only the exact path");
}

#[tokio::test]
async fn a_stream_passes_through_chunk_by_chunk() {
    let (mock, node) = setup().await;
    let mut body = stream_body("mock-gpt");
    body["max_tokens"] = json!(20);
    let response = client()
        .post(node.url("/vendor/chat"))
        .bearer_auth(MASTER)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "), "{first:?}");
    // The mock paces 20 tokens at 40/s: the first event is here long before the last, and
    // the outcome waits for the end of the body.
    assert_eq!(node.outcomes.total(), 0, "recorded before the body ended");
    let mut text = String::from_utf8(first.to_vec()).unwrap();
    while let Some(chunk) = stream.next().await {
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    let events = sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
    let direct = client()
        .post(format!("http://{}/v1/chat/completions", mock.addr))
        .bearer_auth(UPSTREAM_KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        events.len(),
        sse_data(&direct).len(),
        "every event arrives: {text}"
    );
    assert!(events.len() > 10, "{text}");
    eventually(|| node.outcomes.total() == 1).await;
    let (key, n) = node.outcomes.snapshot().remove(0);
    assert_eq!((key.status, key.route, n), (200, "/vendor/chat", 1));
}

#[tokio::test]
async fn a_client_that_hangs_up_midstream_is_recorded_as_499() {
    let (_mock, node) = setup().await;
    let mut body = stream_body("mock-gpt");
    body["max_tokens"] = json!(100);
    let response = client()
        .post(node.url("/vendor/chat"))
        .bearer_auth(MASTER)
        .json(&body)
        .send()
        .await
        .unwrap();
    let mut stream = response.bytes_stream();
    assert!(!stream.next().await.unwrap().unwrap().is_empty());
    drop(stream);
    eventually(|| node.outcomes.total() == 1).await;
    let snapshot = node.outcomes.snapshot();
    assert_eq!(snapshot[0].0.status, 499, "{snapshot:?}");
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let (_mock, node) = setup().await;
    let big = "x".repeat((1 << 20) + 1);
    let (status, _, body) = call(&node, Method::POST, "/open/echo", None, Some(&big)).await;
    assert_eq!((status, error_code(&body)), (413, "request_too_large"));

    // Without Content-Length, the limit is found while streaming upstream.
    let chunks = (0..40).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 64 * 1024]));
    let response = client()
        .post(node.url("/open/echo"))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "request_too_large");

    // Just under the limit, streamed, goes through whole.
    let chunks = (0..16).map(|_| Ok::<_, std::io::Error>(vec![b'z'; 64 * 1024]));
    let response = client()
        .post(node.url("/open/echo"))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["body"].as_str().unwrap().len(), 1 << 20);
}

#[tokio::test]
async fn an_unreachable_target_is_502_and_a_silent_one_504_without_secrets() {
    let (_mock, node) = setup().await;
    let (status, _, body) = call(&node, Method::GET, "/dead", Some(MASTER), None).await;
    assert_eq!((status, error_code(&body)), (502, "upstream_error"));
    let text = body.to_string();
    assert!(text.contains("/dead"), "names the endpoint: {text}");
    for secret in [
        "dead-target-secret",
        "dead-header-secret",
        MASTER,
        "127.0.0.1:1",
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let (status, _, body) = call(&node, Method::GET, "/slow", None, None).await;
    assert_eq!((status, error_code(&body)), (504, "upstream_timeout"));
}

#[tokio::test]
async fn each_call_is_recorded_once_under_the_configured_path() {
    let (_mock, node) = setup().await;
    call(&node, Method::GET, "/vendor/echo", Some(MASTER), None).await;
    call(&node, Method::POST, "/vendor/echo/a/b", Some(MASTER), None).await;
    call(&node, Method::GET, "/vendor/echo/a", None, None).await;
    call(&node, Method::GET, "/open/echo", None, None).await;
    call(&node, Method::GET, "/dead", None, None).await;
    eventually(|| node.outcomes.total() == 5 && node.outcomes.in_flight() == 0).await;
    let mut recorded: Vec<(&str, u16, u64)> = node
        .outcomes
        .snapshot()
        .iter()
        .map(|(k, n)| (k.route, k.status, *n))
        .collect();
    recorded.sort_unstable();
    assert_eq!(
        recorded,
        [
            ("/dead", 502, 1),
            ("/open/echo", 200, 1),
            ("/vendor/echo", 200, 2),
            ("/vendor/echo", 401, 1),
        ]
    );
}

#[tokio::test]
async fn a_path_that_shadows_a_built_in_route_is_refused_at_startup() {
    let yaml = r#"
general_settings:
  pass_through_endpoints:
    - { path: /ok, target: "http://127.0.0.1:1" }
    - { path: /v1, target: "http://127.0.0.1:1", include_subpath: true }
"#;
    let loaded =
        tollgate_config::load_str(yaml, "t.yaml", &tollgate_config::MapEnv::default()).unwrap();
    let error = tollgate::check_routes(&loaded.config)
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("general_settings.pass_through_endpoints[1].path: `/v1` would shadow"),
        "{error}"
    );
    let node = tollgate::Node::new(loaded.config, tollgate::NodeOptions::default()).await;
    assert!(node.is_err());
}
