//! `general_settings.pass_through_endpoints`: gateway routes that forward a request as it is to
//! one fixed URL, adding configured headers (LiteLLM's config-defined pass-through endpoints).
//!
//! Checked here: the route path (literal, below `/`, no pattern characters, no two entries on
//! the same path or one hidden under another's subpath), the target URL, and the header names
//! and values. Whether a path collides with a built-in route is decided by the node, which owns
//! the route table.

use std::fmt;

use http::{HeaderName, HeaderValue, Uri};
use secrecy::SecretString;
use serde_json::Value;

use crate::tree::{Object, Walker, child};

/// One configured pass-through endpoint.
#[derive(Clone)]
pub struct PassThrough {
    /// The route on the gateway, matched literally: starts with `/`, never ends with one, no
    /// `{`, `}` or `*`. Also the `route` label of metrics.
    pub path: String,
    /// Where requests go: an absolute `http://` or `https://` URL. May hold credentials (in
    /// its query or user info), so `Debug` prints only its scheme, host and path.
    pub target: String,
    /// Also forward `path/...`, appending the rest of the path to `target`.
    pub include_subpath: bool,
    /// `true`: any valid key may call it; `false`: anyone may.
    pub auth: bool,
    /// Sent upstream on every request, with `os.environ/NAME` references resolved. The values
    /// are secrets (typically the vendor's API key).
    pub headers: Vec<(HeaderName, SecretString)>,
    /// Also forward the client's own headers (never hop-by-hop headers or the gateway key).
    pub forward_headers: bool,
}

impl fmt::Debug for PassThrough {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PassThrough")
            .field("path", &self.path)
            .field("target", &redacted(&self.target))
            .field("include_subpath", &self.include_subpath)
            .field("auth", &self.auth)
            .field("headers", &self.headers)
            .field("forward_headers", &self.forward_headers)
            .finish()
    }
}

/// `scheme://host[:port]/path` of a URL: no user info, no query.
fn redacted(url: &str) -> String {
    let Ok(uri) = url.parse::<Uri>() else {
        return "<invalid>".to_owned();
    };
    let host = uri.authority().map_or("", |a| {
        let a = a.as_str();
        a.rsplit_once('@').map_or(a, |(_, host)| host)
    });
    format!(
        "{}://{host}{}",
        uri.scheme_str().unwrap_or_default(),
        uri.path()
    )
}

const KEYS: &[&str] = &[
    "path",
    "target",
    "include_subpath",
    "auth",
    "headers",
    "forward_headers",
];

/// Headers the gateway sets or strips itself; configuring one would break the request.
const GATEWAY_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "content-length",
];

/// `general_settings.pass_through_endpoints`, in file order.
pub(crate) fn build(w: &mut Walker<'_>, general: &Object, parent: &str) -> Vec<PassThrough> {
    let path = child(parent, "pass_through_endpoints");
    let Some(items) = w.list(general.get("pass_through_endpoints"), &path) else {
        return Vec::new();
    };
    let mut endpoints = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let at = format!("{path}[{index}]");
        if let Some(endpoint) = endpoint(w, item, &at) {
            endpoints.push((index, endpoint));
        }
    }
    overlaps(w, &endpoints, &path);
    endpoints.into_iter().map(|(_, e)| e).collect()
}

fn endpoint(w: &mut Walker<'_>, item: &Value, at: &str) -> Option<PassThrough> {
    if item.is_null() {
        w.problem(
            at,
            "expected a mapping with `path` and `target`, found null",
        );
        return None;
    }
    let map = w.object(Some(item), at)?;
    w.unknown_keys(map, at, KEYS);
    let path = route_path(w, map, at);
    let target = target(w, map, at);
    let headers = headers(w, map, at);
    let include_subpath = w.bool(map, "include_subpath", at).unwrap_or(false);
    let auth = w.bool(map, "auth", at).unwrap_or(false);
    let forward_headers = w.bool(map, "forward_headers", at).unwrap_or(false);
    Some(PassThrough {
        path: path?,
        target: target?,
        include_subpath,
        auth,
        headers: headers?,
        forward_headers,
    })
}

