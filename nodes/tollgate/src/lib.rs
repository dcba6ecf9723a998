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
//! - `passthrough`: config-defined pass-through endpoints: forward as-is, stream back.

mod dispatch;
mod health;
mod models;
mod outcome;
mod passthrough;
mod pipeline;
mod relay;
mod respond;
mod serve;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tollgate_auth::{Authenticator, RouteTable};
use tollgate_config::Config;
use tollgate_providers::Upstreams;

pub use outcome::{OutcomeKey, Outcomes};
pub use passthrough::check_routes;

/// How long in-flight requests may take to finish after a shutdown signal.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Node settings that come from the command line, not the config file.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub drain_timeout: Duration,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

/// Everything a request handler reads; built once, shared by all requests.
#[derive(Debug)]
pub(crate) struct Gateway {
    pub(crate) routes: RouteTable,
    pub(crate) auth: Authenticator,
    pub(crate) models: models::ModelGroups,
    pub(crate) outcomes: Arc<Outcomes>,
    pub(crate) max_request_bytes: usize,
    pub(crate) pass_through: passthrough::PassThroughs,
}

/// A configured node, ready to serve.
#[derive(Debug, Clone)]
pub struct Node {
    gateway: Arc<Gateway>,
    options: NodeOptions,
}

impl Node {
    /// Prepares every deployment (URLs, credentials, the shared HTTP client).
    pub fn new(config: Config, options: NodeOptions) -> anyhow::Result<Node> {
        let upstreams = Upstreams::new(&config.router)?;
        let models = models::ModelGroups::new(&upstreams, config.deployments)?;
        let (routes, pass_through) = passthrough::prepare(
            &config.general.pass_through_endpoints,
            upstreams.client(),
            config.router.timeout,
        )?;
        let gateway = Gateway {
            routes,
            auth: Authenticator::new(config.general.master_key),
            models,
            outcomes: Arc::new(Outcomes::default()),
            max_request_bytes: config.general.max_request_bytes,
            pass_through,
        };
        if !gateway.auth.enabled() {
            tracing::warn!(
                "general_settings.master_key is not set: authentication is OFF and anyone who \
                 can reach this node may use every model"
            );
        }
        Ok(Node {
            gateway: Arc::new(gateway),
            options,
        })
    }

    /// How every request so far has ended.
    pub fn outcomes(&self) -> Arc<Outcomes> {
        self.gateway.outcomes.clone()
    }

    /// Serves on `listener` until `shutdown` completes, then drains in-flight requests for at
    /// most the drain timeout.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        serve::serve(self.gateway, listener, shutdown, self.options.drain_timeout).await
    }
}

/// Builds a node from `config` and serves it on `listener` until `shutdown`.
pub async fn run(
    config: Config,
    listener: TcpListener,
    options: NodeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    Node::new(config, options)?.serve(listener, shutdown).await
}
