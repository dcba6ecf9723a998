//! Tollgate's configuration: LiteLLM's `config.yaml` (the subset Tollgate implements) plus
//! Tollgate's own sections.
//!
//! Loading is two steps. The YAML is read into a plain value tree, then [`load`] walks it and
//! builds a validated [`Config`] with no "maybe" fields and every `os.environ/NAME` secret
//! resolved, or returns ALL problems at once, each with its YAML path. Unknown keys (LiteLLM has
//! hundreds) are warnings, never errors; a wrong type or value is an error.
//!
//! # Layout
//! - `env`: the injected environment ([`Env`]), so tests never touch the process environment.
//! - `tree`: the walker over the value tree that records problems and warnings with paths.
//! - `model`: `model_list` → [`Deployment`]s, providers and their defaults.
//! - `settings`: `router_settings`, `litellm_settings`, `general_settings` and our sections.
//! - `passthrough`: `general_settings.pass_through_endpoints` → [`PassThrough`]s.
//! - `price`: per-token prices as integers (nano-USD per million tokens).

mod env;
mod model;
mod observability;
mod passthrough;
mod price;
mod settings;
mod tree;

use std::fmt;
use std::path::Path;

pub use env::{Env, MapEnv, ProcessEnv};
pub use model::{Deployment, ModelInfo, Provider};
pub use observability::{
    EntityLabels, LogFormat, MetricsSettings, ObservabilitySettings, OtlpSettings,
};
pub use passthrough::PassThrough;
pub use price::Price;
pub use secrecy::{ExposeSecret, SecretString};
pub use settings::{
    AdminSettings, DEFAULT_ADMIN_LISTEN, GeneralSettings, RouterSettings, RoutingStrategy,
};

use tree::Walker;

/// A validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Every deployment of `model_list`, in file order. Several may share a `model_name`.
    pub deployments: Vec<Deployment>,
    pub router: RouterSettings,
    pub general: GeneralSettings,
    pub observability: ObservabilitySettings,
    pub admin: AdminSettings,
}

/// One problem found while loading, with the YAML path it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A configuration could not be loaded: every problem found, not just the first.
#[derive(Debug, thiserror::Error)]
#[error("{} problem(s) in {source_name}", problems.len())]
pub struct ConfigError {
    pub source_name: String,
    pub problems: Vec<Problem>,
    /// Warnings found before the problems, so `check` can print both.
    pub warnings: Vec<Problem>,
}

/// A loaded configuration and the warnings it produced (unknown or unsupported keys).
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Problem>,
}

/// Reads and validates the file at `path`.
pub fn load_file(path: &Path, env: &dyn Env) -> Result<Loaded, ConfigError> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&text, &name, env),
        Err(e) => Err(ConfigError {
            source_name: name,
            problems: vec![Problem {
                path: String::new(),
                message: format!("cannot read the file: {e}"),
            }],
            warnings: Vec::new(),
        }),
    }
}

/// Validates YAML text; `source_name` names it in messages.
pub fn load_str(text: &str, source_name: &str, env: &dyn Env) -> Result<Loaded, ConfigError> {
    let fail = |message: String| ConfigError {
        source_name: source_name.to_owned(),
        problems: vec![Problem {
            path: String::new(),
            message,
        }],
        warnings: Vec::new(),
    };
    let root: serde_json::Value = if text.trim().is_empty() {
        serde_json::Value::Null
    } else {
        // YAML 1.2 booleans: only `true`/`false`, so a model named `n` or `yes` stays a string
        // (as PyYAML reads LiteLLM's configs).
        let options = serde_saphyr::options! { strict_booleans: true };
        serde_saphyr::from_str_with_options(text, options)
            .map_err(|e| fail(format!("not valid YAML: {e}")))?
    };
    load_value(&root, source_name, env)
}

fn load_value(
    root: &serde_json::Value,
    source_name: &str,
    env: &dyn Env,
) -> Result<Loaded, ConfigError> {
    let mut walker = Walker::new(env, root.get("environment_variables"));
    let config = settings::build(&mut walker, root);
    let (problems, warnings) = walker.finish();
    if problems.is_empty() {
        Ok(Loaded { config, warnings })
    } else {
        Err(ConfigError {
            source_name: source_name.to_owned(),
            problems,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests;
