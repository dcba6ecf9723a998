//! A real Prometheus server (Debian's `prometheus` package) scrapes real `tollgate` nodes.
//!
//! The main test drives one node with a concurrent mix (successes, streams, embeddings, text
//! completions, malformed bodies, bad and missing keys, unknown models and routes, upstream 500s,
//! budget / rate-limit / parallel rejections, a management call, a pass-through call, requests
//! the client abandons, and uncounted `/health` and `/metrics` reads) while Prometheus scrapes
//! it every second, and then asks Prometheus:
//! - whether the 4xx + 5xx series of `tollgate_requests_total` summed to
//!   `tollgate_requests_failed_total` at every scrape (a subquery whose step is a quarter of the
//!   scrape interval, so each scrape is evaluated), across scrapes taken during the traffic;
//! - whether the final counts per `(route, status_code)` are exactly what the client sent and
//!   saw (an abandoned request is a 499), and the other metrics agree with the client's tally;
//! - whether every label value is a sane, non-empty value;
//! - whether every rule of `deploy/prometheus/rules.yml` evaluates, and every query of
//!   `deploy/grafana/tollgate-dashboard.json` parses and returns data.
//!
//! A second test scrapes a node whose metrics have their own listener and need a key, as
//! `deploy/prometheus/prometheus.yml` shows.
//!
//! Needs the `prometheus` binary: the README's test command (`bash .ci/test`) installs Debian's
//! package. Without it the tests fail, unless `TOLLGATE_SKIP_PROMETHEUS=1` is set (then they
//! print that they skipped and pass).

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Proc, Started, bin, start};
use serde_json::{Value, json};

const MASTER: &str = "sk-prometheus-master-5150";
/// How long the concurrent mix runs (about five scrapes).
const TRAFFIC: Duration = Duration::from_secs(5);
const WORKERS: usize = 8;
/// After this long without an answer the client gives up on a request to the hanging model.
const ABANDON_AFTER: Duration = Duration::from_millis(300);
/// Prices of the `good` model, in nano-USD per token (0.000001 and 0.000002 USD).
const INPUT_NANO: f64 = 1000.0;
const OUTPUT_NANO: f64 = 2000.0;
const ALIAS_BUDGET_NANO: f64 = 10e9;

