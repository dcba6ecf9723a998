//! `model_list`: deployments, their providers and the provider defaults.

use std::collections::HashSet;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;

use crate::price::Price;
use crate::settings::RouterSettings;
use crate::tree::{Walker, child};

/// The provider behind a deployment, from the prefix of `litellm_params.model`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    /// OpenAI, or any upstream speaking OpenAI's API (`openai/` with `api_base`, `groq/`, ...).
    OpenAiCompatible(OpenAiFlavor),
    /// The built-in deterministic provider: answers in-process, no network.
    Mock,
}

/// The OpenAI-compatible prefixes, each with its default base URL and key variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpenAiFlavor {
    OpenAi,
    OpenRouter,
    DeepSeek,
    Groq,
    TogetherAi,
    Ollama,
    HostedVllm,
}

impl OpenAiFlavor {
    const ALL: [OpenAiFlavor; 7] = [
        Self::OpenAi,
        Self::OpenRouter,
        Self::DeepSeek,
        Self::Groq,
        Self::TogetherAi,
        Self::Ollama,
        Self::HostedVllm,
    ];

    pub fn prefix(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::OpenRouter => "openrouter",
            Self::DeepSeek => "deepseek",
            Self::Groq => "groq",
            Self::TogetherAi => "together_ai",
            Self::Ollama => "ollama",
            Self::HostedVllm => "hosted_vllm",
        }
    }

    fn default_base(self) -> Option<&'static str> {
        match self {
            Self::OpenAi => Some("https://api.openai.com/v1"),
            Self::OpenRouter => Some("https://openrouter.ai/api/v1"),
            Self::DeepSeek => Some("https://api.deepseek.com/v1"),
            Self::Groq => Some("https://api.groq.com/openai/v1"),
            Self::TogetherAi => Some("https://api.together.xyz/v1"),
            Self::Ollama => Some("http://localhost:11434/v1"),
            Self::HostedVllm => None,
        }
    }

    fn key_variable(self) -> Option<&'static str> {
        match self {
            Self::OpenAi => Some("OPENAI_API_KEY"),
            Self::OpenRouter => Some("OPENROUTER_API_KEY"),
            Self::DeepSeek => Some("DEEPSEEK_API_KEY"),
            Self::Groq => Some("GROQ_API_KEY"),
            Self::TogetherAi => Some("TOGETHERAI_API_KEY"),
            Self::Ollama | Self::HostedVllm => None,
        }
    }
}

impl Provider {
    /// The provider's name as written in the config prefix; also the `provider` metric label.
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenAiCompatible(flavor) => flavor.prefix(),
            Self::Mock => "mock",
        }
    }

    fn from_prefix(prefix: &str) -> Option<Provider> {
        if prefix == "mock" {
            return Some(Self::Mock);
        }
        OpenAiFlavor::ALL
            .into_iter()
            .find(|f| f.prefix() == prefix)
            .map(Self::OpenAiCompatible)
    }

    fn supported() -> String {
        let mut names: Vec<&str> = OpenAiFlavor::ALL.iter().map(|f| f.prefix()).collect();
        names.push("mock");
        names.join(", ")
    }
}

/// `model_info`: metadata about a deployment.
#[derive(Clone, Debug, Default)]
pub struct ModelInfo {
    pub mode: Option<String>,
    pub max_tokens: Option<u64>,
    pub max_input_tokens: Option<u64>,
    pub access_groups: Vec<String>,
    pub base_model: Option<String>,
}

