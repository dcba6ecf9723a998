//! The story of one LLM request, top to bottom. `dispatch` has already matched the route,
//! authenticated and authorized the caller and read the body; the outcome point records
//! whatever this returns.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::sync::oneshot;
use tollgate_api::{ApiError, Endpoint, ErrorCode, LlmRequest};
use tollgate_auth::Principal;
use tollgate_config::Provider;

use crate::Gateway;
use crate::admission;
use crate::attempt::{Attempt, AttemptSpan, Head};
use crate::dispatch::Answer;
use crate::models::{Group, Target, not_allowed};
use crate::outcome::Outcome;
use crate::relay::Relay;
use crate::respond::{APPLICATION_JSON, ATTEMPTS, DEPLOYMENT, MODEL_GROUP};

pub(crate) async fn llm(
    gateway: &Gateway,
    outcome: &mut Outcome,
    principal: &Principal,
    endpoint: Endpoint,
    body: &[u8],
) -> Result<Answer, ApiError> {
    // 1. Validate the fields the gateway uses; every other field is forwarded untouched.
    outcome.set_endpoint(endpoint);
    let request = LlmRequest::parse(endpoint, body)?;

    // 2. Resolve the model group (404 model_not_found as OpenAI answers it) and check the key
    //    may use it (403), with the same rule `GET /v1/models` lists by.
    let group = gateway
        .models
        .resolve(&request.model)
        .inspect_err(|_| outcome.set_unknown_model(&request.model))?;
    outcome.set_model(group.name.clone());
    let identity = principal.identity();
    if let Some(identity) = identity
        && !identity.may_use(&group.name, &gateway.access_groups)
    {
        return Err(not_allowed(&group.name));
    }

    // 3. Admission: reserve the worst-case cost and take rate units at every entity that
    //    applies, all or nothing (400 budget_exceeded, 429 rate_limit_exceeded).
    let (ticket, max_tokens) = match identity {
        Some(identity) => {
            let plan = admission::plan(identity, group, &request, body.len())?;
            let ticket = gateway
                .budgets
                .admit(plan.entities, plan.demand)
                .await
                .map_err(|refusal| {
                    let (reason, entity) = admission::labels(&refusal);
                    gateway.metrics.rejection(reason, entity);
                    admission::refused(refusal)
                })?;
            (Some(ticket), plan.max_tokens)
        }
        None => (None, None),
    };

    // 4. Route: choose a deployment of the group.
    let target = group.pick();
    let deployment = &target.upstream.deployment;
    outcome.set_target(target);

    // 5. The body for the deployment: its model name, usage forced on for streams, the
    //    enforced output bound when admission depends on it.
    let mut extra = mock_extras(deployment);
    if let Some((field, bound)) = max_tokens {
        extra.push((field, bound.to_string()));
    }
    let upstream_body = Bytes::from(request.upstream_body(&deployment.upstream_model, &extra));

    // 6. Call it in a tracked task that owns the reservation: if the client goes away, the
    //    call still completes (a stream is drained) and is settled with its real cost.
    let (head_tx, head_rx) = oneshot::channel();
    let span = outcome
        .trace()
        .map(|(request, clock)| AttemptSpan::new(request.child(), clock));
    let trace = outcome.upstream_trace(span.as_ref().map(|span| &span.ids));
    let attempt = Attempt {
        target: target.clone(),
        model: group.name.clone(),
        endpoint,
        body: upstream_body,
        stream: request.stream,
        include_usage: request.include_usage,
        request_id: outcome.request_id().to_str().unwrap_or_default().to_owned(),
        ticket,
        metrics: gateway.metrics.clone(),
        tenant: crate::observe::tenant_labels(gateway.entity_labels, identity),
        trace,
        span,
    };
    // Boxed before spawning: the attempt's future is several KB, and spawning moves it a few
    // times (tracker, task cell, stage); boxed, each move copies a pointer.
    gateway.tasks.spawn(Box::pin(attempt.run(head_tx)));
    let head = head_rx.await.map_err(|_| {
        ApiError::new(
            ErrorCode::Internal,
            "the upstream call ended without an answer; the details are in the node's log",
        )
    })??;

    // 7. Answer: a stream is relayed as it arrives; a body is passed on.
    match head {
        Head::Stream { headers, pieces } => Ok(Answer::Stream(Relay::new(
            pieces,
            response_headers(group, target, headers),
        ))),
        Head::Full {
            headers,
            body,
            usage,
        } => {
            outcome.set_usage(usage);
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = StatusCode::OK;
            *response.headers_mut() = response_headers(group, target, headers);
            Ok(Answer::Full(response))
        }
    }
}

/// `mock/` deployments answer with their configured `mock_response`, as in LiteLLM.
fn mock_extras(deployment: &tollgate_config::Deployment) -> Vec<(&'static str, String)> {
    match (&deployment.provider, &deployment.mock_response) {
        (Provider::Mock, Some(text)) => {
            vec![(
                "mock_response",
                serde_json::Value::from(text.as_str()).to_string(),
            )]
        }
        _ => Vec::new(),
    }
}

fn response_headers(group: &Group, target: &Arc<Target>, mut headers: HeaderMap) -> HeaderMap {
    headers.reserve(4);
    headers.entry(CONTENT_TYPE).or_insert(APPLICATION_JSON);
    if let Some(v) = &group.name_header {
        headers.insert(MODEL_GROUP.clone(), v.clone());
    }
    if let Some(v) = &target.id_header {
        headers.insert(DEPLOYMENT.clone(), v.clone());
    }
    headers.insert(ATTEMPTS.clone(), HeaderValue::from_static("1"));
    headers
}