// ---------------------------------------------------------------------------------------------
// Prometheus: finding, starting and asking it.

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `name` on `PATH` (as `command -v` finds it), else `/usr/bin/name`.
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The `prometheus` binary; `None` (skip) only when it is missing and
/// `TOLLGATE_SKIP_PROMETHEUS=1`.
fn prometheus_binary() -> Option<PathBuf> {
    if let Some(found) = find_tool("prometheus") {
        return Some(found);
    }
    if std::env::var_os("TOLLGATE_SKIP_PROMETHEUS").is_some_and(|v| v == "1") {
        eprintln!("SKIPPED: no prometheus binary, and TOLLGATE_SKIP_PROMETHEUS=1");
        return None;
    }
    panic!(
        "the `prometheus` binary is missing (neither on PATH nor /usr/bin/prometheus): run the \
         README's test command (`bash .ci/test`), which installs Debian's package, or \
         `apt-get install prometheus`; set TOLLGATE_SKIP_PROMETHEUS=1 to skip these tests"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A YAML string (JSON's quoting is valid YAML).
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// Prints the end of each log file when the test panics, before the temp dir goes away.
struct Logs(Vec<PathBuf>);

impl Drop for Logs {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for log in &self.0 {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<_> = text.lines().collect();
            eprintln!("---- last lines of {} ----", log.display());
            for line in &lines[lines.len().saturating_sub(30)..] {
                eprintln!("{line}");
            }
        }
    }
}

/// A running Prometheus with its own config, storage and port; killed when dropped.
struct Prometheus {
    _proc: Proc,
    url: String,
    started: Instant,
    client: reqwest::Client,
}

impl Prometheus {
    /// Starts `binary` with `config` on a free loopback port, storage under `dir`, and waits
    /// until it is ready.
    async fn start(binary: &Path, dir: &Path, config: &str) -> Prometheus {
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config).unwrap();
        let log = dir.join("prometheus.log");
        let port = free_port();
        let mut child = Command::new(binary)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prometheus-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "prometheus exited ({status}) before it was ready:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            let ready = client.get(format!("{url}/-/ready")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "prometheus was not ready within 30 s; see {}",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Prometheus {
            _proc: Proc(child),
            url,
            started,
            client,
        }
    }

    /// `GET /api/v1/{path}`; asserts `status: success` and returns `data`.
    async fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let encoded = serde_urlencoded::to_string(params).unwrap();
        let answer: Value = self
            .client
            .get(format!("{}/api/v1/{path}?{encoded}", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["status"], "success", "{path} {params:?}: {answer}");
        answer["data"].clone()
    }

    /// An instant query's result vector.
    async fn query(&self, promql: &str) -> Vec<Value> {
        let data = self.api("query", &[("query", promql)]).await;
        assert_eq!(data["resultType"], "vector", "{promql}: {data}");
        data["result"].as_array().unwrap().clone()
    }

    /// The value of a query that returns one sample (or `None` for an empty result).
    async fn value(&self, promql: &str) -> Option<f64> {
        let result = self.query(promql).await;
        assert!(
            result.len() <= 1,
            "{promql}: more than one sample: {result:?}"
        );
        result.first().map(sample)
    }

    /// `sum by (labels) (...)` as a map from the label values to the sample.
    async fn by(&self, promql: &str, labels: &[&str]) -> BTreeMap<Vec<String>, f64> {
        self.query(promql)
            .await
            .iter()
            .map(|s| {
                let key = labels
                    .iter()
                    .map(|l| s["metric"][l].as_str().unwrap_or("").to_owned())
                    .collect();
                (key, sample(s))
            })
            .collect()
    }

    /// A range selector that reaches back to before this Prometheus started.
    fn window(&self) -> String {
        format!("{}s", self.started.elapsed().as_secs() + 5)
    }

    /// Waits until the active target of `job` scraped at `scrape_url` has `health` (`up` or
    /// `down`); returns the target.
    async fn wait_for_target(&self, job: &str, scrape_url: &str, health: &str) -> Value {
        let started = Instant::now();
        loop {
            let data = self.api("targets", &[("state", "active")]).await;
            let target = data["activeTargets"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["scrapeUrl"] == scrape_url && t["labels"]["job"] == job)
                .cloned();
            if let Some(target) = &target
                && target["health"] == health
            {
                return target.clone();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "target {scrape_url} of {job} not {health} within 30 s: {target:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn sample(s: &Value) -> f64 {
    s["value"][1].as_str().unwrap().parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The traffic.

/// One kind of request in the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
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

const MIX: [Kind; 20] = [
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
    fn route(self) -> Option<&'static str> {
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
    fn expects(self, status: u16) -> bool {
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
    fn good_operation(self) -> Option<&'static str> {
        match self {
            Kind::Chat | Kind::Stream | Kind::RateLimited | Kind::Aliased => Some("chat"),
            Kind::Embeddings => Some("embeddings"),
            Kind::Completions => Some("text_completion"),
            _ => None,
        }
    }
}

/// Keys made through the management API before the mix.
struct Keys {
    over_budget: String,
    parallel: String,
    rate_limited: String,
    aliased: String,
}

/// What the client sent and saw: requests per kind and status.
type Tally = BTreeMap<(Kind, u16), u64>;

async fn send(client: &reqwest::Client, node: &str, keys: &Keys, kind: Kind) -> u16 {
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
async fn traffic(node: &str, keys: &std::sync::Arc<Keys>) -> Tally {
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
fn sum_by<K: Ord>(tally: &Tally, mut keep: impl FnMut(Kind, u16) -> Option<K>) -> BTreeMap<K, f64> {
    let mut out = BTreeMap::new();
    for (&(kind, status), &n) in tally {
        if let Some(key) = keep(kind, status) {
            *out.entry(key).or_insert(0.0) += n as f64;
        }
    }
    out
}

fn count(tally: &Tally, f: impl Fn(Kind, u16) -> bool) -> f64 {
    tally
        .iter()
        .filter(|((kind, status), _)| f(*kind, *status))
        .map(|(_, n)| *n as f64)
        .sum()
}

async fn generate_key(node: &str, body: Value) -> String {
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

// ---------------------------------------------------------------------------------------------
// Label hygiene.

/// The labels every series of a family must carry (Prometheus drops empty labels, so an empty
/// value shows up as a missing label), and the values some labels are limited to.
fn required_labels(family: &str) -> Option<&'static [&'static str]> {
    const REQUESTS: &[&str] = &["status_code", "route", "model", "provider"];
    const GEN_AI: &[&str] = &[
        "gen_ai_operation_name",
        "gen_ai_request_model",
        "gen_ai_provider_name",
    ];
    const TOKENS: &[&str] = &[
        "gen_ai_token_type",
        "gen_ai_operation_name",
        "gen_ai_request_model",
        "gen_ai_provider_name",
    ];
    Some(match family {
        "tollgate_requests_total" | "tollgate_requests_failed_total" => REQUESTS,
        "gen_ai_server_request_duration_seconds" | "gen_ai_server_time_to_first_token_seconds" => {
            GEN_AI
        }
        "gen_ai_client_token_usage" => TOKENS,
        "tollgate_upstream_duration_seconds" => &["deployment", "provider", "model", "outcome"],
        "tollgate_spend_nano_usd_total" => &["model", "provider"],
        "tollgate_admission_rejections_total" => &["reason", "entity"],
        "tollgate_requests_in_flight" | "tollgate_budget_remaining_nano_usd" => &[],
        _ => return None,
    })
}

fn allowed_values(label: &str) -> Option<&'static [&'static str]> {
    Some(match label {
        "gen_ai_operation_name" => &["chat", "text_completion", "embeddings"],
        "gen_ai_token_type" => &["input", "output"],
        "outcome" => &["ok", "error"],
        "reason" => &["budget", "rate_limit", "parallel", "ledger_unavailable"],
        "entity" => &["key", "user", "team", "team_member"],
        _ => return None,
    })
}

/// The family of a series name (`_bucket`, `_sum`, `_count` stripped from histograms).
fn family(name: &str) -> &str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && required_labels(base).is_some()
        {
            return base;
        }
    }
    name
}

/// Every series Prometheus holds for `job`: the families the spec names carry their labels,
/// and no value anywhere is empty, `None`, `null` or the like. Returns the families seen.
async fn check_series_labels(prometheus: &Prometheus, job: &str) -> BTreeSet<String> {
    let start = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - prometheus.started.elapsed().as_secs()
        - 60)
        .to_string();
    let selector = format!("{{job={}}}", quoted(job));
    let series = prometheus
        .api("series", &[("match[]", &selector), ("start", &start)])
        .await;
    let mut families = BTreeSet::new();
    let mut problems = Vec::new();
    for s in series.as_array().unwrap() {
        let labels = s.as_object().unwrap();
        let name = labels["__name__"].as_str().unwrap();
        let fam = family(name);
        families.insert(fam.to_owned());
        for (label, value) in labels {
            let value = value.as_str().unwrap();
            let lower = value.to_ascii_lowercase();
            if value.trim().is_empty()
                || ["none", "null", "nil", "undefined", "nan"].contains(&lower.as_str())
            {
                problems.push(format!("{s}: {label}={value:?}"));
            }
            if let Some(allowed) = allowed_values(label)
                && !allowed.contains(&value)
            {
                problems.push(format!("{s}: {label}={value:?} is not one of {allowed:?}"));
            }
        }
        if let Some(required) = required_labels(fam) {
            for label in required {
                if !labels.contains_key(*label) {
                    problems.push(format!("{s}: no {label} (empty?)"));
                }
            }
        }
        if name.ends_with("_bucket") && !labels.contains_key("le") {
            problems.push(format!("{s}: a bucket without le"));
        }
    }
    assert!(problems.is_empty(), "bad labels:\n{}", problems.join("\n"));
    families
}

// ---------------------------------------------------------------------------------------------
// The deploy/ examples.

/// Every `expr` of the dashboard, with Grafana's variables replaced as "All" and a 1m interval.
fn dashboard_queries() -> Vec<(String, String)> {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/grafana/tollgate-dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let mut expr = target["expr"].as_str().unwrap().to_owned();
            for interval in ["$__rate_interval", "$__interval", "$__range"] {
                expr = expr.replace(interval, "1m");
            }
            for variable in dashboard["templating"]["list"].as_array().unwrap() {
                let name = variable["name"].as_str().unwrap();
                expr = expr.replace(&format!("${{{name}}}"), ".*");
                expr = expr.replace(&format!("${name}"), ".*");
            }
            assert!(!expr.contains('$'), "an unknown variable in {expr}");
            out.push((panel["title"].as_str().unwrap().to_owned(), expr));
        }
    }
    out
}

