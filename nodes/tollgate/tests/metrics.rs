//! `/metrics`: every request counted exactly once with a numeric status, the failure counter
//! equal to the 4xx + 5xx series at every scrape, scrape auth and the separate listener; and the
//! same counters pushed over OTLP when asked for.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use std::collections::BTreeMap;

use common::*;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use serde_json::{Value, json};

const OBS_YAML: &str = r#"
model_list:
  - model_name: gpt-test
    litellm_params: { model: openai/mock-gpt, api_base: MOCK, api_key: os.environ/UPSTREAM_KEY, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002 }
  - model_name: broken
    litellm_params: { model: openai/broken, api_base: MOCK }
general_settings: { master_key: sk-test-master-key-0001, max_request_size_mb: 1 }
observability:
  metrics: { entity_labels: [key_alias] }
"#;

const FAULTS: &str = "faults:\n  - { model: broken, kind: \"500\" }\n";

/// One sample: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut map = BTreeMap::new();
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap();
            map.insert(k.to_owned(), v.trim_matches('"').to_owned());
        }
        out.push((name.to_owned(), map, value.parse().unwrap()));
    }
    out
}

fn sum(samples: &[Sample], name: &str, filter: impl Fn(&BTreeMap<String, String>) -> bool) -> f64 {
    samples
        .iter()
        .filter(|(n, labels, _)| n == name && filter(labels))
        .map(|(_, _, v)| v)
        .sum()
}

