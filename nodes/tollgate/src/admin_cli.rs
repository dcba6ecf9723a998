//! `tollgate admin ...`: a client of the gRPC admin API. Prints the answer as JSON on stdout;
//! errors go to stderr with exit code 1. Amounts are given in USD (`--max-budget-usd 10.5`)
//! and converted exactly to nano-USD, never through a float.

use clap::{Args, Subcommand};
use tollgate_proto::admin::v1 as pb;
use tonic::metadata::MetadataValue;

#[derive(Args, Debug)]
pub(crate) struct AdminArgs {
    /// The admin API of a node.
    #[arg(
        long,
        env = "TOLLGATE_ADMIN_ADDR",
        default_value = "http://127.0.0.1:4002"
    )]
    addr: String,
    /// The master key or a proxy_admin key (never printed).
    #[arg(long, env = "TOLLGATE_ADMIN_KEY", hide_env_values = true)]
    key: String,
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand, Debug)]
enum What {
    /// Virtual keys.
    #[command(subcommand)]
    Keys(Keys),
    /// Users.
    #[command(subcommand)]
    Users(Users),
    /// Teams.
    #[command(subcommand)]
    Teams(Teams),
    /// Usage rollups of one key, user or team.
    Usage {
        #[arg(long, group = "entity")]
        key: Option<String>,
        #[arg(long, group = "entity")]
        user: Option<String>,
        #[arg(long, group = "entity")]
        team: Option<String>,
        /// YYYY-MM-DD
        #[arg(long)]
        from: Option<String>,
        /// YYYY-MM-DD
        #[arg(long)]
        to: Option<String>,
    },
}

/// Budget and rate-limit flags shared by keys, users and teams.
#[derive(Args, Debug, Default)]
struct LimitFlags {
    #[arg(long)]
    max_budget_usd: Option<String>,
    /// Remove the budget limit.
    #[arg(long, conflicts_with = "max_budget_usd")]
    no_max_budget: bool,
    /// 30s, 30m, 12h, 1d, 7d, 1mo
    #[arg(long)]
    budget_duration: Option<String>,
    #[arg(long)]
    soft_budget_usd: Option<String>,
    #[arg(long)]
    rpm: Option<u64>,
    #[arg(long)]
    tpm: Option<u64>,
    #[arg(long)]
    max_parallel: Option<u64>,
}

#[derive(Args, Debug, Default)]
struct KeyFlags {
    #[arg(long)]
    alias: Option<String>,
    /// Comma-separated model names, wildcards or access groups.
    #[arg(long, value_delimiter = ',')]
    models: Option<Vec<String>>,
    #[command(flatten)]
    limits: LimitFlags,
    #[arg(long)]
    user_id: Option<String>,
    #[arg(long)]
    team_id: Option<String>,
    /// A relative expiry such as 30d.
    #[arg(long)]
    duration: Option<String>,
    #[arg(long)]
    blocked: Option<bool>,
}

#[derive(Subcommand, Debug)]
enum Keys {
    Generate(KeyFlags),
    Info {
        key: String,
    },
    List {
        #[arg(long)]
        user_id: Option<String>,
        #[arg(long)]
        team_id: Option<String>,
    },
    Update {
        key: String,
        #[command(flatten)]
        flags: KeyFlags,
    },
    Delete {
        keys: Vec<String>,
    },
}

#[derive(Args, Debug, Default)]
struct UserFlags {
    #[arg(long)]
    email: Option<String>,
    /// proxy_admin or internal_user
    #[arg(long)]
    role: Option<String>,
    #[arg(long, value_delimiter = ',')]
    models: Option<Vec<String>>,
    #[command(flatten)]
    limits: LimitFlags,
}

#[derive(Subcommand, Debug)]
enum Users {
    Create {
        #[arg(long)]
        user_id: Option<String>,
        #[command(flatten)]
        flags: UserFlags,
        /// Do not issue a key for the user.
        #[arg(long)]
        no_key: bool,
    },
    Info {
        user_id: String,
    },
    Update {
        user_id: String,
        #[command(flatten)]
        flags: UserFlags,
    },
    Delete {
        user_ids: Vec<String>,
    },
}

#[derive(Args, Debug, Default)]
struct TeamFlags {
    #[arg(long)]
    alias: Option<String>,
    #[arg(long, value_delimiter = ',')]
    models: Option<Vec<String>>,
    #[command(flatten)]
    limits: LimitFlags,
    #[arg(long)]
    blocked: Option<bool>,
}

