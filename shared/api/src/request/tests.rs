use super::*;

fn chat(body: &str) -> Result<LlmRequest<'_>, ApiError> {
    LlmRequest::parse(Endpoint::ChatCompletions, body.as_bytes())
}

#[test]
fn valid_chat_request() {
    let r = chat(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"temperature":0.2}"#).unwrap();
    assert_eq!(r.model, "gpt-4o");
    assert!(!r.stream);
    assert_eq!(r.max_tokens, Some(5));
}

#[test]
fn max_completion_tokens_wins() {
    let r = chat(
        r#"{"model":"m","messages":[{"role":"user"}],"max_tokens":5,"max_completion_tokens":7}"#,
    )
    .unwrap();
    assert_eq!(r.max_tokens, Some(7));
}

#[test]
fn each_bad_input_names_its_problem() {
    let cases: &[(&str, Option<&str>, &str)] = &[
        ("", None, "empty"),
        ("   ", None, "empty"),
        ("{", None, "not valid JSON"),
        ("[1,2]", None, "must be a JSON object"),
        (r#"{"messages":[]}"#, Some("model"), "`model` is required"),
        (
            r#"{"model":5,"messages":[]}"#,
            Some("model"),
            "must be a string",
        ),
        (
            r#"{"model":" ","messages":[{"role":"user"}]}"#,
            Some("model"),
            "must not be empty",
        ),
        (
            r#"{"model":"m"}"#,
            Some("messages"),
            "`messages` is required",
        ),
        (
            r#"{"model":"m","messages":"hi"}"#,
            Some("messages"),
            "array of objects",
        ),
        (
            r#"{"model":"m","messages":[{"content":"x"}]}"#,
            Some("messages"),
            "array of objects",
        ),
        (
            r#"{"model":"m","messages":[]}"#,
            Some("messages"),
            "at least one",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user"}],"stream":"yes"}"#,
            Some("stream"),
            "boolean",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user"}],"max_tokens":-1}"#,
            Some("max_tokens"),
            "non-negative",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user"}],"max_tokens":"10"}"#,
            Some("max_tokens"),
            "non-negative",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user"}],"n":0}"#,
            Some("n"),
            "at least 1",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user"}],"tools":{}}"#,
            Some("tools"),
            "an array",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user"}],"tool_choice":3}"#,
            Some("tool_choice"),
            "string or an object",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user"}],"stream_options":true}"#,
            Some("stream_options"),
            "an object",
        ),
    ];
    for (body, param, needle) in cases {
        let err = chat(body).expect_err(body);
        assert_eq!(err.code, ErrorCode::InvalidRequest, "{body}");
        assert_eq!(err.status.as_u16(), 400, "{body}");
        assert_eq!(err.param.as_deref(), *param, "{body}");
        assert!(err.message.contains(needle), "{body}: {}", err.message);
    }
}

#[test]
fn invalid_utf8_is_reported_with_offset() {
    let bytes = b"{\"model\":\"m\xff\"}";
    let err = LlmRequest::parse(Endpoint::ChatCompletions, bytes).unwrap_err();
    assert!(err.message.contains("UTF-8"), "{}", err.message);
    assert!(err.message.contains("offset 11"), "{}", err.message);
}

#[test]
fn embeddings_and_completions_inputs() {
    assert!(LlmRequest::parse(Endpoint::Embeddings, br#"{"model":"e","input":"hi"}"#).is_ok());
    assert!(LlmRequest::parse(Endpoint::Embeddings, br#"{"model":"e","input":[[1,2]]}"#).is_ok());
    let err = LlmRequest::parse(Endpoint::Embeddings, br#"{"model":"e","input":3}"#).unwrap_err();
    assert_eq!(err.param.as_deref(), Some("input"));
    let err = LlmRequest::parse(
        Endpoint::Embeddings,
        br#"{"model":"e","input":"x","stream":true}"#,
    )
    .unwrap_err();
    assert_eq!(err.param.as_deref(), Some("stream"));
    assert!(
        LlmRequest::parse(
            Endpoint::Completions,
            br#"{"model":"c","prompt":["a","b"]}"#
        )
        .is_ok()
    );
    let err = LlmRequest::parse(Endpoint::Completions, br#"{"model":"c"}"#).unwrap_err();
    assert_eq!(err.param.as_deref(), Some("prompt"));
}

#[test]
fn upstream_body_rewrites_model_and_forces_usage() {
    let r = chat(r#"{"model":"public","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"x":1},"logit_bias":{"50256":-100},"seed":123456789012345678901}"#).unwrap();
    assert!(!r.include_usage);
    let out = String::from_utf8(r.upstream_body("gpt-4o-2024", &[])).unwrap();
    assert_eq!(
        out,
        r#"{"model":"gpt-4o-2024","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"x":1,"include_usage":true},"logit_bias":{"50256":-100},"seed":123456789012345678901}"#
    );
}

#[test]
fn non_stream_body_is_untouched_but_model() {
    let r = chat(r#"{"messages":[{"role":"user"}],"model":"a","stream":false}"#).unwrap();
    let out = r.upstream_body("b", &[("mock_response", "\"hello\"".into())]);
    assert_eq!(
        out,
        br#"{"messages":[{"role":"user"}],"model":"b","stream":false,"mock_response":"hello"}"#
    );
}

#[test]
fn client_include_usage_is_remembered() {
    let r = chat(r#"{"model":"m","messages":[{"role":"user"}],"stream":true,"stream_options":{"include_usage":true}}"#).unwrap();
    assert!(r.include_usage);
}
