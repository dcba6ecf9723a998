//! OpenAI and Azure wire formats: chat, legacy completions, embeddings, models.

use serde_json::{Value, json};

use super::{call, call_default, chat_body, request, words};
use crate::{Api, Mock, MockSettings, TOKENS_PER_MESSAGE};

#[tokio::test]
async fn chat_json_has_openai_shape_and_counts_tokens() {
    let answer = call_default(Api::ChatCompletions, &chat_body("say hello to me"), &[]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["content-type"], "application/json");
    let body = answer.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "mock-gpt");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(words(choice["message"]["content"].as_str().unwrap()), 16);
    let prompt_tokens = 4 + TOKENS_PER_MESSAGE;
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": prompt_tokens, "completion_tokens": 16, "total_tokens": prompt_tokens + 16})
    );
}

#[tokio::test]
async fn same_body_gives_same_bytes_and_other_content_other_text() {
    let mock = Mock::new(MockSettings::default());
    let first = call(
        &mock,
        request(Api::ChatCompletions, &chat_body("a b c"), &[]),
    )
    .await;
    let again = call(
        &mock,
        request(Api::ChatCompletions, &chat_body("a b c"), &[]),
    )
    .await;
    let other = call(
        &mock,
        request(Api::ChatCompletions, &chat_body("a b d"), &[]),
    )
    .await;
    assert_eq!(first.bytes(), again.bytes());
    let content = |v: Value| {
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_ne!(content(first.json()), content(other.json()));
    let mock2 = Mock::new(MockSettings::default());
    let elsewhere = call(
        &mock2,
        request(Api::ChatCompletions, &chat_body("a b c"), &[]),
    )
    .await;
    assert_eq!(
        first.bytes(),
        elsewhere.bytes(),
        "a second mock instance answers alike"
    );
}

#[tokio::test]
async fn prompt_tokens_count_parts_and_every_message() {
    let body = json!({"model": "m", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [
            {"type": "text", "text": "one two three"},
            {"type": "image_url", "image_url": {"url": "data:xyz"}}
        ]},
        {"role": "assistant", "content": null, "tool_calls": []}
    ]});
    let usage = call_default(Api::ChatCompletions, &body, &[]).await.json()["usage"].clone();
    assert_eq!(usage["prompt_tokens"], 2 + 3 + 3 * TOKENS_PER_MESSAGE);
}

#[tokio::test]
async fn max_tokens_caps_the_completion_with_finish_reason_length() {
    for field in ["max_tokens", "max_completion_tokens"] {
        let mut body = chat_body("hi");
        body[field] = json!(5);
        let answer = call_default(Api::ChatCompletions, &body, &[]).await.json();
        assert_eq!(answer["choices"][0]["finish_reason"], "length", "{field}");
        assert_eq!(
            words(answer["choices"][0]["message"]["content"].as_str().unwrap()),
            5
        );
        assert_eq!(answer["usage"]["completion_tokens"], 5);
    }
    let mut roomy = chat_body("hi");
    roomy["max_tokens"] = json!(100);
    let answer = call_default(Api::ChatCompletions, &roomy, &[]).await.json();
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(answer["usage"]["completion_tokens"], 16);
}

#[tokio::test]
async fn completion_length_comes_from_settings_then_header_still_capped() {
    let settings = MockSettings {
        completion_tokens: 3,
        ..MockSettings::default()
    };
    let mock = Mock::new(settings);
    let short = call(&mock, request(Api::ChatCompletions, &chat_body("hi"), &[]))
        .await
        .json();
    assert_eq!(short["usage"]["completion_tokens"], 3);
    let header = [("x-mock-completion-tokens", "40")];
    let long = call(
        &mock,
        request(Api::ChatCompletions, &chat_body("hi"), &header),
    )
    .await
    .json();
    assert_eq!(long["usage"]["completion_tokens"], 40);
    let mut capped = chat_body("hi");
    capped["max_tokens"] = json!(7);
    let capped = call(&mock, request(Api::ChatCompletions, &capped, &header))
        .await
        .json();
    assert_eq!(capped["usage"]["completion_tokens"], 7);
}

