//! OTLP/gRPC span export: each ended span is written straight into the protobuf bytes of an
//! `ExportTraceServiceRequest`'s span list ([`Queue::push`], on the request's thread), and a
//! dedicated export thread sends what has gathered as one unary call to
//! `opentelemetry.proto.collector.trace.v1.TraceService/Export` when 2,048 spans (or 1 MiB) are
//! waiting or every 5 seconds, and once more at shutdown; a sent batch's buffer takes the batch
//! after next.
//!
//! The OpenTelemetry SDK's batch processor with `opentelemetry-otlp` does the same in three
//! steps: a `SpanData` per span handed to the processor's thread, copied there into an owned
//! tree of `opentelemetry-proto` messages, and that tree encoded by prost, which measures each
//! nested message again at every level above it. On a gateway that traces every request those
//! steps were most of a traced request's cost (56,000 instructions; about 5,000 now that spans
//! are written as they are built). The wire format is the same: the tests decode our bytes with
//! `opentelemetry-proto` and compare them with the SDK's own conversion, and the node's OTLP
//! receiver test checks what arrives.
//!
//! Configuration follows the OTLP exporter specification: the endpoint from config or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`, headers from
//! `OTEL_EXPORTER_OTLP_TRACES_HEADERS` / `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`,
//! percent-encoded values), the per-export timeout from `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` /
//! `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds, default 10 s); for `https://` endpoints, the CA
//! certificates in `OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE` / `OTEL_EXPORTER_OTLP_CERTIFICATE`
//! (else the system's), and a client certificate (mutual TLS) from `..._CLIENT_CERTIFICATE`
//! and `..._CLIENT_KEY`; gzip when `OTEL_EXPORTER_OTLP_TRACES_COMPRESSION` /
//! `OTEL_EXPORTER_OTLP_COMPRESSION` is `gzip`. A failed export is retried twice with a short
//! backoff when the collector says it is busy or unavailable, then dropped with a warning;
//! while the collector is behind, at most 8,192 spans (3 MiB) wait and newer ones are dropped
//! (counted in the next warning): spans are never worth blocking requests for.
//!
//! Metrics, when they are to be pushed too, go through a client made the same way, from a
//! thread of their own ([`push`]).

mod push;
mod settings;
pub(crate) mod wire;

pub(crate) use push::{PushPlan, Pusher};
pub(crate) use settings::{ExportSettings, PushSettings, Signal};
use wire::{Head, encode_resource, encode_scope, request_prefix, scope_span};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use http::uri::PathAndQuery;
use opentelemetry_sdk::Resource;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use tokio::sync::Notify;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

const TRACES_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const METRICS_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const RETRIES: u32 = 2;
/// An export goes out once this many spans wait, or their encoding reaches [`BATCH_BYTES`],
/// or [`DELAY`] after the last one. Four times the OpenTelemetry batch processor's 512: each
/// export costs the node's core a dozen system calls and thread wake-ups besides its bytes, and
/// with 512-span batches that was a measurable part of tracing's cost (the README's benchmark
/// notes); ~2,000 spans of this node's size are ~0.8 MB.
const BATCH: usize = 2048;
const BATCH_BYTES: usize = 1 << 20;
const DELAY: Duration = Duration::from_secs(5);
/// Spans that may wait for a slow collector before newer ones are dropped. A backlog goes out as
/// one request, so its bytes stay under the 4 MiB message limit gRPC servers apply by default.
const MAX_QUEUED: usize = 4 * BATCH;
const MAX_QUEUED_BYTES: usize = 3 << 20;
/// How long shutdown waits for the last export.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub(crate) enum ExporterError {
    #[error("invalid OTLP endpoint '{0}': {1}")]
    Endpoint(String, String),
    #[error("invalid OTLP header '{0}'")]
    Header(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]COMPRESSION is '{0}'; it may be gzip or none")]
    Compression(String),
    #[error("cannot start the OTLP export thread: {0}")]
    Thread(String),
}

