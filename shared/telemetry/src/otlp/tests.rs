//! The exporter against real gRPC receivers (plain, TLS, gzip), and the queue's bounds.

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
    assert!(
        Client::configure(
            &settings("http://127.0.0.1:4317", &[("x-key", "v")]),
            TRACES_PATH
        )
        .is_ok()
    );
    let https = ExportSettings {
        certificate: Some(testdata("ca.pem")),
        ..settings("https://collector:4317", &[])
    };
    assert!(Client::configure(&https, TRACES_PATH).is_ok());
    for bad in ["not a uri", "ftp://collector:4317", "collector:4317"] {
        assert!(
            matches!(
                Client::configure(&settings(bad, &[]), TRACES_PATH),
                Err(ExporterError::Endpoint(..))
            ),
            "{bad}"
        );
    }
    let Err(refused) = Client::configure(
        &settings("ftp://otel:s3cret@collector:4317/v1", &[]),
        TRACES_PATH,
    ) else {
        panic!("an ftp endpoint was accepted");
    };
    let message = refused.to_string();
    assert!(
        !message.contains("s3cret") && message.contains("ftp://***@collector:4317/v1"),
        "{message}"
    );
    assert!(matches!(
        Client::configure(
            &settings("http://127.0.0.1:4317", &[("bad key", "v")]),
            TRACES_PATH
        ),
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
        Client::configure(
            &ExportSettings {
                endpoint: "https://127.0.0.1:4317".to_owned(),
                timeout: DEFAULT_TIMEOUT,
                certificate: certificate.map(testdata),
                client_certificate: client.map(testdata),
                client_key: key.map(testdata),
                ..ExportSettings::default()
            },
            TRACES_PATH,
        )
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
    // Mutual TLS: the collector also asks for a client certificate signed by the CA.
    let server_tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(pem("server.pem"), pem("server.key")))
        .client_ca_root(Certificate::from_pem(pem("ca.pem")));
    let server = tonic::transport::Server::builder()
        .tls_config(server_tls)
        .unwrap();
    let addr = serve(server, TraceServiceServer::new(collector.clone())).await;
    let settings = |ca: bool, client: bool| ExportSettings {
        endpoint: format!("https://{addr}"),
        timeout: Duration::from_secs(5),
        certificate: ca.then(|| testdata("ca.pem")),
        client_certificate: client.then(|| testdata("client.pem")),
        client_key: client.then(|| testdata("client.key")),
        ..ExportSettings::default()
    };
    export_spans(&settings(true, true), 2).await.unwrap();
    assert_eq!(*collector.calls.lock().unwrap(), [(None, 2)]);
    // The server's certificate is not signed by a CA the system trusts (without the CA the
    // system's are used; a machine without any refuses at start, which is fine too).
    let _ = export_spans(&settings(false, true), 3).await;
    // Without a client certificate the collector refuses the connection.
    export_spans(&settings(true, false), 4).await.unwrap();
    assert_eq!(
        *collector.calls.lock().unwrap(),
        [(None, 2)],
        "nothing arrived without the CA or without the client certificate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_are_gzipped_when_asked_and_unknown_compressions_refused() {
    let collector = Collector::default();
    let service =
        TraceServiceServer::new(collector.clone()).accept_compressed(CompressionEncoding::Gzip);
    let addr = serve(tonic::transport::Server::builder(), service).await;
    let settings = |compression: Option<&str>| ExportSettings {
        endpoint: format!("http://{addr}"),
        timeout: Duration::from_secs(5),
        compression: compression.map(str::to_owned),
        ..ExportSettings::default()
    };
    for (compression, spans) in [(Some("gzip"), 3), (Some("none"), 2), (None, 1)] {
        export_spans(&settings(compression), spans).await.unwrap();
    }
    assert_eq!(
        *collector.calls.lock().unwrap(),
        [(None, 3), (None, 2), (None, 1)]
    );
    assert_eq!(
        *collector.encodings.lock().unwrap(),
        [Some("gzip".to_owned()), None, None]
    );
    let Err(refused) = export_spans(&settings(Some("zstd")), 1).await else {
        panic!("an unknown compression was accepted");
    };
    assert!(refused.to_string().contains("'zstd'"), "{refused}");
}

/// Serves `service` with `server` (plain or TLS) on a free port of 127.0.0.1; its address.
async fn serve(
    mut server: tonic::transport::Server,
    service: TraceServiceServer<Collector>,
) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = server
        .add_service(service)
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    tokio::spawn(serving);
    addr
}

