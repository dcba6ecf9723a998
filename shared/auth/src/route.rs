use http::Method;
use tollgate_api::{ApiError, Endpoint, ErrorCode};

use crate::passthrough::SUBPATH;

/// What a matched route does; the node dispatches on this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteId {
    Llm(Endpoint),
    ListModels,
    GetModel,
    HealthLiveliness,
    HealthReadiness,
    Health,
    /// A config-defined pass-through endpoint: its index in
    /// `general_settings.pass_through_endpoints`.
    PassThrough(u16),
    /// A LiteLLM-compatible management route.
    Manage(Manage),
    /// The Prometheus scrape endpoint (`observability.metrics.path`).
    Metrics,
}

/// The management operations (LiteLLM's `/key/*`, `/user/*`, `/team/*`, usage).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Manage {
    KeyGenerate,
    KeyUpdate,
    KeyDelete,
    KeyInfo,
    KeyList,
    UserNew,
    UserUpdate,
    UserDelete,
    UserInfo,
    TeamNew,
    TeamUpdate,
    TeamDelete,
    TeamInfo,
    TeamMemberAdd,
    TeamMemberDelete,
    Usage,
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a key (health probes).
    Public,
    /// Any valid key. Routes that name a model additionally check the key may use it, after the
    /// model is known.
    AnyKey,
    /// Only the master key or a key whose role is `proxy_admin`.
    Admin,
}

/// One row of the table.
#[derive(Clone, Debug)]
pub struct Route {
    pub method: Method,
    /// The path pattern in matchit syntax; also the `route` label of metrics and logs.
    pub path: &'static str,
    pub id: RouteId,
    pub access: Access,
}

impl Route {
    /// Whether a request with `method` is this row's: its own method, or HEAD on a GET row
    /// (HEAD is GET without the body, RFC 9110 section 9.3.2; the HTTP server leaves the body
    /// out).
    pub fn answers(&self, method: &Method) -> bool {
        self.method == *method || (*method == Method::HEAD && self.method == Method::GET)
    }

    /// The `route` label of metrics and logs: the pattern, except that a pass-through's
    /// subpath row is labelled with the configured path, like its exact row.
    pub fn label(&self) -> &'static str {
        match self.id {
            RouteId::PassThrough(_) => self.path.strip_suffix(SUBPATH).unwrap_or(self.path),
            _ => self.path,
        }
    }

    /// Whether requests to this route are API traffic that metrics count: everything but the
    /// public probes (a public pass-through endpoint is API traffic).
    pub fn counted(&self) -> bool {
        match self.id {
            RouteId::Metrics => false,
            RouteId::PassThrough(_) => true,
            _ => self.access != Access::Public,
        }
    }
}

/// The row of the scrape endpoint at `path`: public, or any valid key when `require_auth`.
pub fn metrics_route(path: &'static str, require_auth: bool) -> Route {
    Route {
        method: Method::GET,
        path,
        id: RouteId::Metrics,
        access: if require_auth {
            Access::AnyKey
        } else {
            Access::Public
        },
    }
}

/// A runtime row ([`RouteTable::with_extra`]) that cannot join the table.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct RouteConflict {
    /// The refused row's id (for a pass-through, which config entry it came from).
    pub id: RouteId,
    pub path: &'static str,
    pub reason: String,
}

const fn row(method: Method, path: &'static str, id: RouteId, access: Access) -> Route {
    Route {
        method,
        path,
        id,
        access,
    }
}

use Access::{Admin, AnyKey, Public};
use RouteId::*;

