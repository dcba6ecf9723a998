use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use http::{HeaderMap, HeaderValue, StatusCode};
use tollgate_api::Endpoint;
use tollgate_config::{Deployment, Provider, RouterSettings};

use crate::ProviderError;
use crate::client::HttpClient;
use crate::mock::MockUpstream;
use crate::openai::HttpUpstream;

/// A response body as it arrives from the upstream.
pub type Body = BoxStream<'static, Result<Bytes, ProviderError>>;

/// One attempt to send a request to one deployment.
#[derive(Debug)]
pub struct Call<'a> {
    pub endpoint: Endpoint,
    /// The body to send, already rewritten for this deployment.
    pub body: Bytes,
    pub stream: bool,
    /// Sent upstream as `x-request-id`, so a provider's logs can be matched with ours.
    pub request_id: &'a str,
    /// 1 for the first attempt; sent as `x-tollgate-attempt`.
    pub attempt: u32,
    /// W3C trace context of this attempt, sent upstream.
    pub trace: TraceContext,
}

/// The W3C trace context headers of an upstream call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceContext {
    pub traceparent: Option<HeaderValue>,
    pub tracestate: Option<HeaderValue>,
}

/// The upstream's answer: status and headers are known, the body is still to be read.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Body,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// The shared HTTP client and the built-in mock, from which each deployment's [`Upstream`] is
/// prepared once at startup.
#[derive(Debug, Clone)]
pub struct Upstreams {
    client: HttpClient,
    mock: tollgate_mock::Mock,
}

impl Upstreams {
    pub fn new(router: &RouterSettings) -> Result<Self, ProviderError> {
        let client = HttpClient::new(router.connect_timeout)?;
        Ok(Self {
            client,
            // The billing log is ground truth for tests of the mock *node*; in the gateway
            // nobody reads it, and keeping it would grow the node's memory with every request.
            mock: tollgate_mock::Mock::new(tollgate_mock::MockSettings {
                max_billing_records: 0,
                ..tollgate_mock::MockSettings::default()
            }),
        })
    }

    /// The shared, pooled HTTP client (connect timeout from `router_settings`, no redirects),
    /// for callers that forward requests themselves (pass-through endpoints).
    pub fn client(&self) -> &HttpClient {
        &self.client
    }

    /// Prepares the deployment's URLs and credentials once, so a call only builds headers.
    pub fn prepare(&self, deployment: Arc<Deployment>) -> Result<Upstream, ProviderError> {
        let kind = match deployment.provider {
            Provider::OpenAiCompatible(_) => {
                Kind::Http(HttpUpstream::new(self.client.clone(), &deployment)?)
            }
            Provider::Mock => Kind::Mock(MockUpstream::new(self.mock.clone())),
        };
        Ok(Upstream { deployment, kind })
    }
}

/// A deployment ready to be called.
#[derive(Debug)]
pub struct Upstream {
    pub deployment: Arc<Deployment>,
    kind: Kind,
}

#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "one per deployment, built once at startup and never moved on the hot path"
)]
enum Kind {
    Http(HttpUpstream),
    Mock(MockUpstream),
}

impl Upstream {
    /// Sends one attempt and returns once the status and headers are in. A non-stream call is
    /// bounded as a whole by the deployment's `timeout` (body included); a stream call's
    /// headers by `stream_timeout`.
    pub async fn send(&self, call: Call<'_>) -> Result<Reply, ProviderError> {
        let deployment = &self.deployment;
        let limit = if call.stream {
            deployment.stream_timeout
        } else {
            deployment.timeout
        };
        let sent = match &self.kind {
            Kind::Http(http) => {
                tokio::time::timeout(limit, http.send(call, deployment.timeout)).await
            }
            Kind::Mock(mock) => tokio::time::timeout(limit, mock.send(call)).await,
        };
        sent.map_err(|_| ProviderError::Timeout(limit))?
    }
}

/// Reads a whole body, refusing more than `limit` bytes.
pub async fn collect(mut body: Body, limit: usize) -> Result<Bytes, ProviderError> {
    let Some(first) = body.next().await.transpose()? else {
        return Ok(Bytes::new());
    };
    // Most bodies arrive as one chunk; only copy when there are more.
    let Some(second) = body.next().await.transpose()? else {
        return check_len(first, limit);
    };
    let mut buf = BytesMut::with_capacity(first.len() + second.len());
    buf.extend_from_slice(&first);
    buf.extend_from_slice(&second);
    while let Some(chunk) = body.next().await.transpose()? {
        if buf.len() + chunk.len() > limit {
            return Err(ProviderError::TooLarge(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    check_len(buf.freeze(), limit)
}

fn check_len(bytes: Bytes, limit: usize) -> Result<Bytes, ProviderError> {
    if bytes.len() > limit {
        Err(ProviderError::TooLarge(limit))
    } else {
        Ok(bytes)
    }
}
