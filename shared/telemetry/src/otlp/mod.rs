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
//! (else the system's), and a client certificate (mutual TLS) from
//! `..._CLIENT_CERTIFICATE` and `..._CLIENT_KEY`; gzip when `OTEL_EXPORTER_OTLP_TRACES_COMPRESSION` /
//! `OTEL_EXPORTER_OTLP_COMPRESSION` is `gzip`. A failed export is retried twice
//! with a short backoff when the collector says it is busy or unavailable, then dropped with a
//! warning; while the collector is behind, at most 8,192 spans (3 MiB) wait and newer ones are
//! dropped (counted in the next warning): spans are never worth blocking requests for.

mod settings;
pub(crate) mod wire;

pub(crate) use settings::ExportSettings;
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

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
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
    #[error("OTLP exporter TLS: {0}")]
    Tls(String),
    #[error("OTEL_EXPORTER_OTLP_COMPRESSION is '{0}'; it may be gzip or none")]
    Compression(String),
    #[error("cannot start the OTLP export thread: {0}")]
    Thread(String),
}

/// A collector's endpoint, the metadata sent with each export, and whether exports are gzipped.
type Configured = (Endpoint, MetadataMap, bool);

/// Sends batches of spans to one collector.
#[derive(Debug)]
struct Client {
    channel: Channel,
    metadata: MetadataMap,
    timeout: Duration,
    gzip: bool,
}

impl Client {
    /// A client for the collector, connecting at its first export (so on the runtime it is
    /// made in).
    fn lazy((endpoint, metadata, gzip): Configured, timeout: Duration) -> Client {
        Client {
            channel: endpoint.connect_lazy(),
            metadata,
            timeout,
            gzip,
        }
    }

