use std::sync::Arc;
use std::time::Duration;

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;

use axum::ServiceExt as _;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use futures::FutureExt as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tollgate_api::{ApiError, ErrorCode};

use crate::Gateway;
use crate::dispatch::dispatch;
use crate::respond::error_response;

pub(crate) async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    admin: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain_timeout: Duration,
) -> anyhow::Result<()> {
    let outcomes = gateway.outcomes.clone();
    let settling = gateway.clone();
    let (stop_metrics, metrics_stopped) = watch::channel(false);
    let metrics_server = match gateway.metrics_listener.clone() {
        Some((addr, route)) => {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen for metrics on {addr}: {e}"))?;
            let mut stopped = metrics_stopped.clone();
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            Some(tokio::spawn(crate::observe::serve_metrics(
                gateway.clone(),
                route,
                listener,
                shutdown,
            )))
        }
        None => None,
    };
    let (stopping_tx, mut stopping_rx) = watch::channel(false);
    // The admin API stops taking calls when the HTTP server does (at the signal), and is
    // drained before the budgets shut down, so no management write lands after the store is
    // released.
    let admin_server = admin.map(|listener| {
        let mut stopping = stopping_rx.clone();
        let shutdown = async move {
            let _ = stopping.wait_for(|s| *s).await;
        };
        tokio::spawn(crate::manage::grpc::serve(
            gateway.clone(),
            listener,
            shutdown,
        ))
    });
    // The node's one HTTP service: every request goes to `dispatch`, where routing, auth,
    // budgets and everything else live. No axum Router in front: with a single handler it only
    // forwarded to it, at ~5k instructions a request.
    let app = tower::service_fn(move |request: Request| {
        answer_catching_panics(dispatch(gateway.clone(), request))
    });

    let listener = listener.tap_io(|tcp| {
        // Latency over throughput for small request/response exchanges.
        let _ = tcp.set_nodelay(true);
    });
    let server =
        axum::serve(listener, app.into_make_service()).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stopping_tx.send(true);
        });
    let drain_deadline = async move {
        let _ = stopping_rx.wait_for(|stopping| *stopping).await;
        tracing::info!(
            in_flight = outcomes.in_flight(),
            "shutting down: no new connections, draining in-flight requests"
        );
        tokio::time::sleep(drain_timeout).await;
        outcomes.in_flight()
    };
    tokio::select! {
        served = server => {
            served?;
            tracing::info!("drained; stopped");
        }
        cut = drain_deadline => {
            tracing::warn!(requests = cut, ?drain_timeout, "drain timeout reached; cutting remaining requests");
        }
    }
    if let Some(server) = admin_server {
        match tokio::time::timeout(drain_timeout, server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "the admin gRPC server failed"),
            Ok(Err(e)) => tracing::error!(error = %e, "the admin gRPC server panicked"),
            Err(_) => tracing::warn!(?drain_timeout, "admin gRPC calls still running at exit"),
        }
    }
    // Upstream calls whose clients left are still running; let them settle, then commit.
    settling.tasks.close();
    if tokio::time::timeout(drain_timeout, settling.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            tasks = settling.tasks.len(),
            "upstream calls still running at exit; their reservations are lost with the process"
        );
    }
    settling.budgets.shutdown().await;
    let _ = stop_metrics.send(true);
    if let Some(server) = metrics_server {
        let _ = server.await;
    }
    Ok(())
}

/// A panic while handling a request becomes a 500 in OpenAI's shape, never a dropped
/// connection or a dead worker. (The outcome point still records the request, as a 500.)
async fn answer_catching_panics(
    handling: impl Future<Output = Response>,
) -> Result<Response, Infallible> {
    Ok(AssertUnwindSafe(handling)
        .catch_unwind()
        .await
        .unwrap_or_else(panic_response))
}

fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    error_response(
        &ApiError::new(
            ErrorCode::Internal,
            "internal error; the details are in the node's log",
        ),
        None,
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_in_openai_shape() {
        let answer = answer_catching_panics(async { panic!("boom") }).await;
        let response = answer.unwrap();
        assert_eq!(response.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["code"], "internal_error", "{json}");
        assert_eq!(json["error"]["type"], "api_error", "{json}");
        assert!(
            !String::from_utf8_lossy(&body).contains("boom"),
            "the panic's text stays in the log"
        );
    }

    #[tokio::test]
    async fn an_answer_passes_through() {
        let answer =
            answer_catching_panics(async { http::StatusCode::IM_A_TEAPOT.into_response() }).await;
        assert_eq!(answer.unwrap().status(), http::StatusCode::IM_A_TEAPOT);
    }
}
