//! `router_settings`, `litellm_settings`, `general_settings` and Tollgate's own sections.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;

use crate::Config;
use crate::model::build_model_list;
use crate::passthrough::{self, PassThrough};
use crate::tree::{Object, Walker, child};

/// Default bound on one upstream attempt (LiteLLM's `request_timeout` default is 6000 s, far
/// longer than any client waits; OpenAI's SDKs use 600 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Default bound on establishing a connection to an upstream.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default request body limit (`general_settings.max_request_size_mb`).
pub const DEFAULT_MAX_REQUEST_MB: u64 = 16;
/// LiteLLM's defaults for `allowed_fails` and `cooldown_time`.
pub const DEFAULT_ALLOWED_FAILS: u32 = 3;
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(5);

/// `router_settings.routing_strategy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RoutingStrategy {
    #[default]
    SimpleShuffle,
    LeastBusy,
    LatencyBased,
    UsageBased,
}

impl RoutingStrategy {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "simple-shuffle" => Self::SimpleShuffle,
            "least-busy" => Self::LeastBusy,
            "latency-based-routing" => Self::LatencyBased,
            "usage-based-routing" | "usage-based-routing-v2" => Self::UsageBased,
            _ => return None,
        })
    }
}

/// How requests are spread over deployments and retried.
#[derive(Clone, Debug)]
pub struct RouterSettings {
    pub routing_strategy: RoutingStrategy,
    pub num_retries: u32,
    pub timeout: Duration,
    pub stream_timeout: Option<Duration>,
    pub connect_timeout: Duration,
    pub allowed_fails: u32,
    pub cooldown_time: Duration,
}

/// `general_settings`.
#[derive(Debug)]
pub struct GeneralSettings {
    /// The admin credential. `None` turns authentication off (LiteLLM's behaviour).
    pub master_key: Option<SecretString>,
    /// Bodies larger than this are refused with 413 before they are read whole.
    pub max_request_bytes: usize,
    /// `pass_through_endpoints`, in file order (a route's index is its position here).
    pub pass_through_endpoints: Vec<PassThrough>,
}

const TOP_LEVEL: &[&str] = &[
    "model_list",
    "router_settings",
    "litellm_settings",
    "general_settings",
    "environment_variables",
    "observability",
    "admin",
];

const ROUTER_KEYS: &[&str] = &[
    "routing_strategy",
    "num_retries",
    "timeout",
    "stream_timeout",
    "connect_timeout",
    "allowed_fails",
    "cooldown_time",
    "fallbacks",
    "context_window_fallbacks",
    "content_policy_fallbacks",
    "redis_host",
    "redis_port",
    "redis_password",
    "redis_url",
];

const LITELLM_KEYS: &[&str] = &[
    "num_retries",
    "request_timeout",
    "drop_params",
    "callbacks",
    "fallbacks",
    "context_window_fallbacks",
    "content_policy_fallbacks",
];

const GENERAL_KEYS: &[&str] = &[
    "master_key",
    "max_request_size_mb",
    "database_url",
    "pass_through_endpoints",
];

/// Keys that later Tollgate versions act on; today they are accepted, checked for type where it
/// matters, and reported as not yet enforced so nobody believes they are.
const NOT_YET: &str = "accepted, but not enforced by this version of Tollgate";

pub(crate) fn build(w: &mut Walker<'_>, root: &Value) -> Config {
    let empty = Object::new();
    let top = w.object(Some(root), "").unwrap_or(&empty);
    w.unknown_keys(top, "", TOP_LEVEL);
    let litellm = w
        .object(top.get("litellm_settings"), "litellm_settings")
        .unwrap_or(&empty);
    let router_map = w
        .object(top.get("router_settings"), "router_settings")
        .unwrap_or(&empty);
    let general_map = w
        .object(top.get("general_settings"), "general_settings")
        .unwrap_or(&empty);
    let router = router_settings(w, router_map, litellm);
    let general = general_settings(w, general_map);
    let deployments = build_model_list(w, root, &router);
    let observability = crate::observability::build(w, top.get("observability"));
    let admin = admin_settings(w, top.get("admin"));
    Config {
        deployments,
        router,
        general,
        observability,
        admin,
    }
}

/// The admin gRPC API's default listener (INTERFACE.md).
pub const DEFAULT_ADMIN_LISTEN: &str = "0.0.0.0:4002";

/// `admin:` (ours).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminSettings {
    /// Where `tollgate.admin.v1` listens; `None` when disabled (`grpc_listen: null` or `false`).
    pub grpc_listen: Option<std::net::SocketAddr>,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            grpc_listen: DEFAULT_ADMIN_LISTEN.parse().ok(),
        }
    }
}