fn route_path(w: &mut Walker<'_>, map: &Object, at: &str) -> Option<String> {
    let here = child(at, "path");
    let Some(path) = w.string(map, "path", at) else {
        w.problem(&here, "required: the route on the gateway, e.g. /v1/rerank");
        return None;
    };
    let problem = if !path.starts_with('/') {
        Some(format!("`{path}` must start with `/`"))
    } else if path.contains(['{', '}', '*']) {
        Some(format!(
            "`{path}` must not contain `{{`, `}}` or `*`: the path is matched literally \
             (include_subpath: true also matches everything below it)"
        ))
    } else if path == "/" {
        Some("must name a path below `/`".to_owned())
    } else if path.ends_with('/') {
        Some(format!("`{path}` must not end with `/`"))
    } else if !path.chars().all(is_path_char) {
        Some(format!("`{path}` is not a valid URL path"))
    } else {
        None
    };
    match problem {
        Some(message) => {
            w.problem(&here, message);
            None
        }
        None => Some(path),
    }
}

/// RFC 3986 `pchar`, `/` and `%` (percent-encoded bytes stay encoded).
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()+,;=:@/%".contains(c)
}

fn target(w: &mut Walker<'_>, map: &Object, at: &str) -> Option<String> {
    let here = child(at, "target");
    let Some(raw) = w.string(map, "target", at) else {
        w.problem(&here, "required: the URL requests are forwarded to");
        return None;
    };
    let target = w.resolve_env(&raw, &here)?;
    // The message never repeats the URL: it may carry a credential.
    let valid = target.parse::<Uri>().is_ok_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https"))
            && uri.host().is_some_and(|h| !h.is_empty())
    });
    if !valid {
        w.problem(
            &here,
            "expected an http(s) URL, e.g. https://api.example.com/v1/rerank",
        );
        return None;
    }
    Some(target)
}

/// `None` when any header is invalid (each one is a problem).
fn headers(w: &mut Walker<'_>, map: &Object, at: &str) -> Option<Vec<(HeaderName, SecretString)>> {
    let here = child(at, "headers");
    let Some(configured) = w.object(map.get("headers"), &here) else {
        return Some(Vec::new());
    };
    let mut headers: Vec<(HeaderName, SecretString)> = Vec::with_capacity(configured.len());
    let mut complete = true;
    for key in configured.keys() {
        let path = child(&here, key);
        let name = match HeaderName::from_bytes(key.as_bytes()) {
            Ok(name) if GATEWAY_HEADERS.contains(&name.as_str()) => {
                w.problem(&path, "set by the gateway itself; it cannot be configured");
                None
            }
            Ok(name) if headers.iter().any(|(n, _)| *n == name) => {
                w.problem(&path, "given twice (header names ignore case)");
                None
            }
            Ok(name) => Some(name),
            Err(_) => {
                w.problem(&path, "not a valid HTTP header name");
                None
            }
        };
        let value = header_value(w, configured, key, &here);
        match (name, value) {
            (Some(name), Some(value)) => headers.push((name, value)),
            _ => complete = false,
        }
    }
    complete.then_some(headers)
}

/// A header value with every `os.environ/NAME` resolved; the message never shows the value.
fn header_value(
    w: &mut Walker<'_>,
    headers: &Object,
    key: &str,
    parent: &str,
) -> Option<SecretString> {
    let path = child(parent, key);
    let Some(raw) = w.string(headers, key, parent) else {
        if headers.get(key).is_some_and(Value::is_null) {
            w.problem(&path, "expected a string, found null");
        }
        return None;
    };
    let value = w.interpolate_env(&raw, &path)?;
    if HeaderValue::from_str(&value).is_err() {
        w.problem(
            &path,
            "not a valid HTTP header value (control characters or non-ASCII text)",
        );
        return None;
    }
    Some(SecretString::from(value))
}

/// Two entries on one path, or one under another's subpath, would make one of them
/// unreachable for part of its paths.
fn overlaps(w: &mut Walker<'_>, endpoints: &[(usize, PassThrough)], parent: &str) {
    for (later, (j, b)) in endpoints.iter().enumerate() {
        for (i, a) in &endpoints[..later] {
            let message = if a.path == b.path {
                format!("`{}` is also the path of {parent}[{i}]", b.path)
            } else if under(&b.path, a) {
                format!(
                    "`{}` lies under {parent}[{i}] (`{}`, include_subpath: true)",
                    b.path, a.path
                )
            } else if under(&a.path, b) {
                format!(
                    "`{}` (include_subpath: true) covers {parent}[{i}] (`{}`)",
                    b.path, a.path
                )
            } else {
                continue;
            };
            w.problem(&format!("{parent}[{j}].path"), message);
        }
    }
}

fn under(path: &str, endpoint: &PassThrough) -> bool {
    endpoint.include_subpath
        && path
            .strip_prefix(&endpoint.path)
            .is_some_and(|rest| rest.starts_with('/'))
}
