//! An OTLP/gRPC trace sink on the mock's port: accepts `ExportTraceServiceRequest`s and only
//! counts the spans, so benchmarks can run a gateway with trace export on and nothing else.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

/// Counts the spans it received.
#[derive(Clone, Debug, Default)]
pub struct SpanSink {
    spans: Arc<AtomicU64>,
}

impl SpanSink {
    pub fn received(&self) -> u64 {
        self.spans.load(Ordering::Relaxed)
    }

    /// The sink as axum routes (gRPC on the same port as the HTTP APIs).
    pub fn router(&self) -> axum::Router {
        tonic::service::Routes::new(TraceServiceServer::new(self.clone()))
            .prepare()
            .into_axum_router()
    }
}

#[tonic::async_trait]
impl TraceService for SpanSink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let count: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.spans.fetch_add(count as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}
