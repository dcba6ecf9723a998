//! The built-in `mock/` provider: the same deterministic mock LLM as the mock provider node,
//! called in-process, so demos and client tests answer without any network.

use futures::StreamExt;
use http::HeaderMap;
use http::header::HeaderValue;
use tollgate_api::Endpoint;
use tollgate_mock::{Api, Mock, MockBody, MockRequest};

use crate::ProviderError;
use crate::upstream::{Call, Reply};

#[derive(Clone)]
pub(crate) struct MockUpstream {
    mock: Mock,
}

impl std::fmt::Debug for MockUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MockUpstream")
    }
}

impl MockUpstream {
    pub(crate) fn new(mock: Mock) -> Self {
        Self { mock }
    }

    pub(crate) async fn send(&self, call: Call<'_>) -> Result<Reply, ProviderError> {
        let api = match call.endpoint {
            Endpoint::ChatCompletions => Api::ChatCompletions,
            Endpoint::Completions => Api::Completions,
            Endpoint::Embeddings => Api::Embeddings,
        };
        let mut headers = HeaderMap::new();
        if let Ok(id) = HeaderValue::from_str(call.request_id) {
            headers.insert("x-request-id", id);
        }
        headers.insert("x-tollgate-attempt", HeaderValue::from(call.attempt));
        let response = self
            .mock
            .handle(MockRequest {
                api,
                body: call.body,
                headers,
                deployment: None,
            })
            .await;
        let body = match response.body {
            MockBody::Full(bytes) => futures::stream::once(async move { Ok(bytes) }).boxed(),
            MockBody::Stream(stream) => stream
                .map(|item| item.map_err(|_| ProviderError::Disconnected))
                .boxed(),
        };
        Ok(Reply {
            status: response.status,
            headers: response.headers,
            body,
        })
    }
}
