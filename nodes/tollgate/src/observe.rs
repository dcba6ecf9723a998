//! The node's side of telemetry: the `/metrics` answer, the separate metrics listener, and the
//! opt-in tenant labels (key alias, team) on spend and remaining-budget metrics.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode};
use tollgate_accounts::{Directory, EntityId, Identity};
use tollgate_api::{ApiError, ErrorCode};
use tollgate_auth::{Route, authorize, metrics_route};
use tollgate_budget::SettleObserver;
use tollgate_config::{EntityLabels, MetricsSettings};
use tollgate_ledger::Nanos;
use tollgate_telemetry::Metrics;

use crate::Gateway;
use crate::respond::error_response;

/// The scrape answer: Prometheus' text format.
pub(crate) fn render(metrics: &Metrics) -> Response {
    match metrics.render() {
        Ok(text) => {
            let mut response = Response::new(Body::from(text));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "rendering metrics failed");
            let mut response = Response::new(Body::from("metrics unavailable\n"));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

/// The route of `/metrics` in the main table, unless they have their own listener.
pub(crate) fn main_port_route(settings: &MetricsSettings) -> Option<Route> {
    settings.listen.is_none().then(|| own_route(settings))
}

fn own_route(settings: &MetricsSettings) -> Route {
    metrics_route(
        Box::leak(settings.path.clone().into_boxed_str()),
        settings.require_auth,
    )
}

/// Serves only the scrape path (`route`) on `listener` until `shutdown`.
pub(crate) async fn serve_metrics(
    gateway: Arc<Gateway>,
    route: Route,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .fallback(scrape)
        .with_state((gateway, Arc::new(route)));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn scrape(
    State((gateway, route)): State<(Arc<Gateway>, Arc<Route>)>,
    request: Request,
) -> Response {
    if request.uri().path() != route.path || !route.answers(request.method()) {
        return error_response(
            &ApiError::new(
                ErrorCode::RouteNotFound,
                format!("this listener serves only GET and HEAD {}", route.path),
            ),
            None,
        );
    }
    let caller = gateway.auth.authenticate(request.headers());
    if let Err(e) = authorize(&route, &caller) {
        return error_response(&e, None);
    }
    render(&gateway.metrics)
}

/// The route of the separate metrics listener, if metrics have one.
pub(crate) fn separate_route(settings: &MetricsSettings) -> Option<(SocketAddr, Route)> {
    settings.listen.map(|addr| (addr, own_route(settings)))
}

/// The opted-in tenant labels of a caller, for the spend counter.
pub(crate) fn tenant_labels(
    labels: EntityLabels,
    identity: Option<&Identity>,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let Some(identity) = identity else {
        return out;
    };
    if labels.key_alias
        && let Some(alias) = &identity.key.key_alias
    {
        out.push(("key_alias", alias.clone()));
    }
    if labels.team
        && let Some(team) = &identity.team
    {
        out.push((
            "team",
            team.team_alias
                .clone()
                .unwrap_or_else(|| team.team_id.clone()),
        ));
    }
    out
}

/// Exports the remaining budget of opted-in tenants after each settlement.
#[derive(Debug)]
pub(crate) struct RemainingBudget {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) directory: Arc<Directory>,
    pub(crate) labels: EntityLabels,
}

impl SettleObserver for RemainingBudget {
    fn settled(&self, entity: &EntityId, remaining: Option<Nanos>) {
        let Some(remaining) = remaining else {
            return;
        };
        match entity {
            EntityId::Key(token) if self.labels.key_alias => {
                if let Some(alias) = self.directory.key(token).and_then(|k| k.key_alias.clone()) {
                    self.metrics.remaining("key_alias", &alias, remaining);
                }
            }
            EntityId::Team(id) if self.labels.team => {
                if let Some(team) = self.directory.team(id) {
                    let name = team.team_alias.as_deref().unwrap_or(&team.team_id);
                    self.metrics.remaining("team", name, remaining);
                }
            }
            _ => {}
        }
    }
}
