//! Each fault kind, by header and by settings, plus key checks and malformed knobs.

use std::time::Duration;

use serde_json::{Value, json};

use super::{call, call_default, chat_body, read, request};
use crate::{Api, FaultKind, FaultRule, Mock, MockBody, MockSettings};

fn streamed(content: &str) -> Value {
    let mut body = chat_body(content);
    body["stream"] = json!(true);
    body
}

#[tokio::test]
async fn rate_limit_carries_retry_after_in_seconds_and_millis() {
    let mock = Mock::new(MockSettings::default());
    let fault = [("x-mock-fault", "429")];
    let answer = call(
        &mock,
        request(Api::ChatCompletions, &chat_body("hi"), &fault),
    )
    .await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.headers["retry-after"], "1");
    assert_eq!(answer.headers["retry-after-ms"], "1000");
    assert_eq!(answer.json()["error"]["code"], "rate_limit_exceeded");
    let slow = [("x-mock-fault", "429"), ("x-mock-retry-after", "7")];
    let answer = call(
        &mock,
        request(Api::ChatCompletions, &chat_body("hi"), &slow),
    )
    .await;
    assert_eq!(answer.headers["retry-after"], "7");
    assert_eq!(answer.headers["retry-after-ms"], "7000");
    assert!(mock.billing().is_empty(), "refusals bill nothing");
}

#[tokio::test]
async fn server_errors_have_their_status_and_bill_nothing() {
    let mock = Mock::new(MockSettings::default());
    for (kind, status) in [("500", 500), ("503", 503)] {
        let answer = call(
            &mock,
            request(
                Api::ChatCompletions,
                &streamed("x"),
                &[("x-mock-fault", kind)],
            ),
        )
        .await;
        assert_eq!(answer.status, status);
        assert_eq!(answer.json()["error"]["type"], "server_error");
    }
    assert!(mock.billing().is_empty());
}

#[tokio::test]
async fn model_not_found_matches_openai_exactly() {
    let answer = call_default(
        Api::ChatCompletions,
        &chat_body("x"),
        &[("x-mock-fault", "404")],
    )
    .await;
    assert_eq!(answer.status, 404);
    assert_eq!(
        answer.json(),
        json!({"error": {
            "message": "The model `mock-gpt` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": null,
            "code": "model_not_found"
        }})
    );
}

#[tokio::test(start_paused = true)]
async fn timeout_never_answers_within_the_hour() {
    let mock = Mock::new(MockSettings::default());
    let req = request(
        Api::ChatCompletions,
        &chat_body("x"),
        &[("x-mock-fault", "timeout")],
    );
    let pending = tokio::time::timeout(Duration::from_secs(3500), mock.handle(req)).await;
    assert!(pending.is_err(), "the timeout fault must not answer");
    assert_eq!(
        mock.key_stats()["anonymous"].in_flight,
        0,
        "dropping the call ends it"
    );
    assert!(mock.billing().is_empty());
}

#[tokio::test]
async fn disconnect_cuts_a_stream_after_n_chunks_and_bills_what_was_sent() {
    let mock = Mock::new(MockSettings::default());
    let req = request(
        Api::ChatCompletions,
        &streamed("x"),
        &[("x-mock-fault", "disconnect")],
    );
    let answer = call(&mock, req).await;
    assert!(answer.disconnected);
    assert_eq!(
        answer.chunks.len(),
        2,
        "default: two chunks, then the abort"
    );
    let billed = mock.billing();
    assert_eq!(billed.len(), 1);
    assert!(billed[0].disconnected);
    assert_eq!(
        billed[0].completion_tokens, 1,
        "role chunk + one token chunk"
    );

    let five = [
        ("x-mock-fault", "disconnect"),
        ("x-mock-disconnect-after", "5"),
    ];
    let answer = call(&mock, request(Api::ChatCompletions, &streamed("x"), &five)).await;
    assert_eq!((answer.chunks.len(), answer.disconnected), (5, true));
    let all = [
        ("x-mock-fault", "disconnect"),
        ("x-mock-disconnect-after", "999"),
    ];
    let answer = call(&mock, request(Api::ChatCompletions, &streamed("x"), &all)).await;
    assert_eq!(
        (answer.chunks.len(), answer.disconnected),
        (19, true),
        "aborts after [DONE]"
    );
}

#[tokio::test]
async fn disconnect_aborts_a_non_streamed_body_before_any_byte() {
    let mock = Mock::new(MockSettings::default());
    let req = request(
        Api::ChatCompletions,
        &chat_body("x"),
        &[("x-mock-fault", "disconnect")],
    );
    let response = mock.handle(req).await;
    assert_eq!(response.status, 200);
    assert!(matches!(response.body, MockBody::Stream(_)));
    let (chunks, disconnected) = read(response.body).await;
    assert!(chunks.is_empty() && disconnected);
    let billed = mock.billing();
    assert!(billed[0].disconnected);
    assert_eq!(
        billed[0].completion_tokens, 16,
        "non-stream answers are generated in full"
    );
}