/// A collector's settings, checked: everything a [`Client`] needs but its connection, which
/// belongs to the runtime it will run on.
#[derive(Debug)]
struct Configured {
    endpoint: Endpoint,
    path: &'static str,
    metadata: MetadataMap,
    timeout: Duration,
    gzip: bool,
}

impl Configured {
    /// A client for the collector, connecting at its first export (on the runtime it is made
    /// in).
    fn connect_lazy(self) -> Client {
        Client {
            channel: self.endpoint.connect_lazy(),
            path: PathAndQuery::from_static(self.path),
            metadata: self.metadata,
            timeout: self.timeout,
            gzip: self.gzip,
        }
    }
}

/// Sends encoded requests of one signal to one collector.
#[derive(Debug)]
struct Client {
    channel: Channel,
    /// The signal's gRPC method.
    path: PathAndQuery,
    metadata: MetadataMap,
    timeout: Duration,
    gzip: bool,
}

impl Client {
    /// The collector's endpoint, the request metadata and whether to gzip, checked; `path` is
    /// the signal's gRPC method.
    fn configure(
        settings: &ExportSettings,
        path: &'static str,
    ) -> Result<Configured, ExporterError> {
        let gzip = match settings.compression.as_deref() {
            None | Some("none") => false,
            Some("gzip") => true,
            Some(other) => return Err(ExporterError::Compression(other.to_owned())),
        };
        let invalid = |e: &dyn std::fmt::Display| {
            ExporterError::Endpoint(without_userinfo(&settings.endpoint), e.to_string())
        };
        let endpoint = Endpoint::from_shared(settings.endpoint.clone())
            .map_err(|e| invalid(&e))?
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            // An export is a bulk transfer that nobody waits on, written by HTTP/2 one 16 KiB
            // frame (the size collectors allow) per `writev`. Nagle's algorithm lets the kernel
            // gather those into full segments instead of sending each frame as a segment of its
            // own, at the cost of holding a last partial segment until the previous ones are
            // acknowledged; tonic's default (no delay) suits calls someone waits for. To a
            // collector on the same host, which now gets 64 KiB segments, this saved 0.9% and
            // 2.4% of a node's CPU with every request traced in two A/B runs (the README's
            // benchmark notes).
            .tcp_nodelay(false);
        let endpoint = match endpoint.uri().scheme_str() {
            Some("http") => endpoint,
            Some("https") => endpoint
                .tls_config(tls(settings)?)
                .map_err(|e| ExporterError::Tls(source_chain(&e)))?,
            _ => return Err(invalid(&"the endpoint must start with http:// or https://")),
        };
        let mut metadata = MetadataMap::new();
        for (key, value) in &settings.headers {
            let name = MetadataKey::from_bytes(key.as_bytes())
                .map_err(|_| ExporterError::Header(key.clone()))?;
            let value = MetadataValue::try_from(value.as_str())
                .map_err(|_| ExporterError::Header(key.clone()))?;
            metadata.insert(name, value);
        }
        Ok(Configured {
            endpoint,
            path,
            metadata,
            timeout: settings.timeout,
            gzip,
        })
    }

    /// Sends one encoded request, retrying what the specification says to retry.
    async fn export(&self, body: Batch) -> Result<(), tonic::Status> {
        let mut attempt = 0;
        loop {
            match self.send(body.clone()).await {
                Err(status) if attempt < RETRIES && retryable(status.code()) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                result => return result,
            }
        }
    }

    async fn send(&self, body: Batch) -> Result<(), tonic::Status> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        if self.gzip {
            grpc = grpc
                .send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip);
        }
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let mut request = tonic::Request::new(body);
        *request.metadata_mut() = self.metadata.clone();
        request.set_timeout(self.timeout);
        grpc.unary::<_, (), _>(request, self.path.clone(), RawCodec)
            .await
            .map(drop)
    }
}

/// Ended spans waiting for the export thread, already encoded.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    pending: Mutex<Pending>,
    wake: Notify,
    dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct Pending {
    /// `ScopeSpans.spans` entries (field 2), ready to follow the scope.
    spans: Vec<u8>,
    count: usize,
    stopping: bool,
    /// The previous batch's buffer, emptied once it was sent: the next batch is written into it
    /// rather than into a new allocation.
    spare: Vec<u8>,
}

