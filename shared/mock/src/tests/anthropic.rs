//! Anthropic Messages: JSON, the SSE event sequence and the error shape.

use serde_json::{Value, json};

use super::{call_default, words};
use crate::{Api, TOKENS_PER_MESSAGE};

fn body() -> Value {
    json!({
        "model": "mock-claude",
        "max_tokens": 1024,
        "system": "you are terse",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}]
    })
}

#[tokio::test]
async fn message_json_has_anthropic_shape() {
    let answer = call_default(Api::AnthropicMessages, &body(), &[]).await;
    assert_eq!(answer.status, 200);
    let message = answer.json();
    assert!(message["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["model"], "mock-claude");
    assert_eq!(message["content"][0]["type"], "text");
    assert_eq!(words(message["content"][0]["text"].as_str().unwrap()), 16);
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(message["stop_sequence"], Value::Null);
    let input = 3 + 2 + TOKENS_PER_MESSAGE;
    assert_eq!(
        message["usage"],
        json!({"input_tokens": input, "output_tokens": 16})
    );
}

#[tokio::test]
async fn max_tokens_stop_reason() {
    let mut capped = body();
    capped["max_tokens"] = json!(2);
    let message = call_default(Api::AnthropicMessages, &capped, &[])
        .await
        .json();
    assert_eq!(message["stop_reason"], "max_tokens");
    assert_eq!(message["usage"]["output_tokens"], 2);
}

#[tokio::test]
async fn stream_sends_the_anthropic_event_sequence() {
    let mut streamed = body();
    streamed["stream"] = json!(true);
    streamed["max_tokens"] = json!(3);
    let answer = call_default(Api::AnthropicMessages, &streamed, &[]).await;
    assert_eq!(answer.headers["content-type"], "text/event-stream");
    let events = answer.events();
    let names: Vec<&str> = events
        .iter()
        .map(|(name, _)| name.as_deref().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let data = answer.data();
    for ((name, _), value) in events.iter().zip(&data) {
        assert_eq!(
            value["type"],
            name.as_deref().unwrap(),
            "data type matches event name"
        );
    }
    let start = &data[0]["message"];
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(
        start["usage"],
        json!({"input_tokens": 3 + 2 + TOKENS_PER_MESSAGE, "output_tokens": 1})
    );
    assert_eq!(
        data[1]["content_block"],
        json!({"type": "text", "text": ""})
    );
    assert_eq!(data[3]["delta"]["type"], "text_delta");
    let text: String = data[3..6]
        .iter()
        .map(|d| d["delta"]["text"].as_str().unwrap())
        .collect();
    let whole = call_default(
        Api::AnthropicMessages,
        &json!({
            "model": "mock-claude", "max_tokens": 3, "system": "you are terse",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}]
        }),
        &[],
    )
    .await
    .json();
    assert_eq!(text, whole["content"][0]["text"].as_str().unwrap());
    assert_eq!(data[6], json!({"type": "content_block_stop", "index": 0}));
    assert_eq!(
        data[7],
        json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens", "stop_sequence": null}, "usage": {"output_tokens": 3}})
    );
    assert_eq!(data[8], json!({"type": "message_stop"}));
}

#[tokio::test]
async fn errors_use_the_anthropic_shape() {
    let answer = call_default(Api::AnthropicMessages, &json!({"model": "x"}), &[]).await;
    assert_eq!(answer.status, 400);
    let error = answer.json();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("messages")
    );

    let limited = call_default(Api::AnthropicMessages, &body(), &[("x-mock-fault", "429")]).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.json()["error"]["type"], "rate_limit_error");
}
