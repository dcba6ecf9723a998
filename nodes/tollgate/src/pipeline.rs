//! The story of one LLM request, top to bottom. `dispatch` has already matched the route,
//! authenticated and authorized the caller and read the body; the outcome point records
//! whatever this returns.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, StatusCode};
use tollgate_api::{ApiError, Endpoint, LlmRequest, Usage};
use tollgate_config::Provider;
use tollgate_providers::{Call, Reply, collect, upstream_error};

use crate::Gateway;
use crate::dispatch::Answer;
use crate::models::{Group, Target};
use crate::outcome::Outcome;
use crate::relay::Relay;
use crate::respond::{APPLICATION_JSON, ATTEMPTS, DEPLOYMENT, MODEL_GROUP};

/// The largest non-stream upstream response the node will hold.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// The most of an upstream error body that is read to find its message.
const MAX_ERROR_BYTES: usize = 64 * 1024;

pub(crate) async fn llm(
    gateway: &Gateway,
    outcome: &mut Outcome,
    endpoint: Endpoint,
    body: &[u8],
) -> Result<Answer, ApiError> {
    // 1. Validate the fields the gateway uses; every other field is forwarded untouched.
    let request = LlmRequest::parse(endpoint, body)?;

    // 2. Resolve the model group (404 model_not_found as OpenAI answers it).
    let group = gateway.models.resolve(&request.model)?;
    outcome.set_model(group.name.clone());

    // 3. Admission (budgets, rate limits, fair queue) arrives with virtual keys.

    // 4. Route: choose a deployment of the group.
    let target = group.pick();
    let deployment = &target.upstream.deployment;
    outcome.set_deployment(deployment.provider.name(), target.id.clone());

    // 5. Call it: the body rewritten for the deployment, usage forced on for streams.
    let extra = mock_extras(deployment);
    let call = Call {
        endpoint,
        body: request
            .upstream_body(&deployment.upstream_model, &extra)
            .into(),
        stream: request.stream,
        request_id: outcome.request_id().to_str().unwrap_or_default(),
        attempt: 1,
    };
    let reply = target
        .upstream
        .send(call)
        .await
        .map_err(|e| e.to_api_error(&target.id))?;

    // 6. Answer: an upstream error keeps its status; a stream is relayed; a body is passed on.
    if !reply.status.is_success() {
        return Err(refusal(reply, &target.id).await);
    }
    let headers = response_headers(group, target, &reply.headers);
    if request.stream {
        return Ok(Answer::Stream(Relay::new(
            reply.body,
            headers,
            request.include_usage,
            deployment.timeout,
        )));
    }
    let bytes = collect(reply.body, MAX_RESPONSE_BYTES)
        .await
        .map_err(|e| e.to_api_error(&target.id))?;
    let usage = Usage::from_response(&bytes);
    if usage.is_none() {
        tracing::warn!(deployment = &*target.id, "the upstream reported no usage");
    }
    outcome.set_usage(usage);
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = StatusCode::OK;
    *response.headers_mut() = headers;
    Ok(Answer::Full(response))
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

/// An upstream's non-2xx answer as the client's error.
async fn refusal(reply: Reply, deployment: &Arc<str>) -> ApiError {
    let body = collect(reply.body, MAX_ERROR_BYTES)
        .await
        .unwrap_or_default();
    upstream_error(reply.status, &reply.headers, &body, deployment)
}

fn response_headers(group: &Group, target: &Target, upstream: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(upstream.len() + 4);
    for (name, value) in upstream {
        headers.append(name.clone(), value.clone());
    }
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
