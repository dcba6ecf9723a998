//! Test fixtures: a mock provider node and a Tollgate node, both started through their
//! library `run` on 127.0.0.1 port 0, and a small client.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tollgate::{Node, NodeOptions, Outcomes};
use tollgate_config::{MapEnv, load_str};
use tollgate_mock_provider::MockSettings;

pub const MASTER: &str = "sk-test-master-key-0001";
pub const UPSTREAM_KEY: &str = "sk-upstream-secret-9999";

/// A running server that stops when dropped.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    pub task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Signals shutdown and waits for the server to return.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }

    pub fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn start_mock(settings: MockSettings) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(tollgate_mock_provider::run(settings, listener, async {
        let _ = rx.await;
    }));
    Running {
        addr,
        stop: Some(tx),
        task: Some(task),
    }
}

pub fn mock_settings(yaml: &str) -> MockSettings {
    tollgate_mock_provider::settings_from_yaml(yaml).unwrap()
}

pub struct TestNode {
    pub server: Running,
    pub outcomes: Arc<Outcomes>,
    /// The admin gRPC address, when the options asked for one.
    pub admin: Option<SocketAddr>,
}

impl TestNode {
    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }
}

/// Starts a node with `yaml`, where `MOCK` is replaced by the mock's base URL.
pub async fn start_node(yaml: &str, mock: Option<&Running>) -> TestNode {
    start_node_with(yaml, mock, NodeOptions::default()).await
}

pub async fn start_node_with(yaml: &str, mock: Option<&Running>, options: NodeOptions) -> TestNode {
    let yaml = match mock {
        Some(m) => yaml.replace("MOCK", &format!("http://{}/v1", m.addr)),
        None => yaml.to_owned(),
    };
    let env = MapEnv::new([("UPSTREAM_KEY", UPSTREAM_KEY)]);
    let loaded = load_str(&yaml, "test.yaml", &env).unwrap();
    let node = Node::new(loaded.config, options).await.unwrap();
    let outcomes = node.outcomes();
    let admin = node.admin_addr();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(node.serve(listener, async {
        let _ = rx.await;
    }));
    TestNode {
        server: Running {
            addr,
            stop: Some(tx),
            task: Some(task),
        },
        outcomes,
        admin,
    }
}

/// The standard node: mock-backed OpenAI-compatible deployments with scripted faults.
pub const NODE_YAML: &str = r#"
model_list:
  - model_name: gpt-test
    litellm_params: { model: openai/mock-gpt, api_base: MOCK, api_key: os.environ/UPSTREAM_KEY }
    model_info: { id: dep-a }
  - model_name: embed-test
    litellm_params: { model: openai/mock-embedding, api_base: MOCK, api_key: os.environ/UPSTREAM_KEY }
  - model_name: limited
    litellm_params: { model: openai/rate-limited, api_base: MOCK }
  - model_name: broken
    litellm_params: { model: openai/broken, api_base: MOCK }
  - model_name: unavailable
    litellm_params: { model: openai/unavailable, api_base: MOCK }
  - model_name: gone
    litellm_params: { model: openai/gone, api_base: MOCK }
  - model_name: slow
    litellm_params: { model: openai/slow, api_base: MOCK, timeout: 0.5 }
  - model_name: cut
    litellm_params: { model: openai/cut, api_base: MOCK }
  - model_name: no-usage
    litellm_params: { model: openai/no-usage, api_base: MOCK }
  - model_name: fractional
    litellm_params: { model: openai/fractional, api_base: MOCK }
  - model_name: local-mock
    litellm_params: { model: mock/local, mock_response: "canned answer" }
  - model_name: org/with-slash
    litellm_params: { model: mock/x }
general_settings: { master_key: sk-test-master-key-0001, max_request_size_mb: 1 }
"#;

pub const MOCK_YAML: &str = r#"
faults:
  - { model: rate-limited, kind: "429" }
  - { model: broken, kind: "500" }
  - { model: unavailable, kind: "503" }
  - { model: gone, kind: "404" }
  - { model: slow, kind: timeout }
  - { model: cut, kind: disconnect }
  - { model: no-usage, kind: no-usage }
  - { model: fractional, kind: fractional-usage }
"#;

pub async fn standard() -> (Running, TestNode) {
    let mock = start_mock(mock_settings(MOCK_YAML)).await;
    let node = start_node(NODE_YAML, Some(&mock)).await;
    (mock, node)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

pub fn chat_body(model: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 5})
}

/// A bodiless request to the node, with `key` as the bearer token when given.
pub async fn bodiless(
    node: &TestNode,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
) -> reqwest::Response {
    let mut request = client().request(method, node.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

/// POSTs JSON with the master key; returns status, headers and the body as JSON (or Null).
pub async fn post(
    node: &TestNode,
    path: &str,
    body: &serde_json::Value,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let response = client()
        .post(node.url(path))
        .bearer_auth(MASTER)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// Reads an SSE body into its `data:` payloads.
pub fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(str::to_owned)
        .collect()
}

/// Waits until `check` holds, polling; panics after 5 s.
pub async fn eventually(mut check: impl FnMut() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 5 s");
}

/// A chat body with `"stream": true`.
pub fn stream_body(model: &str) -> serde_json::Value {
    let mut body = chat_body(model);
    body["stream"] = serde_json::json!(true);
    body
}

/// POSTs `body` to `/v1/chat/completions` with the master key.
pub async fn send_chat(node: &TestNode, body: &serde_json::Value) -> reqwest::Response {
    client()
        .post(node.url("/v1/chat/completions"))
        .bearer_auth(MASTER)
        .json(body)
        .send()
        .await
        .unwrap()
}
