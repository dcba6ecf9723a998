use std::time::Duration;

use super::*;

fn load(yaml: &str) -> Result<Loaded, ConfigError> {
    load_str(
        yaml,
        "test.yaml",
        &MapEnv::new([("OPENAI_KEY", "sk-from-env-123")]),
    )
}

#[test]
fn litellm_config_loads() {
    let loaded = load(
        r#"
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/OPENAI_KEY
      timeout: 30
      stream_timeout: 5
      max_retries: 2
      rpm: 600
      tpm: 100000
      input_cost_per_token: 0.0000025
      output_cost_per_token: 0.00001
    model_info: { id: gpt4o-east, mode: chat, max_tokens: 4096, access_groups: [beta] }
  - model_name: gpt-4o
    litellm_params: { model: "hosted_vllm/llama", api_base: "http://10.0.0.1:8000" }
  - model_name: fake
    litellm_params: { model: mock/fake-model, mock_response: "hello there" }
router_settings: { timeout: 45 }
general_settings: { master_key: sk-admin-1234 }
"#,
    )
    .unwrap();
    let c = &loaded.config;
    assert_eq!(c.deployments.len(), 3);
    let d = &c.deployments[0];
    assert_eq!(d.model_name, "gpt-4o");
    assert_eq!(d.id, "gpt4o-east");
    assert_eq!(d.provider.name(), "openai");
    assert_eq!(d.upstream_model, "gpt-4o");
    assert_eq!(d.api_base, "https://api.openai.com/v1");
    assert_eq!(
        d.api_key.as_ref().unwrap().expose_secret(),
        "sk-from-env-123"
    );
    assert_eq!(d.timeout, Duration::from_secs(30));
    assert_eq!(d.stream_timeout, Duration::from_secs(5));
    assert_eq!(d.max_retries, 2);
    assert_eq!(d.rpm, Some(600));
    assert_eq!(
        d.input_cost_per_token.unwrap().nano_usd_per_mtok,
        2_500_000_000
    );
    assert_eq!(d.info.access_groups, vec!["beta"]);
    let vllm = &c.deployments[1];
    assert_eq!(vllm.id, "1");
    assert_eq!(vllm.api_base, "http://10.0.0.1:8000/v1");
    assert_eq!(
        vllm.timeout,
        Duration::from_secs(45),
        "router timeout is the default"
    );
    assert_eq!(c.deployments[2].provider, Provider::Mock);
    assert_eq!(
        c.deployments[2].mock_response.as_deref(),
        Some("hello there")
    );
    assert_eq!(
        c.general.master_key.as_ref().unwrap().expose_secret(),
        "sk-admin-1234"
    );
    assert_eq!(c.general.max_request_bytes, 16 * 1024 * 1024);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn unknown_keys_are_one_warning_each() {
    let loaded = load(
        r#"
model_list:
  - model_name: m
    litellm_params: { model: mock/m, temperature: 0.1, weight: 2 }
litellm_settings: { callbacks: ["prometheus"], set_verbose: true }
general_settings: { database_url: "postgresql://x", alerting: ["slack"] }
guardrails: []
"#,
    )
    .unwrap();
    let paths: Vec<&str> = loaded.warnings.iter().map(|w| w.path.as_str()).collect();
    for expected in [
        "model_list[0].litellm_params.temperature",
        "model_list[0].litellm_params.weight",
        "litellm_settings.set_verbose",
        "general_settings.database_url",
        "general_settings.alerting",
        "guardrails",
    ] {
        assert_eq!(
            paths.iter().filter(|p| **p == expected).count(),
            1,
            "{expected}: {paths:?}"
        );
    }
    assert!(
        !paths.contains(&"litellm_settings.callbacks"),
        "callbacks are accepted: {paths:?}"
    );
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let err = load(
        r#"
model_list:
  - model_name: a
    litellm_params: { model: gpt-4o }
  - model_name: b
    litellm_params: { model: bedrock/claude }
  - model_name: c
    litellm_params: { model: openai/x, timeout: "soon", rpm: -5, api_key: os.environ/MISSING_VAR }
  - litellm_params: { model: hosted_vllm/llama }
  - model_name: e
router_settings: { routing_strategy: fastest, timeout: [1] }
general_settings: { max_request_size_mb: 0 }
"#,
    )
    .unwrap_err();
    let got: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
    let expect = [
        "model_list[0].litellm_params.model: `gpt-4o` has no provider prefix",
        "model_list[1].litellm_params.model: provider `bedrock` is not supported",
        "model_list[2].litellm_params.timeout: expected a number",
        "model_list[2].litellm_params.rpm: expected a whole number",
        "model_list[2].litellm_params.api_key: environment variable MISSING_VAR is not set",
        "model_list[3].model_name: required",
        "model_list[3].litellm_params.api_base: required for `hosted_vllm/` models",
        "model_list[4].litellm_params: required",
        "router_settings.routing_strategy: unknown strategy `fastest`",
        "router_settings.timeout: expected a number, found a list",
        "general_settings.max_request_size_mb: expected a size in MB",
    ];
    for e in expect {
        assert!(
            got.iter().any(|g| g.starts_with(e)),
            "missing `{e}` in {got:#?}"
        );
    }
    assert!(!got.iter().any(|g| g.contains("MISSING_VAR=")));
}

#[test]
fn secrets_never_print() {
    let loaded = load("general_settings: { master_key: sk-very-secret-999 }").unwrap();
    let debug = format!("{:?}", loaded.config);
    assert!(!debug.contains("sk-very-secret-999"), "{debug}");
}

#[test]
fn environment_variables_section_resolves_references() {
    let loaded = load(
        r#"
environment_variables: { MY_BASE: "http://127.0.0.1:9" }
model_list:
  - model_name: m
    litellm_params: { model: openai/m, api_base: os.environ/MY_BASE }
"#,
    )
    .unwrap();
    assert_eq!(
        loaded.config.deployments[0].api_base,
        "http://127.0.0.1:9/v1"
    );
}

#[test]
fn garbage_yaml_is_a_problem_not_a_panic() {
    for text in [
        "model_list: [",
        "- just\n- a list",
        "42",
        "model_list: 7",
        "\t:\n",
    ] {
        let result = load(text);
        assert!(result.is_err(), "{text}");
    }
    assert!(load("").unwrap().config.deployments.is_empty());
}

#[test]
fn duplicate_ids_are_refused() {
    let err = load(
        r#"
model_list:
  - { model_name: a, litellm_params: { model: mock/a }, model_info: { id: x } }
  - { model_name: b, litellm_params: { model: mock/b }, model_info: { id: x } }
"#,
    )
    .unwrap_err();
    assert!(
        err.problems[0].message.contains("duplicate deployment id"),
        "{:?}",
        err.problems
    );
}

#[test]
fn short_words_stay_strings() {
    let loaded =
        load("model_list:\n  - model_name: n\n    litellm_params: { model: mock/yes }\n").unwrap();
    assert_eq!(loaded.config.deployments[0].model_name, "n");
    assert_eq!(loaded.config.deployments[0].upstream_model, "yes");
}

fn load_with(yaml: &str, vars: MapEnv) -> Result<Loaded, ConfigError> {
    load_str(yaml, "test.yaml", &vars)
}

#[test]
fn pass_through_endpoints_load_with_defaults_and_resolved_headers() {
    let loaded = load_with(
        r#"
general_settings:
  pass_through_endpoints:
    - path: /v1/rerank
      target: https://api.cohere.com/v1/rerank
      headers:
        Authorization: "bearer os.environ/COHERE_KEY"
        x-both: "os.environ/A-os.environ/B"
        content-type: application/json
        x-version: 2
      forward_headers: true
      auth: true
      include_subpath: true
      cost_per_request: 0.01
    - path: /vendor/infer
      target: os.environ/VENDOR_URL
"#,
        MapEnv::new([
            ("COHERE_KEY", "co-secret-1"),
            ("A", "aa"),
            ("B", "bb"),
            ("VENDOR_URL", "http://127.0.0.1:9/infer?x=1"),
        ]),
    )
    .unwrap();
    let endpoints = &loaded.config.general.pass_through_endpoints;
    assert_eq!(endpoints.len(), 2);
    let rerank = &endpoints[0];
    assert_eq!(rerank.path, "/v1/rerank");
    assert_eq!(rerank.target, "https://api.cohere.com/v1/rerank");
    assert!(rerank.include_subpath && rerank.auth && rerank.forward_headers);
    let headers: Vec<(&str, &str)> = rerank
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.expose_secret()))
        .collect();
    assert_eq!(
        headers,
        [
            ("authorization", "bearer co-secret-1"),
            ("content-type", "application/json"),
            ("x-both", "aa-bb"),
            ("x-version", "2"),
        ]
    );
    let vendor = &endpoints[1];
    assert_eq!(vendor.target, "http://127.0.0.1:9/infer?x=1");
    assert!(!vendor.include_subpath && !vendor.auth && !vendor.forward_headers);
    assert!(vendor.headers.is_empty());
    let paths: Vec<&str> = loaded.warnings.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(
        paths,
        ["general_settings.pass_through_endpoints[0].cost_per_request"]
    );
}

