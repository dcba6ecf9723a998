use serde_json::Map;

use super::*;
use crate::record::{Member, TeamRole};
use crate::secret::generate_key;

fn key(token: &str, models: &[&str], user: Option<&str>, team: Option<&str>) -> KeyRecord {
    KeyRecord {
        token: token.to_owned(),
        key_name: "sk-...test".to_owned(),
        key_alias: None,
        models: models.iter().map(|s| (*s).to_owned()).collect(),
        limits: Limits::default(),
        user_id: user.map(str::to_owned),
        team_id: team.map(str::to_owned),
        metadata: Map::new(),
        expires: None,
        blocked: false,
        created_at: 0,
    }
}

fn user(id: &str, role: Role, models: &[&str]) -> UserRecord {
    UserRecord {
        user_id: id.to_owned(),
        user_email: None,
        user_role: role,
        models: models.iter().map(|s| (*s).to_owned()).collect(),
        limits: Limits::default(),
        metadata: Map::new(),
        created_at: 0,
    }
}

fn team(id: &str, models: &[&str], members: Vec<Member>) -> TeamRecord {
    TeamRecord {
        team_id: id.to_owned(),
        team_alias: None,
        models: models.iter().map(|s| (*s).to_owned()).collect(),
        limits: Limits::default(),
        members,
        metadata: Map::new(),
        blocked: false,
        created_at: 0,
    }
}

#[test]
fn authenticate_by_hash_and_refusals() {
    let fresh = generate_key();
    let mut expired = key("x", &[], None, None);
    let expired_key = generate_key();
    expired.token = expired_key.token.clone();
    expired.expires = Some(100);
    let blocked_key = generate_key();
    let mut blocked = key(&blocked_key.token, &[], None, None);
    blocked.blocked = true;
    let dir = Directory::new(
        vec![key(&fresh.token, &[], None, None), expired, blocked],
        vec![],
        vec![],
    );
    assert!(dir.authenticate(&fresh.key, 1000).is_ok());
    assert_eq!(
        dir.authenticate("sk-nope", 0).unwrap_err(),
        Refusal::Unknown
    );
    assert!(dir.authenticate(&expired_key.key, 99).is_ok());
    assert_eq!(
        dir.authenticate(&expired_key.key, 100).unwrap_err(),
        Refusal::Expired
    );
    assert_eq!(
        dir.authenticate(&blocked_key.key, 0).unwrap_err(),
        Refusal::Blocked
    );
}

#[test]
fn model_access_layers() {
    let groups = AccessGroups::new([("beta".to_owned(), "gpt-5".to_owned())]);
    let dir = Directory::new(
        vec![
            key("personal", &[], Some("u"), None),
            key("team-all", &[ALL_TEAM_MODELS], Some("u"), Some("t")),
            key("team-narrow", &["gpt-4o"], Some("u"), Some("t")),
        ],
        vec![user("u", Role::InternalUser, &["gpt-4o-mini"])],
        vec![team("t", &["gpt-4o", "beta"], vec![])],
    );
    let personal = dir.identity("personal").unwrap();
    assert!(personal.may_use("gpt-4o-mini", &groups));
    assert!(!personal.may_use("gpt-4o", &groups));
    let all = dir.identity("team-all").unwrap();
    assert!(all.may_use("gpt-4o", &groups));
    assert!(all.may_use("gpt-5", &groups), "access group via team");
    assert!(
        !all.may_use("gpt-4o-mini", &groups),
        "user list does not apply to team keys"
    );
    let narrow = dir.identity("team-narrow").unwrap();
    assert!(narrow.may_use("gpt-4o", &groups));
    assert!(!narrow.may_use("gpt-5", &groups));
}

#[test]
fn budgets_that_apply() {
    let dir = Directory::new(
        vec![
            key("personal", &[], Some("u"), None),
            key("team", &[], Some("u"), Some("t")),
            key("lonely", &[], None, None),
        ],
        vec![user("u", Role::ProxyAdmin, &[])],
        vec![team(
            "t",
            &[],
            vec![Member {
                user_id: "u".to_owned(),
                role: TeamRole::User,
                max_budget_in_team: Some(5),
            }],
        )],
    );
    let kinds = |token: &str| -> Vec<&'static str> {
        dir.identity(token)
            .unwrap()
            .budgets()
            .iter()
            .map(|(e, _)| e.kind())
            .collect()
    };
    assert_eq!(kinds("personal"), ["key", "user"]);
    assert_eq!(kinds("team"), ["key", "team", "team member"]);
    assert_eq!(kinds("lonely"), ["key"]);
    assert_eq!(dir.identity("personal").unwrap().role(), Role::ProxyAdmin);
    assert_eq!(dir.identity("lonely").unwrap().role(), Role::InternalUser);
}
