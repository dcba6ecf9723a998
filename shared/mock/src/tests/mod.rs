//! Behaviour tests through [`Mock::handle`], the same entry point the node and the gateway use.

mod anthropic;
mod billing;
mod faults;
mod garbage;
mod openai;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderName, StatusCode};
use serde_json::{Value, json};

use crate::{Api, Disconnect, Mock, MockBody, MockRequest, MockSettings};

pub(crate) fn request(api: Api, body: &Value, headers: &[(&str, &str)]) -> MockRequest {
    let headers: HeaderMap = headers
        .iter()
        .map(|(name, value)| (HeaderName::try_from(*name).unwrap(), value.parse().unwrap()))
        .collect();
    MockRequest {
        api,
        body: Bytes::from(serde_json::to_vec(body).unwrap()),
        headers,
        deployment: None,
    }
}

/// A fully read response: the stream items before any disconnect, and whether one came.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub chunks: Vec<Bytes>,
    pub disconnected: bool,
}

impl Answer {
    pub fn bytes(&self) -> Vec<u8> {
        self.chunks.concat()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes()).unwrap()
    }

    /// SSE events as (event name, data) pairs.
    pub fn events(&self) -> Vec<(Option<String>, String)> {
        sse_events(&self.bytes())
    }

    /// The JSON data of every SSE event except `[DONE]`.
    pub fn data(&self) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|(_, data)| data != "[DONE]")
            .map(|(_, data)| serde_json::from_str(&data).unwrap())
            .collect()
    }
}

pub(crate) async fn read(body: MockBody) -> (Vec<Bytes>, bool) {
    match body {
        MockBody::Full(bytes) => (vec![bytes], false),
        MockBody::Stream(mut stream) => {
            let mut chunks = Vec::new();
            while let Some(item) = stream.next().await {
                match item {
                    Ok(bytes) => chunks.push(bytes),
                    Err(Disconnect) => return (chunks, true),
                }
            }
            (chunks, false)
        }
    }
}

pub(crate) async fn call(mock: &Mock, request: MockRequest) -> Answer {
    let response = mock.handle(request).await;
    let (chunks, disconnected) = read(response.body).await;
    Answer {
        status: response.status,
        headers: response.headers,
        chunks,
        disconnected,
    }
}

pub(crate) async fn call_default(api: Api, body: &Value, headers: &[(&str, &str)]) -> Answer {
    call(
        &Mock::new(MockSettings::default()),
        request(api, body, headers),
    )
    .await
}

pub(crate) fn sse_events(bytes: &[u8]) -> Vec<(Option<String>, String)> {
    let text = std::str::from_utf8(bytes).unwrap();
    assert!(
        text.is_empty() || text.ends_with("\n\n"),
        "SSE must end with a blank line: {text:?}"
    );
    text.split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| {
            let mut name = None;
            let mut data = None;
            for line in event.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    assert!(data.is_none(), "one data line per event");
                    data = Some(d.to_owned());
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            (name, data.expect("event without data"))
        })
        .collect()
}

pub(crate) fn chat_body(content: &str) -> Value {
    json!({"model": "mock-gpt", "messages": [{"role": "user", "content": content}]})
}

pub(crate) fn words(text: &str) -> usize {
    text.split_whitespace().count()
}
