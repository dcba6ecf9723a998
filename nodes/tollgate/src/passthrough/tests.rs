#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use secrecy::SecretString;

use super::*;

fn endpoint(target: &str, include_subpath: bool, forward_headers: bool) -> Endpoint {
    let entry = PassThrough {
        path: "/vendor".to_owned(),
        target: target.to_owned(),
        include_subpath,
        auth: true,
        headers: vec![(
            HeaderName::from_static("authorization"),
            SecretString::from("Bearer vendor-key"),
        )],
        forward_headers,
    };
    Endpoint::new(&entry, 0).unwrap()
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

#[test]
fn subpath_and_query_are_appended_to_the_target() {
    let e = endpoint("https://v.example/infer/?token=t", true, false);
    let url = |path, query| e.url(path, query).unwrap().to_string();
    assert_eq!(url("/vendor", None), "https://v.example/infer/?token=t");
    assert_eq!(
        url("/vendor/a/b%20c", Some("x=1&y=2")),
        "https://v.example/infer/a/b%20c?token=t&x=1&y=2"
    );
    let bare = endpoint("http://v.example", true, false);
    assert_eq!(
        bare.url("/vendor/deep/er", Some("q")).unwrap().as_str(),
        "http://v.example/deep/er?q"
    );
}

#[test]
fn dot_segments_cannot_climb_out_of_the_target() {
    let e = endpoint("https://v.example/infer", true, false);
    for path in [
        "/vendor/../admin",
        "/vendor/a/./b",
        "/vendor/%2e%2E/admin",
        "/vendor/.%2e",
    ] {
        let error = e.url(path, None).unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST, "{path}");
    }
    assert!(e.url("/vendor/.well-known/x..y", None).is_ok());
}

#[test]
fn the_callers_key_and_hop_by_hop_headers_never_go_upstream() {
    let client = headers(&[
        ("authorization", "Bearer sk-gateway"),
        ("x-api-key", "sk-gateway"),
        ("api-key", "sk-gateway"),
        ("x-litellm-api-key", "sk-gateway"),
        ("connection", "keep-alive, x-private"),
        ("x-private", "hop"),
        ("keep-alive", "timeout=5"),
        ("transfer-encoding", "chunked"),
        ("te", "trailers"),
        ("proxy-authorization", "Basic x"),
        ("host", "gateway.example"),
        ("content-length", "12"),
        ("content-type", "application/json"),
        ("x-custom", "a"),
        ("x-custom", "b"),
    ]);
    let forwarded = endpoint("https://v.example", false, true).upstream_headers(&client);
    let mut names: Vec<&str> = forwarded.keys().map(HeaderName::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["authorization", "content-type", "x-custom"]);
    assert_eq!(forwarded["authorization"], "Bearer vendor-key");
    assert!(forwarded["authorization"].is_sensitive());
    assert_eq!(forwarded.get_all("x-custom").iter().count(), 2);

    let minimal = endpoint("https://v.example", false, false).upstream_headers(&client);
    let mut names: Vec<&str> = minimal.keys().map(HeaderName::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["authorization", "content-type"]);
}

#[test]
fn response_headers_lose_only_hop_by_hop_ones() {
    let upstream = headers(&[
        ("connection", "close, x-conn-only"),
        ("x-conn-only", "1"),
        ("transfer-encoding", "chunked"),
        ("content-type", "text/event-stream"),
        ("x-ratelimit-remaining-requests", "9"),
        ("set-cookie", "a=1"),
    ]);
    let kept = response_headers(&upstream);
    let mut names: Vec<&str> = kept.keys().map(HeaderName::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "content-type",
            "set-cookie",
            "x-ratelimit-remaining-requests"
        ]
    );
}

#[test]
fn debug_shows_no_target_credentials() {
    let e = endpoint("https://u:pw-secret@v.example/x?key=q-secret", false, false);
    let debug = format!("{e:?}");
    assert!(
        !debug.contains("secret") && !debug.contains("vendor-key"),
        "{debug}"
    );
}