/// One entry of `model_list`: a way to serve the public model `model_name`.
#[derive(Clone, Debug)]
pub struct Deployment {
    /// The public name clients send (the model group).
    pub model_name: String,
    /// `model_info.id`, or the deployment's index in `model_list` as text.
    pub id: String,
    pub provider: Provider,
    /// The model name sent upstream (the part after the provider prefix).
    pub upstream_model: String,
    /// Base URL without a trailing slash, e.g. `https://api.openai.com/v1`. Empty for `mock/`.
    pub api_base: String,
    pub api_key: Option<SecretString>,
    /// Bounds one non-stream attempt.
    pub timeout: Duration,
    /// Bounds the time to the first byte of one streamed attempt.
    pub stream_timeout: Duration,
    pub max_retries: u32,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_parallel_requests: Option<u64>,
    pub input_cost_per_token: Option<Price>,
    pub output_cost_per_token: Option<Price>,
    /// `mock/` only: the fixed reply text.
    pub mock_response: Option<String>,
    pub info: ModelInfo,
}

const LITELLM_PARAMS: &[&str] = &[
    "model",
    "api_base",
    "api_key",
    "timeout",
    "stream_timeout",
    "max_retries",
    "rpm",
    "tpm",
    "max_parallel_requests",
    "input_cost_per_token",
    "output_cost_per_token",
    "mock_response",
];

pub(crate) fn build_model_list(
    w: &mut Walker<'_>,
    root: &Value,
    router: &RouterSettings,
) -> Vec<Deployment> {
    let Some(items) = w.list(root.get("model_list"), "model_list") else {
        return Vec::new();
    };
    let mut deployments = Vec::with_capacity(items.len());
    let mut ids = HashSet::new();
    for (index, item) in items.iter().enumerate() {
        let path = format!("model_list[{index}]");
        if let Some(d) = build_deployment(w, item, index, &path, router) {
            if !ids.insert(d.id.clone()) {
                w.problem(
                    &child(&path, "model_info.id"),
                    format!("duplicate deployment id `{}`", d.id),
                );
            }
            deployments.push(d);
        }
    }
    deployments
}

fn build_deployment(
    w: &mut Walker<'_>,
    item: &Value,
    index: usize,
    path: &str,
    router: &RouterSettings,
) -> Option<Deployment> {
    let map = w.object(Some(item), path)?;
    w.unknown_keys(map, path, &["model_name", "litellm_params", "model_info"]);
    let model_name = w.string(map, "model_name", path);
    if model_name.as_deref().is_none_or(|n| n.trim().is_empty()) {
        w.problem(
            &child(path, "model_name"),
            "required: the public model name",
        );
    }
    let params_path = child(path, "litellm_params");
    let Some(params) = w.object(map.get("litellm_params"), &params_path) else {
        w.problem(&params_path, "required: a mapping with at least `model`");
        return None;
    };
    w.unknown_keys(params, &params_path, LITELLM_PARAMS);
    let (provider, upstream_model) = provider_and_model(w, params, &params_path)?;
    let api_base = api_base(w, params, &params_path, provider)?;
    let api_key = match w.secret(params, "api_key", &params_path) {
        Some(key) => Some(key),
        None => default_key(w, provider),
    };
    let info = model_info(w, map.get("model_info"), &child(path, "model_info"));
    let id = info.1.unwrap_or_else(|| index.to_string());
    let timeout = w
        .seconds(params, "timeout", &params_path)
        .unwrap_or(router.timeout);
    Some(Deployment {
        model_name: model_name?,
        id,
        provider,
        upstream_model,
        api_base,
        api_key,
        timeout,
        stream_timeout: w
            .seconds(params, "stream_timeout", &params_path)
            .or(router.stream_timeout)
            .unwrap_or(timeout),
        max_retries: w
            .count(params, "max_retries", &params_path)
            .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)),
        rpm: w.count(params, "rpm", &params_path),
        tpm: w.count(params, "tpm", &params_path),
        max_parallel_requests: w.count(params, "max_parallel_requests", &params_path),
        input_cost_per_token: w.price(params, "input_cost_per_token", &params_path),
        output_cost_per_token: w.price(params, "output_cost_per_token", &params_path),
        mock_response: w.string(params, "mock_response", &params_path),
        info: info.0,
    })
}

