use std::time::Duration;

use super::*;

fn record(status: u16) -> RequestRecord {
    RequestRecord {
        status,
        route: "/v1/chat/completions",
        model: Arc::from("gpt-test"),
        provider: "openai",
        operation: Some("chat"),
        duration: Duration::from_millis(12),
        ttft: Some(Duration::from_millis(3)),
        input_tokens: Some(7),
        output_tokens: Some(5),
        error: (status >= 400).then_some("upstream_error"),
    }
}

#[test]
fn prometheus_names_and_labels() {
    let m = Metrics::new("tollgate-test").unwrap();
    m.request(&record(200));
    m.request(&record(200));
    m.request(&record(502));
    m.request(&record(418));
    m.upstream(
        &Arc::from("dep-a"),
        "openai",
        &Arc::from("gpt-test"),
        true,
        Duration::from_millis(5),
    );
    m.spend(
        &Arc::from("gpt-test"),
        "openai",
        1234,
        &[("key_alias", "alice".to_owned())],
    );
    m.rejection("budget", "key");
    m.in_flight(1);
    let text = m.render().unwrap();
    for needle in [
        r#"tollgate_requests_total{model="gpt-test",provider="openai",route="/v1/chat/completions",status_code="200"} 2"#,
        r#"tollgate_requests_failed_total{model="gpt-test",provider="openai",route="/v1/chat/completions",status_code="502"} 1"#,
        r#"status_code="418""#,
        "tollgate_requests_in_flight 1",
        "gen_ai_server_request_duration_seconds_bucket",
        "gen_ai_server_time_to_first_token_seconds_count",
        r#"gen_ai_token_type="output""#,
        "tollgate_upstream_duration_seconds_count",
        r#"tollgate_spend_nano_usd_total{key_alias="alice",model="gpt-test",provider="openai"} 1234"#,
        r#"tollgate_admission_rejections_total{entity="key",reason="budget"} 1"#,
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    assert!(!text.contains(r#"tollgate_requests_failed_total{model="gpt-test",provider="openai",route="/v1/chat/completions",status_code="200"}"#));
    assert!(!text.contains("otel_scope_name"), "no scope labels");
}

#[test]
fn equal_labels_from_different_strings_add_up_in_one_series() {
    let m = Metrics::new("tollgate-test").unwrap();
    // Two allocations of the same model name, as two configs or a reload would make.
    for _ in 0..3 {
        let mut r = record(200);
        r.model = Arc::from(String::from("gpt-test").as_str());
        m.request(&r);
        m.upstream(
            &Arc::from("dep-a"),
            "openai",
            &r.model,
            true,
            Duration::from_millis(5),
        );
        m.spend(&r.model, "openai", 10, &[]);
    }
    m.request(&record(502));
    let text = m.render().unwrap();
    for needle in [
        r#"tollgate_requests_total{model="gpt-test",provider="openai",route="/v1/chat/completions",status_code="200"} 3"#,
        r#"tollgate_requests_failed_total{model="gpt-test",provider="openai",route="/v1/chat/completions",status_code="502"} 1"#,
        r#"gen_ai_client_token_usage_count{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-test",gen_ai_token_type="input"} 4"#,
        r#"gen_ai_server_request_duration_seconds_count{error_type="upstream_error",gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-test"} 1"#,
        r#"gen_ai_server_request_duration_seconds_count{gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="gpt-test"} 3"#,
        r#"tollgate_upstream_duration_seconds_count{deployment="dep-a",model="gpt-test",outcome="ok",provider="openai"} 3"#,
        r#"tollgate_spend_nano_usd_total{model="gpt-test",provider="openai"} 30"#,
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
}