#[derive(Subcommand, Debug)]
enum Teams {
    Create {
        #[arg(long)]
        team_id: Option<String>,
        #[command(flatten)]
        flags: TeamFlags,
    },
    Info {
        team_id: String,
    },
    Update {
        team_id: String,
        #[command(flatten)]
        flags: TeamFlags,
    },
    Delete {
        team_ids: Vec<String>,
    },
    AddMember {
        team_id: String,
        user_id: String,
        /// admin or user
        #[arg(long, default_value = "user")]
        role: String,
        #[arg(long)]
        max_budget_usd: Option<String>,
    },
    RemoveMember {
        team_id: String,
        user_id: String,
    },
}

/// `10.5` USD → 10_500_000_000 nano-USD, exactly.
fn usd(text: &str) -> anyhow::Result<u64> {
    let bad = || anyhow::anyhow!("`{text}` is not an amount of USD like 10 or 0.25");
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && frac.is_empty() || frac.len() > 9 {
        return Err(bad());
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let frac: u64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    whole
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(frac))
        .ok_or_else(bad)
}

fn set_number(n: u64) -> Option<pb::NumberChange> {
    Some(pb::NumberChange {
        change: Some(pb::number_change::Change::Set(n)),
    })
}

fn set_text(s: Option<String>) -> Option<pb::TextChange> {
    s.map(|s| pb::TextChange {
        change: Some(pb::text_change::Change::Set(s)),
    })
}

fn limits(f: LimitFlags) -> anyhow::Result<pb::LimitChanges> {
    let max_budget = if f.no_max_budget {
        Some(pb::NumberChange {
            change: Some(pb::number_change::Change::Clear(true)),
        })
    } else {
        f.max_budget_usd
            .as_deref()
            .map(usd)
            .transpose()?
            .and_then(set_number)
    };
    Ok(pb::LimitChanges {
        max_budget_nano_usd: max_budget,
        budget_duration: set_text(f.budget_duration),
        soft_budget_nano_usd: f
            .soft_budget_usd
            .as_deref()
            .map(usd)
            .transpose()?
            .and_then(set_number),
        rpm_limit: f.rpm.and_then(set_number),
        tpm_limit: f.tpm.and_then(set_number),
        max_parallel_requests: f.max_parallel.and_then(set_number),
    })
}

fn key_settings(f: KeyFlags) -> anyhow::Result<pb::KeySettings> {
    Ok(pb::KeySettings {
        key_alias: set_text(f.alias),
        models: f.models.map(|values| pb::StringList { values }),
        limits: Some(limits(f.limits)?),
        user_id: set_text(f.user_id),
        team_id: set_text(f.team_id),
        metadata_json: None,
        expires: None,
        duration: set_text(f.duration),
        blocked: f.blocked,
    })
}

fn user_settings(f: UserFlags) -> anyhow::Result<pb::UserSettings> {
    Ok(pb::UserSettings {
        user_email: set_text(f.email),
        user_role: f.role,
        models: f.models.map(|values| pb::StringList { values }),
        limits: Some(limits(f.limits)?),
        metadata_json: None,
    })
}

fn team_settings(f: TeamFlags) -> anyhow::Result<pb::TeamSettings> {
    Ok(pb::TeamSettings {
        team_alias: set_text(f.alias),
        models: f.models.map(|values| pb::StringList { values }),
        limits: Some(limits(f.limits)?),
        metadata_json: None,
        blocked: f.blocked,
    })
}

