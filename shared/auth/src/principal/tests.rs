//! Every route of the table × every kind of credential.

use http::{HeaderMap, HeaderValue, Method};

use super::*;
use crate::route::{ROUTES, RouteId};

const MASTER: &str = "sk-master-0123456789";

#[derive(Clone, Copy, Debug)]
enum Cred {
    None,
    Wrong,
    Malformed,
    Master,
    MasterViaXApiKey,
    MasterViaApiKey,
    MasterViaLitellm,
}

const CREDS: [Cred; 7] = [
    Cred::None,
    Cred::Wrong,
    Cred::Malformed,
    Cred::Master,
    Cred::MasterViaXApiKey,
    Cred::MasterViaApiKey,
    Cred::MasterViaLitellm,
];

fn headers(cred: Cred) -> HeaderMap {
    let mut h = HeaderMap::new();
    let bearer = HeaderValue::from_str(&format!("Bearer {MASTER}")).unwrap();
    let raw = HeaderValue::from_static(MASTER);
    match cred {
        Cred::None => {}
        Cred::Wrong => {
            h.insert(
                "authorization",
                HeaderValue::from_static("Bearer sk-wrong-0123456789"),
            );
        }
        Cred::Malformed => {
            h.insert("authorization", HeaderValue::from_static("Token abc"));
        }
        Cred::Master => {
            h.insert("authorization", bearer);
        }
        Cred::MasterViaXApiKey => {
            h.insert("x-api-key", raw);
        }
        Cred::MasterViaApiKey => {
            h.insert("api-key", raw);
        }
        Cred::MasterViaLitellm => {
            h.insert("x-litellm-api-key", raw);
        }
    }
    h
}

/// The expected HTTP status for (access, credential), written out independently of `authorize`.
fn expected(access: Access, cred: Cred) -> u16 {
    match (access, cred) {
        (Access::Public, _) => 200,
        (_, Cred::None | Cred::Wrong | Cred::Malformed) => 401,
        (_, _) => 200,
    }
}

#[test]
fn every_route_times_every_credential() {
    let auth = Authenticator::new(Some(SecretString::from(MASTER)));
    let mut checked = 0;
    for route in ROUTES {
        for cred in CREDS {
            let caller = auth.authenticate(&headers(cred));
            let got = match authorize(route, &caller) {
                Ok(()) => 200,
                Err(e) => {
                    assert!(!e.message.contains(MASTER), "key echoed: {}", e.message);
                    assert!(!e.message.contains("sk-wrong"), "key echoed: {}", e.message);
                    e.status.as_u16()
                }
            };
            assert_eq!(
                got,
                expected(route.access, cred),
                "{} {} with {cred:?}",
                route.method,
                route.path
            );
            checked += 1;
        }
    }
    assert_eq!(checked, ROUTES.len() * CREDS.len());
}

#[test]
fn llm_and_model_routes_need_a_key_health_does_not() {
    for route in ROUTES {
        let public = matches!(
            route.id,
            RouteId::Health | RouteId::HealthLiveliness | RouteId::HealthReadiness
        );
        assert_eq!(route.access == Access::Public, public, "{}", route.path);
        // Read-only model routes are never admin-only (LiteLLM #13128).
        if matches!(route.id, RouteId::GetModel | RouteId::ListModels) {
            assert_eq!(route.access, Access::AnyKey);
        }
    }
}

#[test]
fn admin_routes_refuse_internal_users_with_a_clear_403() {
    let route = Route {
        method: Method::POST,
        path: "/key/generate",
        id: RouteId::Health,
        access: Access::Admin,
    };
    let user = Caller::Authenticated(Principal::VirtualKey {
        role: Role::InternalUser,
    });
    let err = authorize(&route, &user).unwrap_err();
    assert_eq!(err.status.as_u16(), 403);
    assert!(err.message.contains("proxy_admin"), "{}", err.message);
    let admin = Caller::Authenticated(Principal::VirtualKey {
        role: Role::ProxyAdmin,
    });
    assert!(authorize(&route, &admin).is_ok());
    assert!(authorize(&route, &Caller::Authenticated(Principal::MasterKey)).is_ok());
    assert_eq!(
        authorize(&route, &Caller::Anonymous)
            .unwrap_err()
            .status
            .as_u16(),
        401
    );
}

#[test]
fn without_a_master_key_auth_is_off() {
    let auth = Authenticator::new(None);
    assert!(!auth.enabled());
    assert_eq!(
        auth.authenticate(&headers(Cred::None)),
        Caller::Authenticated(Principal::AuthDisabled)
    );
}

#[test]
fn comparison_is_exact() {
    assert!(constant_time_eq("abc", "abc"));
    assert!(!constant_time_eq("abc", "abcd"));
    assert!(!constant_time_eq("abcd", "abc"));
    assert!(!constant_time_eq("", "a"));
}
