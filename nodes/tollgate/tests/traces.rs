//! Traces really arrive at an OTLP/gRPC receiver (built on opentelemetry-proto's tonic server
//! stubs): a span per request named `chat {model}` with `gen_ai.*` attributes, parented to the
//! client's `traceparent`, a child span per upstream attempt, and the attempt's context
//! propagated to the upstream. One test per file: the tracing subscriber is process-global.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::{Value, json};
use tokio::net::TcpListener;

#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Span>>>,
    /// The `service.name` of every batch.
    services: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    AnyValue::StringValue(name) => Some(name.clone()),
                    _ => None,
                });
            self.services
                .lock()
                .unwrap()
                .push(service.unwrap_or_default());
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a AnyValue> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn text(span: &Span, key: &str) -> String {
    match attr(span, key) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        other => panic!("{key}: {other:?} in {:?}", span.name),
    }
}

fn int(span: &Span, key: &str) -> i64 {
    match attr(span, key) {
        Some(AnyValue::IntValue(n)) => *n,
        other => panic!("{key}: {other:?} in {:?}", span.name),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CLIENT_SPAN: &str = "b7ad6b7169203331";
const UNSAMPLED_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
/// How long the upstream takes to answer a chat completion.
const UPSTREAM_DELAY: std::time::Duration = std::time::Duration::from_millis(40);

fn unix_nanos(time: std::time::SystemTime) -> u64 {
    let since = time.duration_since(std::time::UNIX_EPOCH).unwrap();
    u64::try_from(since.as_nanos()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_arrive_with_attributes_and_parentage() {
    // The OTLP receiver.
    let receiver = Receiver::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = listener.local_addr().unwrap();
    let app = tonic::service::Routes::new(TraceServiceServer::new(receiver.clone()))
        .prepare()
        .into_axum_router();
    tokio::spawn(async move { axum::serve(listener, app).await });

    // An upstream that records the trace context it was sent.
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let recorded = seen.clone();
    let upstream = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |headers: HeaderMap| {
            let recorded = recorded.clone();
            async move {
                if let Some(tp) = headers.get("traceparent") {
                    let state = headers.get("tracestate").map(|s| s.to_str().unwrap());
                    let state = state.map_or(String::new(), |s| format!(" {s}"));
                    recorded.lock().unwrap().push(format!("{}{state}", tp.to_str().unwrap()));
                }
                tokio::time::sleep(UPSTREAM_DELAY).await;
                let body = json!({
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "up-model",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
                });
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body.to_string(),
                )
            }
        }),
    );
    let upstream = upstream.route(
        "/v1/embeddings",
        axum::routing::post(|| async {
            let body = json!({
                "object": "list", "model": "up-model",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}],
                "usage": {"prompt_tokens": 3, "total_tokens": 3}
            });
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
        }),
    );
    // A deployment that is down for text completions.
    let upstream = upstream.route(
        "/v1/completions",
        axum::routing::post(|| async {
            let body = json!({"error": {"message": "overloaded", "type": "server_error"}});
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
        }),
    );
    let up = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_addr = up.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(up, upstream).await });

    let guard = tollgate::telemetry::init(&tollgate::telemetry::TracingSettings {
        json_logs: true,
        otlp_endpoint: Some(format!("http://{otlp}")),
        service_name: "tollgate-test".to_owned(),
        sample_ratio: None,
    })
    .unwrap();
    assert!(tollgate::telemetry::traces_enabled());

    let yaml = format!(
        "model_list:\n  - model_name: gpt-test\n    litellm_params: {{ model: openai/up-model, api_base: \"http://{up_addr}/v1\" }}\ngeneral_settings: {{ master_key: {MASTER} }}\n"
    );
    let node = start_node(&yaml, None).await;
    let before = unix_nanos(std::time::SystemTime::now());
    let response = client()
        .post(node.url("/v1/chat/completions"))
        .bearer_auth(MASTER)
        .header("traceparent", format!("00-{TRACE_ID}-{CLIENT_SPAN}-01"))
        .header("tracestate", "congo=t61rcWkgMzE")
        .json(&json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let _: Value = response.json().await.unwrap();
    let after = unix_nanos(std::time::SystemTime::now());
    // A client that decided not to sample: no spans, its traceparent passed on as it came.
    let unsampled = format!("00-{UNSAMPLED_TRACE}-{CLIENT_SPAN}-00");
    let response = client()
        .post(node.url("/v1/chat/completions"))
        .bearer_auth(MASTER)
        .header("traceparent", &unsampled)
        .header("tracestate", "rojo=00f067aa0ba902b7")
        .json(&json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = client()
        .post(node.url("/v1/embeddings"))
        .bearer_auth(MASTER)
        .json(&json!({"model": "gpt-test", "input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = client()
        .post(node.url("/v1/completions"))
        .bearer_auth(MASTER)
        .json(&json!({"model": "gpt-test", "prompt": "hi"}))
        .send()
        .await
        .unwrap();
    let failed_status = response.status().as_u16();
    assert!(failed_status >= 500, "{failed_status}");
    // Refused before a deployment was chosen: an unknown model, and no key at all.
    let response = client()
        .post(node.url("/v1/chat/completions"))
        .bearer_auth(MASTER)
        .json(&json!({"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let response = client()
        .post(node.url("/v1/chat/completions"))
        .json(&json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    node.server.stop().await.unwrap();
    // Shutting the provider down flushes the batch.
    tokio::task::spawn_blocking(move || drop(guard))
        .await
        .unwrap();

    let spans = receiver.spans.lock().unwrap().clone();
    let services = receiver.services.lock().unwrap().clone();
    assert!(
        !services.is_empty() && services.iter().all(|s| s == "tollgate-test"),
        "every batch names the configured service: {services:?}"
    );
    let request = spans
        .iter()
        .find(|s| s.name == "chat gpt-test")
        .unwrap_or_else(|| {
            panic!(
                "no request span in {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        });
    assert_eq!(hex(&request.trace_id), TRACE_ID, "joins the client's trace");
    assert_eq!(
        hex(&request.parent_span_id),
        CLIENT_SPAN,
        "parented to the client's span"
    );
    assert_eq!(request.kind, 2, "SERVER");
    assert_eq!(text(request, "gen_ai.operation.name"), "chat");
    assert_eq!(text(request, "gen_ai.request.model"), "gpt-test");
    assert_eq!(text(request, "gen_ai.provider.name"), "openai");
    assert_eq!(int(request, "http.response.status_code"), 200);
    assert_eq!(int(request, "gen_ai.usage.input_tokens"), 7);
    assert_eq!(int(request, "gen_ai.usage.output_tokens"), 2);
    assert_eq!(text(request, "http.route"), "/v1/chat/completions");

    assert!(
        spans.iter().all(|s| s.name != "Actor"),
        "only the gateway's own spans are exported"
    );
    let attempt = spans
        .iter()
        .find(|s| s.name == "chat up-model")
        .expect("an upstream attempt span");
    assert_eq!(attempt.trace_id, request.trace_id);
    assert_eq!(
        attempt.parent_span_id, request.span_id,
        "child of the request span"
    );
    assert_eq!(attempt.kind, 3, "CLIENT");
    assert_eq!(text(attempt, "gen_ai.operation.name"), "chat");
    assert_eq!(text(attempt, "gen_ai.request.model"), "up-model");
    assert_eq!(text(attempt, "gen_ai.provider.name"), "openai");
    assert_eq!(int(attempt, "http.response.status_code"), 200);
    assert_eq!(int(attempt, "gen_ai.usage.input_tokens"), 7);
    assert_eq!(int(attempt, "gen_ai.usage.output_tokens"), 2);
    assert!(
        request.status.as_ref().is_none_or(|s| s.code == 0) && attempt.status == request.status,
        "a success is not marked as an error"
    );
    assert!(attempt.attributes.iter().all(|a| a.key != "error.type"));
    let deployment = text(request, "tollgate.deployment");
    assert!(!deployment.is_empty());
    assert_eq!(text(attempt, "tollgate.deployment"), deployment);
    // Times: the request's span within the client's call, the attempt's within the request's,
    // lasting at least the upstream's delay.
    assert!(
        before <= request.start_time_unix_nano
            && request.start_time_unix_nano <= attempt.start_time_unix_nano
            && attempt.end_time_unix_nano <= request.end_time_unix_nano
            && request.end_time_unix_nano <= after,
        "client call {before}..{after}, request {}..{}, attempt {}..{}",
        request.start_time_unix_nano,
        request.end_time_unix_nano,
        attempt.start_time_unix_nano,
        attempt.end_time_unix_nano
    );
    let upstream_delay = u64::try_from(UPSTREAM_DELAY.as_nanos()).unwrap();
    assert!(attempt.end_time_unix_nano - attempt.start_time_unix_nano >= upstream_delay);

    // Another operation: its own name and attributes on both spans.
    let embed = spans
        .iter()
        .find(|s| s.name == "embeddings gpt-test")
        .expect("an embeddings request span");
    assert_eq!(text(embed, "gen_ai.operation.name"), "embeddings");
    assert_eq!(text(embed, "gen_ai.request.model"), "gpt-test");
    assert_eq!(text(embed, "tollgate.deployment"), deployment);
    assert_eq!(int(embed, "gen_ai.usage.input_tokens"), 3);
    let embed_attempt = spans
        .iter()
        .find(|s| s.name == "embeddings up-model")
        .expect("an embeddings attempt span");
    assert_eq!(embed_attempt.parent_span_id, embed.span_id);
    assert_eq!(text(embed_attempt, "gen_ai.operation.name"), "embeddings");
    assert_eq!(text(embed_attempt, "gen_ai.request.model"), "up-model");

    // A failed attempt: the upstream's status, why, and status ERROR on both spans.
    let failed = spans
        .iter()
        .find(|s| s.name == "text_completion gpt-test")
        .expect("a failed request's span");
    let failed_attempt = spans
        .iter()
        .find(|s| s.name == "text_completion up-model")
        .expect("a failed attempt's span");
    assert_eq!(failed_attempt.parent_span_id, failed.span_id);
    assert_eq!(int(failed_attempt, "http.response.status_code"), 503);
    assert!(!text(failed_attempt, "error.type").is_empty());
    assert_eq!(
        int(failed, "http.response.status_code"),
        i64::from(failed_status)
    );
    assert!(!text(failed, "error.type").is_empty());
    for span in [failed, failed_attempt] {
        assert_eq!(span.status.as_ref().map(|s| s.code), Some(2), "ERROR");
    }

    // Refused requests: a span each, no attempt under it; without a known operation and
    // model, named after the route.
    let refused = |status: i64| {
        spans
            .iter()
            .find(|s| {
                s.name == "POST /v1/chat/completions"
                    && int(s, "http.response.status_code") == status
            })
            .unwrap_or_else(|| panic!("no span for the {status}"))
    };
    let not_found = spans
        .iter()
        .find(|s| s.name == "chat no-such-model")
        .expect("the unknown model's span, named after what was asked for");
    assert_eq!(int(not_found, "http.response.status_code"), 404);
    assert_eq!(text(not_found, "error.type"), "model_not_found");
    assert_eq!(text(not_found, "gen_ai.operation.name"), "chat");
    assert_eq!(text(not_found, "gen_ai.request.model"), "no-such-model");
    assert_eq!(text(not_found, "gen_ai.provider.name"), "unknown");
    let no_key = refused(401);
    assert_eq!(text(no_key, "error.type"), "invalid_api_key");
    for span in [not_found, no_key] {
        assert_eq!(text(span, "http.route"), "/v1/chat/completions");
        assert_eq!(text(span, "http.request.method"), "POST");
        assert_eq!(span.kind, 2, "SERVER");
        assert_eq!(span.status.as_ref().map(|s| s.code), Some(2), "ERROR");
        assert!(span.parent_span_id.is_empty());
        assert!(spans.iter().all(|s| s.parent_span_id != span.span_id));
    }
    assert!(
        spans.iter().all(|s| hex(&s.trace_id) != UNSAMPLED_TRACE),
        "a request its client did not sample exports no spans"
    );
    let sent = seen.lock().unwrap().clone();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(
        sent[1],
        format!("{unsampled} rojo=00f067aa0ba902b7"),
        "the client's own decision and its tracestate travel on"
    );
    assert_eq!(
        sent[0],
        format!(
            "00-{TRACE_ID}-{}-01 congo=t61rcWkgMzE",
            hex(&attempt.span_id)
        ),
        "the upstream continues the trace from the attempt span, with the client's tracestate"
    );
}
