use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tollgate_api::{ApiError, ErrorCode};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;

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
    // Transport concerns only, outermost first:
    // 1. CatchPanicLayer: a panic in a handler becomes a 500 in OpenAI's shape, never a dropped
    //    connection or a dead worker. (The outcome point still records it, as a 500.)
    // Routing, auth, budgets and everything else are business rules and live in `dispatch`.
    let layers = ServiceBuilder::new().layer(CatchPanicLayer::custom(panic_response));
    let app = Router::new()
        .fallback(dispatch)
        .with_state(gateway)
        .layer(layers);

    let listener = listener.tap_io(|tcp| {
        // Latency over throughput for small request/response exchanges.
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
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