async fn scrape(node: &TestNode, key: Option<&str>) -> (u16, String) {
    let mut request = client().get(node.url("/metrics"));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let r = request.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Checks the invariants every scrape must satisfy; returns the requests counted.
fn check_scrape(text: &str) -> f64 {
    let samples = parse(text);
    let total = sum(&samples, "tollgate_requests_total", |_| true);
    let failed_in_total = sum(&samples, "tollgate_requests_total", |l| {
        l["status_code"].starts_with('4') || l["status_code"].starts_with('5')
    });
    let failed = sum(&samples, "tollgate_requests_failed_total", |_| true);
    assert_eq!(
        failed, failed_in_total,
        "failed ≠ 4xx+5xx of total in\n{text}"
    );
    for (name, labels, _) in &samples {
        if name.starts_with("tollgate_requests") && name.ends_with("_total") {
            let status = &labels["status_code"];
            assert!(
                status.len() == 3 && status.bytes().all(|b| b.is_ascii_digit()),
                "{status}"
            );
            for key in ["route", "model", "provider"] {
                let value = &labels[key];
                assert!(
                    !value.is_empty() && value != "None",
                    "{name} {key}={value:?}"
                );
            }
        }
    }
    total
}

#[tokio::test]
async fn every_request_is_counted_once_and_failed_matches_at_every_scrape() {
    let mock = start_mock(mock_settings(FAULTS)).await;
    let node = start_node(OBS_YAML, Some(&mock)).await;
    let (status, _, generated) = post(
        &node,
        "/key/generate",
        &json!({"key_alias": "alice", "max_budget": 100.0}),
    )
    .await;
    assert_eq!(status, 200);
    let key = generated["key"].as_str().unwrap().to_owned();
    let (_, _, poor) = post(&node, "/key/generate", &json!({"max_budget": 0.0})).await;
    let poor = poor["key"].as_str().unwrap().to_owned();
    let (_, _, limited) = post(&node, "/key/generate", &json!({"rpm_limit": 1})).await;
    let limited = limited["key"].as_str().unwrap().to_owned();
    let sent_before = 3.0; // the three /key/generate calls

    // A concurrent mix, scraped while it runs.
    let kinds = 8;
    let rounds = 25;
    let mut tasks = Vec::new();
    for i in 0..kinds * rounds {
        let url = node.url("/v1/chat/completions");
        let (key, model) = (key.clone(), "gpt-test");
        let (poor, limited) = (poor.clone(), limited.clone());
        tasks.push(tokio::spawn(async move {
            let c = client();
            let chat = json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3});
            let r = match i % kinds {
                0 => c.post(&url).bearer_auth(&key).json(&chat).send().await,
                1 => {
                    let mut stream = chat.clone();
                    stream["stream"] = json!(true);
                    c.post(&url).bearer_auth(&key).json(&stream).send().await
                }
                2 => c.post(&url).bearer_auth(&key).body("{not json").send().await,
                3 => c.post(&url).bearer_auth("sk-invalid-key-000").json(&chat).send().await,
                4 => {
                    let mut broken = chat.clone();
                    broken["model"] = json!("broken");
                    c.post(&url).bearer_auth(MASTER).json(&broken).send().await
                }
                5 => {
                    let mut unknown = chat.clone();
                    unknown["model"] = json!("no-such-model");
                    c.post(&url).bearer_auth(&key).json(&unknown).send().await
                }
                6 => c.post(&url).bearer_auth(&poor).json(&chat).send().await,
                _ => c.post(&url).bearer_auth(&limited).json(&chat).send().await,
            }
            .unwrap();
            let status = r.status().as_u16();
            let _ = r.bytes().await;
            status
        }));
    }
    let mut scrapes = 0;
    while tasks.iter().any(|t| !t.is_finished()) {
        let (status, text) = scrape(&node, None).await;
        assert_eq!(status, 200);
        check_scrape(&text);
        scrapes += 1;
    }
    let mut by_status: BTreeMap<u16, u32> = BTreeMap::new();
    for task in tasks {
        *by_status.entry(task.await.unwrap()).or_default() += 1;
    }
    for expected in [200, 400, 401, 404, 429, 500] {
        assert!(by_status.contains_key(&expected), "{by_status:?}");
    }
    // The outcome of the last streams may still be finishing: wait until all are recorded.
    let sent = sent_before + (kinds * rounds) as f64;
    let mut last = String::new();
    for _ in 0..100 {
        last = scrape(&node, None).await.1;
        if check_scrape(&last) == sent {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        check_scrape(&last),
        sent,
        "each request once, scrapes not counted ({scrapes} scrapes)"
    );
    let samples = parse(&last);
    for (status, count) in &by_status {
        let counted = sum(&samples, "tollgate_requests_total", |l| {
            l["status_code"] == status.to_string() && l["route"] == "/v1/chat/completions"
        });
        assert_eq!(counted, f64::from(*count), "status {status}");
    }
    let unknown_model = sum(&samples, "tollgate_requests_total", |l| {
        l["status_code"] == "401" && l["model"] == "unknown" && l["provider"] == "unknown"
    });
    assert_eq!(
        unknown_model,
        f64::from(rounds as u32),
        "rejected before routing: model unknown"
    );
    assert!(
        sum(
            &samples,
            "tollgate_admission_rejections_total",
            |l| l["reason"] == "budget"
        ) >= 1.0
    );
    assert!(
        sum(
            &samples,
            "tollgate_admission_rejections_total",
            |l| l["reason"] == "rate_limit"
        ) >= 1.0
    );
    assert!(
        sum(&samples, "tollgate_spend_nano_usd_total", |l| l
            .get("key_alias")
            .map(String::as_str)
            == Some("alice"))
            > 0.0
    );
    assert!(
        sum(&samples, "tollgate_budget_remaining_nano_usd", |l| l
            .get("key_alias")
            .map(String::as_str)
            == Some("alice"))
            > 0.0
    );
    assert!(
        sum(
            &samples,
            "gen_ai_client_token_usage_count",
            |l| l["gen_ai_token_type"] == "output"
        ) > 0.0
    );
    assert!(
        sum(
            &samples,
            "gen_ai_server_time_to_first_token_seconds_count",
            |_| true
        ) >= 1.0
    );
    assert!(
        sum(&samples, "tollgate_upstream_duration_seconds_count", |l| l
            ["outcome"]
            == "error")
            >= 1.0
    );
    assert!(!last.contains(&key), "no key in metrics");
}

