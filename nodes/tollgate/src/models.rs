//! Model groups: the public model names, the deployments behind each, and the read-only model
//! routes.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use rand::Rng;
use serde::Serialize;
use tollgate_api::{ApiError, Endpoint, ErrorCode};
use tollgate_auth::{ROUTES, RouteId};
use tollgate_config::Deployment;
use tollgate_ledger::Price;
use tollgate_prices::PriceTable;
use tollgate_providers::{Upstream, Upstreams};
use tollgate_telemetry::UpstreamSeries;
use tollgate_telemetry::spans::{Kind, SpanTemplate};

use crate::outcome::operation_name;
use crate::respond::{first_chars, json};

/// The deployments that serve one public model name.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) name: Arc<str>,
    /// `name` as a response header value (`x-tollgate-model-group`), when it can be one.
    pub(crate) name_header: Option<HeaderValue>,
    pub(crate) targets: Vec<Arc<Target>>,
    /// The highest price of any deployment (a reservation must cover whichever is picked);
    /// `None` when some deployment has no known price.
    pub(crate) worst_price: Option<Prices>,
    /// The smallest known output limit of the group's deployments.
    pub(crate) max_output_tokens: Option<u64>,
}

/// A deployment's per-token prices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Prices {
    pub(crate) input: Price,
    pub(crate) output: Price,
}

impl Prices {
    /// The cost in nano-USD of a request's tokens.
    pub(crate) fn cost(&self, input_tokens: u64, output_tokens: u64) -> u64 {
        self.input
            .cost_nano(input_tokens)
            .saturating_add(self.output.cost_nano(output_tokens))
    }
}

/// One deployment of a group, with what responses say about it prepared once.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) upstream: Upstream,
    /// The deployment id (`model_info.id`, else its index): label and header value.
    pub(crate) id: Arc<str>,
    pub(crate) id_header: Option<HeaderValue>,
    /// From the config, else the built-in price table; `None` when neither knows the model.
    pub(crate) price: Option<Prices>,
    pub(crate) max_output_tokens: Option<u64>,
    pub(crate) spans: SpanTemplates,
    /// Its upstream-duration series, bound at its first attempt.
    pub(crate) upstream_series: OnceLock<UpstreamSeries>,
}

/// A deployment's span templates: a traced request's span and its attempt's are written from
/// them with one copy each instead of encoding their names and constant attributes every time.
#[derive(Debug)]
pub(crate) struct SpanTemplates {
    /// The request span's, one per LLM route: its HTTP method and route are among them.
    request: Vec<(&'static str, SpanTemplate)>,
    attempt: PerOperation<SpanTemplate>,
}

impl SpanTemplates {
    fn new(group: &str, deployment: &Deployment) -> Self {
        let provider = deployment.provider.name();
        // Named and labelled after the GenAI conventions: `chat gpt-4o`.
        let template = |kind: Kind, endpoint: Endpoint, model: &str, http: &[(&str, &str)]| {
            let operation = operation_name(endpoint);
            let mut attributes = vec![
                ("gen_ai.operation.name", operation),
                ("gen_ai.request.model", model),
                ("gen_ai.provider.name", provider),
                ("tollgate.deployment", deployment.id.as_str()),
            ];
            attributes.extend_from_slice(http);
            SpanTemplate::new(kind, &[operation, " ", model], &attributes)
        };
        let request = ROUTES
            .iter()
            .filter_map(|route| {
                let RouteId::Llm(endpoint) = route.id else {
                    return None;
                };
                let http = [
                    ("http.request.method", route.method.as_str()),
                    ("http.route", route.label()),
                ];
                Some((
                    route.label(),
                    template(Kind::Server, endpoint, group, &http),
                ))
            })
            .collect();
        let upstream_model = &deployment.upstream_model;
        Self {
            request,
            attempt: PerOperation::new(|endpoint| {
                template(Kind::Client, endpoint, upstream_model, &[])
            }),
        }
    }

    /// The request span's for a request on `route` (its label), named after the model group;
    /// `None` for a route that is not an LLM operation's.
    pub(crate) fn request(&self, route: &str) -> Option<&SpanTemplate> {
        let (_, template) = self.request.iter().find(|(label, _)| *label == route)?;
        Some(template)
    }

    /// The attempt span's: named after the deployment's own model name.
    pub(crate) fn attempt(&self, endpoint: Endpoint) -> &SpanTemplate {
        self.attempt.get(endpoint)
    }
}

/// One value per LLM operation.
#[derive(Debug)]
struct PerOperation<T> {
    chat: T,
    completions: T,
    embeddings: T,
}

impl<T> PerOperation<T> {
    fn new(of: impl Fn(Endpoint) -> T) -> Self {
        Self {
            chat: of(Endpoint::ChatCompletions),
            completions: of(Endpoint::Completions),
            embeddings: of(Endpoint::Embeddings),
        }
    }

    fn get(&self, endpoint: Endpoint) -> &T {
        match endpoint {
            Endpoint::ChatCompletions => &self.chat,
            Endpoint::Completions => &self.completions,
            Endpoint::Embeddings => &self.embeddings,
        }
    }
}

impl Group {
    /// A deployment for the next attempt. Simple shuffle for now: uniformly at random.
    pub(crate) fn pick(&self) -> &Arc<Target> {
        let i = if self.targets.len() == 1 {
            0
        } else {
            rand::rng().random_range(0..self.targets.len())
        };
        &self.targets[i]
    }

    fn owned_by(&self) -> &'static str {
        self.targets
            .first()
            .map_or("tollgate", |t| t.upstream.deployment.provider.name())
    }
}

