//! The Prometheus server: finding its binary, starting it with a scrape config, and asking it.

use super::*;

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `name` on `PATH` (as `command -v` finds it), else `/usr/bin/name`.
pub(crate) fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The `prometheus` binary; `None` (skip) only when it is missing and
/// `TOLLGATE_SKIP_PROMETHEUS=1`.
pub(crate) fn prometheus_binary() -> Option<PathBuf> {
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

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A YAML string (JSON's quoting is valid YAML).
pub(crate) fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// Prints the end of each log file when the test panics, before the temp dir goes away.
pub(crate) struct Logs(pub(crate) Vec<PathBuf>);

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
pub(crate) struct Prometheus {
    _proc: Proc,
    url: String,
    pub(crate) started: Instant,
    client: reqwest::Client,
}

impl Prometheus {
    /// Starts `binary` with `config` on a free loopback port, storage under `dir`, and waits
    /// until it is ready.
    pub(crate) async fn start(binary: &Path, dir: &Path, config: &str) -> Prometheus {
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
    pub(crate) async fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
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
    pub(crate) async fn query(&self, promql: &str) -> Vec<Value> {
        let data = self.api("query", &[("query", promql)]).await;
        assert_eq!(data["resultType"], "vector", "{promql}: {data}");
        data["result"].as_array().unwrap().clone()
    }

    /// The value of a query that returns one sample (or `None` for an empty result).
    pub(crate) async fn value(&self, promql: &str) -> Option<f64> {
        let result = self.query(promql).await;
        assert!(
            result.len() <= 1,
            "{promql}: more than one sample: {result:?}"
        );
        result.first().map(sample)
    }

    /// `sum by (labels) (...)` as a map from the label values to the sample.
    pub(crate) async fn by(&self, promql: &str, labels: &[&str]) -> BTreeMap<Vec<String>, f64> {
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
    pub(crate) fn window(&self) -> String {
        format!("{}s", self.started.elapsed().as_secs() + 5)
    }

    /// Waits until the active target of `job` scraped at `scrape_url` has `health` (`up` or
    /// `down`); returns the target.
    pub(crate) async fn wait_for_target(&self, job: &str, scrape_url: &str, health: &str) -> Value {
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

pub(crate) fn sample(s: &Value) -> f64 {
    s["value"][1].as_str().unwrap().parse().unwrap()
}