#[test]
fn pass_through_problems_are_reported_with_their_paths() {
    let err = load(
        r#"
general_settings:
  pass_through_endpoints:
    - { path: v1/no-slash, target: "https://x.example" }
    - { path: /ok, target: "custom_callbacks.anthropic_adapter" }
    - { path: "/v1/{model}", target: "ftp://x.example/a" }
    - { path: /trailing/, target: "https://x.example", headers: { "bad header": v } }
    - { path: /h, target: "https://x.example", headers: { x-key: "Bearer os.environ/NOPE_KEY", x-nl: "a\nb", x-empty: "Bearer os.environ/", host: x, content-length: 1 } }
    - { target: "https://x.example" }
    - { path: /, target: "https://x.example", auth: maybe }
    - { path: /ok, target: "https://x.example", include_subpath: true }
    - { path: /ok/below, target: "https://x.example" }
    - { path: "/a b", target: "https:///nohost" }
    - 7
    - { path: /ok, target: "https://y.example" }
"#,
    )
    .unwrap_err();
    let got: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
    let p = "general_settings.pass_through_endpoints";
    let expect = [
        format!("{p}[0].path: `v1/no-slash` must start with `/`"),
        format!("{p}[1].target: expected an http(s) URL"),
        format!("{p}[2].path: `/v1/{{model}}` must not contain"),
        format!("{p}[2].target: expected an http(s) URL"),
        format!("{p}[3].path: `/trailing/` must not end with `/`"),
        format!("{p}[3].headers.bad header: not a valid HTTP header name"),
        format!("{p}[4].headers.x-key: environment variable NOPE_KEY is not set"),
        format!("{p}[4].headers.x-nl: not a valid HTTP header value"),
        format!("{p}[4].headers.x-empty: `os.environ/` must be followed by a variable name"),
        format!("{p}[4].headers.host: set by the gateway itself"),
        format!("{p}[4].headers.content-length: set by the gateway itself"),
        format!("{p}[5].path: required"),
        format!("{p}[6].path: must name a path below `/`"),
        format!("{p}[6].auth: expected true or false"),
        format!("{p}[8].path: `/ok/below` lies under {p}[7]"),
        format!("{p}[9].path: `/a b` is not a valid URL path"),
        format!("{p}[9].target: expected an http(s) URL"),
        format!("{p}[10]: expected a mapping"),
        format!("{p}[11].path: `/ok` is also the path of {p}[7]"),
    ];
    for e in &expect {
        assert!(
            got.iter().any(|g| g.starts_with(e.as_str())),
            "missing `{e}` in {got:#?}"
        );
    }
    assert_eq!(got.len(), expect.len(), "{got:#?}");
}

