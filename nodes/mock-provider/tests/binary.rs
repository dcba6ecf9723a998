//! The real binary: prints one `listening on` line, serves with `--config`, exits 0 on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn binary_announces_its_address_serves_its_config_and_exits_on_sigterm() {
    let config = std::env::temp_dir().join(format!("tollgate-mock-{}.yaml", std::process::id()));
    std::fs::write(&config, "api_keys: [sk-bin]\nmodels: [only-model]\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate-mock-provider"))
        .args(["--host", "127.0.0.1", "--port", "0", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .expect(&line)
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let models = client
        .get(format!("{base}/v1/models"))
        .bearer_auth("sk-bin")
        .send()
        .await
        .unwrap();
    let models: serde_json::Value = models.json().await.unwrap();
    assert_eq!(models["data"][0]["id"], "only-model");
    let refused = client
        .get(format!("{base}/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "no exit 10 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert_eq!(rest, "", "exactly one line on stdout");
    let _ = std::fs::remove_file(&config);
}