/// Every route of the ingress node. A route that is not here does not exist.
pub const ROUTES: &[Route] = &[
    row(
        Method::POST,
        "/v1/chat/completions",
        Llm(Endpoint::ChatCompletions),
        AnyKey,
    ),
    row(
        Method::POST,
        "/chat/completions",
        Llm(Endpoint::ChatCompletions),
        AnyKey,
    ),
    row(
        Method::POST,
        "/v1/completions",
        Llm(Endpoint::Completions),
        AnyKey,
    ),
    row(
        Method::POST,
        "/completions",
        Llm(Endpoint::Completions),
        AnyKey,
    ),
    row(
        Method::POST,
        "/v1/embeddings",
        Llm(Endpoint::Embeddings),
        AnyKey,
    ),
    row(
        Method::POST,
        "/embeddings",
        Llm(Endpoint::Embeddings),
        AnyKey,
    ),
    row(Method::GET, "/v1/models", ListModels, AnyKey),
    row(Method::GET, "/models", ListModels, AnyKey),
    row(Method::GET, "/v1/models/{*model}", GetModel, AnyKey),
    row(Method::GET, "/models/{*model}", GetModel, AnyKey),
    row(Method::GET, "/health/liveliness", HealthLiveliness, Public),
    row(Method::GET, "/health/liveness", HealthLiveliness, Public),
    row(Method::GET, "/health/readiness", HealthReadiness, Public),
    row(Method::GET, "/health", Health, Public),
    // Management: admin only, except what a key may read about itself (the handler checks
    // that a non-admin key asks about itself).
    row(
        Method::POST,
        "/key/generate",
        Manage(Manage::KeyGenerate),
        Admin,
    ),
    row(
        Method::POST,
        "/key/update",
        Manage(Manage::KeyUpdate),
        Admin,
    ),
    row(
        Method::POST,
        "/key/delete",
        Manage(Manage::KeyDelete),
        Admin,
    ),
    row(Method::GET, "/key/info", Manage(Manage::KeyInfo), AnyKey),
    row(Method::GET, "/key/list", Manage(Manage::KeyList), Admin),
    row(Method::POST, "/user/new", Manage(Manage::UserNew), Admin),
    row(
        Method::POST,
        "/user/update",
        Manage(Manage::UserUpdate),
        Admin,
    ),
    row(
        Method::POST,
        "/user/delete",
        Manage(Manage::UserDelete),
        Admin,
    ),
    row(Method::GET, "/user/info", Manage(Manage::UserInfo), Admin),
    row(Method::POST, "/team/new", Manage(Manage::TeamNew), Admin),
    row(
        Method::POST,
        "/team/update",
        Manage(Manage::TeamUpdate),
        Admin,
    ),
    row(
        Method::POST,
        "/team/delete",
        Manage(Manage::TeamDelete),
        Admin,
    ),
    row(Method::GET, "/team/info", Manage(Manage::TeamInfo), Admin),
    row(
        Method::POST,
        "/team/member_add",
        Manage(Manage::TeamMemberAdd),
        Admin,
    ),
    row(
        Method::POST,
        "/team/member_delete",
        Manage(Manage::TeamMemberDelete),
        Admin,
    ),
    row(Method::GET, "/usage", Manage(Manage::Usage), AnyKey),
];

/// A request matched to its row, with the path parameters it carried.
#[derive(Clone, Debug)]
pub struct Matched {
    pub route: Route,
    /// The `{*model}` parameter, percent-decoded, for routes that have one.
    pub model: Option<String>,
}

/// The table compiled for lookup by path, then method.
#[derive(Debug)]
pub struct RouteTable {
    paths: matchit::Router<Vec<Route>>,
}

impl RouteTable {
    pub fn new(routes: &[Route]) -> Self {
        // The table is a constant checked by tests; a bad pattern is a programming error.
        #[expect(clippy::expect_used, reason = "static table, covered by tests")]
        Self::build(routes).expect("route patterns in ROUTES are valid and distinct")
    }

    /// `base` plus rows only known at runtime (pass-through endpoints from the config). An
    /// extra row is refused when a base route already serves its path, when its subpath
    /// (`prefix/{*rest}`) would cover a base route, or when an earlier extra row has the same
    /// method and pattern. Extra patterns are literal paths or `literal/{*name}`.
    pub fn with_extra(base: &[Route], extra: Vec<Route>) -> Result<Self, RouteConflict> {
        let built_in = Self::new(base);
        for (i, route) in extra.iter().enumerate() {
            let conflict = |reason: String| RouteConflict {
                id: route.id,
                path: route.path,
                reason,
            };
            if let Some(existing) = built_in.covered(base, route.path) {
                return Err(conflict(format!(
                    "`{}` would shadow the built-in route `{existing}`",
                    route.label()
                )));
            }
            if let Some(earlier) = extra[..i]
                .iter()
                .find(|e| e.path == route.path && e.method == route.method && e.id != route.id)
            {
                return Err(conflict(format!(
                    "`{}` is already served by {:?}",
                    route.label(),
                    earlier.id
                )));
            }
        }
        let mut all = base.to_vec();
        all.extend(extra);
        Self::build(&all).map_err(|(route, e)| RouteConflict {
            id: route.id,
            path: route.path,
            reason: format!("`{}` does not fit the route table: {e}", route.label()),
        })
    }