impl Queue {
    /// Adds a span, its `Span` body written by `write` ([`wire::span`]), to the next batch,
    /// under the lock; drops it when the collector has fallen behind by [`MAX_QUEUED`] spans
    /// or [`MAX_QUEUED_BYTES`]. Never blocks on the network.
    pub(crate) fn push(&self, write: impl FnOnce(&mut Vec<u8>)) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.count >= MAX_QUEUED || pending.stopping {
            drop(pending);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let before = pending.spans.len();
        scope_span(&mut pending.spans, write);
        if pending.spans.len() > MAX_QUEUED_BYTES {
            pending.spans.truncate(before);
            drop(pending);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.count += 1;
        let full = pending.count >= BATCH || pending.spans.len() >= BATCH_BYTES;
        drop(pending);
        if full {
            self.wake.notify_one();
        }
    }

    /// What has gathered, leaving an empty batch behind with room for a quarter more than this
    /// one held: a batch that outgrows its buffer is copied whole into a larger one, under the
    /// lock.
    fn take(&self) -> (Vec<u8>, usize, bool) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let capacity = (pending.spans.len() + pending.spans.len() / 4).max(64 * 1024);
        let mut next = std::mem::take(&mut pending.spare);
        if next.capacity() < capacity {
            // A new buffer: growing the spare would copy all of its old contents too.
            next = Vec::with_capacity(capacity);
        }
        let spans = std::mem::replace(&mut pending.spans, next);
        let count = std::mem::take(&mut pending.count);
        (spans, count, pending.stopping)
    }

    /// Takes a sent batch's buffer back for the batch after next, when nothing else holds it.
    fn recycle(&self, sent: Bytes) {
        let Ok(mut buffer) = sent.try_into_mut() else {
            return;
        };
        // Emptied first: turning it back into a `Vec` moves whatever it still holds.
        buffer.clear();
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).spare = Vec::from(buffer);
    }

    fn stop(&self) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stopping = true;
        self.wake.notify_one();
    }
}

/// The export thread; dropping this sends what is still queued (waiting at most
/// [`SHUTDOWN_WAIT`]) and stops it.
#[derive(Debug)]
pub(crate) struct Exporter {
    queue: Arc<Queue>,
    done: Option<std::sync::mpsc::Receiver<()>>,
}

impl Exporter {
    /// Starts the export thread (its own single-threaded Tokio runtime holds the collector
    /// connection, so exports never run on the request path's threads).
    pub(crate) fn start(
        settings: &ExportSettings,
        resource: &Resource,
    ) -> Result<(Exporter, Arc<Queue>), ExporterError> {
        let (runtime, client) = on_own_runtime(Client::configure(settings, TRACES_PATH)?)?;
        let queue = Arc::new(Queue::default());
        let head = Head {
            resource: encode_resource(resource),
            scope: encode_scope(crate::spans::scope()),
        };
        let (done_tx, done) = std::sync::mpsc::channel();
        let exporting = queue.clone();
        std::thread::Builder::new()
            .name("otlp-export".to_owned())
            .spawn(move || {
                runtime.block_on(run(client, head, exporting));
                let _ = done_tx.send(());
            })
            .map_err(|e| ExporterError::Thread(e.to_string()))?;
        Ok((
            Exporter {
                queue: queue.clone(),
                done: Some(done),
            },
            queue,
        ))
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.queue.stop();
        if let Some(done) = self.done.take() {
            let _ = done.recv_timeout(SHUTDOWN_WAIT);
        }
    }
}

