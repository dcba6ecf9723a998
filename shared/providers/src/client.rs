//! The node's one pooled HTTP client: hyper-util's connection pool over rustls (HTTP/1.1, and
//! HTTP/2 where the upstream offers it by ALPN), certificates checked by the platform verifier.
//! hyper directly rather than through reqwest: a gateway needs none of reqwest's layers
//! (redirects, retries, URL parsing per request), and on the benchmark those layers cost about a
//! tenth of a busy node's CPU.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::ProviderError;
use crate::upstream::Body;

/// A request body: whole, or streamed (pass-through uploads).
pub type RequestBody = UnsyncBoxBody<Bytes, BoxError>;
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The shared, pooled client. Cloning it shares the pool.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, RequestBody>,
}

impl HttpClient {
    /// A client whose connection attempts give up after `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> Result<Self, ProviderError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .try_with_platform_verifier()
            .map_err(|e| ProviderError::Transport(format!("cannot set up TLS: {e}")))?
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .http2_adaptive_window(true)
            .build(https);
        Ok(Self { inner })
    }

    /// Sends a request; returns once the status and headers are in. Bounding the wait is the
    /// caller's choice (it knows which timeout applies).
    pub async fn send(
        &self,
        request: http::Request<RequestBody>,
    ) -> Result<http::Response<hyper::body::Incoming>, ProviderError> {
        self.inner.request(request).await.map_err(|e| {
            // The error's text can name the URL (and so a credential in it): keep only its kind.
            if e.is_connect() {
                ProviderError::Connect
            } else {
                ProviderError::Transport("protocol error".into())
            }
        })
    }
}

/// A whole body.
pub fn full_body(bytes: Bytes) -> RequestBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A response body as a stream of its data. A failure while reading it means the upstream
/// broke off the response.
pub fn body_stream(body: hyper::body::Incoming) -> Body {
    body.into_data_stream()
        .map(|chunk| chunk.map_err(|_| ProviderError::Disconnected))
        .boxed()
}

/// `body`, failing with [`ProviderError::Timeout`] once `limit` has passed since `started`
/// (a non-stream call is bounded as a whole, body included).
pub fn with_deadline(body: Body, started: tokio::time::Instant, limit: Duration) -> Body {
    Deadline {
        body,
        sleep: Box::pin(tokio::time::sleep_until(started + limit)),
        limit,
        expired: false,
    }
    .boxed()
}

struct Deadline {
    body: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
    expired: bool,
}

impl Stream for Deadline {
    type Item = Result<Bytes, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = self.body.poll_next_unpin(cx) {
            return Poll::Ready(item);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired = true;
            return Poll::Ready(Some(Err(ProviderError::Timeout(self.limit))));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_body_that_outlives_its_deadline_ends_in_a_timeout() {
        let slow = futures::stream::once(async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok(Bytes::from_static(b"late"))
        })
        .boxed();
        let mut body = with_deadline(slow, tokio::time::Instant::now(), Duration::from_secs(2));
        assert!(matches!(
            body.next().await,
            Some(Err(ProviderError::Timeout(t))) if t == Duration::from_secs(2)
        ));
        assert!(body.next().await.is_none(), "nothing after the timeout");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_within_its_deadline_passes_unchanged() {
        let chunks =
            futures::stream::iter([Ok(Bytes::from_static(b"a")), Ok(Bytes::from_static(b"b"))])
                .boxed();
        let body = with_deadline(chunks, tokio::time::Instant::now(), Duration::from_secs(2));
        let got: Vec<_> = body.map(Result::unwrap).collect().await;
        assert_eq!(got, [Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
    }
}
