use std::time::Duration;

use super::*;
use crate::otlp::{PushPlan, PushSettings};

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
    m.upstream_series(&Arc::from("dep-a"), "openai", &Arc::from("gpt-test"))
        .record(true, Duration::from_millis(5));
    m.spend(
        &Arc::from("gpt-test"),
        "openai",
        1234,
        &[("key_alias", "alice".to_owned())],
    );
    m.rejection("budget", "key");
    let before = m.render().unwrap();
    assert!(before.contains("tollgate_requests_in_flight 0"));
    let in_flight = m.in_flight_counter();
    for delta in [1, 1, -1] {
        in_flight.fetch_add(delta, std::sync::atomic::Ordering::Relaxed);
    }
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
        m.upstream_series(&Arc::from("dep-a"), "openai", &r.model)
            .record(true, Duration::from_millis(5));
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

/// An OTLP metrics receiver that keeps every push.
#[derive(Clone, Default)]
struct Receiver {
    pushes: Arc<std::sync::Mutex<Vec<ExportMetricsServiceRequest>>>,
}

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::MetricsService
    for Receiver
{
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<
        tonic::Response<
            opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse,
        >,
        tonic::Status,
    > {
        self.pushes.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(Default::default()))
    }
}

/// The sum of a counter's points in a push, over the points whose `status_code` passes `keep`.
fn counted(push: &ExportMetricsServiceRequest, name: &str, keep: impl Fn(u16) -> bool) -> i64 {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point};
    let status = |point: &opentelemetry_proto::tonic::metrics::v1::NumberDataPoint| {
        point
            .attributes
            .iter()
            .find(|kv| kv.key == "status_code")
            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                Value::StringValue(s) => s.parse().ok(),
                _ => None,
            })
            .expect("every request point has a numeric status_code")
    };
    push.resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .filter(|m| m.name == name)
        .filter_map(|m| match &m.data {
            Some(Data::Sum(sum)) => Some(&sum.data_points),
            _ => None,
        })
        .flatten()
        .filter(|point| keep(status(point)))
        .map(|point| match point.value {
            Some(number_data_point::Value::AsInt(n)) => n,
            other => panic!("{name}: {other:?}"),
        })
        .sum()
}

#[tokio::test]
async fn metrics_pushed_over_otlp_arrive_and_add_up_in_every_push() {
    use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::MetricsServiceServer;
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MetricsServiceServer::new(receiver.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let settings = PushSettings {
        export: crate::otlp::ExportSettings {
            endpoint: format!("http://{addr}"),
            timeout: Duration::from_secs(5),
            ..Default::default()
        },
        interval: Duration::from_millis(100),
    };
    let m = Metrics::build("tollgate-test", Some(PushPlan::new(&settings).unwrap())).unwrap();
    assert_eq!(
        m.pushing_to(),
        Some(format!("http://{addr} every 0.1 s").as_str())
    );
    for status in [200, 200, 503, 401] {
        m.request(&record(status));
    }
    m.in_flight_counter()
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let arrived = async {
        loop {
            let pushes = receiver.pushes.lock().unwrap().clone();
            if pushes
                .iter()
                .any(|p| counted(p, "tollgate.requests", |_| true) == 4)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), arrived)
        .await
        .expect("a push with the four requests within 10 s");
    m.request(&record(429));
    // Stopping pushes once more.
    tokio::task::spawn_blocking(move || drop(m)).await.unwrap();

    let pushes = receiver.pushes.lock().unwrap().clone();
    let last = pushes.last().unwrap();
    assert_eq!(counted(last, "tollgate.requests", |_| true), 5);
    assert_eq!(counted(last, "tollgate.requests.failed", |_| true), 3);
    for push in &pushes {
        assert_eq!(
            counted(push, "tollgate.requests", |s| s >= 400),
            counted(push, "tollgate.requests.failed", |_| true),
            "failed equals the 4xx and 5xx requests in every push"
        );
    }
    let service = last.resource_metrics[0]
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.clone());
    assert!(
        format!("{service:?}").contains("tollgate-test"),
        "{service:?}"
    );
    let names: Vec<&str> = last.resource_metrics[0]
        .scope_metrics
        .iter()
        .flat_map(|s| &s.metrics)
        .map(|m| m.name.as_str())
        .collect();
    for name in [
        "gen_ai.server.request.duration",
        "gen_ai.client.token.usage",
        "tollgate.requests.in_flight",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
}

#[tokio::test]
async fn where_metrics_are_pushed_is_told_without_credentials() {
    let settings = PushSettings {
        export: crate::otlp::ExportSettings {
            endpoint: "http://otel:s3cret@127.0.0.1:1".to_owned(),
            timeout: Duration::from_millis(100),
            ..Default::default()
        },
        interval: Duration::from_secs(60),
    };
    let m = Metrics::build("tollgate-test", Some(PushPlan::new(&settings).unwrap())).unwrap();
    assert_eq!(m.pushing_to(), Some("http://***@127.0.0.1:1 every 60 s"));
    tokio::task::spawn_blocking(move || drop(m)).await.unwrap();
}

#[test]
fn push_settings_are_checked_without_starting_anything() {
    let push = |endpoint: Option<&str>, enabled| OtlpPush {
        endpoint: endpoint.map(str::to_owned),
        enabled: Some(enabled),
    };
    assert!(push(None, false).check().unwrap().0.is_none(), "off");
    assert!(push(Some("http://127.0.0.1:4317"), true).check().is_ok());
    // Nothing listens on port 1: a check that connected would fail here.
    assert!(push(Some("http://127.0.0.1:1"), true).check().is_ok());
    for wrong in [Some("ftp://collector:4317"), Some("not a url"), None] {
        let error = push(wrong, true).check().unwrap_err().to_string();
        assert!(error.starts_with("OTLP metrics push: "), "{error}");
    }
}
