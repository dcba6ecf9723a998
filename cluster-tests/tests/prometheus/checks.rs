//! What Prometheus must show after the traffic: failed == 4xx + 5xx at every scrape, sane
//! labels, and the other metrics agreeing with the client's tally.

use super::*;

/// The labels every series of a family must carry (Prometheus drops empty labels, so an empty
/// value shows up as a missing label), and the values some labels are limited to.
pub(crate) fn required_labels(family: &str) -> Option<&'static [&'static str]> {
    pub(crate) const REQUESTS: &[&str] = &["status_code", "route", "model", "provider"];
    pub(crate) const GEN_AI: &[&str] = &[
        "gen_ai_operation_name",
        "gen_ai_request_model",
        "gen_ai_provider_name",
    ];
    pub(crate) const TOKENS: &[&str] = &[
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

pub(crate) fn allowed_values(label: &str) -> Option<&'static [&'static str]> {
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
pub(crate) fn family(name: &str) -> &str {
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
pub(crate) async fn check_series_labels(prometheus: &Prometheus, job: &str) -> BTreeSet<String> {
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

/// failed == 4xx + 5xx now and at every scrape, and scrapes were taken during the traffic.
pub(crate) async fn check_every_scrape(prometheus: &Prometheus) {
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
pub(crate) async fn check_labels(prometheus: &Prometheus, scrape_url: &str) {
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
pub(crate) async fn check_other_metrics(prometheus: &Prometheus, tally: &Tally) {
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