/// Runs one admin command; the JSON answer on success.
pub(crate) async fn run(args: AdminArgs) -> anyhow::Result<String> {
    let channel = tonic::transport::Endpoint::from_shared(args.addr.clone())
        .map_err(|_| anyhow::anyhow!("--addr {} is not a URL like http://host:4002", args.addr))?
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the admin API at {}: {e}", args.addr))?;
    let bearer: MetadataValue<_> = format!("Bearer {}", args.key)
        .parse()
        .map_err(|_| anyhow::anyhow!("the key contains characters a header cannot carry"))?;
    let mut client = pb::admin_client::AdminClient::with_interceptor(
        channel,
        move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", bearer.clone());
            Ok(r)
        },
    );
    match args.what {
        What::Keys(Keys::Generate(flags)) => json(
            client
                .generate_key(pb::GenerateKeyRequest {
                    key: None,
                    settings: Some(key_settings(flags)?),
                })
                .await,
        ),
        What::Keys(Keys::Info { key }) => json(client.get_key(pb::GetKeyRequest { key }).await),
        What::Keys(Keys::List { user_id, team_id }) => json(
            client
                .list_keys(pb::ListKeysRequest {
                    user_id,
                    team_id,
                    key_alias: None,
                })
                .await,
        ),
        What::Keys(Keys::Update { key, flags }) => json(
            client
                .update_key(pb::UpdateKeyRequest {
                    key,
                    settings: Some(key_settings(flags)?),
                })
                .await,
        ),
        What::Keys(Keys::Delete { keys }) => json(
            client
                .delete_keys(pb::DeleteKeysRequest {
                    keys,
                    key_aliases: vec![],
                })
                .await,
        ),
        What::Users(Users::Create {
            user_id,
            flags,
            no_key,
        }) => json(
            client
                .create_user(pb::CreateUserRequest {
                    user_id,
                    settings: Some(user_settings(flags)?),
                    auto_create_key: Some(!no_key),
                })
                .await,
        ),
        What::Users(Users::Info { user_id }) => {
            json(client.get_user(pb::GetUserRequest { user_id }).await)
        }
        What::Users(Users::Update { user_id, flags }) => json(
            client
                .update_user(pb::UpdateUserRequest {
                    user_id,
                    settings: Some(user_settings(flags)?),
                })
                .await,
        ),
        What::Users(Users::Delete { user_ids }) => json(
            client
                .delete_users(pb::DeleteUsersRequest { user_ids })
                .await,
        ),
        What::Teams(Teams::Create { team_id, flags }) => json(
            client
                .create_team(pb::CreateTeamRequest {
                    team_id,
                    settings: Some(team_settings(flags)?),
                    members: vec![],
                })
                .await,
        ),
        What::Teams(Teams::Info { team_id }) => {
            json(client.get_team(pb::GetTeamRequest { team_id }).await)
        }
        What::Teams(Teams::Update { team_id, flags }) => json(
            client
                .update_team(pb::UpdateTeamRequest {
                    team_id,
                    settings: Some(team_settings(flags)?),
                })
                .await,
        ),
        What::Teams(Teams::Delete { team_ids }) => json(
            client
                .delete_teams(pb::DeleteTeamsRequest { team_ids })
                .await,
        ),
        What::Teams(Teams::AddMember {
            team_id,
            user_id,
            role,
            max_budget_usd,
        }) => json(
            client
                .add_team_members(pb::AddTeamMembersRequest {
                    team_id,
                    members: vec![pb::Member {
                        user_id,
                        role,
                        max_budget_in_team_nano_usd: max_budget_usd
                            .as_deref()
                            .map(usd)
                            .transpose()?,
                    }],
                })
                .await,
        ),
        What::Teams(Teams::RemoveMember { team_id, user_id }) => json(
            client
                .remove_team_members(pb::RemoveTeamMembersRequest {
                    team_id,
                    user_ids: vec![user_id],
                })
                .await,
        ),
        What::Usage {
            key,
            user,
            team,
            from,
            to,
        } => {
            let entity = match (key, user, team) {
                (Some(k), _, _) => pb::get_usage_request::Entity::Key(k),
                (_, Some(u), _) => pb::get_usage_request::Entity::UserId(u),
                (_, _, Some(t)) => pb::get_usage_request::Entity::TeamId(t),
                _ => anyhow::bail!("give --key, --user or --team"),
            };
            json(
                client
                    .get_usage(pb::GetUsageRequest {
                        entity: Some(entity),
                        start_date: from,
                        end_date: to,
                    })
                    .await,
            )
        }
    }
}

fn json<T: serde::Serialize>(
    answer: Result<tonic::Response<T>, tonic::Status>,
) -> anyhow::Result<String> {
    match answer {
        Ok(response) => Ok(serde_json::to_string_pretty(response.get_ref())?),
        Err(status) => Err(anyhow::anyhow!("{:?}: {}", status.code(), status.message())),
    }
}

#[cfg(test)]
mod tests {
    use super::usd;

    #[test]
    fn usd_is_exact() {
        assert_eq!(usd("10").unwrap(), 10_000_000_000);
        assert_eq!(usd("10.5").unwrap(), 10_500_000_000);
        assert_eq!(usd("0.000000001").unwrap(), 1);
        assert_eq!(usd(".25").unwrap(), 250_000_000);
        assert!(usd("1.0000000001").is_err());
        assert!(usd("-1").is_err());
        assert!(usd("abc").is_err());
        assert!(usd("").is_err());
    }
}