#[tokio::test]
async fn scrape_auth_and_a_separate_listener() {
    let mock = start_mock(mock_settings(FAULTS)).await;
    let yaml = OBS_YAML.replace(
        "metrics: { entity_labels: [key_alias] }",
        "metrics: { require_auth: true, path: /internal/metrics }",
    );
    let node = start_node(&yaml, Some(&mock)).await;
    let probe = |key: Option<&'static str>| {
        let url = node.url("/internal/metrics");
        async move {
            let mut r = client().get(url);
            if let Some(key) = key {
                r = r.bearer_auth(key);
            }
            r.send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(probe(None).await, 401);
    assert_eq!(probe(Some("sk-wrong-key-0000")).await, 401);
    assert_eq!(probe(Some(MASTER)).await, 200);
    let (_, _, generated) = post(&node, "/key/generate", &json!({})).await;
    let key: &'static str = Box::leak(
        generated["key"]
            .as_str()
            .unwrap()
            .to_owned()
            .into_boxed_str(),
    );
    assert_eq!(probe(Some(key)).await, 200, "any valid key may scrape");
    assert_eq!(
        scrape(&node, Some(MASTER)).await.0,
        404,
        "only the configured path"
    );

    // Metrics on their own listener: not on the main port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let yaml = OBS_YAML.replace(
        "metrics: { entity_labels: [key_alias] }",
        &format!("metrics: {{ listen: \"127.0.0.1:{port}\" }}"),
    );
    let node = start_node(&yaml, Some(&mock)).await;
    let (status, _, _) = post(&node, "/v1/chat/completions", &chat_body("gpt-test")).await;
    assert_eq!(status, 200);
    assert_eq!(scrape(&node, None).await.0, 404);
    let mut text = String::new();
    for _ in 0..50 {
        if let Ok(r) = client()
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
        {
            assert_eq!(r.status(), 200);
            text = r.text().await.unwrap();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        check_scrape(&text),
        2.0,
        "the chat and the main-port scrape attempt (a 404)"
    );
    // HEAD where GET is, on this listener too; nothing else.
    for (method, status) in [(reqwest::Method::HEAD, 200), (reqwest::Method::POST, 404)] {
        let response = client()
            .request(method.clone(), format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{method}");
        if status == 200 {
            assert!(
                response.bytes().await.unwrap().is_empty(),
                "HEAD has no body"
            );
        }
    }
    let _: Value = Value::Null;
}

/// An OTLP metrics receiver that keeps every push.
#[derive(Clone, Default)]
struct MetricsReceiver {
    pushes: std::sync::Arc<std::sync::Mutex<Vec<ExportMetricsServiceRequest>>>,
}

#[tonic::async_trait]
impl MetricsService for MetricsReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.pushes.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// The sum of a pushed counter's points, over those whose `status_code` passes `keep`.
fn pushed(push: &ExportMetricsServiceRequest, name: &str, keep: impl Fn(u16) -> bool) -> i64 {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value as N};
    let mut total = 0;
    for metric in push
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .filter(|m| m.name == name)
    {
        let Some(Data::Sum(sum)) = &metric.data else {
            panic!("{name} is not a sum");
        };
        for point in &sum.data_points {
            let status = point
                .attributes
                .iter()
                .find(|kv| kv.key == "status_code")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    Any::StringValue(s) => s.parse::<u16>().ok(),
                    _ => None,
                })
                .expect("a numeric status_code on every point");
            if keep(status) {
                let Some(N::AsInt(n)) = point.value else {
                    panic!("{name}: {:?}", point.value);
                };
                total += n;
            }
        }
    }
    total
}

#[tokio::test]
async fn metrics_are_pushed_to_an_otlp_collector_when_asked_for() {
    let mock = start_mock(mock_settings(FAULTS)).await;
    let receiver = MetricsReceiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MetricsServiceServer::new(receiver.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let yaml = OBS_YAML.replace(
        "metrics: { entity_labels: [key_alias] }",
        &format!(
            "metrics: {{ entity_labels: [key_alias] }}\n  otlp: {{ endpoint: \"http://{collector}\", metrics: true }}"
        ),
    );
    let node = start_node(&yaml, Some(&mock)).await;
    let (status, _, _) = post(&node, "/v1/chat/completions", &chat_body("gpt-test")).await;
    assert_eq!(status, 200);
    let (status, _, _) = post(&node, "/v1/chat/completions", &chat_body("broken")).await;
    assert!(status >= 500, "{status}");
    let refused = client()
        .post(node.url("/v1/chat/completions"))
        .bearer_auth("sk-not-a-key")
        .json(&chat_body("gpt-test"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    // The default interval is a minute: what arrives is the push a stopping node makes.
    let TestNode {
        server, outcomes, ..
    } = node;
    server.stop().await.unwrap();
    tokio::task::spawn_blocking(move || drop(outcomes))
        .await
        .unwrap();
    let pushes = receiver.pushes.lock().unwrap().clone();
    let last = pushes.last().expect("a push when the node stopped");
    assert_eq!(pushed(last, "tollgate.requests", |_| true), 3);
    assert_eq!(
        pushed(last, "tollgate.requests", |s| s >= 400),
        pushed(last, "tollgate.requests.failed", |_| true),
    );
    assert_eq!(pushed(last, "tollgate.requests", |s| s == 401), 1);
}
