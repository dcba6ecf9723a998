//! Rows for config-defined pass-through endpoints, added to the table at startup.

use http::Method;

use crate::route::{Access, Route, RouteId};

/// The pattern suffix of a pass-through's subpath row: `path/{*subpath}`.
pub(crate) const SUBPATH: &str = "/{*subpath}";

/// A pass-through forwards whatever method the client uses; these are the ones it accepts.
pub const PASS_THROUGH_METHODS: [Method; 7] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::HEAD,
    Method::OPTIONS,
];

/// The rows of pass-through endpoint `index` (its position in the config list): `path` for
/// every method of [`PASS_THROUGH_METHODS`], and `path/{*subpath}` too when `include_subpath`.
/// `auth: true` admits ANY valid key (LiteLLM let only admins call them); `false` admits
/// anyone.
///
/// `path` is a literal path (no `{`, `}`, `*`; the config checks it). Rows need `'static`
/// paths (they are also metric labels), so the subpath pattern is leaked: once per endpoint
/// at startup, bounded by the config.
pub fn pass_through_routes(
    index: u16,
    path: &'static str,
    include_subpath: bool,
    auth: bool,
) -> Vec<Route> {
    let access = if auth { Access::AnyKey } else { Access::Public };
    let mut patterns = vec![path];
    if include_subpath {
        patterns.push(Box::leak(format!("{path}{SUBPATH}").into_boxed_str()));
    }
    patterns
        .into_iter()
        .flat_map(|pattern| {
            PASS_THROUGH_METHODS.iter().map(move |method| Route {
                method: method.clone(),
                path: pattern,
                id: RouteId::PassThrough(index),
                access,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{ROUTES, RouteTable};

    fn table(extra: Vec<Route>) -> RouteTable {
        RouteTable::with_extra(ROUTES, extra).unwrap()
    }

    #[test]
    fn every_method_and_the_subpath_reach_the_endpoint() {
        let table = table(pass_through_routes(3, "/vendor/ocr", true, true));
        for method in PASS_THROUGH_METHODS {
            for path in ["/vendor/ocr", "/vendor/ocr/a", "/vendor/ocr/a/b%20c"] {
                let m = table.lookup(&method, path).unwrap();
                assert_eq!(m.route.id, RouteId::PassThrough(3), "{method} {path}");
                assert_eq!(m.route.access, Access::AnyKey);
                assert_eq!(
                    m.route.label(),
                    "/vendor/ocr",
                    "the label is the configured path"
                );
                assert!(m.route.counted());
            }
        }
        let e = table.lookup(&Method::TRACE, "/vendor/ocr").unwrap_err();
        assert_eq!(e.status.as_u16(), 405);
        assert!(
            table.lookup(&Method::GET, "/v1/models").is_ok(),
            "built-ins stay"
        );
    }

    #[test]
    fn without_subpath_only_the_exact_path_matches_and_public_is_counted() {
        let table = table(pass_through_routes(0, "/open", false, false));
        let m = table.lookup(&Method::PUT, "/open").unwrap();
        assert_eq!(m.route.access, Access::Public);
        assert!(m.route.counted(), "a public pass-through is API traffic");
        assert_eq!(
            table
                .lookup(&Method::GET, "/open/more")
                .unwrap_err()
                .status
                .as_u16(),
            404
        );
        let health = table.lookup(&Method::GET, "/health").unwrap();
        assert!(!health.route.counted(), "probes are not counted");
    }

    #[test]
    fn built_in_routes_cannot_be_shadowed() {
        for (path, include_subpath) in [
            ("/v1/chat/completions", false),
            ("/v1/models", false),
            ("/v1/models/some-model", false),
            ("/v1/models/x", true),
            ("/v1", true),
            ("/health", true),
        ] {
            let conflict =
                RouteTable::with_extra(ROUTES, pass_through_routes(1, path, include_subpath, true))
                    .unwrap_err();
            assert_eq!(conflict.id, RouteId::PassThrough(1), "{path}");
            assert!(conflict.reason.contains("built-in"), "{conflict}");
        }
        for (path, include_subpath) in [("/v1", false), ("/v1/rerank", true), ("/v2", true)] {
            assert!(
                RouteTable::with_extra(ROUTES, pass_through_routes(1, path, include_subpath, true))
                    .is_ok(),
                "{path}"
            );
        }
    }

    #[test]
    fn two_endpoints_on_one_path_are_refused() {
        let mut extra = pass_through_routes(0, "/a", false, true);
        extra.extend(pass_through_routes(1, "/a", false, false));
        let conflict = RouteTable::with_extra(ROUTES, extra).unwrap_err();
        assert_eq!(conflict.id, RouteId::PassThrough(1));
    }
}