#[test]
fn grafana_dashboard_is_importable_and_names_real_metrics() {
    let text =
        std::fs::read_to_string(repo().join("deploy/grafana/tollgate-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 38);
    assert!(dashboard["uid"].as_str().is_some_and(|u| !u.is_empty()));
    let input = &dashboard["__inputs"][0];
    assert_eq!(input["name"], "DS_PROMETHEUS");
    assert_eq!(input["type"], "datasource");
    assert_eq!(input["pluginId"], "prometheus");
    let uses_input = json!({"type": "prometheus", "uid": "${DS_PROMETHEUS}"});
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables
            .iter()
            .any(|v| v["name"] == "DS_PROMETHEUS" && v["type"] == "datasource"),
        "a DS_PROMETHEUS datasource variable, so the file also works provisioned as-is"
    );
    for variable in variables.iter().filter(|v| v["type"] == "query") {
        assert_eq!(variable["datasource"], uses_input, "{variable}");
    }
    let known = [
        "tollgate_requests_total",
        "tollgate_requests_failed_total",
        "tollgate_requests_in_flight",
        "gen_ai_server_request_duration_seconds_bucket",
        "gen_ai_server_time_to_first_token_seconds_bucket",
        "gen_ai_client_token_usage_sum",
        "tollgate_upstream_duration_seconds_bucket",
        "tollgate_upstream_duration_seconds_count",
        "tollgate_spend_nano_usd_total",
        "tollgate_budget_remaining_nano_usd",
        "tollgate_admission_rejections_total",
    ];
    let labels = [
        "gen_ai_operation_name",
        "gen_ai_request_model",
        "gen_ai_provider_name",
        "gen_ai_token_type",
    ];
    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap();
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "duplicate id: {title}"
        );
        assert!(panel["gridPos"]["w"].as_u64().is_some(), "{title}: gridPos");
        assert_eq!(panel["datasource"], uses_input, "{title}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            assert_eq!(target["datasource"], uses_input, "{title}");
            assert!(target["refId"].as_str().is_some(), "{title}: refId");
            let expr = target["expr"].as_str().unwrap();
            let names = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("tollgate_") || w.starts_with("gen_ai_"))
                .filter(|w| !labels.contains(w));
            for name in names {
                assert!(
                    known.contains(&name),
                    "{title}: unknown metric {name} in {expr}"
                );
            }
        }
    }
    assert!(dashboard_queries().len() >= 10);
}

