//! Health probes: public, cheap, never counted as API requests.

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use tollgate_auth::RouteId;

use crate::Gateway;
use crate::respond::json;

/// `/health/liveliness` answers as soon as the node serves; `/health/readiness` and `/health`
/// also report the model groups this node can route to.
pub(crate) fn health(gateway: &Gateway, route: RouteId) -> Response {
    match route {
        RouteId::HealthLiveliness => json(StatusCode::OK, Bytes::from_static(b"\"I'm alive!\"")),
        _ => {
            let body = serde_json::json!({
                "status": "healthy",
                "model_groups": gateway.models.names().collect::<Vec<_>>(),
                "deployments": gateway.models.deployment_count(),
            });
            json(StatusCode::OK, Bytes::from(body.to_string()))
        }
    }
}