fn provider_and_model(
    w: &mut Walker<'_>,
    params: &crate::tree::Object,
    path: &str,
) -> Option<(Provider, String)> {
    let model_path = child(path, "model");
    let Some(model) = w.string(params, "model", path) else {
        w.problem(
            &model_path,
            "required: `provider/model`, e.g. `openai/gpt-4o`",
        );
        return None;
    };
    let Some((prefix, rest)) = model.split_once('/') else {
        w.problem(
            &model_path,
            format!(
                "`{model}` has no provider prefix; write `provider/model`, e.g. `openai/{model}`"
            ),
        );
        return None;
    };
    let Some(provider) = Provider::from_prefix(prefix) else {
        w.problem(
            &model_path,
            format!(
                "provider `{prefix}` is not supported; supported: {}",
                Provider::supported()
            ),
        );
        return None;
    };
    if rest.is_empty() {
        w.problem(
            &model_path,
            "the model name after the provider prefix is empty",
        );
        return None;
    }
    Some((provider, rest.to_owned()))
}

fn api_base(
    w: &mut Walker<'_>,
    params: &crate::tree::Object,
    path: &str,
    provider: Provider,
) -> Option<String> {
    let base_path = child(path, "api_base");
    let configured = w
        .string(params, "api_base", path)
        .and_then(|raw| w.resolve_env(&raw, &base_path));
    let Provider::OpenAiCompatible(flavor) = provider else {
        return Some(String::new());
    };
    let Some(base) = configured.or_else(|| flavor.default_base().map(str::to_owned)) else {
        w.problem(
            &base_path,
            format!("required for `{}/` models", flavor.prefix()),
        );
        return None;
    };
    normalize_base(&base).or_else(|| {
        w.problem(
            &base_path,
            format!("`{base}` is not an http:// or https:// URL"),
        );
        None
    })
}

/// Trims the trailing slash; a base with no path gets `/v1`, where OpenAI-compatible servers
/// (vLLM, Ollama, LM Studio) serve the API.
fn normalize_base(base: &str) -> Option<String> {
    let base = base.trim().trim_end_matches('/');
    let rest = base
        .strip_prefix("http://")
        .or_else(|| base.strip_prefix("https://"))?;
    let host_end = rest.find('/').unwrap_or(rest.len());
    if host_end == 0 || rest.contains(char::is_whitespace) {
        return None;
    }
    if host_end == rest.len() {
        Some(format!("{base}/v1"))
    } else {
        Some(base.to_owned())
    }
}

fn default_key(w: &mut Walker<'_>, provider: Provider) -> Option<SecretString> {
    let Provider::OpenAiCompatible(flavor) = provider else {
        return None;
    };
    flavor
        .key_variable()
        .and_then(|name| w.lookup_env(name))
        .map(SecretString::from)
}

fn model_info(
    w: &mut Walker<'_>,
    value: Option<&Value>,
    path: &str,
) -> (ModelInfo, Option<String>) {
    let Some(map) = w.object(value, path) else {
        return (ModelInfo::default(), None);
    };
    // model_info is free-form metadata in LiteLLM: keys we do not use are kept silent.
    let id = w.string(map, "id", path);
    let info = ModelInfo {
        mode: w.string(map, "mode", path),
        max_tokens: w.count(map, "max_tokens", path),
        max_input_tokens: w.count(map, "max_input_tokens", path),
        access_groups: w.string_list(map, "access_groups", path),
        base_model: w.string(map, "base_model", path),
    };
    (info, id)
}

#[cfg(test)]
mod tests {
    use super::normalize_base;

    #[test]
    fn bases_are_normalized() {
        assert_eq!(
            normalize_base("http://h:8000").as_deref(),
            Some("http://h:8000/v1")
        );
        assert_eq!(
            normalize_base("http://h:8000/").as_deref(),
            Some("http://h:8000/v1")
        );
        assert_eq!(
            normalize_base("https://x/api/v1/").as_deref(),
            Some("https://x/api/v1")
        );
        assert_eq!(normalize_base("ftp://x"), None);
        assert_eq!(normalize_base("http:///v1"), None);
    }
}
