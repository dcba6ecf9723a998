//! The deploy/ examples: the Grafana dashboard and the Prometheus scrape config and rules.

use super::*;

/// Every `expr` of the dashboard, with Grafana's variables replaced as "All" and a 1m interval.
pub(crate) fn dashboard_queries() -> Vec<(String, String)> {
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
pub(crate) fn grafana_dashboard_is_importable_and_names_real_metrics() {
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
pub(crate) fn prometheus_examples_pass_promtool() {
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

/// deploy/prometheus/rules.yml is loaded and every rule evaluates; every query of
/// deploy/grafana/tollgate-dashboard.json parses and has data.
pub(crate) async fn check_deploy_examples(prometheus: &Prometheus) {
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