    /// The collector's endpoint, the request metadata and whether to gzip, checked.
    fn configure(settings: &ExportSettings) -> Result<Configured, ExporterError> {
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
            .connect_timeout(settings.timeout);
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
        Ok((endpoint, metadata, gzip))
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
        grpc.unary::<_, (), _>(request, PathAndQuery::from_static(EXPORT_PATH), RawCodec)
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
    /// Adds a finished span's body ([`crate::spans::Span`]) to the next batch; drops it when
    /// the collector has fallen behind by [`MAX_QUEUED`] spans or [`MAX_QUEUED_BYTES`]. Never
    /// blocks on the network.
    pub(crate) fn push(&self, span: Vec<u8>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.count >= MAX_QUEUED
            || pending.spans.len() + span.len() > MAX_QUEUED_BYTES
            || pending.stopping
        {
            drop(pending);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        scope_span(&mut pending.spans, &span);
        pending.count += 1;
        let full = pending.count >= BATCH || pending.spans.len() >= BATCH_BYTES;
        drop(pending);
        if full {
            self.wake.notify_one();
        }
    }

    /// What has gathered, leaving an empty batch behind, as large as this one was (a batch
    /// that grows by reallocating copies itself each time, under the lock).
    fn take(&self) -> (Vec<u8>, usize, bool) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let capacity = pending.spans.len().max(64 * 1024);
        let mut next = std::mem::take(&mut pending.spare);
        next.reserve(capacity);
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
        let configured = Client::configure(settings)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ExporterError::Thread(e.to_string()))?;
        // Connects lazily (the first export dials), on the export thread's runtime.
        let client = {
            let _context = runtime.enter();
            Client::lazy(configured, settings.timeout)
        };
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
                spans: spans.clone(),
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
                 (OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY)"
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
fn without_userinfo(endpoint: &str) -> String {
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

/// An encoded `ExportTraceServiceRequest`: the envelope up to the span list, and the spans.
#[derive(Clone, Debug, Default)]
struct Batch {
    prefix: Bytes,
    spans: Bytes,
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
        dst.reserve(item.prefix.len() + item.spans.len());
        dst.put(item.prefix);
        dst.put(item.spans);
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
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use prost::Message as _;
    use wire::tests::span;

    #[test]
    fn endpoints_and_headers_that_cannot_be_used_are_refused() {
        let settings = |endpoint: &str, headers: &[(&str, &str)]| ExportSettings {
            endpoint: endpoint.to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            timeout: DEFAULT_TIMEOUT,
            ..ExportSettings::default()
        };
        assert!(Client::configure(&settings("http://127.0.0.1:4317", &[("x-key", "v")])).is_ok());
        let https = ExportSettings {
            certificate: Some(testdata("ca.pem")),
            ..settings("https://collector:4317", &[])
        };
        assert!(Client::configure(&https).is_ok());
        for bad in ["not a uri", "ftp://collector:4317", "collector:4317"] {
            assert!(
                matches!(
                    Client::configure(&settings(bad, &[])),
                    Err(ExporterError::Endpoint(..))
                ),
                "{bad}"
            );
        }
        let Err(refused) = Client::configure(&settings("ftp://otel:s3cret@collector:4317/v1", &[]))
        else {
            panic!("an ftp endpoint was accepted");
        };
        let message = refused.to_string();
        assert!(
            !message.contains("s3cret") && message.contains("ftp://***@collector:4317/v1"),
            "{message}"
        );
        assert!(matches!(
            Client::configure(&settings("http://127.0.0.1:4317", &[("bad key", "v")])),
            Err(ExporterError::Header(_))
        ));
    }

    /// Test certificates (`testdata/`, made with `openssl req`/`x509`, valid until 2126): a CA,
    /// a server certificate for 127.0.0.1 and localhost, and a client certificate, both signed
    /// by the CA.
    fn testdata(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(name)
    }

    #[test]
    fn tls_files_that_cannot_be_used_are_refused_at_start() {
        let https = |certificate: Option<&str>, client: Option<&str>, key: Option<&str>| {
            Client::configure(&ExportSettings {
                endpoint: "https://127.0.0.1:4317".to_owned(),
                timeout: DEFAULT_TIMEOUT,
                certificate: certificate.map(testdata),
                client_certificate: client.map(testdata),
                client_key: key.map(testdata),
                ..ExportSettings::default()
            })
        };
        assert!(https(Some("ca.pem"), Some("client.pem"), Some("client.key")).is_ok());
        let Err(missing) = https(Some("no-such-ca.pem"), None, None) else {
            panic!("a missing CA file was accepted");
        };
        assert!(missing.to_string().contains("no-such-ca.pem"), "{missing}");
        let Err(half) = https(None, Some("client.pem"), None) else {
            panic!("a client certificate without its key was accepted");
        };
        assert!(half.to_string().contains("CLIENT_KEY"), "{half}");
        let Err(garbage) = https(Some("client.key"), None, None) else {
            panic!("a key was accepted as a CA certificate");
        };
        assert!(matches!(garbage, ExporterError::Tls(_)), "{garbage}");
        let Err(no_key) = https(None, Some("client.pem"), Some("client.pem")) else {
            panic!("a certificate was accepted as a private key");
        };
        assert!(matches!(no_key, ExporterError::Tls(_)), "{no_key}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_https_collector_is_reached_only_with_its_ca_and_a_client_certificate() {
        use tonic::transport::ServerTlsConfig;
        let pem = |name: &str| std::fs::read(testdata(name)).unwrap();
        let collector = Collector::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Mutual TLS: the collector also asks for a client certificate signed by the CA.
        let server_tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(pem("server.pem"), pem("server.key")))
            .client_ca_root(Certificate::from_pem(pem("ca.pem")));
        let server = tonic::transport::Server::builder()
            .tls_config(server_tls)
            .unwrap()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
        tokio::spawn(server);
        let settings = |ca: bool, client: bool| ExportSettings {
            endpoint: format!("https://{addr}"),
            timeout: Duration::from_secs(5),
            certificate: ca.then(|| testdata("ca.pem")),
            client_certificate: client.then(|| testdata("client.pem")),
            client_key: client.then(|| testdata("client.key")),
            ..ExportSettings::default()
        };
        let export = |settings: ExportSettings, spans: u64| async move {
            // Without the CA the system's are used; a machine without any refuses at start.
            let Ok((exporter, queue)) = Exporter::start(&settings, &Resource::builder().build())
            else {
                assert!(settings.certificate.is_none());
                return;
            };
            for i in 0..spans {
                queue.push(span("chat m", i, false, false, vec![]).ours());
            }
            tokio::task::spawn_blocking(move || drop(exporter))
                .await
                .unwrap();
        };
        export(settings(true, true), 2).await;
        assert_eq!(*collector.calls.lock().unwrap(), [(None, 2)]);
        // The server's certificate is not signed by a CA the system trusts.
        export(settings(false, true), 3).await;
        // Without a client certificate the collector refuses the connection.
        export(settings(true, false), 4).await;
        assert_eq!(
            *collector.calls.lock().unwrap(),
            [(None, 2)],
            "nothing arrived without the CA or without the client certificate"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exports_are_gzipped_when_asked_and_unknown_compressions_refused() {
        let collector = Collector::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service =
            TraceServiceServer::new(collector.clone()).accept_compressed(CompressionEncoding::Gzip);
        let server = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
        tokio::spawn(server);
        let settings = |compression: Option<&str>| ExportSettings {
            endpoint: format!("http://{addr}"),
            timeout: Duration::from_secs(5),
            compression: compression.map(str::to_owned),
            ..ExportSettings::default()
        };
        for (compression, spans) in [(Some("gzip"), 3), (Some("none"), 2), (None, 1)] {
            let (exporter, queue) =
                Exporter::start(&settings(compression), &Resource::builder().build()).unwrap();
            for i in 0..spans {
                queue.push(span("chat m", i, false, false, vec![]).ours());
            }
            tokio::task::spawn_blocking(move || drop(exporter))
                .await
                .unwrap();
        }
        assert_eq!(
            *collector.calls.lock().unwrap(),
            [(None, 3), (None, 2), (None, 1)]
        );
        assert_eq!(
            *collector.encodings.lock().unwrap(),
            [Some("gzip".to_owned()), None, None]
        );
        let refused = Exporter::start(&settings(Some("zstd")), &Resource::builder().build());
        let Err(refused) = refused else {
            panic!("an unknown compression was accepted");
        };
        assert!(refused.to_string().contains("'zstd'"), "{refused}");
    }

    /// Per export call: the `x-team` header it carried and how many spans it held.
    type Calls = std::sync::Arc<std::sync::Mutex<Vec<(Option<String>, usize)>>>;

    /// A collector that records what it was sent, refusing the first `busy` calls as
    /// UNAVAILABLE.
    #[derive(Clone, Default)]
    struct Collector {
        calls: Calls,
        busy: std::sync::Arc<std::sync::atomic::AtomicUsize>,
        /// Each call's `grpc-encoding`.
        encodings: std::sync::Arc<std::sync::Mutex<Vec<Option<String>>>>,
    }

    #[tonic::async_trait]
    impl TraceService for Collector {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let team = request
                .metadata()
                .get("x-team")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let encoding = request
                .metadata()
                .get("grpc-encoding")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            self.encodings.lock().unwrap().push(encoding);
            let spans = request.into_inner().resource_spans[0].scope_spans[0]
                .spans
                .len();
            self.calls.lock().unwrap().push((team, spans));
            let busy = &self.busy;
            if busy.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                busy.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                return Err(tonic::Status::unavailable("busy"));
            }
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_reach_a_collector_with_their_headers_and_busy_answers_are_retried() {
        let collector = Collector::default();
        collector.busy.store(1, std::sync::atomic::Ordering::SeqCst);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
        tokio::spawn(server);
        let settings = ExportSettings {
            endpoint: format!("http://{addr}"),
            headers: vec![("x-team".to_owned(), "ml".to_owned())],
            timeout: Duration::from_secs(5),
            ..ExportSettings::default()
        };
        let (exporter, queue) = Exporter::start(&settings, &Resource::builder().build()).unwrap();
        for i in 0..3 {
            queue.push(span("chat m", i, false, false, vec![]).ours());
        }
        // Shutting down sends what waits.
        tokio::task::spawn_blocking(move || drop(exporter))
            .await
            .unwrap();
        assert_eq!(
            *collector.calls.lock().unwrap(),
            [(Some("ml".to_owned()), 3), (Some("ml".to_owned()), 3)],
            "refused once as busy, then accepted"
        );
        assert!(
            queue.pending.lock().unwrap().spare.capacity() > 0,
            "the sent batch's buffer came back for the next batch"
        );
        queue.push(span("late", 0, false, false, vec![]).ours());
        assert_eq!(queue.take().1, 0, "nothing is queued once stopped");

        // Nobody listening: the export fails after its retries instead of hanging.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gone = closed.local_addr().unwrap();
        drop(closed);
        let configured = Client::configure(&ExportSettings {
            endpoint: format!("http://{gone}"),
            timeout: Duration::from_secs(1),
            ..ExportSettings::default()
        })
        .unwrap();
        let client = Client::lazy(configured, Duration::from_secs(1));
        let started = std::time::Instant::now();
        assert!(client.export(Batch::default()).await.is_err());
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_collector_that_falls_behind_costs_spans_not_memory() {
        let queue = Queue::default();
        for _ in 0..MAX_QUEUED + 10 {
            queue.push(span("chat m", 0, false, false, vec![]).ours());
        }
        assert_eq!(queue.dropped.load(Ordering::Relaxed), 10);
        let (spans, count, stopping) = queue.take();
        assert_eq!((count, stopping), (MAX_QUEUED, false));
        let head = Head {
            resource: Vec::new(),
            scope: Vec::new(),
        };
        let request =
            ExportTraceServiceRequest::decode(wire::tests::request(&head, &spans).as_slice())
                .unwrap();
        assert_eq!(
            request.resource_spans[0].scope_spans[0].spans.len(),
            MAX_QUEUED
        );
        queue.push(span("chat m", 0, false, false, vec![]).ours());
        assert_eq!(queue.take().1, 1, "room again once taken");

        // Large spans: the bytes bound holds first, so a backlog stays one acceptable request.
        let big = || {
            let attribute = opentelemetry::KeyValue::new("big", "x".repeat(100_000));
            span("chat m", 0, false, false, vec![attribute]).ours()
        };
        let dropped = queue.dropped.load(Ordering::Relaxed);
        for _ in 0..40 {
            queue.push(big());
        }
        let (spans, count, _) = queue.take();
        assert!(
            spans.len() <= MAX_QUEUED_BYTES && count >= 30,
            "{count} spans, {} bytes",
            spans.len()
        );
        assert_eq!(
            queue.dropped.load(Ordering::Relaxed) - dropped,
            40 - count as u64
        );
    }

    #[test]
    fn a_sent_batchs_buffer_takes_the_batch_after_next() {
        let queue = Queue::default();
        let _ = queue.take(); // from here on every batch has a full-size buffer
        queue.push(span("chat m", 0, false, false, vec![]).ours());
        let (first, ..) = queue.take();
        let first_buffer = first.as_ptr();
        queue.recycle(Bytes::from(first));
        queue.push(span("chat m", 1, false, false, vec![]).ours());
        let (second, count, _) = queue.take();
        assert_eq!(count, 1);
        assert_ne!(second.as_ptr(), first_buffer);
        queue.push(span("chat m", 2, false, false, vec![]).ours());
        let (third, count, _) = queue.take();
        assert_eq!(count, 1);
        assert_eq!(
            third.as_ptr(),
            first_buffer,
            "written into the recycled buffer"
        );
        assert_eq!(third.len(), second.len(), "holding only the new span");
    }
}
