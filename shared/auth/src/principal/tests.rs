//! Every route of the table × every kind of credential.

use http::{HeaderMap, HeaderValue};
use serde_json::Map;
use tollgate_accounts::{KeyRecord, Limits, ManualClock, UserRecord, hash_key};

use super::*;
use crate::route::{ROUTES, RouteId};

const MASTER: &str = "sk-master-0123456789";
const INTERNAL: &str = "sk-internal-user-key";
const ADMIN: &str = "sk-admin-user-key";
const EXPIRED: &str = "sk-expired-key";
const BLOCKED: &str = "sk-blocked-key";
const NOW: i64 = 1_800_000_000;

fn key(key: &str, user: Option<&str>) -> KeyRecord {
    KeyRecord {
        token: hash_key(key),
        key_name: "sk-...".to_owned(),
        key_alias: None,
        models: vec![],
        limits: Limits::default(),
        user_id: user.map(str::to_owned),
        team_id: None,
        metadata: Map::new(),
        expires: None,
        blocked: false,
        created_at: 0,
    }
}

fn authenticator() -> Authenticator {
    let mut expired = key(EXPIRED, None);
    expired.expires = Some(NOW - 1);
    let mut blocked = key(BLOCKED, None);
    blocked.blocked = true;
    let admin = UserRecord {
        user_id: "root".to_owned(),
        user_email: None,
        user_role: Role::ProxyAdmin,
        models: vec![],
        limits: Limits::default(),
        metadata: Map::new(),
        created_at: 0,
    };
    let directory = Directory::new(
        vec![
            key(INTERNAL, None),
            key(ADMIN, Some("root")),
            expired,
            blocked,
        ],
        vec![admin],
        vec![],
    );
    Authenticator::new(
        Some(SecretString::from(MASTER)),
        Arc::new(directory),
        Arc::new(ManualClock::at(NOW)),
    )
}

#[derive(Clone, Copy, Debug)]
enum Cred {
    None,
    Wrong,
    Malformed,
    Master,
    MasterViaXApiKey,
    MasterViaApiKey,
    MasterViaLitellm,
    InternalKey,
    AdminKey,
    ExpiredKey,
    BlockedKey,
}

const CREDS: [Cred; 11] = [
    Cred::None,
    Cred::Wrong,
    Cred::Malformed,
    Cred::Master,
    Cred::MasterViaXApiKey,
    Cred::MasterViaApiKey,
    Cred::MasterViaLitellm,
    Cred::InternalKey,
    Cred::AdminKey,
    Cred::ExpiredKey,
    Cred::BlockedKey,
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
        Cred::InternalKey => {
            h.insert("x-api-key", HeaderValue::from_static(INTERNAL));
        }
        Cred::AdminKey => {
            h.insert(
                "authorization",
                HeaderValue::from_static("Bearer sk-admin-user-key"),
            );
        }
        Cred::ExpiredKey => {
            h.insert("api-key", HeaderValue::from_static(EXPIRED));
        }
        Cred::BlockedKey => {
            h.insert(
                "authorization",
                HeaderValue::from_static("Bearer sk-blocked-key"),
            );
        }
    }
    h
}

/// The expected HTTP status for (access, credential), written out independently of `authorize`.
fn expected(access: Access, cred: Cred) -> u16 {
    match (access, cred) {
        (Access::Public, _) => 200,
        (_, Cred::None | Cred::Wrong | Cred::Malformed | Cred::ExpiredKey | Cred::BlockedKey) => {
            401
        }
        (Access::Admin, Cred::InternalKey) => 403,
        (_, _) => 200,
    }
}

#[test]
fn every_route_times_every_credential() {
    let auth = authenticator();
    let mut checked = 0;
    for route in ROUTES {
        for cred in CREDS {
            let caller = auth.authenticate(&headers(cred));
            let got = match authorize(route, &caller) {
                Ok(()) => 200,
                Err(e) => {
                    assert!(!e.message.contains(MASTER), "key echoed: {}", e.message);
                    for secret in ["sk-wrong", INTERNAL, EXPIRED, BLOCKED, &hash_key(BLOCKED)] {
                        assert!(!e.message.contains(secret), "key echoed: {}", e.message);
                    }
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
    let auth = authenticator();
    let route = ROUTES.iter().find(|r| r.path == "/key/generate").unwrap();
    let err = authorize(route, &auth.authenticate(&headers(Cred::InternalKey))).unwrap_err();
    assert_eq!(err.status.as_u16(), 403);
    assert!(err.message.contains("proxy_admin"), "{}", err.message);
    assert!(authorize(route, &auth.authenticate(&headers(Cred::AdminKey))).is_ok());
    assert!(authorize(route, &Caller::Authenticated(Principal::MasterKey)).is_ok());
    assert_eq!(
        authorize(route, &Caller::Anonymous)
            .unwrap_err()
            .status
            .as_u16(),
        401
    );
}

#[test]
fn refusals_say_why_without_the_key() {
    let auth = authenticator();
    let route = ROUTES.iter().find(|r| r.path == "/v1/models").unwrap();
    let expired = authorize(route, &auth.authenticate(&headers(Cred::ExpiredKey))).unwrap_err();
    assert!(expired.message.contains("expired"), "{}", expired.message);
    let blocked = authorize(route, &auth.authenticate(&headers(Cred::BlockedKey))).unwrap_err();
    assert!(blocked.message.contains("blocked"), "{}", blocked.message);
}

#[test]
fn without_a_master_key_auth_is_off() {
    let auth = Authenticator::new(
        None,
        Arc::new(Directory::default()),
        Arc::new(ManualClock::at(NOW)),
    );
    assert!(!auth.enabled());
    assert!(matches!(
        auth.authenticate(&headers(Cred::None)),
        Caller::Authenticated(Principal::AuthDisabled)
    ));
}

#[test]
fn comparison_is_exact() {
    assert!(constant_time_eq("abc", "abc"));
    assert!(!constant_time_eq("abc", "abcd"));
    assert!(!constant_time_eq("abcd", "abc"));
    assert!(!constant_time_eq("", "a"));
}