/// Every model group of the config, in config order.
#[derive(Debug)]
pub(crate) struct ModelGroups {
    groups: HashMap<Arc<str>, Group>,
    order: Vec<Arc<str>>,
    deployments: usize,
    /// The `created` timestamp of the model objects: when this node started.
    created: u64,
}

impl ModelGroups {
    pub(crate) fn new(upstreams: &Upstreams, deployments: Vec<Deployment>) -> anyhow::Result<Self> {
        let mut groups: HashMap<Arc<str>, Group> = HashMap::new();
        let mut order = Vec::new();
        let count = deployments.len();
        for deployment in deployments {
            let name: Arc<str> = Arc::from(deployment.model_name.as_str());
            let id: Arc<str> = Arc::from(deployment.id.as_str());
            let (price, max_output_tokens) = price_of(&deployment);
            let target = Target {
                spans: SpanTemplates::new(&name, &deployment),
                id_header: HeaderValue::from_str(&id).ok(),
                id,
                price,
                max_output_tokens,
                upstream_series: OnceLock::new(),
                upstream: upstreams.prepare(Arc::new(deployment))?,
            };
            groups
                .entry(name.clone())
                .or_insert_with(|| {
                    order.push(name.clone());
                    Group {
                        name_header: HeaderValue::from_str(&name).ok(),
                        name,
                        targets: Vec::new(),
                        worst_price: None,
                        max_output_tokens: None,
                    }
                })
                .targets
                .push(Arc::new(target));
        }
        for group in groups.values_mut() {
            group.worst_price = group
                .targets
                .iter()
                .try_fold(Prices::default(), |worst, t| {
                    let p = t.price?;
                    Some(Prices {
                        input: worst.input.max(p.input),
                        output: worst.output.max(p.output),
                    })
                });
            group.max_output_tokens = group
                .targets
                .iter()
                .filter_map(|t| t.max_output_tokens)
                .min();
        }
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(Self {
            groups,
            order,
            deployments: count,
            created,
        })
    }

    /// The group, or OpenAI's own 404 `model_not_found`.
    pub(crate) fn resolve(&self, name: &str) -> Result<&Group, ApiError> {
        self.groups.get(name).ok_or_else(|| not_found(name))
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(|n| &**n)
    }

    pub(crate) fn deployment_count(&self) -> usize {
        self.deployments
    }

    /// `GET /v1/models`: the models the caller may use (the same check as inference).
    pub(crate) fn list(&self, may_use: impl Fn(&str) -> bool) -> Response {
        let data: Vec<ModelObject<'_>> = self
            .order
            .iter()
            .filter(|name| may_use(name))
            .filter_map(|name| self.groups.get(name))
            .map(|g| self.object(g))
            .collect();
        let body = serde_json::to_vec(&ModelList {
            object: "list",
            data,
        })
        .unwrap_or_default();
        json(StatusCode::OK, Bytes::from(body))
    }

    /// `GET /v1/models/{model}`: one model the caller may use; 404 as OpenAI answers it for
    /// an unknown model, 403 for one the key may not use.
    pub(crate) fn retrieve(
        &self,
        name: &str,
        may_use: impl Fn(&str) -> bool,
    ) -> Result<Response, ApiError> {
        let group = self.resolve(name)?;
        if !may_use(&group.name) {
            return Err(not_allowed(&group.name));
        }
        let body = serde_json::to_vec(&self.object(group)).unwrap_or_default();
        Ok(json(StatusCode::OK, Bytes::from(body)))
    }

    fn object<'a>(&self, group: &'a Group) -> ModelObject<'a> {
        ModelObject {
            id: &group.name,
            object: "model",
            created: self.created,
            owned_by: group.owned_by(),
        }
    }
}

/// A deployment's prices: `input_cost_per_token`/`output_cost_per_token` from the config win
/// over the built-in table, which is looked up by the upstream model (and `base_model`).
fn price_of(deployment: &Deployment) -> (Option<Prices>, Option<u64>) {
    let table = PriceTable::builtin();
    let known = table.get(&deployment.upstream_model).or_else(|| {
        deployment
            .info
            .base_model
            .as_deref()
            .and_then(|m| table.get(m))
    });
    let input = deployment.input_cost_per_token.or(known.map(|k| k.input));
    let output = deployment.output_cost_per_token.or(known.map(|k| k.output));
    let price = match (input, output) {
        (Some(input), Some(output)) => Some(Prices { input, output }),
        // One side configured, the other unknown: an embedding model has no output price.
        (Some(input), None) if deployment.info.mode.as_deref() == Some("embedding") => {
            Some(Prices {
                input,
                output: Price::default(),
            })
        }
        _ => None,
    };
    let max_output = deployment
        .info
        .max_tokens
        .or(known.and_then(|k| k.max_output_tokens));
    (price, max_output)
}

/// 403 for a model the caller's key may not use. Names the model, never the key.
pub(crate) fn not_allowed(model: &str) -> ApiError {
    let shown = first_chars(model, SHOWN_CHARS);
    ApiError {
        param: Some("model".into()),
        ..ApiError::new(
            ErrorCode::ModelNotAllowed,
            format!("this key may not use the model `{shown}`"),
        )
    }
}

/// How much of a model name the client sent that no group has is shown back (and traced).
pub(crate) const SHOWN_CHARS: usize = 200;

fn not_found(name: &str) -> ApiError {
    let mut shown = first_chars(name, SHOWN_CHARS).to_owned();
    if shown.len() < name.len() {
        shown.push('…');
    }
    ApiError {
        param: Some("model".into()),
        ..ApiError::new(
            ErrorCode::ModelNotFound,
            format!("The model `{shown}` does not exist or you do not have access to it."),
        )
    }
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<ModelObject<'a>>,
}

#[derive(Serialize)]
struct ModelObject<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}
