//! The traffic: a concurrent mix of request kinds, and the tally of what the client saw.

use super::*;

/// One kind of request in the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Chat,
    Stream,
    Embeddings,
    Completions,
    Models,
    Malformed,
    BadKey,
    NoKey,
    UnknownModel,
    UpstreamFailure,
    OverBudget,
    Parallel,
    RateLimited,
    Aliased,
    KeyInfo,
    PassThrough,
    NoRoute,
    Abandoned,
    Health,
    MetricsRead,
}

pub(crate) const MIX: [Kind; 20] = [
    Kind::Chat,
    Kind::Stream,
    Kind::Embeddings,
    Kind::Completions,
    Kind::Models,
    Kind::Malformed,
    Kind::BadKey,
    Kind::NoKey,
    Kind::UnknownModel,
    Kind::UpstreamFailure,
    Kind::OverBudget,
    Kind::Parallel,
    Kind::RateLimited,
    Kind::Aliased,
    Kind::KeyInfo,
    Kind::PassThrough,
    Kind::NoRoute,
    Kind::Abandoned,
    Kind::Health,
    Kind::MetricsRead,
];

impl Kind {
    /// The `route` label the node gives it, or `None` when it is not counted.
    pub(crate) fn route(self) -> Option<&'static str> {
        Some(match self {
            Kind::Embeddings => "/v1/embeddings",
            Kind::Completions => "/v1/completions",
            Kind::Models => "/v1/models",
            Kind::KeyInfo => "/key/info",
            Kind::PassThrough => "/mock-models",
            Kind::NoRoute => "unknown",
            Kind::Health | Kind::MetricsRead => return None,
            _ => "/v1/chat/completions",
        })
    }

    /// Whether the client got what this kind should get (499: it gave up waiting).
    pub(crate) fn expects(self, status: u16) -> bool {
        match self {
            Kind::Malformed => status == 400,
            Kind::BadKey | Kind::NoKey => status == 401,
            Kind::UnknownModel => status == 400 || status == 404,
            Kind::UpstreamFailure => (500..600).contains(&status),
            Kind::OverBudget => status == 400,
            Kind::Parallel => status == 429,
            Kind::RateLimited => status == 200 || status == 429,
            Kind::NoRoute => status == 404,
            Kind::Abandoned => status == 499,
            _ => status == 200,
        }
    }

    /// A successful LLM call to the priced `good` model, as `gen_ai_operation_name`.
    pub(crate) fn good_operation(self) -> Option<&'static str> {
        match self {
            Kind::Chat | Kind::Stream | Kind::RateLimited | Kind::Aliased => Some("chat"),
            Kind::Embeddings => Some("embeddings"),
            Kind::Completions => Some("text_completion"),
            _ => None,
        }
    }
}

/// Keys made through the management API before the mix.
pub(crate) struct Keys {
    pub(crate) over_budget: String,
    pub(crate) parallel: String,
    pub(crate) rate_limited: String,
    pub(crate) aliased: String,
}

/// What the client sent and saw: requests per kind and status.
pub(crate) type Tally = BTreeMap<(Kind, u16), u64>;