#[test]
fn pass_through_header_values_and_target_credentials_never_print() {
    let loaded = load_with(
        r#"
general_settings:
  pass_through_endpoints:
    - path: /vendor
      target: "https://user:url-password-1@vendor.example/infer?key=url-secret-2"
      headers: { authorization: "Bearer os.environ/VENDOR_KEY", x-literal: literal-secret-3 }
"#,
        MapEnv::new([("VENDOR_KEY", "env-secret-4")]),
    )
    .unwrap();
    let debug = format!("{:?}", loaded.config);
    for secret in [
        "url-password-1",
        "url-secret-2",
        "literal-secret-3",
        "env-secret-4",
    ] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    assert!(debug.contains("https://vendor.example/infer"), "{debug}");
    assert!(debug.contains("authorization"), "{debug}");

    let err = load_with(
        r#"
general_settings:
  pass_through_endpoints:
    - { path: /v, target: "https://x.example", headers: { x-k: "os.environ/BAD_VALUE" } }
"#,
        MapEnv::new([("BAD_VALUE", "bad-secret-5\r\n")]),
    )
    .unwrap_err();
    let text = format!("{:?}", err.problems);
    assert!(text.contains("not a valid HTTP header value"), "{text}");
    assert!(!text.contains("bad-secret-5"), "{text}");
}