fn admin_settings(w: &mut Walker<'_>, value: Option<&Value>) -> AdminSettings {
    const A: &str = "admin";
    let empty = Object::new();
    let map = w.object(value, A).unwrap_or(&empty);
    w.unknown_keys(map, A, &["grpc_listen"]);
    let mut out = AdminSettings::default();
    match map.get("grpc_listen") {
        None => {}
        Some(Value::Null | Value::Bool(false)) => out.grpc_listen = None,
        Some(Value::String(addr)) => match addr.parse() {
            Ok(addr) => out.grpc_listen = Some(addr),
            Err(_) => w.problem(
                &child(A, "grpc_listen"),
                format!(
                    "expected HOST:PORT like 0.0.0.0:4002 (or null to disable), found `{addr}`"
                ),
            ),
        },
        Some(other) => w.problem(
            &child(A, "grpc_listen"),
            format!("expected HOST:PORT like 0.0.0.0:4002 (or null to disable), found {other}"),
        ),
    }
    out
}

fn router_settings(w: &mut Walker<'_>, map: &Object, litellm: &Object) -> RouterSettings {
    const R: &str = "router_settings";
    const L: &str = "litellm_settings";
    w.unknown_keys(map, R, ROUTER_KEYS);
    w.unknown_keys(litellm, L, LITELLM_KEYS);
    let routing_strategy = match w.string(map, "routing_strategy", R) {
        None => RoutingStrategy::default(),
        Some(name) => RoutingStrategy::parse(&name).unwrap_or_else(|| {
            w.problem(
                &child(R, "routing_strategy"),
                format!(
                    "unknown strategy `{name}`; use simple-shuffle, least-busy, \
                     latency-based-routing or usage-based-routing-v2"
                ),
            );
            RoutingStrategy::default()
        }),
    };
    if routing_strategy != RoutingStrategy::SimpleShuffle {
        w.warn(
            &child(R, "routing_strategy"),
            format!("{NOT_YET}: simple-shuffle is used"),
        );
    }
    // router_settings wins over litellm_settings, as in LiteLLM.
    let num_retries = w
        .count(map, "num_retries", R)
        .or_else(|| w.count(litellm, "num_retries", L))
        .unwrap_or(0);
    let timeout = w
        .seconds(map, "timeout", R)
        .or_else(|| w.seconds(litellm, "request_timeout", L))
        .unwrap_or(DEFAULT_TIMEOUT);
    for (section, path) in [(map, R), (litellm, L)] {
        for key in [
            "fallbacks",
            "context_window_fallbacks",
            "content_policy_fallbacks",
        ] {
            if let Some(items) = w.list(section.get(key), &child(path, key))
                && !items.is_empty()
            {
                w.warn(&child(path, key), NOT_YET);
            }
        }
    }
    w.not_enforced(
        map,
        R,
        &["num_retries", "allowed_fails", "cooldown_time"],
        NOT_YET,
    );
    w.not_enforced(litellm, L, &["num_retries"], NOT_YET);
    w.not_enforced(
        map,
        R,
        &["redis_host", "redis_port", "redis_password", "redis_url"],
        "accepted; the cluster mode that uses Redis is not in this version",
    );
    w.bool(litellm, "drop_params", L);
    w.string_list(litellm, "callbacks", L);
    RouterSettings {
        routing_strategy,
        num_retries: u32::try_from(num_retries).unwrap_or(u32::MAX),
        timeout,
        stream_timeout: w.seconds(map, "stream_timeout", R),
        connect_timeout: w
            .seconds(map, "connect_timeout", R)
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        allowed_fails: w
            .count(map, "allowed_fails", R)
            .map_or(DEFAULT_ALLOWED_FAILS, |n| {
                u32::try_from(n).unwrap_or(u32::MAX)
            }),
        cooldown_time: w
            .seconds(map, "cooldown_time", R)
            .unwrap_or(DEFAULT_COOLDOWN),
    }
}

fn general_settings(w: &mut Walker<'_>, map: &Object) -> GeneralSettings {
    const G: &str = "general_settings";
    w.unknown_keys(map, G, GENERAL_KEYS);
    if map.get("database_url").is_some() {
        w.warn(
            &child(G, "database_url"),
            "ignored: Tollgate keeps its state in its own store (--data-dir)",
        );
    }
    let master_key = w.secret(map, "master_key", G);
    if let Some(key) = &master_key {
        use secrecy::ExposeSecret;
        if key.expose_secret().trim().is_empty() {
            w.problem(&child(G, "master_key"), "must not be empty");
        }
    }
    let mb = w
        .number(map, "max_request_size_mb", G)
        .unwrap_or(DEFAULT_MAX_REQUEST_MB as f64);
    if !(mb > 0.0 && mb <= 4096.0) {
        w.problem(
            &child(G, "max_request_size_mb"),
            format!("expected a size in MB between 0 and 4096, found {mb}"),
        );
    }
    GeneralSettings {
        master_key,
        max_request_bytes: (mb.clamp(0.0, 4096.0) * 1024.0 * 1024.0) as usize,
        pass_through_endpoints: passthrough::build(w, map, G),
    }
}
