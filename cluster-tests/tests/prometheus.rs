//! A real Prometheus server scrapes a real node under a concurrent mix of successes, malformed
//! bodies, invalid keys, unknown models and upstream failures, and Prometheus itself evaluates
//! that the failure counter equals the 4xx + 5xx series of the total at every scrape.
//!
//! Needs the `prometheus` binary (the README's test command installs Debian's package); set
//! `TOLLGATE_SKIP_PROMETHEUS=1` to skip on a machine without it.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Proc, bin, start};
use serde_json::{Value, json};

const MASTER: &str = "sk-prometheus-master-5150";

fn prometheus_binary() -> Option<PathBuf> {
    let out = Command::new("sh")
        .args(["-c", "command -v prometheus"])
        .output()
        .ok()?;
    let found = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !found.is_empty() {
        return Some(PathBuf::from(found));
    }
    let fallback = Path::new("/usr/bin/prometheus");
    fallback.exists().then(|| fallback.to_owned())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn query(prometheus: &str, promql: &str) -> Vec<Value> {
    let encoded = serde_urlencoded::to_string([("query", promql)]).unwrap();
    let answer: Value = reqwest::Client::new()
        .get(format!("{prometheus}/api/v1/query?{encoded}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["status"], "success", "{promql}: {answer}");
    answer["data"]["result"].as_array().unwrap().clone()
}

fn scalar(result: &[Value]) -> f64 {
    result[0]["value"][1].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sees_failed_equal_to_4xx_plus_5xx_at_every_scrape() {
    let Some(prometheus_bin) = prometheus_binary() else {
        if std::env::var_os("TOLLGATE_SKIP_PROMETHEUS").is_some_and(|v| v == "1") {
            eprintln!("skipped: no prometheus binary and TOLLGATE_SKIP_PROMETHEUS=1");
            return;
        }
        panic!(
            "the `prometheus` binary is missing: run the README's test command (bash .ci/test), \
             which installs Debian's package, or set TOLLGATE_SKIP_PROMETHEUS=1"
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let mock_config = dir.path().join("mock.yaml");
    std::fs::write(
        &mock_config,
        "faults:\n  - { model: broken, kind: \"500\" }\n",
    )
    .unwrap();
    let mut mock = Command::new(bin("tollgate-mock-provider"));
    mock.args(["--host", "127.0.0.1", "--port", "0", "--config"])
        .arg(&mock_config);
    let mock = start(mock, &dir.path().join("mock.log"));
    let mock_url = mock.url.clone();

    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "model_list:\n  - model_name: good\n    litellm_params: {{ model: openai/mock-gpt, api_base: \"{mock_url}/v1\" }}\n  - model_name: broken\n    litellm_params: {{ model: openai/broken, api_base: \"{mock_url}/v1\" }}\ngeneral_settings: {{ master_key: {MASTER} }}\n"
        ),
    )
    .unwrap();
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
    .arg(&config)
    .arg("--data-dir")
    .arg(dir.path().join("data"));
    let node = start(node, &dir.path().join("node.log"));
    let node_url = node.url.clone();

    let port = free_port();
    let target = node_url.trim_start_matches("http://");
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\nscrape_configs:\n  - job_name: tollgate\n    metrics_path: /metrics\n    static_configs: [{{ targets: [\"{target}\"] }}]\n"
        ),
    )
    .unwrap();
    let _prometheus = Proc(
        Command::new(&prometheus_bin)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let prometheus = format!("http://127.0.0.1:{port}");

    // Wait until Prometheus scrapes the node.
    let started = Instant::now();
    loop {
        let ready = reqwest::get(format!("{prometheus}/-/ready")).await;
        if ready.is_ok_and(|r| r.status().is_success())
            && !query(&prometheus, "up == 1").await.is_empty()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "Prometheus never scraped the node"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Five seconds of a concurrent mix while Prometheus scrapes every second.
    let sent = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(5);
    let workers: Vec<_> = (0..8)
        .map(|worker| {
            let url = format!("{node_url}/v1/chat/completions");
            let sent = sent.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut i = worker;
                while Instant::now() < deadline {
                    let chat = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2});
                    let request = match i % 6 {
                        0 => client.post(&url).bearer_auth(MASTER).json(&chat("good")),
                        1 => client.post(&url).bearer_auth(MASTER).json(&json!({"model": "good", "messages": [{"role": "user", "content": "hi"}], "stream": true})),
                        2 => client.post(&url).bearer_auth(MASTER).body("{broken json"),
                        3 => client.post(&url).bearer_auth("sk-not-a-key-123").json(&chat("good")),
                        4 => client.post(&url).bearer_auth(MASTER).json(&chat("no-such-model")),
                        _ => client.post(&url).bearer_auth(MASTER).json(&chat("broken")),
                    };
                    let response = request.send().await.unwrap();
                    let _ = response.bytes().await;
                    sent.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let sent = sent.load(Ordering::Relaxed) as f64;
    // Let at least two more scrapes see the final counts.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let equal = query(
        &prometheus,
        r#"sum(tollgate_requests_total{status_code=~"[45].."}) == sum(tollgate_requests_failed_total)"#,
    )
    .await;
    assert!(!equal.is_empty(), "failed ≠ 4xx + 5xx now");
    let scrapes = query(
        &prometheus,
        "count_over_time(sum(tollgate_requests_total)[1m:1s])",
    )
    .await;
    assert!(
        scrapes.len() == 1 && scalar(&scrapes) >= 5.0,
        "too few scrapes: {scrapes:?}"
    );
    let mismatches = query(
        &prometheus,
        r#"count_over_time((sum(tollgate_requests_total{status_code=~"[45].."}) - sum(tollgate_requests_failed_total) != 0)[1m:1s])"#,
    )
    .await;
    assert!(
        mismatches.is_empty(),
        "some scrape saw failed ≠ 4xx + 5xx: {mismatches:?}"
    );
    let odd = query(
        &prometheus,
        r#"count(tollgate_requests_total{status_code!~"[0-9]{3}"})"#,
    )
    .await;
    assert!(odd.is_empty(), "non-numeric status codes: {odd:?}");
    // Prometheus drops empty labels, so a series missing one of the four had it empty.
    let empty = query(
        &prometheus,
        r#"count(tollgate_requests_total unless tollgate_requests_total{route=~".+", model=~".+", provider=~".+", status_code=~".+"})"#,
    )
    .await;
    assert!(empty.is_empty(), "series with an empty label: {empty:?}");
    let none = query(
        &prometheus,
        r#"count({__name__=~"tollgate_requests(_failed)?_total", model="None"}) or count({__name__=~"tollgate_requests(_failed)?_total", status_code="None"})"#,
    )
    .await;
    assert!(none.is_empty(), "a label reads None: {none:?}");
    let total = scalar(&query(&prometheus, "sum(tollgate_requests_total)").await);
    assert_eq!(
        total, sent,
        "every request counted exactly once, scrapes not counted"
    );
    for status in ["200", "400", "401", "404", "500"] {
        let series = query(
            &prometheus,
            &format!(r#"sum(tollgate_requests_total{{status_code="{status}"}})"#),
        )
        .await;
        assert!(!series.is_empty(), "no {status} series");
    }
}
