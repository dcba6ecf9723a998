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

mod checks;
#[path = "../common/mod.rs"]
mod common;
mod deploy;
mod mix;
mod server;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Proc, Started, bin, serve_command, start};
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

use checks::*;
use deploy::*;
use mix::*;
use server::*;

fn start_node(dir: &Path, config: &str) -> Started {
    let config_file = dir.join("config.yaml");
    std::fs::write(&config_file, config).unwrap();
    start(
        serve_command(&config_file, &dir.join("data")),
        &dir.join("node.log"),
    )
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