async fn run(client: Client, head: Head, queue: Arc<Queue>) {
    let mut reported_drops = 0;
    loop {
        tokio::select! {
            () = queue.wake.notified() => {}
            () = tokio::time::sleep(DELAY) => {}
        }
        let (spans, count, stopping) = queue.take();
        if count > 0 {
            let spans = Bytes::from(spans);
            let body = Batch {
                prefix: Bytes::from(request_prefix(&head, spans.len())),
                body: spans.clone(),
            };
            let sent = client.export(body).await;
            // Sent (or given up on): the client holds no copy of the spans any more.
            queue.recycle(spans);
            if let Err(status) = sent {
                tracing::warn!(
                    spans = count,
                    code = ?status.code(),
                    message = status.message(),
                    "OTLP span export failed; this batch is dropped"
                );
            }
        }
        let dropped = queue.dropped.load(Ordering::Relaxed);
        if dropped > reported_drops {
            tracing::warn!(
                spans = dropped - reported_drops,
                "the OTLP collector is behind; spans were dropped"
            );
            reported_drops = dropped;
        }
        if stopping {
            return;
        }
    }
}

/// A client for a configured collector, and the single-threaded runtime its thread runs it on:
/// it connects lazily (the first export dials), on that runtime.
fn on_own_runtime(
    configured: Configured,
) -> Result<(tokio::runtime::Runtime, Client), ExporterError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ExporterError::Thread(e.to_string()))?;
    let client = {
        let _context = runtime.enter();
        configured.connect_lazy()
    };
    Ok((runtime, client))
}

/// TLS for an `https://` collector: the CA certificates in the file named by
/// `OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE` when it is set (only those, as the OpenTelemetry
/// SDKs read it), else the system's; and a client identity from `..._CLIENT_CERTIFICATE` and
/// `..._CLIENT_KEY`.
fn tls(settings: &ExportSettings) -> Result<ClientTlsConfig, ExporterError> {
    let read = |path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| ExporterError::Tls(format!("cannot read {}: {e}", path.display())))
    };
    let mut tls = ClientTlsConfig::new();
    if let Some(ca) = &settings.certificate {
        let pem = read(ca)?;
        // tonic skips what is not a certificate; a file with none would trust nothing new.
        let certificates = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>();
        if !certificates.is_ok_and(|c| !c.is_empty()) {
            return Err(ExporterError::Tls(format!(
                "{} holds no PEM certificate",
                ca.display()
            )));
        }
        tls = tls.ca_certificate(Certificate::from_pem(pem));
    } else {
        tls = tls.with_native_roots();
    }
    match (&settings.client_certificate, &settings.client_key) {
        (Some(certificate), Some(key)) => {
            tls = tls.identity(Identity::from_pem(read(certificate)?, read(key)?));
        }
        (None, None) => {}
        _ => {
            return Err(ExporterError::Tls(
                "a client certificate needs its key and a key its certificate \
                 (OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]CLIENT_CERTIFICATE and _CLIENT_KEY)"
                    .to_owned(),
            ));
        }
    }
    Ok(tls)
}

/// An error and its causes, `: `-joined (tonic's TLS errors say what was wrong in a cause).
fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// An endpoint for messages: any `user:password@` is left out.
pub(crate) fn without_userinfo(endpoint: &str) -> String {
    let (scheme, rest) = endpoint.split_once("://").unwrap_or(("", endpoint));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => endpoint.to_owned(),
    }
}

/// The codes the OTLP specification says to retry.
fn retryable(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(
        code,
        Cancelled
            | DeadlineExceeded
            | Aborted
            | OutOfRange
            | Unavailable
            | DataLoss
            | ResourceExhausted
    )
}

/// An encoded export request in two pieces: for spans, the envelope up to the span list and
/// the spans.
#[derive(Clone, Debug, Default)]
struct Batch {
    prefix: Bytes,
    body: Bytes,
}

/// Sends already-encoded request bytes; the response (an empty message or a partial-success
/// note) is not needed.
#[derive(Clone, Copy, Debug)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Batch;
    type Decode = ();
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Batch;
    type Error = tonic::Status;
    fn encode(&mut self, item: Batch, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.reserve(item.prefix.len() + item.body.len());
        dst.put(item.prefix);
        dst.put(item.body);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = ();
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
        src.advance(src.remaining());
        Ok(Some(()))
    }
}

#[cfg(test)]
mod tests;