#[test]
fn admin_grpc_listens_on_4002_unless_told_otherwise() {
    let default: std::net::SocketAddr = DEFAULT_ADMIN_LISTEN.parse().unwrap();
    let admin = |yaml: &str| load(yaml).unwrap().config.admin.grpc_listen;
    assert_eq!(admin("model_list: []"), Some(default), "section absent");
    assert_eq!(admin("admin: {}"), Some(default), "key absent");
    assert_eq!(
        admin("admin: { grpc_listen: 127.0.0.1:5002 }"),
        Some("127.0.0.1:5002".parse().unwrap())
    );
    assert_eq!(
        admin("admin: { grpc_listen: \"[::1]:5002\" }"),
        Some("[::1]:5002".parse().unwrap())
    );
    assert_eq!(admin("admin: { grpc_listen: null }"), None);
    assert_eq!(admin("admin: { grpc_listen: false }"), None);
    assert_eq!(admin("admin: { grpc_listen: ~ }"), None);
}

#[test]
fn admin_problems_name_their_path() {
    for (yaml, found) in [
        ("admin: { grpc_listen: localhost }", "`localhost`"),
        (
            "admin: { grpc_listen: \"0.0.0.0:99999\" }",
            "`0.0.0.0:99999`",
        ),
        ("admin: { grpc_listen: 4002 }", "4002"),
        ("admin: { grpc_listen: true }", "true"),
    ] {
        let err = load(yaml).unwrap_err();
        let got: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
        assert_eq!(got.len(), 1, "{yaml}: {got:?}");
        assert!(
            got[0].starts_with("admin.grpc_listen: expected HOST:PORT") && got[0].contains(found),
            "{yaml}: {got:?}"
        );
    }
    let err = load("admin: [1]").unwrap_err();
    assert!(
        err.problems.iter().any(|p| p.path == "admin"),
        "{:?}",
        err.problems
    );
    let loaded = load("admin: { grpc_listen: null, grpc_tls: true }").unwrap();
    assert_eq!(
        loaded
            .warnings
            .iter()
            .map(|w| w.path.as_str())
            .collect::<Vec<_>>(),
        ["admin.grpc_tls"]
    );
}

#[test]
fn otlp_sample_ratio_and_metrics_switch_are_read_or_a_problem_at_their_path() {
    let loaded = load("observability: { otlp: { sample_ratio: 0.1 } }").unwrap();
    assert_eq!(loaded.config.observability.otlp.sample_ratio, Some(0.1));
    assert_eq!(loaded.config.observability.otlp.metrics, None);
    let loaded = load("observability: { otlp: { metrics: true } }").unwrap();
    assert_eq!(loaded.config.observability.otlp.metrics, Some(true));
    let err = load("observability: { otlp: { metrics: sometimes } }").unwrap_err();
    assert!(
        err.problems
            .iter()
            .any(|p| p.to_string().starts_with("observability.otlp.metrics: ")),
        "{err:?}"
    );
    let loaded = load("observability: { otlp: { endpoint: \"http://c:4317\" } }").unwrap();
    assert_eq!(loaded.config.observability.otlp.sample_ratio, None);
    for bad in ["1.5", "-0.1", "lots"] {
        let err = load(&format!(
            "observability: {{ otlp: {{ sample_ratio: {bad} }} }}"
        ))
        .unwrap_err();
        let got: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
        assert_eq!(got.len(), 1, "{bad}: {got:?}");
        assert!(
            got[0].starts_with("observability.otlp.sample_ratio: "),
            "{bad}: {got:?}"
        );
    }
}

#[test]
fn otlp_endpoint_is_an_http_or_https_url_or_a_problem_at_its_path() {
    for endpoint in ["http://collector:4317", "https://collector:4317"] {
        let loaded = load(&format!(
            "observability: {{ otlp: {{ endpoint: \"{endpoint}\" }} }}"
        ))
        .unwrap();
        assert_eq!(
            loaded.config.observability.otlp.endpoint.as_deref(),
            Some(endpoint)
        );
    }
    for bad in ["collector:4317", "grpc://collector:4317"] {
        let err = load(&format!(
            "observability: {{ otlp: {{ endpoint: \"{bad}\" }} }}"
        ))
        .unwrap_err();
        let got: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
        assert_eq!(got.len(), 1, "{bad}: {got:?}");
        assert!(
            got[0].starts_with("observability.otlp.endpoint: ")
                && got[0].contains("expected an http:// or https:// URL"),
            "{bad}: {got:?}"
        );
    }
}