/// Starts an exporter, queues `spans` spans and shuts it down, which sends what waits; its
/// queue, or why it would not start.
async fn export_spans(settings: &ExportSettings, spans: u64) -> Result<Arc<Queue>, ExporterError> {
    let (exporter, queue) = Exporter::start(settings, &Resource::builder().build())?;
    for i in 0..spans {
        queue_span(&queue, span("chat m", i, false, false, vec![]).ours());
    }
    tokio::task::spawn_blocking(move || drop(exporter))
        .await
        .unwrap();
    Ok(queue)
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
        let header = |name: &str| {
            let value = request.metadata().get(name)?;
            value.to_str().ok().map(str::to_owned)
        };
        let team = header("x-team");
        self.encodings.lock().unwrap().push(header("grpc-encoding"));
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
    let addr = serve(
        tonic::transport::Server::builder(),
        TraceServiceServer::new(collector.clone()),
    )
    .await;
    let settings = ExportSettings {
        endpoint: format!("http://{addr}"),
        headers: vec![("x-team".to_owned(), "ml".to_owned())],
        timeout: Duration::from_secs(5),
        ..ExportSettings::default()
    };
    let queue = export_spans(&settings, 3).await.unwrap();
    assert_eq!(
        *collector.calls.lock().unwrap(),
        [(Some("ml".to_owned()), 3), (Some("ml".to_owned()), 3)],
        "refused once as busy, then accepted"
    );
    assert!(
        queue.pending.lock().unwrap().spare.capacity() > 0,
        "the sent batch's buffer came back for the next batch"
    );
    queue_span(&queue, span("late", 0, false, false, vec![]).ours());
    assert_eq!(queue.take().1, 0, "nothing is queued once stopped");

    // Nobody listening: the export fails after its retries instead of hanging.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone = closed.local_addr().unwrap();
    drop(closed);
    let configured = Client::configure(
        &ExportSettings {
            endpoint: format!("http://{gone}"),
            timeout: Duration::from_secs(1),
            ..ExportSettings::default()
        },
        TRACES_PATH,
    )
    .unwrap();
    let client = configured.connect_lazy();
    let started = std::time::Instant::now();
    assert!(client.export(Batch::default()).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_collector_that_falls_behind_costs_spans_not_memory() {
    let queue = Queue::default();
    for _ in 0..MAX_QUEUED + 10 {
        queue_span(&queue, span("chat m", 0, false, false, vec![]).ours());
    }
    assert_eq!(queue.dropped.load(Ordering::Relaxed), 10);
    let (spans, count, stopping) = queue.take();
    assert_eq!((count, stopping), (MAX_QUEUED, false));
    let head = Head {
        resource: Vec::new(),
        scope: Vec::new(),
    };
    let request =
        ExportTraceServiceRequest::decode(wire::tests::request(&head, &spans).as_slice()).unwrap();
    assert_eq!(
        request.resource_spans[0].scope_spans[0].spans.len(),
        MAX_QUEUED
    );
    queue_span(&queue, span("chat m", 0, false, false, vec![]).ours());
    assert_eq!(queue.take().1, 1, "room again once taken");

    // Large spans: the bytes bound holds first, so a backlog stays one acceptable request.
    let big = || {
        let attribute = opentelemetry::KeyValue::new("big", "x".repeat(100_000));
        span("chat m", 0, false, false, vec![attribute]).ours()
    };
    let dropped = queue.dropped.load(Ordering::Relaxed);
    for _ in 0..40 {
        queue_span(&queue, big());
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
    queue_span(&queue, span("chat m", 0, false, false, vec![]).ours());
    let (first, ..) = queue.take();
    let first_buffer = first.as_ptr();
    queue.recycle(Bytes::from(first));
    queue_span(&queue, span("chat m", 1, false, false, vec![]).ours());
    let (second, count, _) = queue.take();
    assert_eq!(count, 1);
    assert_ne!(second.as_ptr(), first_buffer);
    queue_span(&queue, span("chat m", 2, false, false, vec![]).ours());
    let (third, count, _) = queue.take();
    assert_eq!(count, 1);
    assert_eq!(
        third.as_ptr(),
        first_buffer,
        "written into the recycled buffer"
    );
    assert_eq!(third.len(), second.len(), "holding only the new span");
}

#[test]
fn the_next_batch_has_room_for_a_larger_one() {
    let queue = Queue::default();
    for _ in 0..200 {
        queue_span(&queue, vec![7; 1000]);
    }
    // A spare too small for the next batch is replaced, not grown (which would copy its old
    // contents under the lock).
    queue.pending.lock().unwrap().spare = Vec::with_capacity(1024);
    let (taken, count, _) = queue.take();
    assert_eq!(count, 200);
    let room = queue.pending.lock().unwrap().spans.capacity();
    assert!(
        room >= taken.len() + taken.len() / 4,
        "{room} for {}",
        taken.len()
    );
}

/// Queues an encoded span body.
fn queue_span(queue: &Queue, body: Vec<u8>) {
    queue.push(|out| out.extend_from_slice(&body));
}
