use clap::Parser;
use clap::error::ErrorKind;

use super::*;

#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    admin: AdminArgs,
}

fn parse(args: &[&str]) -> Result<AdminArgs, clap::Error> {
    let argv = ["tollgate-admin", "--key", "sk-admin-secret-1"]
        .iter()
        .chain(args);
    Cli::try_parse_from(argv).map(|c| c.admin)
}

fn call_of(args: &[&str]) -> Call {
    call(parse(args).unwrap().what)
}

fn set(n: u64) -> Option<pb::NumberChange> {
    number(Some(n), false)
}

fn cleared() -> Option<pb::NumberChange> {
    number(None, true)
}

#[test]
fn usd_is_exact() {
    assert_eq!(usd("10"), Ok(10_000_000_000));
    assert_eq!(usd("10.5"), Ok(10_500_000_000));
    assert_eq!(usd("0.000000001"), Ok(1));
    assert_eq!(usd(".25"), Ok(250_000_000));
    assert_eq!(usd("18446744073"), Ok(18_446_744_073_000_000_000));
    for bad in [
        "1.0000000001",
        "-1",
        "+1",
        "1e3",
        "abc",
        "",
        ".",
        "1.2.3",
        "18446744074",
    ] {
        assert!(usd(bad).is_err(), "{bad}");
    }
}

#[test]
fn update_sends_only_what_was_given() {
    let Call::UpdateKey(r) = call_of(&["keys", "update", "sk-k", "--no-max-budget", "--rpm", "5"])
    else {
        panic!("not an update");
    };
    assert_eq!(r.key, "sk-k");
    let s = r.settings.unwrap();
    let l = s.limits.unwrap();
    assert_eq!(l.max_budget_nano_usd, cleared(), "--no-max-budget clears");
    assert_eq!(l.rpm_limit, set(5));
    assert_eq!(
        (l.tpm_limit, l.soft_budget_nano_usd),
        (None, None),
        "absent = unchanged"
    );
    assert_eq!((s.key_alias, s.models, s.duration), (None, None, None));

    let Call::UpdateKey(r) = call_of(&["keys", "update", "sk-k", "--max-budget-usd", "0.5"]) else {
        panic!("not an update");
    };
    let l = r.settings.unwrap().limits.unwrap();
    assert_eq!(l.max_budget_nano_usd, set(500_000_000));
}

#[test]
fn generate_carries_every_flag() {
    let Call::GenerateKey(r) = call_of(&[
        "keys",
        "generate",
        "--alias",
        "a",
        "--models",
        "m1,m2",
        "--max-budget-usd",
        "10",
        "--budget-duration",
        "1mo",
        "--tpm",
        "7",
        "--max-parallel",
        "2",
        "--user-id",
        "u",
        "--team-id",
        "t",
        "--duration",
        "30d",
        "--metadata",
        "{\"priority\":2}",
    ]) else {
        panic!("not a generate");
    };
    let s = r.settings.unwrap();
    assert_eq!(s.models.unwrap().values, ["m1", "m2"]);
    assert_eq!(s.key_alias, text(Some("a".into()), false));
    assert_eq!(s.duration, text(Some("30d".into()), false));
    assert_eq!(s.metadata_json.as_deref(), Some("{\"priority\":2}"));
    let l = s.limits.unwrap();
    assert_eq!(l.max_budget_nano_usd, set(10_000_000_000));
    assert_eq!(l.budget_duration, text(Some("1mo".into()), false));
    assert_eq!((l.tpm_limit, l.max_parallel_requests), (set(7), set(2)));
}

#[test]
fn bad_arguments_are_refused_before_anything_is_sent() {
    for (args, kind) in [
        (
            &["keys", "generate", "--max-budget-usd", "lots"][..],
            ErrorKind::ValueValidation,
        ),
        (
            &["keys", "update", "k", "--rpm", "1", "--no-rpm"],
            ErrorKind::ArgumentConflict,
        ),
        (&["usage"], ErrorKind::MissingRequiredArgument),
        (
            &["usage", "--key", "k", "--team", "t"],
            ErrorKind::ArgumentConflict,
        ),
        (&["keys", "delete"], ErrorKind::MissingRequiredArgument),
    ] {
        let err = parse(args).unwrap_err();
        assert_eq!(err.kind(), kind, "{args:?}: {err}");
        assert_eq!(err.exit_code(), 2);
        assert!(!err.to_string().contains("sk-admin-secret-1"));
    }
}

#[test]
fn the_admin_key_never_prints() {
    let args = parse(&["keys", "list"]).unwrap();
    assert!(!format!("{args:?}").contains("sk-admin-secret-1"));
}

#[test]
fn usage_names_one_entity() {
    let Call::GetUsage(r) = call_of(&["usage", "--team", "t", "--from", "2026-11-01"]) else {
        panic!("not usage");
    };
    assert_eq!(
        r.entity,
        Some(pb::get_usage_request::Entity::TeamId("t".into()))
    );
    assert_eq!(r.start_date.as_deref(), Some("2026-11-01"));
}