#[tokio::test]
async fn mock_response_is_returned_exactly_or_cut_by_max_tokens() {
    let mut body = chat_body("hi");
    body["mock_response"] = json!("Hello there, general Kenobi!");
    let answer = call_default(Api::ChatCompletions, &body, &[]).await.json();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Hello there, general Kenobi!"
    );
    assert_eq!(answer["usage"]["completion_tokens"], 4);
    body["max_tokens"] = json!(2);
    let answer = call_default(Api::ChatCompletions, &body, &[]).await.json();
    assert_eq!(answer["choices"][0]["message"]["content"], "Hello there,");
    assert_eq!(answer["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn chat_stream_without_include_usage_has_no_usage_anywhere() {
    let mut body = chat_body("stream me");
    body["stream"] = json!(true);
    let answer = call_default(Api::ChatCompletions, &body, &[]).await;
    assert_eq!(answer.headers["content-type"], "text/event-stream");
    let events = answer.events();
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let chunks = answer.data();
    assert_eq!(
        chunks.len(),
        1 + 16 + 1,
        "role chunk, 16 tokens, finish chunk"
    );
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert!(chunk.get("usage").is_none(), "unexpected usage in {chunk}");
    }
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["delta"], json!({}));
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    // The deltas spell the same text as the non-streamed answer.
    let text: String = chunks[1..17]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    let whole = call_default(Api::ChatCompletions, &chat_body("stream me"), &[])
        .await
        .json();
    assert_eq!(
        text,
        whole["choices"][0]["message"]["content"].as_str().unwrap()
    );
    assert!(
        chunks[1]["choices"][0]["delta"]["content"]
            .as_str()
            .unwrap()
            .ends_with(' ')
    );
    assert!(
        !chunks[16]["choices"][0]["delta"]["content"]
            .as_str()
            .unwrap()
            .ends_with(' ')
    );
}

#[tokio::test]
async fn chat_stream_with_include_usage_ends_with_a_usage_chunk() {
    let mut body = chat_body("stream me");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    body["max_tokens"] = json!(4);
    let chunks = call_default(Api::ChatCompletions, &body, &[]).await.data();
    assert_eq!(chunks.len(), 1 + 4 + 1 + 1);
    let (last, earlier) = chunks.split_last().unwrap();
    for chunk in earlier {
        assert_eq!(chunk["usage"], Value::Null);
        assert!(
            chunk.get("usage").is_some(),
            "usage: null must be present in {chunk}"
        );
        assert_eq!(chunk["choices"].as_array().unwrap().len(), 1);
    }
    assert_eq!(
        earlier.last().unwrap()["choices"][0]["finish_reason"],
        "length"
    );
    assert_eq!(last["choices"], json!([]));
    let prompt = 2 + TOKENS_PER_MESSAGE;
    assert_eq!(
        last["usage"],
        json!({"prompt_tokens": prompt, "completion_tokens": 4, "total_tokens": prompt + 4})
    );
}

