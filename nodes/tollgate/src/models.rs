//! Model groups: the public model names, the deployments behind each, and the read-only model
//! routes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use rand::Rng;
use serde::Serialize;
use tollgate_api::{ApiError, ErrorCode};
use tollgate_config::Deployment;
use tollgate_providers::{Upstream, Upstreams};

use crate::respond::json;

/// The deployments that serve one public model name.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) name: Arc<str>,
    /// `name` as a response header value (`x-tollgate-model-group`), when it can be one.
    pub(crate) name_header: Option<HeaderValue>,
    pub(crate) targets: Vec<Target>,
}

/// One deployment of a group, with what responses say about it prepared once.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) upstream: Upstream,
    /// The deployment id (`model_info.id`, else its index): label and header value.
    pub(crate) id: Arc<str>,
    pub(crate) id_header: Option<HeaderValue>,
}

impl Group {
    /// A deployment for the next attempt. Simple shuffle for now: uniformly at random.
    pub(crate) fn pick(&self) -> &Target {
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
            let target = Target {
                id_header: HeaderValue::from_str(&id).ok(),
                id,
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
                    }
                })
                .targets
                .push(target);
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

    /// `GET /v1/models`: the models the caller may use.
    pub(crate) fn list(&self) -> Response {
        let data: Vec<ModelObject<'_>> = self
            .order
            .iter()
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

    /// `GET /v1/models/{model}`: one model the caller may use, else 404 as OpenAI answers it.
    pub(crate) fn retrieve(&self, name: &str) -> Result<Response, ApiError> {
        let group = self.resolve(name)?;
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

fn not_found(name: &str) -> ApiError {
    let mut shown: String = name.chars().take(200).collect();
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
