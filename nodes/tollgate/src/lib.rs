//! The Tollgate ingress node: an OpenAI-compatible HTTP server in front of LLM providers.
//!
//! `main.rs` only parses arguments and loads the config; everything else starts at
//! [`Node::new`] and [`Node::serve`] (or [`run`]), which tests call the same way on port 0.
//! The story of one LLM request is told top to bottom in `pipeline.rs`.
//!
//! # Layout
//! - `serve`: the axum server, the one tower layer chain, graceful shutdown.
//! - `dispatch`: every request enters here: route table lookup, authentication,
//!   authorization, then the route's handler, then the outcome point.
//! - `pipeline`: an LLM request from parsed body to upstream reply.
//! - `relay`: the streamed response body (bounded, usage-reading, error event on failure).
//! - `outcome`: the single place that records how each request ended.
//! - `models`: model groups, deployment choice, `/v1/models` and `/v1/models/{model}`.
//! - `respond`: building responses and error responses (OpenAI shape, headers).
//! - `health`: `/health`, `/health/liveliness`, `/health/readiness`.
//! - `admission`: a request's worst-case cost and the budgets/limits it must fit.
//! - `manage`: the management service (keys, users, teams, usage), its LiteLLM HTTP face and
//!   the gRPC admin API (`tollgate.admin.v1`).
//! - `observe`: `/metrics` (on the main port or its own listener) and tenant metric labels.
//! - `passthrough`: config-defined pass-through endpoints: forward as-is, stream back.

mod admission;
mod attempt;
mod dispatch;
mod health;
mod manage;
mod models;
mod observe;
mod outcome;
mod passthrough;
mod pipeline;
mod relay;
mod respond;
mod serve;

use anyhow::Context as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;
use tollgate_accounts::{AccessGroups, Clock, Directory, SystemClock};
use tollgate_auth::{Authenticator, RouteTable};
use tollgate_budget::{Budgets, BudgetsOptions};
use tollgate_config::Config;
use tollgate_providers::Upstreams;
use tollgate_store::{MemoryStore, RedbStore, Store};
use tollgate_telemetry::{Metrics, OtlpPush};

pub use outcome::{OutcomeKey, Outcomes};
pub use passthrough::check_routes;
pub use tollgate_telemetry as telemetry;

/// How long in-flight requests may take to finish after a shutdown signal.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the admin gRPC API listens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AdminListen {
    /// Not served (the default for in-process nodes, e.g. tests).
    #[default]
    Off,
    /// `admin.grpc_listen` from the config, with the port replaced when given (`--admin-port`).
    FromConfig {
        port: Option<u16>,
    },
    At(std::net::SocketAddr),
}

/// Node settings that come from the command line (or a test), not the config file.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub drain_timeout: Duration,
    pub admin: AdminListen,
    /// Where the embedded store lives; `None` keeps state in memory only (tests).
    pub data_dir: Option<PathBuf>,
    /// The source of "now" for budgets, periods, rate windows and key expiry.
    pub clock: Arc<dyn Clock>,
    pub budgets: BudgetsOptions,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            admin: AdminListen::Off,
            data_dir: None,
            clock: Arc::new(SystemClock),
            budgets: BudgetsOptions::default(),
        }
    }
}

/// Everything a request handler reads; built once, shared by all requests.
#[derive(Debug)]
pub(crate) struct Gateway {
    pub(crate) routes: RouteTable,
    pub(crate) auth: Authenticator,
    pub(crate) models: models::ModelGroups,
    pub(crate) access_groups: AccessGroups,
    pub(crate) outcomes: Arc<Outcomes>,
    pub(crate) max_request_bytes: usize,
    pub(crate) manage: manage::Service,
    pub(crate) budgets: Budgets,
    /// Upstream calls run here, detached from the client's connection, so a request whose
    /// client went away is still settled; shutdown waits for them.
    pub(crate) tasks: TaskTracker,
    pub(crate) metrics: Arc<Metrics>,
    /// Opt-in tenant labels on spend metrics.
    pub(crate) entity_labels: tollgate_config::EntityLabels,
    /// Metrics on their own listener (`observability.metrics.listen`), if so configured.
    pub(crate) metrics_listener: Option<(std::net::SocketAddr, tollgate_auth::Route)>,
    pub(crate) pass_through: passthrough::PassThroughs,
}

/// A configured node, ready to serve.
#[derive(Debug, Clone)]
pub struct Node {
    gateway: Arc<Gateway>,
    options: NodeOptions,
    /// The admin gRPC listener, bound by `new` and served by `serve`.
    admin: Arc<std::sync::Mutex<Option<TcpListener>>>,
    admin_addr: Option<std::net::SocketAddr>,
}

