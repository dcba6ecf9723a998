//! The mock provider node: a thin axum server around [`tollgate_mock::Mock`], speaking the
//! OpenAI, Azure and Anthropic URL shapes, plus control routes for tests (billing log, per-key
//! stats, reset). Every wire-format detail lives in `tollgate-mock`; this crate only maps
//! routes to [`Api`]s and [`MockBody`] to HTTP bodies, where a [`tollgate_mock::Disconnect`]
//! item becomes a body error, which makes hyper abort the connection.
//!
//! # Layout
//!
//! - `lib.rs`: [`run`]/[`serve`], [`router`] and [`settings_from_yaml`].
//! - `main.rs`: command line, binding, the `listening on` line, signals.

pub mod otlp_sink;

use std::future::{Future, IntoFuture};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use tollgate_mock::{Api, Disconnect, MockBody, MockRequest, MockResponse};
pub use tollgate_mock::{Mock, MockSettings};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// How long shutdown waits for open requests (a `timeout` fault would wait an hour).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves the mock on `listener` until `shutdown` resolves. Then requests still waiting get a
/// 503, open streams are aborted, and connections get at most [`SHUTDOWN_GRACE`] to close.
pub async fn run(
    settings: MockSettings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve(Mock::new(settings), listener, shutdown).await
}

/// [`run`] with a mock the caller keeps a clone of, e.g. to read [`Mock::billing`] directly.
pub async fn serve(
    mock: Mock,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = listener.tap_io(|tcp| {
        // Small SSE chunks must not wait for Nagle; failing to set it only costs latency.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    });
    let stop = CancellationToken::new();
    let server = axum::serve(listener, router(mock, stop.clone()))
        .with_graceful_shutdown(stop.clone().cancelled_owned())
        .into_future();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return Ok(result?),
        () = shutdown => stop.cancel(),
    }
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(result) => Ok(result?),
        Err(_) => {
            tracing::warn!("requests still open after the shutdown grace period; closing them");
            Ok(())
        }
    }
}

/// What every handler shares: the mock, and the token that ends open requests at shutdown.
#[derive(Clone, Debug)]
struct Node {
    mock: Mock,
    stop: CancellationToken,
}

/// The routes, each API with and without the `/v1` prefix. Once `stop` is cancelled, waiting
/// requests get a 503 and open streams are aborted, so graceful shutdown is quick.
pub fn router(mock: Mock, stop: CancellationToken) -> Router {
    let mut router = Router::new();
    for prefix in ["/v1", ""] {
        router = router
            .route(&format!("{prefix}/chat/completions"), post(chat))
            .route(&format!("{prefix}/completions"), post(completions))
            .route(&format!("{prefix}/embeddings"), post(embeddings))
            .route(&format!("{prefix}/models"), get(models))
            .route(&format!("{prefix}/messages"), post(messages));
    }
    router
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(azure_chat),
        )
        .route(
            "/openai/deployments/{deployment}/completions",
            post(azure_completions),
        )
        .route(
            "/openai/deployments/{deployment}/embeddings",
            post(azure_embeddings),
        )
        .route("/mock/billing", get(billing))
        .route("/mock/stats", get(stats))
        .route("/mock/reset", post(reset))
        .route("/health", get(health))
        .with_state(Node { mock, stop })
        // OTLP/gRPC traces are accepted and counted (see `otlp_sink`).
        .merge(spans(otlp_sink::SpanSink::default()))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// Parses `mock.yaml` into settings (unknown keys are errors).
pub fn settings_from_yaml(yaml: &str) -> anyhow::Result<MockSettings> {
    Ok(serde_saphyr::from_str(yaml)?)
}

async fn chat(State(node): State<Node>, request: Request) -> Response {
    forward(&node, Api::ChatCompletions, None, request).await
}

async fn completions(State(node): State<Node>, request: Request) -> Response {
    forward(&node, Api::Completions, None, request).await
}

async fn embeddings(State(node): State<Node>, request: Request) -> Response {
    forward(&node, Api::Embeddings, None, request).await
}