    /// The base route that serves `pattern` (or, for `prefix/{*rest}`, anything under
    /// `prefix/`).
    fn covered(&self, base: &[Route], pattern: &str) -> Option<&'static str> {
        let (literal, catch_all) = match pattern.find("/{*") {
            Some(at) => (&pattern[..at], true),
            None => (pattern, false),
        };
        if let Ok(found) = self.paths.at(literal) {
            return found.value.first().map(|r| r.path);
        }
        let prefix = format!("{literal}/");
        catch_all
            .then(|| base.iter().find(|r| r.path.starts_with(&prefix)))
            .flatten()
            .map(|r| r.path)
    }

    fn build(routes: &[Route]) -> Result<Self, (Route, matchit::InsertError)> {
        let mut by_pattern: Vec<(&'static str, Vec<Route>)> = Vec::new();
        for route in routes {
            match by_pattern.iter_mut().find(|(p, _)| *p == route.path) {
                Some((_, rows)) => rows.push(route.clone()),
                None => by_pattern.push((route.path, vec![route.clone()])),
            }
        }
        let mut paths = matchit::Router::new();
        for (pattern, rows) in by_pattern {
            let first = rows[0].clone();
            paths.insert(pattern, rows).map_err(|e| (first, e))?;
        }
        Ok(Self { paths })
    }

    /// The row for `method` and `path`: 404 when no row has the path, 405 when none has the
    /// method (the message and the `Allow` header list the methods that exist). A path that
    /// answers GET answers HEAD with the GET row ([`Route::answers`]).
    pub fn lookup(&self, method: &Method, path: &str) -> Result<Matched, ApiError> {
        let found = self.paths.at(path).map_err(|_| {
            ApiError::new(
                ErrorCode::RouteNotFound,
                format!("no route {method} {}", printable(path)),
            )
        })?;
        let row = |method: &Method| found.value.iter().find(|r| r.method == *method);
        let route = row(method).or_else(|| found.value.iter().find(|r| r.answers(method)));
        let Some(route) = route else {
            let mut allowed: Vec<&str> = found.value.iter().map(|r| r.method.as_str()).collect();
            if row(&Method::GET).is_some() && row(&Method::HEAD).is_none() {
                allowed.push(Method::HEAD.as_str());
            }
            let allowed = allowed.join(", ");
            return Err(ApiError::new(
                ErrorCode::MethodNotAllowed,
                format!(
                    "{} does not accept {method}; use {allowed}",
                    found.value.first().map_or(path, |r| r.path),
                ),
            )
            .with_header("allow", allowed));
        };
        let model = found.params.get("model").map(percent_decode);
        Ok(Matched {
            route: route.clone(),
            model,
        })
    }
}

impl Default for RouteTable {
    fn default() -> Self {
        Self::new(ROUTES)
    }
}

/// A path cut to a sane length for an error message.
fn printable(path: &str) -> String {
    const MAX: usize = 200;
    if path.len() <= MAX {
        return path.to_owned();
    }
    let mut end = MAX;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &path[..end])
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_compiles_and_every_row_is_reachable() {
        let table = RouteTable::default();
        for route in ROUTES {
            let path = route.path.replace("{*model}", "some/model");
            let m = table.lookup(&route.method, &path).unwrap();
            assert_eq!(m.route.id, route.id, "{}", route.path);
        }
    }

    #[test]
    fn model_param_keeps_slashes_and_decodes() {
        let table = RouteTable::default();
        let m = table
            .lookup(&Method::GET, "/v1/models/openai/gpt-4o")
            .unwrap();
        assert_eq!(m.model.as_deref(), Some("openai/gpt-4o"));
        let m = table.lookup(&Method::GET, "/v1/models/a%2Fb%20c").unwrap();
        assert_eq!(m.model.as_deref(), Some("a/b c"));
    }

    #[test]
    fn unknown_path_is_404_and_wrong_method_405() {
        let table = RouteTable::default();
        let e = table.lookup(&Method::GET, "/v1/nope").unwrap_err();
        assert_eq!(e.status.as_u16(), 404);
        let e = table
            .lookup(&Method::GET, "/v1/chat/completions")
            .unwrap_err();
        assert_eq!(e.status.as_u16(), 405);
        assert!(e.message.contains("POST"), "{}", e.message);
        assert_eq!(e.headers, [("allow", "POST".to_owned())]);
    }

    #[test]
    fn head_is_answered_where_get_is() {
        let table = RouteTable::default();
        for path in ["/v1/models", "/v1/models/gpt-4o", "/health/liveliness"] {
            let get = table.lookup(&Method::GET, path).unwrap();
            let head = table.lookup(&Method::HEAD, path).unwrap();
            assert_eq!(head.route.id, get.route.id, "{path}");
            assert_eq!(head.route.access, get.route.access, "{path}");
            assert_eq!(head.model, get.model, "{path}");
        }
        let e = table
            .lookup(&Method::HEAD, "/v1/chat/completions")
            .unwrap_err();
        assert_eq!(e.status.as_u16(), 405, "a POST-only path has no HEAD");
        let e = table.lookup(&Method::POST, "/v1/models").unwrap_err();
        assert_eq!(e.status.as_u16(), 405);
        assert_eq!(e.headers, [("allow", "GET, HEAD".to_owned())]);
        assert!(e.message.ends_with("use GET, HEAD"), "{}", e.message);
    }
}
