//! In-process node tests: `run()` on 127.0.0.1:0, driven by reqwest over loopback.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tollgate_mock::{BillingRecord, FaultKind, KeyStats, MockSettings};
use tollgate_mock_provider::{run, settings_from_yaml};

struct Node {
    base: String,
    client: reqwest::Client,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

async fn start(settings: MockSettings) -> Node {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let base = format!("http://{}", listener.local_addr().expect("local address"));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(run(settings, listener, async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    Node {
        base,
        client,
        stop,
        task,
    }
}

impl Node {
    fn post(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.client.post(format!("{}{path}", self.base)).json(body)
    }

    async fn get_json(&self, path: &str) -> Value {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), 200, "{path}");
        response.json().await.expect("JSON body")
    }

    async fn billing(&self) -> Vec<BillingRecord> {
        serde_json::from_value(self.get_json("/mock/billing").await).expect("billing records")
    }

    async fn stop(self) {
        self.stop.send(()).expect("node still running");
        let stopped = tokio::time::timeout(Duration::from_secs(10), self.task).await;
        let result = stopped
            .expect("run() returns within 10 s")
            .expect("run() did not panic");
        result.expect("run() returns Ok");
    }
}

fn chat(stream: bool) -> Value {
    json!({
        "model": "mock-gpt",
        "messages": [{"role": "user", "content": "hello over http"}],
        "stream": stream,
        "stream_options": {"include_usage": true}
    })
}

/// The JSON data lines of an SSE body, `[DONE]` excluded.
fn sse_data(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str(data).expect("SSE data is JSON"))
        .collect()
}

#[tokio::test]
async fn chat_json_with_and_without_v1_prefix() {
    let node = start(MockSettings::default()).await;
    let mut answers = Vec::new();
    for path in ["/v1/chat/completions", "/chat/completions"] {
        let response = node.post(path, &chat(false)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        answers.push(response.json::<Value>().await.unwrap());
    }
    assert_eq!(answers[0], answers[1], "deterministic across routes");
    assert_eq!(answers[0]["object"], "chat.completion");
    assert_eq!(answers[0]["usage"]["completion_tokens"], 16);
    node.stop().await;
}

#[tokio::test]
async fn chat_sse_streams_chunks_then_usage_then_done() {
    let node = start(MockSettings::default()).await;
    let response = node
        .post("/v1/chat/completions", &chat(true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));
    let chunks = sse_data(&text);
    assert_eq!(chunks.len(), 1 + 16 + 1 + 1);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], 16);
    node.stop().await;
}

#[tokio::test]
async fn azure_url_uses_the_deployment_and_api_key() {
    let node = start(MockSettings::default()).await;
    let url = "/openai/deployments/gpt4-prod/chat/completions?api-version=2024-10-21";
    let body = json!({"messages": [{"role": "user", "content": "hi"}]});
    let response = node
        .post(url, &body)
        .header("api-key", "azure-key")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap()["model"],
        "gpt4-prod"
    );
    let embed = json!({"input": "x"});
    let response = node
        .post("/openai/deployments/emb/embeddings?api-version=1", &embed)
        .send()
        .await
        .unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["model"], "emb");
    let billed = node.billing().await;
    assert_eq!(
        (billed[0].model.as_str(), billed[0].key.as_str()),
        ("gpt4-prod", "azure-key")
    );
    node.stop().await;
}

#[tokio::test]
async fn anthropic_messages_json_and_stream() {
    let node = start(MockSettings::default()).await;
    let body = json!({"model": "mock-claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let response = node
        .post("/v1/messages", &body)
        .header("x-api-key", "ak")
        .send()
        .await
        .unwrap();
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message["stop_reason"], "max_tokens");
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let text = node
        .post("/v1/messages", &streamed)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("event: "))
        .collect();
    assert_eq!(events.first(), Some(&"message_start"));
    assert_eq!(events.last(), Some(&"message_stop"));
    assert_eq!(
        events
            .iter()
            .filter(|e| **e == "content_block_delta")
            .count(),
        5
    );
    node.stop().await;
}

#[tokio::test]
async fn rate_limit_fault_sends_429_with_retry_after() {
    let node = start(MockSettings::default()).await;
    let response = node
        .post("/v1/chat/completions", &chat(false))
        .header("x-mock-fault", "429")
        .header("x-mock-retry-after", "3")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "3");
    assert_eq!(response.headers()["retry-after-ms"], "3000");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert!(node.billing().await.is_empty());
    node.stop().await;
}

