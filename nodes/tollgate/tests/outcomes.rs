//! The outcome point: every API request is recorded exactly once, with a numeric status, under
//! a concurrent mix of successes and every kind of failure; probes are not counted.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_request_is_counted_once_under_a_concurrent_mix() {
    let (_mock, node) = standard().await;
    let c = client();
    let mut requests = Vec::new();
    let mut expected: BTreeMap<u16, u64> = BTreeMap::new();
    for i in 0..40 {
        let (builder, status) = match i % 8 {
            0 => (
                c.post(node.url("/v1/chat/completions"))
                    .bearer_auth(MASTER)
                    .json(&chat_body("gpt-test")),
                200,
            ),
            1 => {
                let mut b = chat_body("gpt-test");
                b["stream"] = json!(true);
                (
                    c.post(node.url("/v1/chat/completions"))
                        .bearer_auth(MASTER)
                        .json(&b),
                    200,
                )
            }
            2 => (
                c.post(node.url("/v1/chat/completions"))
                    .bearer_auth(MASTER)
                    .body("{nope"),
                400,
            ),
            3 => (
                c.post(node.url("/v1/chat/completions"))
                    .bearer_auth("sk-invalid-000000")
                    .json(&chat_body("gpt-test")),
                401,
            ),
            4 => (
                c.post(node.url("/v1/chat/completions"))
                    .bearer_auth(MASTER)
                    .json(&chat_body("broken")),
                500,
            ),
            5 => (
                c.post(node.url("/v1/chat/completions"))
                    .bearer_auth(MASTER)
                    .json(&chat_body("limited")),
                429,
            ),
            6 => (c.post(node.url("/v1/unknown")).bearer_auth(MASTER), 404),
            _ => (
                c.post(node.url("/v1/embeddings"))
                    .bearer_auth(MASTER)
                    .body(vec![b'x'; 2 << 20]),
                413,
            ),
        };
        *expected.entry(status).or_default() += 1;
        requests.push(async move {
            let response = builder.send().await.unwrap();
            let status = response.status().as_u16();
            let _ = response.bytes().await;
            status
        });
    }
    // Probes in the middle of it: never counted.
    for _ in 0..5 {
        let _ = c.get(node.url("/health/liveliness")).send().await.unwrap();
    }
    let statuses = futures::future::join_all(requests).await;
    let mut seen: BTreeMap<u16, u64> = BTreeMap::new();
    for s in statuses {
        *seen.entry(s).or_default() += 1;
    }
    assert_eq!(seen, expected, "what clients saw");

    eventually(|| node.outcomes.total() == 40 && node.outcomes.in_flight() == 0).await;
    let mut recorded: BTreeMap<u16, u64> = BTreeMap::new();
    for (key, n) in node.outcomes.snapshot() {
        assert!(
            !key.route.is_empty() && !key.model.is_empty() && !key.provider.is_empty(),
            "{key:?}"
        );
        *recorded.entry(key.status).or_default() += n;
        if key.status == 404 || key.status == 413 || key.status == 401 || key.status == 400 {
            assert_eq!(&*key.model, "unknown", "rejected before routing: {key:?}");
        }
        if key.status == 500 {
            assert_eq!((&*key.model, key.provider), ("broken", "openai"), "{key:?}");
        }
    }
    assert_eq!(recorded, expected, "what the outcome point recorded");
}

#[tokio::test]
async fn a_client_that_hangs_up_midstream_is_recorded_once_as_499() {
    let mock = start_mock(mock_settings("tokens_per_second: 50")).await;
    let node = start_node(NODE_YAML, Some(&mock)).await;
    let mut body = stream_body("gpt-test");
    body["max_tokens"] = json!(100);
    let response = send_chat(&node, &body).await;
    let mut stream = response.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(stream);
    eventually(|| node.outcomes.total() == 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let snapshot = node.outcomes.snapshot();
    assert_eq!(snapshot.len(), 1, "{snapshot:?}");
    assert_eq!(snapshot[0].0.status, 499);
    assert_eq!(snapshot[0].1, 1);
}
