//! The real `tollgate` binary: exit codes, config checking, SIGTERM drain, and no secrets in
//! its logs.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Proc, bin, serve_command};

const MASTER: &str = "sk-process-master-31337";
const UPSTREAM: &str = "sk-upstream-provider-4242";

/// Starts a server binary on port 0 and returns it (killed when dropped, so a failed
/// assertion does not leave it running) with its base URL.
fn start(mut command: Command) -> (Proc, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    (Proc(child), url)
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            start.elapsed() < limit,
            "process did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_exit_codes_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "good.yaml",
        "model_list:\n  - model_name: m\n    litellm_params: { model: mock/m }\n",
    );
    let out = Command::new(bin("tollgate"))
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    let bad = write(
        dir.path(),
        "bad.yaml",
        "model_list:\n  - model_name: m\n    litellm_params: { model: nope }\n  - model_name: n\n    litellm_params: { model: mock/n, rpm: lots }\nlitellm_settings: { success_callback: [x] }\n",
    );
    let out = Command::new(bin("tollgate"))
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("model_list[0].litellm_params.model"),
        "{stderr}"
    );
    assert!(
        stderr.contains("model_list[1].litellm_params.rpm"),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning") && stderr.contains("litellm_settings.success_callback"),
        "{stderr}"
    );
    assert!(stderr.contains("bad.yaml"), "names the file: {stderr}");

    let out = Command::new(bin("tollgate"))
        .args(["check", "--config", "/nonexistent.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(bin("tollgate"))
        .args(["serve", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "serve refuses a bad config too");
    let out = Command::new(bin("tollgate"))
        .args(["serve", "--bogus-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "bad arguments");
}

#[test]
fn a_busy_port_is_a_runtime_failure() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "c.yaml", "model_list: []\n");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = Command::new(bin("tollgate"))
        .args([
            "serve",
            "--admin-port",
            "0",
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("admin gRPC (tollgate.admin.v1) on"),
        "a node that did not start does not claim to serve admin gRPC: {stderr}"
    );
}

#[test]
fn an_unusable_data_dir_fails_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "c.yaml", "model_list: []\n");
    // A directory inside a file cannot be made.
    let data = cfg.join("data");
    let out = serve_command(&cfg, &data).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot open the store in {}", data.display())),
        "{stderr}"
    );
}

#[test]
fn otlp_metrics_without_an_endpoint_fail_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "c.yaml",
        "model_list: []\nobservability: { otlp: { metrics: true } }\n",
    );
    let out = serve_command(&cfg, &dir.path().join("data"))
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no endpoint is set") && stderr.contains("observability.otlp.endpoint"),
        "says what to set: {stderr}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "a start that failed before opening the store made no data directory"
    );
    assert!(
        !stderr.contains("admin gRPC (tollgate.admin.v1) on"),
        "{stderr}"
    );
    let stored = std::fs::read_dir(dir.path().join("data")).map_or(0, Iterator::count);
    assert!(
        stored == 0 && !stderr.contains("store loaded"),
        "the settings are checked before the store is opened: {stderr}"
    );
}

#[tokio::test]
async fn sigterm_drains_a_stream_then_exits_zero_and_logs_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mock_cfg = write(dir.path(), "mock.yaml", "tokens_per_second: 40\n");
    let mut mock_cmd = Command::new(bin("tollgate-mock-provider"));
    mock_cmd
        .args(["--host", "127.0.0.1", "--port", "0", "--config"])
        .arg(&mock_cfg);
    let (mut mock, mock_url) = start(mock_cmd);

    let cfg = write(
        dir.path(),
        "config.yaml",
        &format!(
            "model_list:\n  - model_name: m\n    litellm_params: {{ model: openai/mock-gpt, api_base: \"{mock_url}/v1\", api_key: os.environ/UP_KEY }}\ngeneral_settings: {{ master_key: {MASTER} }}\n"
        ),
    );
    let mut node_cmd = serve_command(&cfg, &dir.path().join("data"));
    node_cmd
        .env("UP_KEY", UPSTREAM)
        .env("TOLLGATE_LOG", "trace,hyper=info,h2=info,reqwest=info");
    let (mut node, url) = start(node_cmd);
    let client = reqwest::Client::new();

    // Traffic that carries every secret: right key, wrong key, upstream key in use.
    for (key, id) in [
        (MASTER, "client-id-1"),
        ("sk-wrong-but-logged?-777", "client-id-2"),
    ] {
        let response = client
            .get(format!("{url}/v1/models"))
            .bearer_auth(key)
            .header("x-request-id", id)
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["x-request-id"], id, "echoed");
    }
    let unknown = client
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(MASTER)
        .header("x-request-id", "client-id-3")
        .json(&serde_json::json!({"model": "no-such-model",
                                  "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let stream = client
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(MASTER)
        .json(
            &serde_json::json!({"model": "m", "stream": true, "max_tokens": 16,
                                  "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let stream_id = stream.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    signal(&node.0, "-TERM");
    let text = stream.text().await.unwrap();
    assert!(
        text.contains("data: [DONE]"),
        "the in-flight stream completed: {text}"
    );
    let status = wait(&mut node.0, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));

    let mut logs = String::new();
    node.0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    for secret in [MASTER, UPSTREAM, "sk-wrong-but-logged"] {
        assert!(
            !logs.contains(secret),
            "secret {secret} in the log:\n{logs}"
        );
    }
    assert!(logs.contains("SIGTERM"), "{logs}");
    // One access line per request, with its request id (the client's, or one made up).
    let access = |id: &str| -> Vec<&str> {
        logs.lines()
            .filter(|l| {
                l.contains("tollgate::access:") && l.contains(&format!("request_id=\"{id}\""))
            })
            .collect()
    };
    let line = access("client-id-1");
    assert!(
        line.len() == 1
            && line[0].contains("route=\"/v1/models\" ")
            && line[0].contains(" status=200 "),
        "{line:?}"
    );
    let line = access("client-id-2");
    assert!(
        line.len() == 1
            && line[0].contains(" status=401 ")
            && line[0].contains("error=\"invalid_api_key\""),
        "{line:?}"
    );
    let line = access("client-id-3");
    assert!(
        line.len() == 1
            && line[0].contains(" status=404 ")
            && line[0].contains("model=\"no-such-model\"")
            && line[0].contains("error=\"model_not_found\""),
        "the model asked for, though no group has it: {line:?}"
    );
    let line = access(&stream_id);
    assert!(
        line.len() == 1
            && line[0].contains(" status=200 ")
            && line[0].contains("model=\"m\"")
            && line[0].contains(" output_tokens=16 "),
        "{line:?}"
    );
    signal(&mock.0, "-TERM");
    wait(&mut mock.0, Duration::from_secs(10));
}
