use std::time::Duration;

use futures::StreamExt;
use http::HeaderMap;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use secrecy::ExposeSecret;
use tollgate_api::Endpoint;
use tollgate_config::Deployment;

use crate::ProviderError;
use crate::upstream::{Call, Reply};

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static ATTEMPT: HeaderName = HeaderName::from_static("x-tollgate-attempt");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");

/// An OpenAI-compatible deployment: its endpoint URLs and `Authorization` header, built once.
pub(crate) struct HttpUpstream {
    client: reqwest::Client,
    chat: reqwest::Url,
    completions: reqwest::Url,
    embeddings: reqwest::Url,
    authorization: Option<HeaderValue>,
}

impl std::fmt::Debug for HttpUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpUpstream")
            .field("chat", &self.chat.as_str())
            .finish_non_exhaustive()
    }
}

impl HttpUpstream {
    pub(crate) fn new(client: reqwest::Client, d: &Deployment) -> Result<Self, ProviderError> {
        let url = |endpoint: Endpoint| {
            reqwest::Url::parse(&format!("{}{}", d.api_base, endpoint.upstream_path())).map_err(
                |e| ProviderError::Transport(format!("deployment `{}`: bad api_base: {e}", d.id)),
            )
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
        Ok(Self {
            client,
            chat: url(Endpoint::ChatCompletions)?,
            completions: url(Endpoint::Completions)?,
            embeddings: url(Endpoint::Embeddings)?,
            authorization,
        })
    }

    fn url(&self, endpoint: Endpoint) -> &reqwest::Url {
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
        let mut headers = HeaderMap::with_capacity(5);
        headers.insert(CONTENT_TYPE, JSON);
        headers.insert(ACCEPT, if call.stream { EVENT_STREAM } else { JSON });
        if let Some(auth) = &self.authorization {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        if let Ok(id) = HeaderValue::from_str(call.request_id) {
            headers.insert(REQUEST_ID.clone(), id);
        }
        headers.insert(ATTEMPT.clone(), HeaderValue::from(call.attempt));
        for (name, value) in &call.trace {
            headers.insert(*name, value.clone());
        }
        let mut request = self
            .client
            .post(self.url(call.endpoint).clone())
            .headers(headers)
            .body(call.body);
        if !call.stream {
            request = request.timeout(timeout);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ProviderError::from_reqwest(&e, timeout))?;
        let status = response.status();
        let headers = keep_headers(response.headers());
        let body = response
            .bytes_stream()
            .map(move |chunk| chunk.map_err(|e| ProviderError::from_reqwest(&e, timeout)))
            .boxed();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
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
