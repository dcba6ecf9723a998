//! Config-defined pass-through endpoints (`general_settings.pass_through_endpoints`).
//!
//! A request goes to the endpoint's target as it came: same method, the subpath (when
//! `include_subpath`) and the query appended, the body streamed and held to the node's body
//! limit. Upstream it carries the configured headers and, with `forward_headers`, the client's
//! other headers, but never hop-by-hop headers nor any header the gateway reads a key from: the
//! caller's gateway key does not leave the gateway. The response (status, headers minus
//! hop-by-hop, body) streams back unchanged, and the outcome is recorded when its body ends.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::header::{
    CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, EXPECT, HOST, HeaderName,
};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use secrecy::ExposeSecret;
use tollgate_api::{ApiError, ErrorCode};
use tollgate_auth::{KEY_HEADERS, ROUTES, Route, RouteTable, pass_through_routes};
use tollgate_config::PassThrough;
use tollgate_providers::client::{RequestBody, body_stream};
use tollgate_providers::{HttpClient, ProviderError};

use crate::Gateway;
use crate::dispatch::{Answer, declared_length, drain_later};
use crate::outcome::Outcome;
use crate::respond::{REQUEST_ID, request_too_large};

/// The prepared endpoints, indexed like the config list (`RouteId::PassThrough(i)`).
#[derive(Debug)]
pub(crate) struct PassThroughs {
    endpoints: Vec<Endpoint>,
    client: HttpClient,
    /// Bounds sending the request and receiving the upstream's status and headers, then every
    /// gap between two chunks of the response body (`router_settings.timeout`).
    timeout: Duration,
}

struct Endpoint {
    /// The configured path: the route's literal part and its metric label.
    path: &'static str,
    target: url::Url,
    include_subpath: bool,
    forward_headers: bool,
    /// The configured headers, values marked sensitive.
    headers: HeaderMap,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The target's query or user info may hold a credential.
        f.debug_struct("Endpoint")
            .field("path", &self.path)
            .field("target_host", &self.target.host_str())
            .finish_non_exhaustive()
    }
}

/// Prepares the endpoints and the route table that includes them. A path that collides with
/// a built-in route is an error naming the entry's YAML path.
pub(crate) fn prepare(
    config: &[PassThrough],
    metrics: Option<Route>,
    client: &HttpClient,
    timeout: Duration,
) -> anyhow::Result<(RouteTable, PassThroughs)> {
    let mut endpoints = Vec::with_capacity(config.len());
    for (index, entry) in config.iter().enumerate() {
        endpoints.push(Endpoint::new(entry, index)?);
    }
    let table = route_table(config, endpoints.iter().map(|e| e.path), metrics)?;
    let pass_throughs = PassThroughs {
        endpoints,
        client: client.clone(),
        timeout,
    };
    Ok((table, pass_throughs))
}

/// Checks that the configured pass-through endpoints fit the route table (no built-in route
/// shadowed), as `tollgate serve` would at startup.
pub fn check_routes(config: &tollgate_config::Config) -> anyhow::Result<()> {
    let entries = &config.general.pass_through_endpoints;
    let paths = entries.iter().map(|e| leak(&e.path));
    route_table(entries, paths, crate::metrics_row(config)).map(drop)
}

fn route_table(
    config: &[PassThrough],
    paths: impl Iterator<Item = &'static str>,
    metrics: Option<Route>,
) -> anyhow::Result<RouteTable> {
    let mut extra: Vec<Route> = metrics.into_iter().collect();
    for (index, (entry, path)) in config.iter().zip(paths).enumerate() {
        let id = u16::try_from(index).context("more than 65535 pass_through_endpoints")?;
        extra.extend(pass_through_routes(
            id,
            path,
            entry.include_subpath,
            entry.auth,
        ));
    }
    RouteTable::with_extra(ROUTES, extra).map_err(|conflict| match conflict.id {
        tollgate_auth::RouteId::PassThrough(i) => anyhow::anyhow!(
            "general_settings.pass_through_endpoints[{i}].path: {}",
            conflict.reason
        ),
        _ => anyhow::anyhow!("observability.metrics.path: {}", conflict.reason),
    })
}

/// Route rows need `'static` paths (they are also metric labels); once per endpoint at
/// startup, bounded by the config.
fn leak(path: &str) -> &'static str {
    Box::leak(path.to_owned().into_boxed_str())
}

