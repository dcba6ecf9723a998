//! Every class of bad input and broken upstream gets a clear error in OpenAI's shape, with the
//! status of the error table, and never leaks a key.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

async fn raw(
    node: &TestNode,
    path: &str,
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = client()
        .post(node.url(path))
        .bearer_auth(MASTER)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

fn assert_openai_error(body: &Value, code: &str) {
    let error = &body["error"];
    for field in ["message", "type", "param", "code"] {
        assert!(
            error.as_object().is_some_and(|e| e.contains_key(field)),
            "missing {field}: {body}"
        );
    }
    assert_eq!(error["code"], code, "{body}");
    let text = body.to_string();
    assert!(
        !text.contains(MASTER) && !text.contains(UPSTREAM_KEY),
        "secret leaked: {text}"
    );
}

#[tokio::test]
async fn bad_bodies_are_400s_that_say_what_is_wrong() {
    let (_mock, node) = standard().await;
    let cases: Vec<(Vec<u8>, Option<&str>, &str)> = vec![
        (b"".to_vec(), None, "empty"),
        (b"{\"model\": ".to_vec(), None, "not valid JSON"),
        (b"\"just a string\"".to_vec(), None, "JSON object"),
        (
            b"{\"model\":\"gpt-test\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}"
                .to_vec(),
            None,
            "UTF-8",
        ),
        (
            br#"{"messages":[{"role":"user"}]}"#.to_vec(),
            Some("model"),
            "required",
        ),
        (
            br#"{"model":["x"],"messages":[{"role":"user"}]}"#.to_vec(),
            Some("model"),
            "string",
        ),
        (
            br#"{"model":"gpt-test","messages":{"role":"user"}}"#.to_vec(),
            Some("messages"),
            "array",
        ),
        (
            br#"{"model":"gpt-test","messages":[{"role":"user"}],"max_tokens":"lots"}"#.to_vec(),
            Some("max_tokens"),
            "integer",
        ),
        (
            br#"{"model":"gpt-test","messages":[{"role":"user"}],"stream":1}"#.to_vec(),
            Some("stream"),
            "boolean",
        ),
    ];
    for (body, param, needle) in cases {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let (status, _, json) = raw(&node, "/v1/chat/completions", body).await;
        assert_eq!(status, 400, "{shown}: {json}");
        assert_openai_error(&json, "invalid_request");
        assert_eq!(json["error"]["type"], "invalid_request_error");
        assert_eq!(json["error"]["param"].as_str(), param, "{shown}");
        assert!(
            json["error"]["message"].as_str().unwrap().contains(needle),
            "{shown}: {json}"
        );
    }
}

#[tokio::test]
async fn huge_bodies_get_413_declared_or_chunked() {
    let (_mock, node) = standard().await;
    // The node is configured with max_request_size_mb: 1.
    let big = vec![b' '; 2 * 1024 * 1024];
    let (status, _, json) = raw(&node, "/v1/chat/completions", big.clone()).await;
    assert_eq!(status, 413, "{json}");
    assert_openai_error(&json, "request_too_large");

    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let response = client()
        .post(node.url("/v1/chat/completions"))
        .bearer_auth(MASTER)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

/// A client still uploading when it is refused reads the 413, not a connection reset: the
/// node reads and discards the rest of a refused body while the answer goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_uploads_still_read_their_413() {
    let (_mock, node) = standard().await;
    let big = bytes::Bytes::from(vec![b' '; 16 * 1024 * 1024]);
    let uploads = (0..24).map(|i| {
        let request = client()
            .post(node.url("/v1/chat/completions"))
            .bearer_auth(MASTER)
            .header("content-type", "application/json");
        let request = if i % 2 == 0 {
            request.body(big.clone())
        } else {
            // Chunked: refused once the limit is crossed, mid-upload.
            let chunks: Vec<Result<bytes::Bytes, std::io::Error>> =
                (0..256).map(|_| Ok(big.slice(0..64 * 1024))).collect();
            request.body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        };
        async move { request.send().await.map(|r| r.status().as_u16()) }
    });
    for (i, result) in futures::future::join_all(uploads)
        .await
        .into_iter()
        .enumerate()
    {
        match result {
            Ok(status) => assert_eq!(status, 413, "upload {i}"),
            Err(e) => panic!("upload {i} saw no answer: {e:?}"),
        }
    }
}

#[tokio::test]
async fn routing_errors() {
    let (_mock, node) = standard().await;
    let (status, _, json) = post(&node, "/v1/chat/completions", &chat_body("no-such-model")).await;
    assert_eq!(status, 404);
    assert_openai_error(&json, "model_not_found");
    let (status, _, json) = post(&node, "/v1/nothing-here", &json!({})).await;
    assert_eq!(status, 404);
    assert_openai_error(&json, "not_found");
    for (method, path, allow) in [
        (Method::GET, "/v1/chat/completions", "POST"),
        (Method::POST, "/v1/models", "GET, HEAD"),
    ] {
        let response = bodiless(&node, method, path, Some(MASTER)).await;
        assert_eq!(response.status(), 405, "{path}");
        assert_eq!(response.headers()["allow"], allow, "{path}");
    }
}

#[tokio::test]
async fn head_is_answered_where_get_is_without_the_body() {
    let (_mock, node) = standard().await;
    let get = bodiless(&node, Method::GET, "/v1/models/gpt-test", Some(MASTER)).await;
    assert_eq!(get.status(), 200);
    let get_type = get.headers()["content-type"].clone();
    let get_body = get.bytes().await.unwrap();
    assert!(!get_body.is_empty());
    let head = bodiless(&node, Method::HEAD, "/v1/models/gpt-test", Some(MASTER)).await;
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-type"], get_type);
    assert_eq!(
        head.headers()["content-length"],
        get_body.len().to_string(),
        "HEAD says how long the GET's body is"
    );
    assert!(head.bytes().await.unwrap().is_empty(), "and sends none");
    // The same checks as GET: no key, no answer; an unknown model, 404; public probes.
    for (path, key, status) in [
        ("/v1/models", None, 401),
        ("/v1/models/no-such-model", Some(MASTER), 404),
        ("/health/liveliness", None, 200),
    ] {
        let head = bodiless(&node, Method::HEAD, path, key).await;
        assert_eq!(head.status(), status, "HEAD {path}");
    }
}

#[tokio::test]
async fn auth_errors_never_echo_the_key() {
    let (_mock, node) = standard().await;
    let response = client()
        .post(node.url("/v1/chat/completions"))
        .json(&chat_body("gpt-test"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let json: Value = response.json().await.unwrap();
    assert_openai_error(&json, "invalid_api_key");
    assert_eq!(json["error"]["type"], "authentication_error");
    let wrong = "sk-wrong-key-123456789";
    let response = client()
        .post(node.url("/v1/chat/completions"))
        .bearer_auth(wrong)
        .json(&chat_body("gpt-test"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let text = response.text().await.unwrap();
    assert!(!text.contains(wrong), "{text}");
    // Authentication comes before the body is even read.
    let response = client()
        .post(node.url("/v1/chat/completions"))
        .body("garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn upstream_failures_keep_their_meaning() {
    let (_mock, node) = standard().await;
    let (status, headers, json) = post(&node, "/v1/chat/completions", &chat_body("limited")).await;
    assert_eq!(status, 429, "an upstream 429 stays a 429: {json}");
    assert_openai_error(&json, "rate_limit_exceeded");
    assert_eq!(json["error"]["type"], "rate_limit_error");
    assert_eq!(
        headers["retry-after"], "1",
        "the upstream's Retry-After is kept"
    );
    let message = json["error"]["message"].as_str().unwrap().to_lowercase();
    assert!(!message.contains("connection"), "{message}");

    for (model, status_code, code) in [
        ("broken", 500, "upstream_error"),
        ("unavailable", 503, "upstream_error"),
        ("gone", 404, "model_not_found"),
        ("slow", 504, "upstream_timeout"),
    ] {
        let (status, _, json) = post(&node, "/v1/chat/completions", &chat_body(model)).await;
        assert_eq!(status, status_code, "{model}: {json}");
        assert_openai_error(&json, code);
    }
}

#[tokio::test]
async fn a_stream_cut_midway_ends_with_an_error_event() {
    // Paced, so the cut comes after chunks have reached the client; an unpaced mock aborts
    // before its first byte leaves (that case is a plain 502, tested above through `broken`).
    let mock = start_mock(mock_settings(
        "tokens_per_second: 200\nfaults: [{ kind: disconnect }]",
    ))
    .await;
    let node = start_node(NODE_YAML, Some(&mock)).await;
    let body = stream_body("cut");
    let response = send_chat(&node, &body).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let events = sse_data(&text);
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_error", "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
    assert!(
        events.len() >= 2,
        "the chunks before the cut arrived: {text}"
    );
}

#[tokio::test]
async fn missing_and_fractional_usage_are_tolerated() {
    let (_mock, node) = standard().await;
    let (status, _, json) = post(&node, "/v1/chat/completions", &chat_body("no-usage")).await;
    assert_eq!(status, 200, "{json}");
    let (status, _, json) = post(&node, "/v1/chat/completions", &chat_body("fractional")).await;
    assert_eq!(status, 200, "{json}");
    let mut stream = chat_body("fractional");
    stream["stream"] = json!(true);
    let (status, _, _) = post(&node, "/v1/chat/completions", &stream).await;
    assert_eq!(status, 200);
}
