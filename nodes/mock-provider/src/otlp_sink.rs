//! An OTLP/gRPC trace sink on the mock's port: accepts `ExportTraceServiceRequest`s and only
//! counts the spans, so benchmarks can run a gateway with trace export on and nothing else.
//!
//! The mock shares its core with the load generator, so the sink must cost that core next to
//! nothing: requests are decoded only as far as the span list (each span stays an undecoded
//! slice of the request), instead of into `opentelemetry-proto`'s full message tree, which costs
//! more per span than the gateway spends producing it.

use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// `ExportTraceServiceRequest`, as far as its spans.
#[derive(Clone, PartialEq, prost::Message)]
struct ExportRequest {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<ResourceSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ResourceSpans {
    #[prost(message, repeated, tag = "2")]
    scope_spans: Vec<ScopeSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ScopeSpans {
    #[prost(bytes = "bytes", repeated, tag = "2")]
    spans: Vec<Bytes>,
}

/// `ExportTraceServiceResponse` without a partial-success note: everything was accepted.
#[derive(Clone, PartialEq, prost::Message)]
struct ExportResponse {}

/// Counts the spans it received.
#[derive(Clone, Debug, Default)]
pub struct SpanSink {
    spans: Arc<AtomicU64>,
}

impl SpanSink {
    pub fn received(&self) -> u64 {
        self.spans.load(Ordering::Relaxed)
    }

    /// The sink as an axum route (gRPC on the same port as the HTTP APIs).
    pub fn router(&self) -> axum::Router {
        let sink = self.clone();
        axum::Router::new().route(
            EXPORT_PATH,
            axum::routing::post(move |request: axum::extract::Request| {
                let sink = sink.clone();
                async move {
                    tonic::server::Grpc::new(
                        tonic_prost::ProstCodec::<ExportResponse, ExportRequest>::default(),
                    )
                    .unary(sink, request)
                    .await
                }
            }),
        )
    }
}

impl tonic::server::UnaryService<ExportRequest> for SpanSink {
    type Response = ExportResponse;
    type Future = Ready<Result<tonic::Response<ExportResponse>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<ExportRequest>) -> Self::Future {
        let count: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.spans.fetch_add(count as u64, Ordering::Relaxed);
        ready(Ok(tonic::Response::new(ExportResponse {})))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use opentelemetry_proto::tonic::trace::v1::{
        ResourceSpans as FullResourceSpans, ScopeSpans as FullScopeSpans, Span,
    };

    #[tokio::test]
    async fn a_real_otlp_client_is_answered_and_its_spans_counted() {
        let sink = SpanSink::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = sink.router();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let span = |name: &str| Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: name.to_owned(),
            ..Span::default()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![
                FullResourceSpans {
                    scope_spans: vec![FullScopeSpans {
                        spans: vec![span("a"), span("b")],
                        ..FullScopeSpans::default()
                    }],
                    ..FullResourceSpans::default()
                },
                FullResourceSpans {
                    scope_spans: vec![FullScopeSpans {
                        spans: vec![span("c")],
                        ..FullScopeSpans::default()
                    }],
                    ..FullResourceSpans::default()
                },
            ],
        };
        let mut client = TraceServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let response = client.export(request).await.unwrap().into_inner();
        assert_eq!(response.partial_success, None);
        assert_eq!(sink.received(), 3);
    }
}