impl Endpoint {
    fn new(entry: &PassThrough, index: usize) -> anyhow::Result<Self> {
        let at = format!("general_settings.pass_through_endpoints[{index}]");
        // The config checked the URL; the message still never repeats it (credentials).
        let target = url::Url::parse(&entry.target)
            .map_err(|_| anyhow::anyhow!("{at}.target: not a URL the HTTP client accepts"))?;
        let mut headers = HeaderMap::with_capacity(entry.headers.len());
        for (name, value) in &entry.headers {
            let mut value = HeaderValue::from_str(value.expose_secret())
                .map_err(|_| anyhow::anyhow!("{at}.headers.{name}: not a valid header value"))?;
            value.set_sensitive(true);
            headers.insert(name.clone(), value);
        }
        Ok(Self {
            path: leak(&entry.path),
            target,
            include_subpath: entry.include_subpath,
            forward_headers: entry.forward_headers,
            headers,
        })
    }

    /// The target, plus the part of `path` below the endpoint's path, plus the client's query.
    fn url(&self, path: &str, query: Option<&str>) -> Result<url::Url, ApiError> {
        let mut url = self.target.clone();
        let rest = path.strip_prefix(self.path).unwrap_or_default();
        if self.include_subpath && !rest.is_empty() {
            if rest.split(['/', '\\']).any(is_dot_segment) {
                // The URL parser would resolve them and step out of the target's path.
                return Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!(
                        "the path below {} must not contain `.` or `..` segments",
                        self.path
                    ),
                ));
            }
            let base = url.path().trim_end_matches('/').to_owned();
            url.set_path(&format!("{base}{rest}"));
        }
        if let Some(query) = query {
            let merged = match url.query() {
                Some(own) if !own.is_empty() => format!("{own}&{query}"),
                _ => query.to_owned(),
            };
            url.set_query(Some(&merged));
        }
        Ok(url)
    }

    /// The headers sent upstream: the body's own description (`content-type`,
    /// `content-encoding`), the client's other headers when `forward_headers`, then the
    /// configured ones, which win.
    fn upstream_headers(&self, client: &HeaderMap) -> HeaderMap {
        let listed = connection_listed(client);
        let mut out = HeaderMap::with_capacity(client.len() + self.headers.len());
        for (name, value) in client {
            let keep = if self.forward_headers {
                !is_hop_by_hop(name)
                    && !listed.contains(name)
                    && !KEY_HEADERS.contains(&name.as_str())
                    && ![HOST, CONTENT_LENGTH, EXPECT].contains(name)
            } else {
                *name == CONTENT_TYPE || *name == CONTENT_ENCODING
            };
            if keep {
                out.append(name.clone(), value.clone());
            }
        }
        for (name, value) in &self.headers {
            out.insert(name.clone(), value.clone());
        }
        out
    }

    /// The client's error for a failed upstream call: names the endpoint, never the target.
    fn failure(&self, error: &ProviderError) -> ApiError {
        ApiError::new(
            error.code(),
            format!("pass-through endpoint {}: {error}", self.path),
        )
    }
}

fn is_dot_segment(segment: &str) -> bool {
    let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
    decoded == "." || decoded == ".."
}

/// Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, not the message.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "transfer-encoding" | "te" | "trailer" | "upgrade"
    ) || name.as_str().starts_with("proxy-")
}

/// The headers a `Connection` header names as hop-by-hop for this connection.
fn connection_listed(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect()
}

/// The handler of `RouteId::PassThrough(index)`: forwards the request and answers with the
/// upstream's response, whose body is still to be streamed.
pub(crate) async fn forward(
    gateway: &Gateway,
    index: u16,
    parts: Parts,
    body: Body,
) -> Result<Answer, ApiError> {
    let pass = &gateway.pass_through;
    let endpoint = pass.endpoints.get(usize::from(index)).ok_or_else(|| {
        tracing::error!(index, "a pass-through route names no prepared endpoint");
        ApiError::new(
            ErrorCode::Internal,
            "internal error; the details are in the node's log",
        )
    })?;
    let limit = gateway.max_request_bytes;
    if declared_length(&parts.headers).is_some_and(|n| n > limit as u64) {
        drain_later(body);
        return Err(request_too_large(limit));
    }
    let url = endpoint.url(parts.uri.path(), parts.uri.query())?;
    let uri = url.as_str().parse::<Uri>().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!(
                "pass-through endpoint {}: the request's path or query cannot be forwarded",
                endpoint.path
            ),
        )
    })?;
    let upload = Upload::new(body, limit);
    let over_limit = upload.over_limit.clone();
    let body: RequestBody = if http_body::Body::is_end_stream(&upload) {
        Empty::new().map_err(|never| match never {}).boxed_unsync()
    } else {
        upload.boxed_unsync()
    };
    let mut request = Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = endpoint.upstream_headers(&parts.headers);
    let response = match tokio::time::timeout(pass.timeout, pass.client.send(request)).await {
        Ok(Ok(response)) => response,
        Ok(Err(_)) if over_limit.load(Ordering::Acquire) => return Err(request_too_large(limit)),
        Ok(Err(e)) => return Err(endpoint.failure(&e)),
        Err(_) => return Err(endpoint.failure(&ProviderError::Timeout(pass.timeout))),
    };
    let (head, body) = response.into_parts();
    Ok(Answer::PassThrough(Piped {
        bodiless: parts.method == Method::HEAD,
        status: head.status,
        headers: response_headers(&head.headers),
        body: body_stream(body),
        idle: pass.timeout,
        path: endpoint.path,
    }))
}

