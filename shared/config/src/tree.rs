//! The walker over the YAML value tree: typed getters that record a [`Problem`] with the YAML
//! path on a wrong type, and warnings for keys Tollgate does not know.

use std::collections::HashMap;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Map, Value};

use crate::Problem;
use crate::env::Env;
use crate::price::Price;

const ENV_PREFIX: &str = "os.environ/";

pub(crate) type Object = Map<String, Value>;

pub(crate) struct Walker<'a> {
    env: &'a dyn Env,
    /// LiteLLM's `environment_variables:` section, consulted before the process environment.
    overlay: HashMap<String, String>,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
}

/// `parent.key`, or `key` at the root.
pub(crate) fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

impl<'a> Walker<'a> {
    pub(crate) fn new(env: &'a dyn Env, overlay: Option<&Value>) -> Self {
        let overlay = overlay
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| scalar_text(v).map(|v| (k.clone(), v)))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            env,
            overlay,
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub(crate) fn finish(self) -> (Vec<Problem>, Vec<Problem>) {
        (self.problems, self.warnings)
    }

    pub(crate) fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    pub(crate) fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(Problem {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    fn wrong_type(&mut self, path: &str, expected: &str, found: &Value) {
        self.problem(path, format!("expected {expected}, found {}", kind(found)));
    }

    /// The mapping at `path`; `None` when absent or null (a problem when it is something else).
    pub(crate) fn object<'v>(
        &mut self,
        value: Option<&'v Value>,
        path: &str,
    ) -> Option<&'v Object> {
        match value {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(map),
            Some(other) => {
                self.wrong_type(path, "a mapping", other);
                None
            }
        }
    }

