//! The OpenAI-compatible surface, through a real node and a real mock provider over HTTP.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn chat_non_stream_passes_the_upstream_answer_through() {
    let (_mock, node) = standard().await;
    let (status, headers, body) = post(&node, "/v1/chat/completions", &chat_body("gpt-test")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "mock-gpt", "the upstream model answered");
    assert_eq!(body["usage"]["completion_tokens"], 5, "max_tokens honoured");
    assert_eq!(headers["x-tollgate-model-group"], "gpt-test");
    assert_eq!(headers["x-tollgate-deployment"], "dep-a");
    assert_eq!(headers["x-tollgate-attempts"], "1");
    assert!(headers.contains_key("x-request-id"));
    // The same route without /v1.
    let (status, _, _) = post(&node, "/chat/completions", &chat_body("gpt-test")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn chat_stream_drops_the_usage_chunk_unless_asked() {
    let (_mock, node) = standard().await;
    let mut body = stream_body("gpt-test");
    let response = send_chat(&node, &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    let events = sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
    let chunks: Vec<serde_json::Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| !c["choices"].as_array().unwrap().is_empty()),
        "no usage-only chunk: {text}"
    );
    assert!(chunks.iter().all(|c| !c["usage"].is_object()), "{text}");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content.split_whitespace().count(), 5, "{content}");

    body["stream_options"] = json!({"include_usage": true});
    let text = send_chat(&node, &body).await.text().await.unwrap();
    let events = sse_data(&text);
    let usage_chunk: serde_json::Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage_chunk["choices"], json!([]), "{text}");
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 5);
}

#[tokio::test]
async fn completions_and_embeddings() {
    let (_mock, node) = standard().await;
    let (status, _, body) = post(
        &node,
        "/v1/completions",
        &json!({"model": "gpt-test", "prompt": "say something", "max_tokens": 3}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["usage"]["completion_tokens"], 3);
    let (status, _, body) = post(
        &node,
        "/embeddings",
        &json!({"model": "embed-test", "input": ["a", "b"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn models_list_and_retrieve() {
    let (_mock, node) = standard().await;
    let get = |path: &str| client().get(node.url(path)).bearer_auth(MASTER).send();
    let list: serde_json::Value = get("/v1/models").await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.first(), Some(&"gpt-test"));
    assert!(ids.contains(&"org/with-slash"));
    assert_eq!(list["object"], "list");

    let one = get("/v1/models/gpt-test").await.unwrap();
    assert_eq!(one.status(), 200);
    let one: serde_json::Value = one.json().await.unwrap();
    assert_eq!(one["id"], "gpt-test");
    assert_eq!(one["object"], "model");
    let slash = get("/models/org/with-slash").await.unwrap();
    assert_eq!(slash.status(), 200);
    let missing = get("/v1/models/nope").await.unwrap();
    assert_eq!(missing.status(), 404);
    let missing: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(missing["error"]["code"], "model_not_found");
}

#[tokio::test]
async fn the_builtin_mock_provider_answers_in_process() {
    let yaml = format!(
        "model_list:\n  - model_name: local-mock\n    litellm_params: {{ model: mock/local, mock_response: \"canned answer\" }}\n  - model_name: org/with-slash\n    litellm_params: {{ model: mock/x }}\ngeneral_settings: {{ master_key: {MASTER} }}\n"
    );
    let node = start_node(&yaml, None).await;
    let (status, _, body) = post(&node, "/v1/chat/completions", &chat_body("local-mock")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "canned answer");
    let first = post(&node, "/v1/chat/completions", &chat_body("org/with-slash"))
        .await
        .2;
    let second = post(&node, "/v1/chat/completions", &chat_body("org/with-slash"))
        .await
        .2;
    assert_eq!(first["choices"], second["choices"], "deterministic");
}

#[tokio::test]
async fn every_key_header_form_is_accepted() {
    let (_mock, node) = standard().await;
    for (name, value) in [
        ("authorization", format!("Bearer {MASTER}")),
        ("x-api-key", MASTER.to_owned()),
        ("api-key", MASTER.to_owned()),
        ("x-litellm-api-key", MASTER.to_owned()),
    ] {
        let status = client()
            .get(node.url("/v1/models"))
            .header(name, value)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "{name}");
    }
}

#[tokio::test]
async fn health_is_public() {
    let (_mock, node) = standard().await;
    for path in ["/health/liveliness", "/health/readiness", "/health"] {
        let status = client().get(node.url(path)).send().await.unwrap().status();
        assert_eq!(status, 200, "{path}");
    }
}