async fn models(State(node): State<Node>, request: Request) -> Response {
    forward(&node, Api::Models, None, request).await
}

async fn messages(State(node): State<Node>, request: Request) -> Response {
    forward(&node, Api::AnthropicMessages, None, request).await
}

async fn azure_chat(
    State(node): State<Node>,
    Path(deployment): Path<String>,
    request: Request,
) -> Response {
    forward(&node, Api::ChatCompletions, Some(deployment), request).await
}

async fn azure_completions(
    State(node): State<Node>,
    Path(deployment): Path<String>,
    request: Request,
) -> Response {
    forward(&node, Api::Completions, Some(deployment), request).await
}

async fn azure_embeddings(
    State(node): State<Node>,
    Path(deployment): Path<String>,
    request: Request,
) -> Response {
    forward(&node, Api::Embeddings, Some(deployment), request).await
}

/// Hands one HTTP request to the mock and its answer back to hyper.
async fn forward(node: &Node, api: Api, deployment: Option<String>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body unreadable or too large",
            );
        }
    };
    let request = MockRequest {
        api,
        body,
        headers: parts.headers,
        deployment,
    };
    let response = tokio::select! {
        biased;
        response = node.mock.handle(request) => response,
        () = node.stop.cancelled() => {
            return error(StatusCode::SERVICE_UNAVAILABLE, "the mock provider is shutting down");
        }
    };
    into_response(response, &node.stop)
}

fn into_response(response: MockResponse, stop: &CancellationToken) -> Response {
    let body = match response.body {
        MockBody::Full(bytes) => Body::from(bytes),
        MockBody::Stream(stream) => Body::from_stream(until_stopped(stream, stop.clone())),
    };
    let mut http = Response::new(body);
    *http.status_mut() = response.status;
    *http.headers_mut() = response.headers;
    http
}

type BodyStream = BoxStream<'static, Result<Bytes, Disconnect>>;

/// Passes `stream` through until `stop` is cancelled, then aborts it with a [`Disconnect`].
///
/// Before a [`Disconnect`] reaches hyper the body reports "pending" once: hyper flushes what it
/// has buffered (headers, earlier chunks) only then, and would otherwise drop it with the
/// connection, so the client would never see the part of the stream sent before the cut.
fn until_stopped(stream: BodyStream, stop: CancellationToken) -> BodyStream {
    stream::unfold(Some((stream, stop)), |state| async move {
        let (mut stream, stop) = state?;
        let item = tokio::select! {
            biased;
            item = stream.next() => item?,
            () = stop.cancelled() => Err(Disconnect),
        };
        match item {
            Ok(bytes) => Some((Ok(bytes), Some((stream, stop)))),
            Err(Disconnect) => {
                tokio::task::yield_now().await;
                Some((Err(Disconnect), None))
            }
        }
    })
    .boxed()
}

async fn billing(State(node): State<Node>) -> Response {
    json(&node.mock.billing())
}

async fn stats(State(node): State<Node>) -> Response {
    json(&node.mock.key_stats())
}

/// The OTLP sink's routes plus `GET /mock/spans`: how many spans it has received.
fn spans(sink: otlp_sink::SpanSink) -> Router {
    let counted = sink.clone();
    sink.router().route(
        "/mock/spans",
        get(move || async move { json(&serde_json::json!({"received": counted.received()})) }),
    )
}

async fn reset(State(node): State<Node>) -> StatusCode {
    node.mock.reset();
    StatusCode::NO_CONTENT
}

async fn health() -> Response {
    json(&serde_json::json!({"status": "ok"}))
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such route on the mock provider")
}

fn json(value: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => with_json_type(StatusCode::OK, Bytes::from(bytes)),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not serialize the answer",
        ),
    }
}

/// An error in OpenAI's shape, for failures outside the mock's own handling.
fn error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({"error": {
        "message": message, "type": "invalid_request_error", "param": null, "code": null
    }});
    with_json_type(status, Bytes::from(body.to_string()))
}

fn with_json_type(status: StatusCode, body: Bytes) -> Response {
    let content_type = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )];
    (status, content_type, body).into_response()
}