#[test]
fn prometheus_examples_pass_promtool() {
    if prometheus_binary().is_none() {
        return;
    }
    let promtool = find_tool("promtool").expect("promtool comes with Debian's prometheus package");
    for args in [
        ["check", "config", "deploy/prometheus/prometheus.yml"],
        ["check", "rules", "deploy/prometheus/rules.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(args)
            .current_dir(repo())
            .output()
            .unwrap();
        assert!(out.status.success(), "promtool {args:?}: {out:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// The tests.

fn start_node(dir: &Path, config: &str) -> Started {
    let config_file = dir.join("config.yaml");
    std::fs::write(&config_file, config).unwrap();
    let mut node = Command::new(bin("tollgate"));
    node.args([
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--admin-port",
        "0",
        "--config",
    ])
    .arg(&config_file)
    .arg("--data-dir")
    .arg(dir.join("data"));
    start(node, &dir.join("node.log"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prometheus_sees_failed_equal_to_4xx_plus_5xx_at_every_scrape() {
    let Some(prometheus_bin) = prometheus_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let _logs = Logs(
        ["mock.log", "node.log", "prometheus.log"]
            .iter()
            .map(|f| dir.path().join(f))
            .collect(),
    );

    let mock_config = dir.path().join("mock.yaml");
    std::fs::write(
        &mock_config,
        "faults:\n  - { model: broken, kind: \"500\" }\n  - { model: hang, kind: timeout }\n",
    )
    .unwrap();
    let mut mock = Command::new(bin("tollgate-mock-provider"));
    mock.args(["--host", "127.0.0.1", "--port", "0", "--config"])
        .arg(&mock_config);
    let mock = start(mock, &dir.path().join("mock.log"));
    let m = &mock.url;
    let node = start_node(
        dir.path(),
        &format!(
            "model_list:
  - model_name: good
    litellm_params:
      model: openai/mock-gpt
      api_base: \"{m}/v1\"
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
  - model_name: broken
    litellm_params: {{ model: openai/broken, api_base: \"{m}/v1\" }}
  - model_name: slow
    litellm_params: {{ model: openai/hang, api_base: \"{m}/v1\" }}
general_settings:
  master_key: {MASTER}
  pass_through_endpoints:
    - {{ path: /mock-models, target: \"{m}/v1/models\", auth: true }}
observability:
  metrics: {{ entity_labels: [key_alias] }}
"
        ),
    );
    let node_url = node.url.clone();
    let target = node_url.trim_start_matches("http://");

    let rules = repo().join("deploy/prometheus/rules.yml");
    let prometheus = Prometheus::start(
        &prometheus_bin,
        dir.path(),
        &format!(
            "global: {{ scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }}
rule_files: [{rules}]
scrape_configs:
  - job_name: tollgate
    metrics_path: /metrics
    static_configs: [{{ targets: [\"{target}\"] }}]
",
            rules = quoted(&rules.display().to_string()),
        ),
    )
    .await;
    let scrape_url = format!("{node_url}/metrics");
    let up = prometheus
        .wait_for_target("tollgate", &scrape_url, "up")
        .await;
    assert_eq!(up["lastError"], "", "{up}");

    // Keys (these management calls are counted too), then the mix while Prometheus scrapes.
    let keys = std::sync::Arc::new(Keys {
        over_budget: generate_key(&node_url, json!({"max_budget": 0})).await,
        parallel: generate_key(&node_url, json!({"max_parallel_requests": 0})).await,
        rate_limited: generate_key(&node_url, json!({"rpm_limit": 1})).await,
        aliased: generate_key(
            &node_url,
            json!({"max_budget": ALIAS_BUDGET_NANO / 1e9, "key_alias": "prom-alias"}),
        )
        .await,
    });
    let mut tally = traffic(&node_url, &keys).await;
    let sent: u64 = tally.values().sum();
    println!("sent {sent} requests: {tally:?}");
    for kind in MIX {
        assert!(
            tally.keys().any(|(k, _)| *k == kind),
            "the mix never sent {kind:?}"
        );
    }

    // Client's view: requests per (route, status_code), the key generations included.
    let mut expected = sum_by(&tally, |kind, status| {
        kind.route().map(|r| vec![r.to_owned(), status.to_string()])
    });
    *expected
        .entry(vec!["/key/generate".to_owned(), "200".to_owned()])
        .or_default() += 4.0;
    let expected_failed: BTreeMap<_, _> = expected
        .iter()
        .filter(|(k, _)| k[1].starts_with(['4', '5']))
        .map(|(k, v)| (k.clone(), *v))
        .collect();

    // Wait for a scrape that has every request recorded (abandoned ones are recorded when the
    // node notices the client went away).
    let by_route_status = "sum by (route, status_code) (tollgate_requests_total)";
    let started = Instant::now();
    loop {
        let seen = prometheus
            .by(by_route_status, &["route", "status_code"])
            .await;
        if seen == expected {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "Prometheus's tollgate_requests_total by (route, status_code) never matched what \
             the client sent and saw:\n  seen:     {seen:?}\n  expected: {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Two more scrapes, so the range checks below include a settled one and the rules ran.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = prometheus
        .by(by_route_status, &["route", "status_code"])
        .await;
    assert_eq!(
        seen, expected,
        "counts moved after settling (scrapes counted?)"
    );
    let failed = prometheus
        .by(
            "sum by (route, status_code) (tollgate_requests_failed_total)",
            &["route", "status_code"],
        )
        .await;
    assert_eq!(failed, expected_failed, "tollgate_requests_failed_total");
    assert_eq!(
        prometheus.value("sum(tollgate_requests_total)").await,
        Some(expected.values().sum()),
        "every request counted exactly once"
    );

    check_every_scrape(&prometheus).await;

    check_labels(&prometheus, &scrape_url).await;

    // The other metrics agree with the client's tally.
    tally.retain(|(kind, _), _| kind.route().is_some());
    check_other_metrics(&prometheus, &tally).await;

    check_deploy_examples(&prometheus).await;
}

/// failed == 4xx + 5xx now and at every scrape, and scrapes were taken during the traffic.
async fn check_every_scrape(prometheus: &Prometheus) {
    // The subquery's 250 ms step is finer than the 1 s scrape interval, so every scrape's
    // samples are the latest at some step; `or vector(0)` makes a missing side count as 0
    // instead of hiding the mismatch.
    let equal = prometheus
        .query(
            r#"sum(tollgate_requests_total{status_code=~"[45].."}) == sum(tollgate_requests_failed_total)"#,
        )
        .await;
    assert!(!equal.is_empty(), "failed ≠ 4xx + 5xx now");
    let w = prometheus.window();
    let mismatches = prometheus
        .query(&format!(
            r#"count_over_time(((sum(tollgate_requests_total{{status_code=~"[45].."}}) or vector(0)) - (sum(tollgate_requests_failed_total) or vector(0)) != 0)[{w}:250ms])"#
        ))
        .await;
    assert!(
        mismatches.is_empty(),
        "some scrape saw failed ≠ 4xx + 5xx: {mismatches:?}"
    );
    let scrapes = prometheus
        .value(&format!(r#"count_over_time(up{{job="tollgate"}}[{w}])"#))
        .await
        .unwrap();
    // Scrapes taken while the counters moved: the invariant held mid-traffic, not only at rest.
    let total_changes = prometheus
        .value(&format!("changes(sum(tollgate_requests_total)[{w}:250ms])"))
        .await
        .unwrap();
    let failed_changes = prometheus
        .value(&format!(
            "changes(sum(tollgate_requests_failed_total)[{w}:250ms])"
        ))
        .await
        .unwrap();
    eprintln!(
        "{scrapes} scrapes; the total changed {total_changes} times, failed {failed_changes}"
    );
    assert!(scrapes >= 7.0, "too few scrapes: {scrapes}");
    assert!(
        total_changes >= 3.0 && failed_changes >= 3.0,
        "too few scrapes during the traffic: total changed {total_changes} times, failed \
         {failed_changes}"
    );
}

/// Status codes are three digits, failed holds only 4xx/5xx, the families the spec names are
/// there with their labels, and no label value is empty or a placeholder.
async fn check_labels(prometheus: &Prometheus, scrape_url: &str) {
    let odd = prometheus
        .query(r#"{__name__=~"tollgate_requests(_failed)?_total", status_code!~"[0-9]{3}"}"#)
        .await;
    assert!(odd.is_empty(), "non-numeric status codes: {odd:?}");
    let not_failed = prometheus
        .query(r#"tollgate_requests_failed_total{status_code!~"[45].."}"#)
        .await;
    assert!(
        not_failed.is_empty(),
        "failed series that are not 4xx/5xx: {not_failed:?}"
    );
    let families = check_series_labels(prometheus, "tollgate").await;
    for family in [
        "tollgate_requests_total",
        "tollgate_requests_failed_total",
        "tollgate_requests_in_flight",
        "gen_ai_server_request_duration_seconds",
        "gen_ai_server_time_to_first_token_seconds",
        "gen_ai_client_token_usage",
        "tollgate_upstream_duration_seconds",
        "tollgate_spend_nano_usd_total",
        "tollgate_budget_remaining_nano_usd",
        "tollgate_admission_rejections_total",
    ] {
        assert!(
            families.contains(family),
            "no {family} series: {families:?}"
        );
    }
    // Empty values straight from the exposition (Prometheus drops empty labels on ingest).
    let exposition = reqwest::get(scrape_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for bad in [r#"="""#, r#"="None""#, r#"="null""#] {
        assert!(
            !exposition
                .lines()
                .any(|l| !l.starts_with('#') && l.contains(bad)),
            "/metrics has a label {bad}:\n{exposition}"
        );
    }
}

/// Admission rejections, token usage, request durations, time to first token, upstream
/// attempts, spend, remaining budget and in-flight agree with what the client did and saw.
async fn check_other_metrics(prometheus: &Prometheus, tally: &Tally) {
    let admissions = prometheus
        .by(
            "sum by (reason, entity) (tollgate_admission_rejections_total)",
            &["reason", "entity"],
        )
        .await;
    let admitted_expected = sum_by(tally, |kind, status| {
        let reason = match (kind, status) {
            (Kind::OverBudget, _) => "budget",
            (Kind::Parallel, _) => "parallel",
            (Kind::RateLimited, 429) => "rate_limit",
            _ => return None,
        };
        Some(vec![reason.to_owned(), "key".to_owned()])
    });
    assert_eq!(admissions, admitted_expected, "admission rejections");
    let tokens = prometheus
        .by(
            r#"sum by (gen_ai_operation_name) (gen_ai_client_token_usage_count{gen_ai_request_model="good", gen_ai_token_type="input"})"#,
            &["gen_ai_operation_name"],
        )
        .await;
    let successes = sum_by(tally, |kind, status| {
        (status == 200)
            .then(|| kind.good_operation())
            .flatten()
            .map(|op| vec![op.to_owned()])
    });
    assert_eq!(
        tokens, successes,
        "one token-usage record per successful call"
    );
    let durations = prometheus
        .by(
            r#"sum by (gen_ai_operation_name) (gen_ai_server_request_duration_seconds_count{gen_ai_request_model="good", error_type=""})"#,
            &["gen_ai_operation_name"],
        )
        .await;
    assert_eq!(
        durations, successes,
        "request durations without error_type: the successes"
    );
    let failures_without_type = prometheus
        .query(r#"gen_ai_server_request_duration_seconds_count{gen_ai_request_model="broken", error_type=""}"#)
        .await;
    assert!(
        failures_without_type.is_empty(),
        "upstream failures without error_type: {failures_without_type:?}"
    );
    let streams = count(tally, |kind, status| kind == Kind::Stream && status == 200);
    assert_eq!(
        prometheus
            .value(r#"sum(gen_ai_server_time_to_first_token_seconds_count{gen_ai_request_model="good"})"#)
            .await,
        Some(streams),
        "one time-to-first-token per stream"
    );
    let good_calls: f64 = successes.values().sum();
    let upstream_ok = prometheus
        .value(r#"sum(tollgate_upstream_duration_seconds_count{model="good", outcome="ok"})"#)
        .await
        .unwrap();
    assert!(
        upstream_ok >= good_calls,
        "{upstream_ok} ok attempts < {good_calls} successes"
    );
    let upstream_errors = prometheus
        .value(r#"sum(tollgate_upstream_duration_seconds_count{model="broken", outcome="error"})"#)
        .await
        .unwrap();
    let broken = count(tally, |kind, _| kind == Kind::UpstreamFailure);
    assert!(
        upstream_errors >= broken,
        "{upstream_errors} error attempts < {broken} failures"
    );
    // Spend is the priced tokens, and the aliased key's remaining budget is its limit minus
    // its spend (both settle after the answer, so wait for them to agree).
    let started = Instant::now();
    loop {
        let spend = prometheus
            .value(r#"sum(tollgate_spend_nano_usd_total{model="good"})"#)
            .await
            .unwrap_or(0.0);
        let input = prometheus
            .value(r#"sum(gen_ai_client_token_usage_sum{gen_ai_request_model="good", gen_ai_token_type="input"})"#)
            .await
            .unwrap_or(0.0);
        let output = prometheus
            .value(r#"sum(gen_ai_client_token_usage_sum{gen_ai_request_model="good", gen_ai_token_type="output"})"#)
            .await
            .unwrap_or(0.0);
        let alias_spend = prometheus
            .value(r#"sum(tollgate_spend_nano_usd_total{key_alias="prom-alias"})"#)
            .await
            .unwrap_or(0.0);
        let remaining = prometheus
            .value(r#"tollgate_budget_remaining_nano_usd{key_alias="prom-alias"}"#)
            .await;
        let priced = input * INPUT_NANO + output * OUTPUT_NANO;
        if spend > 0.0
            && spend == priced
            && alias_spend > 0.0
            && remaining == Some(ALIAS_BUDGET_NANO - alias_spend)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "spend {spend} nano-USD vs priced tokens {priced} ({input} in, {output} out); \
             prom-alias spent {alias_spend}, remaining {remaining:?} of {ALIAS_BUDGET_NANO}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // In flight: at rest nothing but the scrape itself; during the mix, more.
    let in_flight = prometheus
        .value("tollgate_requests_in_flight")
        .await
        .unwrap();
    assert!(in_flight <= 1.0, "{in_flight} in flight at rest");
    let busiest = prometheus
        .value(&format!(
            "max_over_time(tollgate_requests_in_flight[{}])",
            prometheus.window()
        ))
        .await
        .unwrap();
    assert!(busiest >= 2.0, "in flight never above {busiest}");
}

/// deploy/prometheus/rules.yml is loaded and every rule evaluates; every query of
/// deploy/grafana/tollgate-dashboard.json parses and has data.
async fn check_deploy_examples(prometheus: &Prometheus) {
    // deploy/prometheus/rules.yml: loaded, every rule evaluated without error.
    let groups = prometheus.api("rules", &[]).await;
    let rules: Vec<&Value> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert!(rules.len() >= 3, "rules.yml not loaded: {groups}");
    for rule in &rules {
        assert_eq!(rule["health"], "ok", "rule {} failed: {rule}", rule["name"]);
    }
    let ratio = prometheus
        .value(r#"tollgate:failure_ratio:rate5m{job="tollgate"}"#)
        .await
        .expect("the failure-ratio recording rule has a value");
    assert!(ratio > 0.0 && ratio < 1.0, "failure ratio {ratio}");

    // deploy/grafana/tollgate-dashboard.json: every query parses and has data.
    for (title, expr) in dashboard_queries() {
        let result = prometheus.query(&expr).await;
        assert!(
            !result.is_empty(),
            "dashboard panel {title:?} shows no data: {expr}"
        );
    }
    let routes = prometheus
        .api(
            "label/route/values",
            &[("match[]", "tollgate_requests_total")],
        )
        .await;
    assert!(routes.as_array().unwrap().len() >= 5, "{routes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_a_metrics_listener_that_needs_a_key() {
    let Some(prometheus_bin) = prometheus_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let _logs = Logs(
        ["node.log", "prometheus.log"]
            .iter()
            .map(|f| dir.path().join(f))
            .collect(),
    );
    let metrics_port = free_port();
    let node = start_node(
        dir.path(),
        &format!(
            "model_list:
  - model_name: m
    litellm_params: {{ model: mock/m }}
general_settings: {{ master_key: {MASTER} }}
observability:
  metrics: {{ listen: \"127.0.0.1:{metrics_port}\", require_auth: true }}
"
        ),
    );
    // Any further stdout lines (other listeners) are read and ignored.
    let _stdout = std::thread::spawn(move || node.stdout.count());
    let node_url = node.url.clone();
    let main_metrics = reqwest::get(format!("{node_url}/metrics")).await.unwrap();
    assert_eq!(
        main_metrics.status(),
        404,
        "the main port still serves /metrics"
    );
    let scrape_key = generate_key(&node_url, json!({"key_alias": "prometheus-scraper"})).await;
    let key_file = dir.path().join("scrape-key");
    std::fs::write(&key_file, &scrape_key).unwrap();
    let prometheus = Prometheus::start(
        &prometheus_bin,
        dir.path(),
        &format!(
            "global: {{ scrape_interval: 1s, scrape_timeout: 1s }}
scrape_configs:
  - job_name: tollgate
    metrics_path: /metrics
    authorization:
      type: Bearer
      credentials_file: {key}
    static_configs: [{{ targets: [\"127.0.0.1:{metrics_port}\"] }}]
  - job_name: anonymous
    metrics_path: /metrics
    static_configs: [{{ targets: [\"127.0.0.1:{metrics_port}\"] }}]
",
            key = quoted(&key_file.display().to_string()),
        ),
    )
    .await;
    let scrape_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    prometheus
        .wait_for_target("tollgate", &scrape_url, "up")
        .await;
    let anonymous = prometheus
        .wait_for_target("anonymous", &scrape_url, "down")
        .await;
    assert!(
        anonymous["lastError"].as_str().unwrap().contains("401"),
        "a scrape without a key was refused, but not with 401: {anonymous}"
    );
    // The key generation above is the one counted request; scrapes are not counted.
    let started = Instant::now();
    loop {
        let generated = prometheus
            .value(r#"sum(tollgate_requests_total{job="tollgate", route="/key/generate", status_code="200"})"#)
            .await;
        if generated == Some(1.0) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the key generation never showed: {generated:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        prometheus
            .value(r#"sum(tollgate_requests_total{job="tollgate"})"#)
            .await,
        Some(2.0),
        "the key generation and the 404 of /metrics on the main port, nothing else"
    );
}