#[tokio::test]
async fn no_usage_omits_usage_everywhere() {
    let fault = [("x-mock-fault", "no-usage")];
    let json_answer = call_default(Api::ChatCompletions, &chat_body("x"), &fault)
        .await
        .json();
    assert!(json_answer.get("usage").is_none());
    let mut body = streamed("x");
    body["stream_options"] = json!({"include_usage": true});
    let chunks = call_default(Api::ChatCompletions, &body, &fault)
        .await
        .data();
    assert_eq!(chunks.len(), 18, "no usage chunk");
    assert!(chunks.iter().all(|chunk| chunk.get("usage").is_none()));
    let anthropic =
        json!({"model": "c", "stream": true, "messages": [{"role": "user", "content": "x"}]});
    let events = call_default(Api::AnthropicMessages, &anthropic, &fault)
        .await
        .data();
    assert!(
        events
            .iter()
            .all(|e| e.get("usage").is_none() && e["message"].get("usage").is_none())
    );
    let embeddings = json!({"model": "e", "input": "x"});
    assert!(
        call_default(Api::Embeddings, &embeddings, &fault)
            .await
            .json()
            .get("usage")
            .is_none()
    );
}

#[tokio::test]
async fn fractional_usage_reports_floats_that_round_up_to_the_bill() {
    let mock = Mock::new(MockSettings::default());
    let fault = [("x-mock-fault", "fractional-usage")];
    let answer = call(
        &mock,
        request(Api::ChatCompletions, &chat_body("one two"), &fault),
    )
    .await;
    let usage = &answer.json()["usage"];
    assert_eq!(usage["prompt_tokens"], json!(4.5));
    assert_eq!(usage["completion_tokens"], json!(15.5));
    assert_eq!(usage["total_tokens"], json!(20.5));
    let billed = &mock.billing()[0];
    assert_eq!((billed.prompt_tokens, billed.completion_tokens), (5, 16));
    let anthropic = json!({"model": "c", "messages": [{"role": "user", "content": "x"}]});
    let message = call(&mock, request(Api::AnthropicMessages, &anthropic, &fault))
        .await
        .json();
    assert_eq!(message["usage"]["output_tokens"], json!(15.5));
}

#[tokio::test]
async fn unknown_fault_kinds_are_rejected_by_name() {
    let answer = call_default(
        Api::ChatCompletions,
        &chat_body("x"),
        &[("x-mock-fault", "418")],
    )
    .await;
    assert_eq!(answer.status, 400);
    let message = answer.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("unknown mock fault kind `418`"),
        "{message}"
    );
}

#[tokio::test]
async fn settings_faults_match_the_model_and_stop_after_times() {
    let settings = MockSettings {
        faults: vec![FaultRule {
            model: Some("flaky".into()),
            kind: FaultKind::Unavailable,
            times: Some(2),
        }],
        ..MockSettings::default()
    };
    let mock = Mock::new(settings);
    let flaky = json!({"model": "flaky", "messages": [{"role": "user", "content": "x"}]});
    let statuses = [
        call(&mock, request(Api::ChatCompletions, &flaky, &[]))
            .await
            .status,
        call(&mock, request(Api::ChatCompletions, &chat_body("x"), &[]))
            .await
            .status,
        call(&mock, request(Api::ChatCompletions, &flaky, &[]))
            .await
            .status,
        call(&mock, request(Api::ChatCompletions, &flaky, &[]))
            .await
            .status,
    ];
    assert_eq!(statuses, [503, 200, 503, 200]);
    mock.reset();
    assert_eq!(
        call(&mock, request(Api::ChatCompletions, &flaky, &[]))
            .await
            .status,
        503
    );
}

#[tokio::test]
async fn api_keys_are_checked_when_configured() {
    let settings = MockSettings {
        api_keys: vec!["sk-good".into()],
        ..MockSettings::default()
    };
    let mock = Mock::new(settings);
    let bad = call(
        &mock,
        request(
            Api::ChatCompletions,
            &chat_body("x"),
            &[("authorization", "Bearer sk-bad")],
        ),
    )
    .await;
    assert_eq!(bad.status, 401);
    assert_eq!(bad.json()["error"]["code"], "invalid_api_key");
    let none = call(&mock, request(Api::Models, &json!({}), &[])).await;
    assert_eq!(none.status, 401);
    let good = call(
        &mock,
        request(
            Api::AnthropicMessages,
            &json!({"model": "c", "messages": [{"role": "user", "content": "x"}]}),
            &[("x-api-key", "sk-good")],
        ),
    )
    .await;
    assert_eq!(good.status, 200);
    let azure = call(
        &mock,
        request(
            Api::ChatCompletions,
            &chat_body("x"),
            &[("api-key", "sk-good")],
        ),
    )
    .await;
    assert_eq!(azure.status, 200);
}

#[tokio::test]
async fn malformed_knob_headers_are_400() {
    for header in [
        "x-mock-latency-ms",
        "x-mock-completion-tokens",
        "x-mock-retry-after",
    ] {
        let answer = call_default(Api::ChatCompletions, &chat_body("x"), &[(header, "soon")]).await;
        assert_eq!(answer.status, 400, "{header}");
    }
    let huge = [("x-mock-completion-tokens", "99999999999")];
    assert_eq!(
        call_default(Api::ChatCompletions, &chat_body("x"), &huge)
            .await
            .status,
        400
    );
}
