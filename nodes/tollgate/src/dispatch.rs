//! Every request enters at [`dispatch`]: route table → authenticate → authorize → handler →
//! the outcome point. Nothing is routed by axum itself, so there is no path by which a request
//! escapes the table or the outcome.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::request::Parts;
use http_body_util::BodyExt;
use tollgate_api::{ApiError, ErrorCode};
use tollgate_auth::{Caller, Principal, RouteId, authorize};

use crate::outcome::Outcome;
use crate::relay::Relay;
use crate::respond::{REQUEST_ID, error_response, request_too_large};
use crate::{Gateway, health, manage, observe, passthrough, pipeline};

/// What a handler produced: a whole response, or a stream whose end the outcome waits for.
pub(crate) enum Answer {
    Full(Response),
    Stream(Relay),
    /// A pass-through endpoint's upstream response, its body still to be streamed.
    PassThrough(passthrough::Piped),
}

/// Every request the node's HTTP listener takes.
pub(crate) async fn dispatch(gateway: Arc<Gateway>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let mut outcome = gateway.outcomes.begin(&parts.method, &parts.headers);
    // Boxed: the handling future is several KB (the LLM pipeline's state), and axum, tower and
    // hyper move the handler's future a few times before and while polling it; a box makes
    // each of those moves a pointer copy instead of a memcpy of the whole state.
    let result = Box::pin(handle(&gateway, &mut outcome, parts, body)).await;
    finish(outcome, result)
}

async fn handle(
    gateway: &Gateway,
    outcome: &mut Outcome,
    parts: Parts,
    body: Body,
) -> Result<Answer, ApiError> {
    let matched = gateway.routes.lookup(&parts.method, parts.uri.path())?;
    outcome.set_route(matched.route.label(), matched.route.counted());
    let caller = gateway.auth.authenticate(&parts.headers);
    authorize(&matched.route, &caller)?;
    // Past `authorize`, every non-public route has an authenticated principal.
    let principal = match &caller {
        Caller::Authenticated(principal) => principal,
        Caller::Anonymous | Caller::Invalid(_) => &Principal::AuthDisabled,
    };
    let may_use = |model: &str| match principal.identity() {
        Some(identity) => identity.may_use(model, &gateway.access_groups),
        None => true,
    };
    match matched.route.id {
        RouteId::Llm(endpoint) => {
            let bytes = read_body(&parts, body, gateway.max_request_bytes).await?;
            pipeline::llm(gateway, outcome, principal, endpoint, &bytes).await
        }
        RouteId::ListModels => Ok(Answer::Full(gateway.models.list(may_use))),
        RouteId::GetModel => {
            let name = matched.model.unwrap_or_default();
            gateway.models.retrieve(&name, may_use).map(Answer::Full)
        }
        RouteId::Manage(op) => {
            let bytes = read_body(&parts, body, gateway.max_request_bytes).await?;
            manage::handle(&gateway.manage, op, principal, &parts, &bytes)
                .await
                .map(Answer::Full)
        }
        id @ (RouteId::Health | RouteId::HealthLiveliness | RouteId::HealthReadiness) => {
            Ok(Answer::Full(health::health(gateway, id)))
        }
        RouteId::PassThrough(index) => passthrough::forward(gateway, index, parts, body).await,
        RouteId::Metrics => Ok(Answer::Full(observe::render(&gateway.metrics))),
    }
}

/// The outcome point: every request passes here exactly once.
fn finish(outcome: Outcome, result: Result<Answer, ApiError>) -> Response {
    match result {
        Ok(Answer::Full(mut response)) => {
            response
                .headers_mut()
                .insert(REQUEST_ID.clone(), outcome.request_id().clone());
            outcome.finish(response.status(), None);
            response
        }
        Ok(Answer::Stream(relay)) => relay.into_response(outcome),
        Ok(Answer::PassThrough(piped)) => piped.into_response(outcome),
        Err(error) => {
            let response = error_response(&error, Some(outcome.request_id()));
            outcome.finish(error.status, Some(&error));
            response
        }
    }
}

/// Reads the whole body, refusing more than `limit` bytes: at once when `Content-Length` says
/// so, else as soon as the limit is crossed (chunked bodies are never read whole first).
async fn read_body(parts: &Parts, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || request_too_large(limit);
    let declared = declared_length(&parts.headers);
    if declared.is_some_and(|n| n > limit as u64) {
        drain_later(body);
        return Err(too_large());
    }
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "the request body could not be read (the client stopped sending it)",
            ));
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if buf.len() + data.len() > limit {
            drain_later(body);
            return Err(too_large());
        }
        if buf.is_empty() && declared == Some(data.len() as u64) {
            return Ok(data); // the whole body in one piece: no copy
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf.freeze())
}

/// The body length a request's `Content-Length` declares.
pub(crate) fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The most of a refused body read and thrown away, and for how long.
const DRAIN_BYTES: usize = 64 * 1024 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads and discards what is left of a refused body (bounded in bytes and time) while the
/// 413 goes out. A client is usually still sending when it is refused; closing the connection
/// with its data unread makes the kernel reset it, and the reset can destroy the 413 before the
/// client reads it, leaving it with a bare connection error (what nginx's lingering close is
/// for).
pub(crate) fn drain_later(body: Body) {
    tokio::spawn(async move {
        let mut body = body;
        let mut read = 0usize;
        let _ = tokio::time::timeout(DRAIN_TIME, async {
            while let Some(Ok(frame)) = body.frame().await {
                read += frame.data_ref().map_or(0, Bytes::len);
                if read > DRAIN_BYTES {
                    break;
                }
            }
        })
        .await;
    });
}