#[tokio::test]
async fn disconnect_mid_stream_is_an_error_for_the_client() {
    let node = start(MockSettings::default()).await;
    let response = node
        .post("/v1/chat/completions", &chat(true))
        .header("x-mock-fault", "disconnect")
        .header("x-mock-disconnect-after", "3")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "headers arrive before the cut");
    let mut body = response.bytes_stream();
    let mut received = Vec::new();
    let error = loop {
        match body.next().await {
            Some(Ok(bytes)) => received.extend_from_slice(&bytes),
            Some(Err(error)) => break error,
            None => panic!("the stream ended cleanly instead of being cut"),
        }
    };
    assert!(error.is_body() || error.is_decode(), "{error:?}");
    let text = String::from_utf8(received).unwrap();
    assert_eq!(
        sse_data(&text).len(),
        3,
        "the three chunks before the cut arrive"
    );
    assert!(!text.contains("[DONE]"));

    let whole = node
        .post("/v1/chat/completions", &chat(false))
        .header("x-mock-fault", "disconnect");
    let whole = whole.send().await.unwrap();
    assert_eq!(whole.status(), 200);
    assert!(whole.bytes().await.is_err());
    let billed = node.billing().await;
    assert!(billed.iter().all(|record| record.disconnected));
    assert_eq!(billed[0].completion_tokens, 2);
    node.stop().await;
}

#[tokio::test]
async fn billing_stats_and_reset_control_routes() {
    let node = start(MockSettings::default()).await;
    node.post("/v1/chat/completions", &chat(false))
        .bearer_auth("sk-a")
        .header("x-request-id", "req-1")
        .header("x-tollgate-attempt", "2")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let billed = node.billing().await;
    assert_eq!(billed.len(), 1);
    let record = &billed[0];
    assert_eq!(
        (
            record.request_id.as_str(),
            record.attempt,
            record.key.as_str()
        ),
        ("req-1", 2, "sk-a")
    );
    assert_eq!(record.completion_tokens, 16);
    assert_eq!(
        record.billed_nano_usd,
        record.prompt_tokens * 1_000 + record.completion_tokens * 2_000
    );
    assert!(!record.disconnected);
    let stats: std::collections::BTreeMap<String, KeyStats> =
        serde_json::from_value(node.get_json("/mock/stats").await).unwrap();
    assert_eq!(
        stats["sk-a"],
        KeyStats {
            in_flight: 0,
            peak_in_flight: 1,
            requests: 1
        }
    );
    let reset = node
        .client
        .post(format!("{}/mock/reset", node.base))
        .send()
        .await
        .unwrap();
    assert!(reset.status().is_success());
    assert!(node.billing().await.is_empty());
    assert_eq!(node.get_json("/mock/stats").await, json!({}));
    node.stop().await;
}

#[tokio::test]
async fn health_models_and_unknown_routes() {
    let node = start(MockSettings::default()).await;
    assert_eq!(node.get_json("/health").await["status"], "ok");
    let models = node.get_json("/v1/models").await;
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["owned_by"], "tollgate-mock");
    let missing = node
        .client
        .get(format!("{}/v1/nothing", node.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let garbage = node
        .client
        .post(format!("{}/v1/chat/completions", node.base))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
    node.stop().await;
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_timeout_fault() {
    let node = start(MockSettings::default()).await;
    let hanging = node
        .post("/v1/chat/completions", &chat(false))
        .header("x-mock-fault", "timeout")
        .send();
    let hanging = tokio::spawn(hanging);
    tokio::time::sleep(Duration::from_millis(100)).await;
    node.stop().await;
    let result = hanging.await.unwrap();
    assert!(result.is_err() || result.is_ok_and(|r| !r.status().is_success()));
}

#[test]
fn yaml_settings_accept_numeric_fault_kinds_and_reject_typos() {
    let yaml = "
latency_ms: 5
api_keys: [sk-1]
faults:
  - model: flaky
    kind: 429
    times: 2
  - kind: no-usage
prices:
  big: {input_price_nano: 3, output_price_nano: 4}
";
    let settings = settings_from_yaml(yaml).unwrap();
    assert_eq!(settings.latency_ms, 5);
    assert_eq!(
        settings.completion_tokens, 16,
        "unset knobs keep their defaults"
    );
    assert_eq!(settings.faults[0].kind, FaultKind::RateLimit);
    assert_eq!(settings.faults[1].kind, FaultKind::NoUsage);
    assert_eq!(settings.faults[1].model, None);
    assert_eq!(settings.prices["big"].output_price_nano, 4);
    assert!(settings_from_yaml("latencyms: 5").is_err());
    assert!(settings_from_yaml("faults: [{kind: 418}]").is_err());
}
