//! `tollgate admin ...` against a real node's admin gRPC API.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Proc, bin, serve_command, start};
use serde_json::Value;

const MASTER: &str = "sk-admin-cli-master-77";

/// Starts a node and returns it with its HTTP and admin gRPC addresses.
fn start_node(dir: &Path) -> (Proc, String, String) {
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "model_list:\n  - model_name: m\n    litellm_params: {{ model: mock/m, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002 }}\ngeneral_settings: {{ master_key: {MASTER} }}\n"
        ),
    )
    .unwrap();
    let command = serve_command(&config, &dir.join("data"));
    let mut started = start(command, &dir.join("node.log"));
    let admin = started.stdout.next().unwrap().unwrap();
    let admin = admin
        .strip_prefix("admin grpc on ")
        .unwrap_or_else(|| panic!("no admin address: {admin:?}"))
        .to_owned();
    (started.proc, started.url, admin)
}

fn admin(addr: &str, key: &str, args: &[&str]) -> Output {
    Command::new(bin("tollgate"))
        .arg("admin")
        .args(["--addr", addr])
        .env("TOLLGATE_ADMIN_KEY", key)
        .args(args)
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn keys_and_usage_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, http, addr) = start_node(dir.path());

    let made = json(&admin(
        &addr,
        MASTER,
        &[
            "keys",
            "generate",
            "--alias",
            "cli-key",
            "--max-budget-usd",
            "10.5",
            "--budget-duration",
            "1mo",
            "--rpm",
            "60",
        ],
    ));
    let key = made["key"].as_str().unwrap().to_owned();
    assert_eq!(
        made["info"]["limits"]["max_budget_nano_usd"],
        10_500_000_000u64
    );
    assert_eq!(made["info"]["key_alias"], "cli-key");

    let r = reqwest::Client::new()
        .post(format!("{http}/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let info = json(&admin(&addr, MASTER, &["keys", "info", &key]));
    let spend = info["limits"]["spend_nano_usd"].as_u64().unwrap();
    assert!(spend > 0);
    let usage = json(&admin(&addr, MASTER, &["usage", "--key", &key]));
    assert_eq!(usage["requests"], 1);
    assert_eq!(usage["spend_nano_usd"].as_u64(), Some(spend));

    let updated = json(&admin(
        &addr,
        MASTER,
        &["keys", "update", &key, "--no-max-budget"],
    ));
    assert_eq!(updated["limits"]["max_budget_nano_usd"], Value::Null);
    assert_eq!(updated["limits"]["rpm_limit"], 60, "untouched");

    // A wrong key: exit 1, a clear message, the key not echoed.
    let out = admin(&addr, "sk-wrong-admin-key-42", &["keys", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Unauthenticated"), "{stderr}");
    assert!(!stderr.contains("sk-wrong-admin-key-42"), "{stderr}");
    // Bad arguments: exit 2.
    let out = admin(
        &addr,
        MASTER,
        &["keys", "generate", "--max-budget-usd", "lots"],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an amount of USD"));
    let out = admin(&addr, MASTER, &["keys", "frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}