pub(crate) async fn send(client: &reqwest::Client, node: &str, keys: &Keys, kind: Kind) -> u16 {
    let chat = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4});
    let post = |path: &str| client.post(format!("{node}{path}"));
    let get = |path: &str| client.get(format!("{node}{path}"));
    let chat_url = "/v1/chat/completions";
    let request = match kind {
        Kind::Chat => post(chat_url).bearer_auth(MASTER).json(&chat("good")),
        Kind::Stream => post(chat_url).bearer_auth(MASTER).json(&json!({
            "model": "good", "stream": true, "max_tokens": 4,
            "messages": [{"role": "user", "content": "hi"}],
        })),
        Kind::Embeddings => post("/v1/embeddings")
            .bearer_auth(MASTER)
            .json(&json!({"model": "good", "input": "hello there"})),
        Kind::Completions => post("/v1/completions")
            .bearer_auth(MASTER)
            .json(&json!({"model": "good", "prompt": "hello", "max_tokens": 4})),
        Kind::Models => get("/v1/models").bearer_auth(MASTER),
        Kind::Malformed => post(chat_url)
            .bearer_auth(MASTER)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body("{\"model\": \"good\", broken json"),
        Kind::BadKey => post(chat_url)
            .bearer_auth("sk-not-a-key-123")
            .json(&chat("good")),
        Kind::NoKey => post(chat_url).json(&chat("good")),
        Kind::UnknownModel => post(chat_url)
            .bearer_auth(MASTER)
            .json(&chat("no-such-model")),
        Kind::UpstreamFailure => post(chat_url).bearer_auth(MASTER).json(&chat("broken")),
        Kind::OverBudget => post(chat_url)
            .bearer_auth(&keys.over_budget)
            .json(&chat("good")),
        Kind::Parallel => post(chat_url)
            .bearer_auth(&keys.parallel)
            .json(&chat("good")),
        Kind::RateLimited => post(chat_url)
            .bearer_auth(&keys.rate_limited)
            .json(&chat("good")),
        Kind::Aliased => post(chat_url)
            .bearer_auth(&keys.aliased)
            .json(&chat("good")),
        Kind::KeyInfo => get(&format!("/key/info?key={}", keys.over_budget)).bearer_auth(MASTER),
        Kind::PassThrough => get("/mock-models").bearer_auth(MASTER),
        Kind::NoRoute => get("/v1/no-such-route").bearer_auth(MASTER),
        Kind::Abandoned => post(chat_url)
            .bearer_auth(MASTER)
            .json(&chat("slow"))
            .timeout(ABANDON_AFTER),
        Kind::Health => get("/health"),
        Kind::MetricsRead => get("/metrics"),
    };
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            response
                .bytes()
                .await
                .unwrap_or_else(|e| panic!("{kind:?}: reading the body: {e}"));
            status
        }
        Err(e) if kind == Kind::Abandoned && e.is_timeout() => 499,
        Err(e) => panic!("{kind:?}: {e}"),
    }
}

/// `WORKERS` clients send the mix round-robin (each from its own offset) for `TRAFFIC`.
pub(crate) async fn traffic(node: &str, keys: &std::sync::Arc<Keys>) -> Tally {
    let deadline = Instant::now() + TRAFFIC;
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let node = node.to_owned();
            let keys = keys.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap();
                let mut tally = Tally::new();
                let mut i = worker * 5;
                while Instant::now() < deadline {
                    let kind = MIX[i % MIX.len()];
                    let status = send(&client, &node, &keys, kind).await;
                    assert!(kind.expects(status), "{kind:?} got {status}");
                    *tally.entry((kind, status)).or_default() += 1;
                    i += 1;
                }
                tally
            })
        })
        .collect();
    let mut tally = Tally::new();
    for worker in workers {
        for (k, n) in worker.await.unwrap() {
            *tally.entry(k).or_default() += n;
        }
    }
    tally
}

/// Sums the tally over `keep`, grouped by `group`.
pub(crate) fn sum_by<K: Ord>(
    tally: &Tally,
    mut keep: impl FnMut(Kind, u16) -> Option<K>,
) -> BTreeMap<K, f64> {
    let mut out = BTreeMap::new();
    for (&(kind, status), &n) in tally {
        if let Some(key) = keep(kind, status) {
            *out.entry(key).or_insert(0.0) += n as f64;
        }
    }
    out
}

pub(crate) fn count(tally: &Tally, f: impl Fn(Kind, u16) -> bool) -> f64 {
    tally
        .iter()
        .filter(|((kind, status), _)| f(*kind, *status))
        .map(|(_, n)| *n as f64)
        .sum()
}

pub(crate) async fn generate_key(node: &str, body: Value) -> String {
    let response = reqwest::Client::new()
        .post(format!("{node}/key/generate"))
        .bearer_auth(MASTER)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "/key/generate {body}");
    let answer: Value = response.json().await.unwrap();
    answer["key"].as_str().unwrap().to_owned()
}