    /// The list at `path`; `None` when absent or null.
    pub(crate) fn list<'v>(&mut self, value: Option<&'v Value>, path: &str) -> Option<&'v [Value]> {
        match value {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(items),
            Some(other) => {
                self.wrong_type(path, "a list", other);
                None
            }
        }
    }

    /// One warning per key of `map` that is not in `known`.
    pub(crate) fn unknown_keys(&mut self, map: &Object, path: &str, known: &[&str]) {
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                self.warn(&child(path, key), "not supported by Tollgate; ignored");
            }
        }
    }

    /// One warning per present key of `keys`: accepted for compatibility, has no effect yet.
    pub(crate) fn not_enforced(&mut self, map: &Object, path: &str, keys: &[&str], why: &str) {
        for key in keys {
            if map.get(*key).is_some_and(|v| !v.is_null()) {
                self.warn(&child(path, key), why.to_owned());
            }
        }
    }

    pub(crate) fn string(&mut self, map: &Object, key: &str, path: &str) -> Option<String> {
        match map.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v @ Value::Number(_)) => Some(v.to_string()),
            Some(other) => {
                self.wrong_type(&child(path, key), "a string", other);
                None
            }
        }
    }

    pub(crate) fn string_list(&mut self, map: &Object, key: &str, path: &str) -> Vec<String> {
        let path = child(path, key);
        let Some(items) = self.list(map.get(key), &path) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(s) => out.push(s.clone()),
                other => self.wrong_type(&format!("{path}[{i}]"), "a string", other),
            }
        }
        out
    }

    pub(crate) fn bool(&mut self, map: &Object, key: &str, path: &str) -> Option<bool> {
        match map.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            // PyYAML (which reads LiteLLM's configs) also takes yes/no/on/off as booleans.
            Some(Value::String(s))
                if ["true", "yes", "on"]
                    .iter()
                    .any(|t| s.eq_ignore_ascii_case(t)) =>
            {
                Some(true)
            }
            Some(Value::String(s))
                if ["false", "no", "off"]
                    .iter()
                    .any(|t| s.eq_ignore_ascii_case(t)) =>
            {
                Some(false)
            }
            Some(other) => {
                self.wrong_type(&child(path, key), "true or false", other);
                None
            }
        }
    }

    /// A number, also written as a string (`"30"`).
    pub(crate) fn number(&mut self, map: &Object, key: &str, path: &str) -> Option<f64> {
        let value = map.get(key)?;
        let parsed = match value {
            Value::Null => return None,
            Value::Number(n) => n.as_f64(),
            Value::String(s) => self.resolve_env(s, &child(path, key))?.trim().parse().ok(),
            _ => None,
        };
        if parsed.is_none() {
            self.wrong_type(&child(path, key), "a number", value);
        }
        parsed
    }

    /// A non-negative integer.
    pub(crate) fn count(&mut self, map: &Object, key: &str, path: &str) -> Option<u64> {
        let n = self.number(map, key, path)?;
        if n < 0.0 || n.fract() != 0.0 || n > 1e18 {
            self.problem(
                &child(path, key),
                format!("expected a whole number ≥ 0, found {n}"),
            );
            return None;
        }
        Some(n as u64)
    }

    /// Seconds (may be fractional), as a Duration. Zero is refused: it would fail every call.
    pub(crate) fn seconds(&mut self, map: &Object, key: &str, path: &str) -> Option<Duration> {
        let n = self.number(map, key, path)?;
        match Duration::try_from_secs_f64(n) {
            Ok(d) if !d.is_zero() && n <= 86_400.0 * 7.0 => Some(d),
            _ => {
                self.problem(
                    &child(path, key),
                    format!("expected a number of seconds > 0 and at most a week, found {n}"),
                );
                None
            }
        }
    }

    pub(crate) fn price(&mut self, map: &Object, key: &str, path: &str) -> Option<Price> {
        let n = self.number(map, key, path)?;
        let price = Price::from_usd_per_token(n);
        if price.is_none() {
            self.problem(
                &child(path, key),
                format!("expected a USD price per token between 0 and 1000, found {n}"),
            );
        }
        price
    }

    /// A secret: a literal, or `os.environ/NAME` resolved now. The value never appears in a
    /// message.
    pub(crate) fn secret(&mut self, map: &Object, key: &str, path: &str) -> Option<SecretString> {
        let raw = self.string(map, key, path)?;
        let resolved = self.resolve_env(&raw, &child(path, key))?;
        Some(SecretString::from(resolved))
    }

    /// Resolves `os.environ/NAME` (whole value) to the variable's value.
    pub(crate) fn resolve_env(&mut self, raw: &str, path: &str) -> Option<String> {
        let Some(name) = raw.strip_prefix(ENV_PREFIX) else {
            return Some(raw.to_owned());
        };
        let value = self.lookup_env(name);
        if value.is_none() {
            self.problem(path, format!("environment variable {name} is not set"));
        }
        value
    }

    /// Resolves every `os.environ/NAME` inside `raw` (LiteLLM's `"Bearer os.environ/KEY"`);
    /// `NAME` is the longest run of letters, digits and `_` after the prefix. Each missing
    /// variable is one problem; the resolved text is never part of a message.
    pub(crate) fn interpolate_env(&mut self, raw: &str, path: &str) -> Option<String> {
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        let mut complete = true;
        while let Some(at) = rest.find(ENV_PREFIX) {
            out.push_str(&rest[..at]);
            let after = &rest[at + ENV_PREFIX.len()..];
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            let name = &after[..len];
            if name.is_empty() {
                self.problem(
                    path,
                    format!("`{ENV_PREFIX}` must be followed by a variable name"),
                );
                complete = false;
            } else if let Some(value) = self.lookup_env(name) {
                out.push_str(&value);
            } else {
                self.problem(path, format!("environment variable {name} is not set"));
                complete = false;
            }
            rest = &after[len..];
        }
        out.push_str(rest);
        complete.then_some(out)
    }

    pub(crate) fn lookup_env(&self, name: &str) -> Option<String> {
        self.overlay
            .get(name)
            .cloned()
            .or_else(|| self.env.var(name))
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