#[tokio::test]
async fn legacy_completions_answer_in_text_completion_shape() {
    let body = json!({"model": "mock-gpt", "prompt": "once upon a time", "max_tokens": 3});
    let answer = call_default(Api::Completions, &body, &[]).await.json();
    assert_eq!(answer["object"], "text_completion");
    assert!(answer["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(words(answer["choices"][0]["text"].as_str().unwrap()), 3);
    assert_eq!(answer["choices"][0]["finish_reason"], "length");
    assert_eq!(answer["usage"]["prompt_tokens"], 4);

    let mut stream = body.clone();
    stream["stream"] = json!(true);
    stream["stream_options"] = json!({"include_usage": true});
    let chunks = call_default(Api::Completions, &stream, &[]).await.data();
    assert_eq!(chunks.len(), 3 + 1 + 1);
    let text: String = chunks[..3]
        .iter()
        .map(|c| c["choices"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, answer["choices"][0]["text"].as_str().unwrap());
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "length");
    assert_eq!(chunks[4]["choices"], json!([]));
    assert_eq!(chunks[4]["usage"]["completion_tokens"], 3);
}

#[tokio::test]
async fn token_array_prompts_count_their_length() {
    let body = json!({"model": "m", "prompt": [[1, 2, 3], [4, 5]]});
    let answer = call_default(Api::Completions, &body, &[]).await.json();
    assert_eq!(answer["usage"]["prompt_tokens"], 5);
}

#[tokio::test]
async fn embeddings_are_deterministic_unit_vectors() {
    let body = json!({"model": "mock-embedding", "input": ["hello world", "bye"]});
    let answer = call_default(Api::Embeddings, &body, &[]).await.json();
    assert_eq!(answer["object"], "list");
    assert_eq!(answer["model"], "mock-embedding");
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": 3, "total_tokens": 3})
    );
    let data = answer["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["index"], 1);
    assert_eq!(data[0]["object"], "embedding");
    let vector: Vec<f64> = data[0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(vector.len(), 8);
    assert!((vector.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-4);
    let alone = json!({"model": "e", "input": "hello world"});
    let alone = call_default(Api::Embeddings, &alone, &[]).await;
    assert_eq!(alone.json()["data"][0]["embedding"], data[0]["embedding"]);
}

#[tokio::test]
async fn embeddings_honour_dimensions_and_base64() {
    let body =
        json!({"model": "e", "input": [1, 2, 3], "dimensions": 3, "encoding_format": "base64"});
    let answer = call_default(Api::Embeddings, &body, &[]).await.json();
    let encoded = answer["data"][0]["embedding"].as_str().unwrap();
    assert_eq!(encoded.len(), 16, "3 f32 = 12 bytes = 16 base64 chars");
    assert_eq!(answer["usage"]["prompt_tokens"], 3);
    let too_big = json!({"model": "e", "input": "x", "dimensions": 1_000_000_000u64});
    assert_eq!(
        call_default(Api::Embeddings, &too_big, &[]).await.status,
        400
    );
}

#[tokio::test]
async fn models_lists_the_configured_ids() {
    let settings = MockSettings {
        models: vec!["a".into(), "b".into()],
        ..MockSettings::default()
    };
    let mut req = request(Api::Models, &Value::Null, &[]);
    req.body = bytes::Bytes::new();
    let answer = call(&Mock::new(settings), req).await.json();
    assert_eq!(
        answer,
        json!({"object": "list", "data": [
            {"id": "a", "object": "model", "created": 0, "owned_by": "tollgate-mock"},
            {"id": "b", "object": "model", "created": 0, "owned_by": "tollgate-mock"}
        ]})
    );
}

#[tokio::test]
async fn azure_deployment_is_the_model() {
    let mut req = request(
        Api::ChatCompletions,
        &json!({"messages": [{"role": "user", "content": "x"}]}),
        &[],
    );
    req.deployment = Some("my-gpt4".into());
    let mock = Mock::new(MockSettings::default());
    let answer = call(&mock, req).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["model"], "my-gpt4");
    assert_eq!(mock.billing()[0].model, "my-gpt4");
}

#[tokio::test]
async fn missing_fields_are_400_in_openai_shape() {
    let cases = [
        (
            Api::ChatCompletions,
            json!({"messages": [{"role": "user", "content": "x"}]}),
            "model",
        ),
        (Api::ChatCompletions, json!({"model": "m"}), "messages"),
        (
            Api::ChatCompletions,
            json!({"model": "m", "messages": []}),
            "messages",
        ),
        (Api::Completions, json!({"model": "m"}), "prompt"),
        (Api::Embeddings, json!({"model": "m"}), "input"),
    ];
    for (api, body, field) in cases {
        let answer = call_default(api, &body, &[]).await;
        assert_eq!(answer.status, 400, "{body}");
        let error = &answer.json()["error"];
        assert_eq!(error["type"], "invalid_request_error");
        assert_eq!(error["param"], Value::Null);
        assert!(
            error["message"].as_str().unwrap().contains(field),
            "{error}"
        );
    }
}
