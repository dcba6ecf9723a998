//! What reaches the upstream: the client's fields untouched, the deployment's key (never the
//! client's), the upstream model name, and usage forced on for streams.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use common::*;
use tokio::net::TcpListener;

type Seen = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// An upstream that records what it receives and answers a fixed completion.
async fn capture_upstream() -> (String, Seen) {
    let seen: Seen = Arc::default();
    async fn handle(
        State(seen): State<Seen>,
        headers: HeaderMap,
        body: String,
    ) -> ([(&'static str, &'static str); 1], &'static str) {
        seen.lock().unwrap().push((headers, body));
        (
            [("content-type", "application/json")],
            r#"{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#,
        )
    }
    let app = Router::new()
        .route("/v1/chat/completions", post(handle))
        .with_state(seen.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), seen)
}

#[tokio::test]
async fn unknown_fields_are_forwarded_byte_for_byte() {
    let (base, seen) = capture_upstream().await;
    let yaml = format!(
        "model_list:\n  - model_name: public-name\n    litellm_params: {{ model: openai/upstream-name, api_base: \"{base}\", api_key: os.environ/UPSTREAM_KEY }}\ngeneral_settings: {{ master_key: {MASTER} }}\n"
    );
    let node = start_node(&yaml, None).await;
    let body = r#"{"model":"public-name","messages":[{"role":"user","content":"hi \u00e9"}],"seed":123456789012345678901,"logit_bias":{"50256":-100},"x_vendor":{"nested":[1,2.50]},"stream":true}"#;
    let response = client()
        .post(node.url("/v1/chat/completions"))
        .bearer_auth(MASTER)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let _ = response.text().await;
    let seen = seen.lock().unwrap();
    let (headers, forwarded) = &seen[0];
    assert_eq!(
        forwarded,
        r#"{"model":"upstream-name","messages":[{"role":"user","content":"hi \u00e9"}],"seed":123456789012345678901,"logit_bias":{"50256":-100},"x_vendor":{"nested":[1,2.50]},"stream":true,"stream_options":{"include_usage":true}}"#
    );
    assert_eq!(
        headers["authorization"],
        format!("Bearer {UPSTREAM_KEY}"),
        "the deployment's key, not the client's"
    );
    assert!(
        !format!("{headers:?}").contains(MASTER),
        "the gateway key never goes upstream"
    );
    assert!(headers.contains_key("x-request-id"));
}
