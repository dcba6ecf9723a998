//! Graceful shutdown: stop accepting, finish in-flight requests, bounded by the drain timeout.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tollgate::NodeOptions;

fn slow_stream_body(tokens: u64) -> serde_json::Value {
    let mut body = chat_body("gpt-test");
    body["stream"] = json!(true);
    body["max_tokens"] = json!(tokens);
    body
}

#[tokio::test]
async fn in_flight_streams_finish_after_the_signal() {
    // 16 tokens at 40/s: the stream takes about 400 ms.
    let mock = start_mock(mock_settings("tokens_per_second: 40")).await;
    let mut node = start_node(NODE_YAML, Some(&mock)).await;
    let request = client()
        .post(node.url("/v1/chat/completions"))
        .bearer_auth(MASTER)
        .json(&slow_stream_body(16))
        .send();
    let in_flight = tokio::spawn(async move {
        let response = request.await.unwrap();
        response.text().await.unwrap()
    });
    eventually(|| node.outcomes.in_flight() == 1).await;
    node.server.signal_stop();
    let text = in_flight.await.unwrap();
    assert!(
        text.contains("data: [DONE]"),
        "the stream was finished, not cut: {text}"
    );
    let result = node.server.task.take().unwrap().await.unwrap();
    assert!(result.is_ok(), "{result:?}");
    // And the listener is gone.
    let refused = client().get(node.url("/health/liveliness")).send().await;
    assert!(
        refused.is_err(),
        "new connections are refused after shutdown"
    );
}

#[tokio::test]
async fn the_drain_is_bounded() {
    // 100 tokens at 10/s would take 10 s.
    let mock = start_mock(mock_settings("tokens_per_second: 10")).await;
    let options = NodeOptions {
        drain_timeout: Duration::from_millis(300),
        ..NodeOptions::default()
    };
    let mut node = start_node_with(NODE_YAML, Some(&mock), options).await;
    let request = client()
        .post(node.url("/v1/chat/completions"))
        .bearer_auth(MASTER)
        .json(&slow_stream_body(100))
        .send();
    let _in_flight = tokio::spawn(async move { request.await.unwrap().text().await });
    eventually(|| node.outcomes.in_flight() == 1).await;
    let started = Instant::now();
    node.server.signal_stop();
    node.server.task.take().unwrap().await.unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped after {:?}",
        started.elapsed()
    );
}
