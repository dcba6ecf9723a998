use std::time::Duration;

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Uri};
use secrecy::ExposeSecret;
use tollgate_api::Endpoint;
use tollgate_config::Deployment;

use crate::ProviderError;
use crate::client::{HttpClient, body_stream, full_body, with_deadline};
use crate::upstream::{Call, Reply};

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static ATTEMPT: HeaderName = HeaderName::from_static("x-tollgate-attempt");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");

/// An OpenAI-compatible deployment: its endpoint URLs and `Authorization` header, built once.
pub(crate) struct HttpUpstream {
    client: HttpClient,
    chat: Uri,
    completions: Uri,
    embeddings: Uri,
    authorization: Option<HeaderValue>,
    /// `Host` for plain-http deployments (HTTP/1.1 only), as the HTTP client would write it:
    /// built once instead of per request. Over https the connection may be HTTP/2, where the
    /// authority travels as `:authority` and the client leaves `Host` out.
    host: Option<HeaderValue>,
}

impl std::fmt::Debug for HttpUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpUpstream")
            .field("host", &self.chat.host())
            .finish_non_exhaustive()
    }
}

impl HttpUpstream {
    pub(crate) fn new(client: HttpClient, d: &Deployment) -> Result<Self, ProviderError> {
        let url = |endpoint: Endpoint| {
            let text = format!("{}{}", d.api_base, endpoint.upstream_path());
            // The URL is not quoted: its query or user info may hold a credential.
            match text.parse::<Uri>() {
                Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) => Ok(uri),
                _ => Err(ProviderError::Transport(format!(
                    "deployment `{}`: api_base is not an http(s) URL",
                    d.id
                ))),
            }
        };
        let authorization = match &d.api_key {
            None => None,
            Some(key) => {
                let mut value = HeaderValue::try_from(format!("Bearer {}", key.expose_secret()))
                    .map_err(|_| {
                        ProviderError::Transport(format!(
                            "deployment `{}`: api_key contains characters not allowed in a header",
                            d.id
                        ))
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        let chat = url(Endpoint::ChatCompletions)?;
        Ok(Self {
            client,
            host: http1_host(&chat),
            chat,
            completions: url(Endpoint::Completions)?,
            embeddings: url(Endpoint::Embeddings)?,
            authorization,
        })
    }

    fn url(&self, endpoint: Endpoint) -> &Uri {
        match endpoint {
            Endpoint::ChatCompletions => &self.chat,
            Endpoint::Completions => &self.completions,
            Endpoint::Embeddings => &self.embeddings,
        }
    }

    pub(crate) async fn send(
        &self,
        call: Call<'_>,
        timeout: Duration,
    ) -> Result<Reply, ProviderError> {
        let started = tokio::time::Instant::now();
        let mut request = Request::new(full_body(call.body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.url(call.endpoint).clone();
        let headers = request.headers_mut();
        headers.reserve(7);
        if let Some(host) = &self.host {
            headers.insert(HOST, host.clone());
        }
        headers.insert(CONTENT_TYPE, JSON);
        headers.insert(ACCEPT, if call.stream { EVENT_STREAM } else { JSON });
        if let Some(auth) = &self.authorization {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        if let Ok(id) = HeaderValue::from_str(call.request_id) {
            headers.insert(REQUEST_ID.clone(), id);
        }
        headers.insert(ATTEMPT.clone(), HeaderValue::from(call.attempt));
        if let Some(traceparent) = call.trace.traceparent {
            headers.insert(TRACEPARENT, traceparent);
        }
        if let Some(tracestate) = call.trace.tracestate {
            headers.insert(TRACESTATE, tracestate);
        }
        let response = self.client.send(request).await?;
        let (parts, body) = response.into_parts();
        let body = body_stream(body);
        Ok(Reply {
            status: parts.status,
            headers: keep_headers(&parts.headers),
            // A stream is bounded by the gap between its chunks (the caller's idle timeout);
            // anything else as a whole.
            body: if call.stream {
                body
            } else {
                with_deadline(body, started, timeout)
            },
        })
    }
}

/// `Host` for an `http://` URL: its host, and its port unless it is 80.
fn http1_host(uri: &Uri) -> Option<HeaderValue> {
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let host = uri.host()?;
    let text = match uri.port_u16() {
        Some(port) if port != 80 => format!("{host}:{port}"),
        _ => host.to_owned(),
    };
    HeaderValue::try_from(text).ok()
}

/// The upstream headers worth passing on: content type and rate-limit information.
fn keep_headers(upstream: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::new();
    for (name, value) in upstream {
        let n = name.as_str();
        if n == "content-type"
            || n == "retry-after"
            || n == "retry-after-ms"
            || n.starts_with("x-ratelimit-")
        {
            kept.append(name.clone(), value.clone());
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_is_built_once_for_plain_http_only() {
        for (url, want) in [
            (
                "http://127.0.0.1:8080/v1/chat/completions",
                Some("127.0.0.1:8080"),
            ),
            ("http://vllm.internal/v1", Some("vllm.internal")),
            ("http://vllm.internal:80/v1", Some("vllm.internal")),
            ("http://[::1]:9000/v1", Some("[::1]:9000")),
            // Over https the connection may be HTTP/2: the client sends `:authority`, not `Host`.
            ("https://api.openai.com/v1", None),
        ] {
            let host = http1_host(&url.parse().unwrap());
            assert_eq!(host.as_ref().map(|v| v.to_str().unwrap()), want, "{url}");
        }
    }
}