impl Node {
    /// Opens the store, loads keys, users and teams, starts the budget actors and prepares
    /// every deployment (URLs, credentials, the shared HTTP client).
    pub async fn new(config: Config, options: NodeOptions) -> anyhow::Result<Node> {
        // Settings first, then the port, so that either fails the start before the store is
        // opened.
        let otlp = &config.observability.otlp;
        let push = config
            .observability
            .metrics
            .enabled
            .then(|| {
                OtlpPush {
                    endpoint: otlp.endpoint.clone(),
                    enabled: otlp.metrics,
                }
                .check()
            })
            .transpose()?;
        let admin = bind_admin(options.admin, &config.admin).await?;
        let admin_addr = admin.as_ref().map(TcpListener::local_addr).transpose()?;
        let store: Arc<dyn Store> = match &options.data_dir {
            // Made here, once everything before it has passed: a start that fails earlier
            // leaves no empty data directory behind.
            Some(dir) => Arc::new(
                RedbStore::open(dir)
                    .with_context(|| format!("cannot open the store in {}", dir.display()))?,
            ),
            None => Arc::new(MemoryStore::default()),
        };
        let entities = store.load().await?;
        tracing::info!(
            keys = entities.keys.len(),
            users = entities.users.len(),
            teams = entities.teams.len(),
            "store loaded"
        );
        let directory = Arc::new(Directory::new(
            entities.keys,
            entities.users,
            entities.teams,
        ));
        let access_groups = AccessGroups::new(config.deployments.iter().flat_map(|d| {
            d.info
                .access_groups
                .iter()
                .map(|g| (g.clone(), d.model_name.clone()))
        }));
        let metrics = Arc::new(match push {
            Some(push) => {
                Metrics::with_otlp_push(otlp.service_name.as_deref().unwrap_or("tollgate"), push)?
            }
            None => Metrics::disabled()?,
        });
        let entity_labels = config.observability.metrics.entity_labels;
        let mut budget_options = options.budgets.clone();
        if entity_labels.key_alias || entity_labels.team {
            budget_options.observer = Some(Arc::new(observe::RemainingBudget {
                metrics: metrics.clone(),
                directory: directory.clone(),
                labels: entity_labels,
            }));
        }
        let budgets = Budgets::start(store.clone(), options.clock.clone(), budget_options).await?;
        let upstreams = Upstreams::new(&config.router)?;
        let metrics_row = metrics_row(&config);
        let models = models::ModelGroups::new(&upstreams, config.deployments)?;
        let (routes, pass_through) = passthrough::prepare(
            &config.general.pass_through_endpoints,
            metrics_row,
            upstreams.client(),
            config.router.timeout,
        )?;
        let gateway = Gateway {
            routes,
            auth: Authenticator::new(
                config.general.master_key,
                directory.clone(),
                options.clock.clone(),
            ),
            models,
            access_groups,
            outcomes: Arc::new(Outcomes::new(Some(metrics.clone()))),
            max_request_bytes: config.general.max_request_bytes,
            manage: manage::Service::new(directory, store, budgets.clone(), options.clock.clone()),
            budgets,
            tasks: TaskTracker::new(),
            pass_through,
            metrics,
            entity_labels,
            metrics_listener: config
                .observability
                .metrics
                .enabled
                .then(|| observe::separate_route(&config.observability.metrics))
                .flatten(),
        };
        let scrape = &config.observability.metrics;
        if !scrape.enabled {
            tracing::info!("metrics are off (observability.metrics.enabled: false)");
        } else {
            tracing::info!(
                "metrics at GET {} on {} ({})",
                scrape.path,
                scrape
                    .listen
                    .map_or_else(|| "the main port".to_owned(), |a| a.to_string()),
                if scrape.require_auth {
                    "any valid key required"
                } else {
                    "no key required"
                }
            );
            if let Some(to) = gateway.metrics.pushing_to() {
                tracing::info!("metrics also pushed over OTLP/gRPC to {to}");
            }
        }
        if !gateway.auth.enabled() {
            tracing::warn!(
                "general_settings.master_key is not set: authentication is OFF and anyone who \
                 can reach this node may use every model and manage keys, users and teams \
                 (HTTP management routes and the admin gRPC API)"
            );
        }
        Ok(Node {
            gateway: Arc::new(gateway),
            options,
            admin: Arc::new(std::sync::Mutex::new(admin)),
            admin_addr,
        })
    }

    /// Where the admin gRPC API listens, if it is served.
    pub fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.admin_addr
    }

    /// How every request so far has ended.
    pub fn outcomes(&self) -> Arc<Outcomes> {
        self.gateway.outcomes.clone()
    }

    /// Serves on `listener` (and the admin gRPC API on the listener `new` bound) until
    /// `shutdown` completes; then both stop taking calls, in-flight requests drain for at most
    /// the drain timeout, upstream calls settle and spend is committed.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let admin = self.admin.lock().unwrap_or_else(|e| e.into_inner()).take();
        // Said once serving starts: a node that fails to start never claims to listen.
        if let Some(addr) = self.admin_addr {
            tracing::info!("admin gRPC (tollgate.admin.v1) on {addr}");
        }
        serve::serve(
            self.gateway,
            listener,
            admin,
            shutdown,
            self.options.drain_timeout,
        )
        .await
    }
}

/// Binds the admin gRPC listener `admin` asks for; `None` when it is off.
async fn bind_admin(
    admin: AdminListen,
    settings: &tollgate_config::AdminSettings,
) -> anyhow::Result<Option<TcpListener>> {
    let addr = match (admin, settings.grpc_listen) {
        (AdminListen::Off, _) => return Ok(None),
        (AdminListen::At(addr), _) => addr,
        (AdminListen::FromConfig { port }, Some(mut addr)) => {
            if let Some(port) = port {
                addr.set_port(port);
            }
            addr
        }
        (AdminListen::FromConfig { port }, None) => {
            let ignored = if port.is_some() {
                "; --admin-port is ignored"
            } else {
                ""
            };
            tracing::info!("admin gRPC is off (admin.grpc_listen: null){ignored}");
            return Ok(None);
        }
    };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for admin gRPC on {addr}: {e}"))?;
    Ok(Some(listener))
}

/// The `/metrics` row of the main route table (none when metrics have their own listener).
pub(crate) fn metrics_row(config: &Config) -> Option<tollgate_auth::Route> {
    let settings = &config.observability.metrics;
    settings
        .enabled
        .then(|| observe::main_port_route(settings))
        .flatten()
}

/// Builds a node from `config` and serves it on `listener` until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    options: NodeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    Node::new(config, options)
        .await?
        .serve(listener, shutdown)
        .await
}