fn response_headers(upstream: &HeaderMap) -> HeaderMap {
    let listed = connection_listed(upstream);
    let mut headers = HeaderMap::with_capacity(upstream.len() + 1);
    for (name, value) in upstream {
        if !is_hop_by_hop(name) && !listed.contains(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers
}

/// The client's body on its way upstream: streamed, at most `limit` bytes. Crossing the limit
/// fails the upload and raises `over_limit`, so the failed send is answered 413, not 502.
struct Upload {
    inner: Limited<Body>,
    over_limit: Arc<AtomicBool>,
}

impl Upload {
    fn new(body: Body, limit: usize) -> Self {
        Self {
            inner: Limited::new(body, limit),
            over_limit: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl http_body::Body for Upload {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Err(e))) = &polled
            && e.is::<LengthLimitError>()
        {
            this.over_limit.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An upstream response whose body is still to be streamed to the client.
pub(crate) struct Piped {
    /// A HEAD response: the server sends no body, so nothing would ever read it (likewise for
    /// 1xx, 204, 304 and `Content-Length: 0`).
    bodiless: bool,
    status: StatusCode,
    headers: HeaderMap,
    body: tollgate_providers::Body,
    idle: Duration,
    path: &'static str,
}

impl Piped {
    /// The response streaming the upstream's body; `outcome` is finished when the body ends
    /// (or recorded as 499 by its `Drop` if the client goes away first).
    pub(crate) fn into_response(self, outcome: Outcome) -> Response {
        let mut headers = self.headers;
        headers.insert(REQUEST_ID.clone(), outcome.request_id().clone());
        let remaining = declared_length(&headers);
        let body = if self.bodiless || !has_body(self.status) || remaining == Some(0) {
            outcome.finish(self.status, None);
            Body::empty()
        } else {
            let pipe = Pipe {
                remaining,
                upstream: self.body,
                idle: self.idle,
                status: self.status,
                path: self.path,
                outcome: Some(outcome),
            };
            Body::from_stream(futures::stream::unfold(pipe, Pipe::next))
        };
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        *response.headers_mut() = headers;
        response
    }
}

/// Statuses whose responses never carry a body (the server would not read one).
fn has_body(status: StatusCode) -> bool {
    !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

struct Pipe {
    upstream: tollgate_providers::Body,
    /// What is left of a `Content-Length` body. The server stops reading the body once it
    /// has that many bytes, so the last chunk, not the end of the stream, ends the outcome.
    remaining: Option<u64>,
    idle: Duration,
    status: StatusCode,
    path: &'static str,
    /// `None` once the body has ended and the outcome is recorded.
    outcome: Option<Outcome>,
}

impl Pipe {
    async fn next(mut self) -> Option<(Result<Bytes, ProviderError>, Pipe)> {
        loop {
            self.outcome.as_ref()?;
            let failure = match tokio::time::timeout(self.idle, self.upstream.next()).await {
                Ok(Some(Ok(chunk))) if chunk.is_empty() => continue,
                Ok(Some(Ok(chunk))) => {
                    if let Some(remaining) = &mut self.remaining {
                        *remaining = remaining.saturating_sub(chunk.len() as u64);
                        if *remaining == 0 {
                            self.finish();
                        }
                    }
                    return Some((Ok(chunk), self));
                }
                Ok(None) => {
                    self.finish();
                    return None;
                }
                Ok(Some(Err(e))) => e,
                Err(_) => ProviderError::IdleTimeout(self.idle),
            };
            // The status is out: all that is left is to cut the body short, so the client
            // sees an incomplete response rather than a complete-looking one.
            tracing::warn!(endpoint = self.path, error = %failure, "pass-through body failed midway");
            if let Some(mut outcome) = self.outcome.take() {
                outcome.set_error(failure.code());
                outcome.finish(self.status, None);
            }
            return Some((Err(failure), self));
        }
    }

    fn finish(&mut self) {
        if let Some(outcome) = self.outcome.take() {
            outcome.finish(self.status, None);
        }
    }
}

#[cfg(test)]
mod tests;
