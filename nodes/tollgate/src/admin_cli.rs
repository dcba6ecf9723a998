//! `tollgate admin ...`: a client of the gRPC admin API (`proto/admin/v1/admin.proto`).
//!
//! The arguments become one typed [`Call`] before anything is sent, so bad arguments exit with
//! 2 (clap) and never reach the node. The answer is printed as pretty JSON on stdout; errors go
//! to stderr with exit code 1. Amounts are given in USD (`--max-budget-usd 10.5`) and converted
//! exactly to nano-USD, never through a float. The admin key is held as a secret: it is not in
//! `Debug` output, help text or error messages.

use std::convert::Infallible;
use std::time::Duration;

use clap::{Args, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use tollgate_proto::admin::v1 as pb;
use tonic::metadata::MetadataValue;

/// How long to wait for the node to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one admin call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Args, Debug)]
pub(crate) struct AdminArgs {
    /// The admin API of a node (`admin.grpc_listen`).
    #[arg(
        long,
        env = "TOLLGATE_ADMIN_ADDR",
        default_value = "http://127.0.0.1:4002"
    )]
    addr: String,
    /// The master key or a proxy_admin key (never printed).
    #[arg(long, env = "TOLLGATE_ADMIN_KEY", hide_env_values = true, value_parser = secret)]
    key: SecretString,
    #[command(subcommand)]
    what: What,
}

fn secret(text: &str) -> Result<SecretString, Infallible> {
    Ok(SecretString::from(text))
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
    /// Usage rollups of one key, user or team, per model and UTC day.
    Usage {
        #[command(flatten)]
        of: Entity,
        /// First day, YYYY-MM-DD (default: the 30 days up to --to).
        #[arg(long)]
        from: Option<String>,
        /// Last day, YYYY-MM-DD, inclusive (default: today, UTC).
        #[arg(long)]
        to: Option<String>,
    },
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
struct Entity {
    /// A key or its token.
    #[arg(long)]
    key: Option<String>,
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    team: Option<String>,
}

/// Budget and rate-limit flags shared by keys, users and teams. `--no-X` removes limit X;
/// leaving both out leaves it unchanged.
#[derive(Args, Debug, Default)]
struct LimitFlags {
    /// The spend cap per budget period, in USD (e.g. 10 or 0.25).
    #[arg(long, value_name = "USD", value_parser = usd)]
    max_budget_usd: Option<u64>,
    /// Remove the spend cap.
    #[arg(long, conflicts_with = "max_budget_usd")]
    no_max_budget: bool,
    /// The budget period: 30s, 30m, 12h, 1d, 7d, 1mo.
    #[arg(long, value_name = "DURATION")]
    budget_duration: Option<String>,
    /// The budget never resets.
    #[arg(long, conflicts_with = "budget_duration")]
    no_budget_duration: bool,
    /// Crossing it is logged; requests are not refused. In USD.
    #[arg(long, value_name = "USD", value_parser = usd)]
    soft_budget_usd: Option<u64>,
    /// Remove the soft budget.
    #[arg(long, conflicts_with = "soft_budget_usd")]
    no_soft_budget: bool,
    /// Requests per minute.
    #[arg(long)]
    rpm: Option<u64>,
    /// Remove the requests-per-minute limit.
    #[arg(long, conflicts_with = "rpm")]
    no_rpm: bool,
    /// Tokens per minute.
    #[arg(long)]
    tpm: Option<u64>,
    /// Remove the tokens-per-minute limit.
    #[arg(long, conflicts_with = "tpm")]
    no_tpm: bool,
    /// Requests in flight at once.
    #[arg(long)]
    max_parallel: Option<u64>,
    /// Remove the in-flight limit.
    #[arg(long, conflicts_with = "max_parallel")]
    no_max_parallel: bool,
}

/// `--models a,b` and `--all-models`, shared by keys, users and teams.
#[derive(Args, Debug, Default)]
struct ModelFlags {
    /// Comma-separated model names, wildcards or access groups.
    #[arg(long, value_delimiter = ',')]
    models: Option<Vec<String>>,
    /// Allow every model (an empty list).
    #[arg(long, conflicts_with = "models")]
    all_models: bool,
}

#[derive(Args, Debug, Default)]
struct KeyFlags {
    #[arg(long)]
    alias: Option<String>,
    #[command(flatten)]
    models: ModelFlags,
    #[command(flatten)]
    limits: LimitFlags,
    #[arg(long)]
    user_id: Option<String>,
    #[arg(long)]
    team_id: Option<String>,
    /// The key expires this long from now: 30d, 12h, ...
    #[arg(long)]
    duration: Option<String>,
    /// The key never expires.
    #[arg(long, conflicts_with = "duration")]
    no_expiry: bool,
    /// A JSON object replacing the metadata, e.g. '{"priority": 2}'.
    #[arg(long, value_name = "JSON")]
    metadata: Option<String>,
    #[arg(long)]
    blocked: Option<bool>,
}

#[derive(Subcommand, Debug)]
enum Keys {
    /// Issue a key; the key is printed once.
    Generate(KeyFlags),
    /// A key's settings, spend and limits.
    Info {
        /// The key or its token.
        key: String,
    },
    List {
        #[arg(long)]
        user_id: Option<String>,
        #[arg(long)]
        team_id: Option<String>,
        #[arg(long)]
        alias: Option<String>,
    },
    /// Change the given settings; the others stay as they are.
    Update {
        /// The key or its token.
        key: String,
        #[command(flatten)]
        flags: KeyFlags,
    },
    Delete {
        /// Keys or tokens.
        #[arg(required_unless_present = "alias")]
        keys: Vec<String>,
        /// Also delete every key with this alias (repeatable).
        #[arg(long)]
        alias: Vec<String>,
    },
}

#[derive(Args, Debug, Default)]
struct UserFlags {
    #[arg(long)]
    email: Option<String>,
    /// proxy_admin or internal_user
    #[arg(long)]
    role: Option<String>,
    #[command(flatten)]
    models: ModelFlags,
    #[command(flatten)]
    limits: LimitFlags,
    /// A JSON object replacing the metadata.
    #[arg(long, value_name = "JSON")]
    metadata: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Users {
    /// Create a user and (unless --no-key) a key for it.
    Create {
        /// Generated when absent.
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
    /// Delete users and their keys.
    Delete {
        #[arg(required = true)]
        user_ids: Vec<String>,
    },
}

#[derive(Args, Debug, Default)]
struct TeamFlags {
    #[arg(long)]
    alias: Option<String>,
    #[command(flatten)]
    models: ModelFlags,
    #[command(flatten)]
    limits: LimitFlags,
    /// A JSON object replacing the metadata, e.g. '{"priority": 2}'.
    #[arg(long, value_name = "JSON")]
    metadata: Option<String>,
    #[arg(long)]
    blocked: Option<bool>,
}

#[derive(Subcommand, Debug)]
enum Teams {
    Create {
        /// Generated when absent.
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
    /// Delete teams and their keys.
    Delete {
        #[arg(required = true)]
        team_ids: Vec<String>,
    },
    /// Add a member, or change an existing member's role and budget.
    AddMember {
        team_id: String,
        user_id: String,
        /// admin or user
        #[arg(long, default_value = "user")]
        role: String,
        /// The member's budget inside the team, in USD.
        #[arg(long, value_name = "USD", value_parser = usd)]
        max_budget_usd: Option<u64>,
    },
    RemoveMember {
        team_id: String,
        #[arg(required = true)]
        user_ids: Vec<String>,
    },
}

/// `10.5` USD → 10_500_000_000 nano-USD, exactly (at most nine decimals).
fn usd(text: &str) -> Result<u64, String> {
    let bad = || format!("`{text}` is not an amount of USD like 10 or 0.25");
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || frac.len() > 9 || !digits(whole) || !digits(frac) {
        return Err(bad());
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let frac: u64 = format!("{frac:0<9}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(frac))
        .ok_or_else(bad)
}

fn number(set: Option<u64>, clear: bool) -> Option<pb::NumberChange> {
    use pb::number_change::Change;
    let change = if clear {
        Some(Change::Clear(true))
    } else {
        set.map(Change::Set)
    };
    change.map(|c| pb::NumberChange { change: Some(c) })
}

fn text(set: Option<String>, clear: bool) -> Option<pb::TextChange> {
    use pb::text_change::Change;
    let change = if clear {
        Some(Change::Clear(true))
    } else {
        set.map(Change::Set)
    };
    change.map(|c| pb::TextChange { change: Some(c) })
}

fn limits(f: LimitFlags) -> Option<pb::LimitChanges> {
    Some(pb::LimitChanges {
        max_budget_nano_usd: number(f.max_budget_usd, f.no_max_budget),
        budget_duration: text(f.budget_duration, f.no_budget_duration),
        soft_budget_nano_usd: number(f.soft_budget_usd, f.no_soft_budget),
        rpm_limit: number(f.rpm, f.no_rpm),
        tpm_limit: number(f.tpm, f.no_tpm),
        max_parallel_requests: number(f.max_parallel, f.no_max_parallel),
    })
}

fn models(f: ModelFlags) -> Option<pb::StringList> {
    if f.all_models {
        return Some(pb::StringList::default());
    }
    f.models.map(|list| pb::StringList {
        values: list.into_iter().filter(|m| !m.is_empty()).collect(),
    })
}

fn key_settings(f: KeyFlags) -> Option<pb::KeySettings> {
    Some(pb::KeySettings {
        key_alias: text(f.alias, false),
        models: models(f.models),
        limits: limits(f.limits),
        user_id: text(f.user_id, false),
        team_id: text(f.team_id, false),
        metadata_json: f.metadata,
        expires: None,
        duration: text(f.duration, f.no_expiry),
        blocked: f.blocked,
    })
}

fn user_settings(f: UserFlags) -> Option<pb::UserSettings> {
    Some(pb::UserSettings {
        user_email: text(f.email, false),
        user_role: f.role,
        models: models(f.models),
        limits: limits(f.limits),
        metadata_json: f.metadata,
    })
}

fn team_settings(f: TeamFlags) -> Option<pb::TeamSettings> {
    Some(pb::TeamSettings {
        team_alias: text(f.alias, false),
        models: models(f.models),
        limits: limits(f.limits),
        metadata_json: f.metadata,
        blocked: f.blocked,
    })
}

/// One admin call, fully built from the arguments.
#[derive(Debug)]
enum Call {
    GenerateKey(pb::GenerateKeyRequest),
    GetKey(pb::GetKeyRequest),
    ListKeys(pb::ListKeysRequest),
    UpdateKey(pb::UpdateKeyRequest),
    DeleteKeys(pb::DeleteKeysRequest),
    CreateUser(pb::CreateUserRequest),
    GetUser(pb::GetUserRequest),
    UpdateUser(pb::UpdateUserRequest),
    DeleteUsers(pb::DeleteUsersRequest),
    CreateTeam(pb::CreateTeamRequest),
    GetTeam(pb::GetTeamRequest),
    UpdateTeam(pb::UpdateTeamRequest),
    DeleteTeams(pb::DeleteTeamsRequest),
    AddTeamMembers(pb::AddTeamMembersRequest),
    RemoveTeamMembers(pb::RemoveTeamMembersRequest),
    GetUsage(pb::GetUsageRequest),
}

fn keys_call(keys: Keys) -> Call {
    match keys {
        Keys::Generate(flags) => Call::GenerateKey(pb::GenerateKeyRequest {
            key: None,
            settings: key_settings(flags),
        }),
        Keys::Info { key } => Call::GetKey(pb::GetKeyRequest { key }),
        Keys::List {
            user_id,
            team_id,
            alias,
        } => Call::ListKeys(pb::ListKeysRequest {
            user_id,
            team_id,
            key_alias: alias,
        }),
        Keys::Update { key, flags } => Call::UpdateKey(pb::UpdateKeyRequest {
            key,
            settings: key_settings(flags),
        }),
        Keys::Delete { keys, alias } => Call::DeleteKeys(pb::DeleteKeysRequest {
            keys,
            key_aliases: alias,
        }),
    }
}

fn users_call(users: Users) -> Call {
    match users {
        Users::Create {
            user_id,
            flags,
            no_key,
        } => Call::CreateUser(pb::CreateUserRequest {
            user_id,
            settings: user_settings(flags),
            auto_create_key: Some(!no_key),
        }),
        Users::Info { user_id } => Call::GetUser(pb::GetUserRequest { user_id }),
        Users::Update { user_id, flags } => Call::UpdateUser(pb::UpdateUserRequest {
            user_id,
            settings: user_settings(flags),
        }),
        Users::Delete { user_ids } => Call::DeleteUsers(pb::DeleteUsersRequest { user_ids }),
    }
}

fn teams_call(teams: Teams) -> Call {
    match teams {
        Teams::Create { team_id, flags } => Call::CreateTeam(pb::CreateTeamRequest {
            team_id,
            settings: team_settings(flags),
            members: vec![],
        }),
        Teams::Info { team_id } => Call::GetTeam(pb::GetTeamRequest { team_id }),
        Teams::Update { team_id, flags } => Call::UpdateTeam(pb::UpdateTeamRequest {
            team_id,
            settings: team_settings(flags),
        }),
        Teams::Delete { team_ids } => Call::DeleteTeams(pb::DeleteTeamsRequest { team_ids }),
        Teams::AddMember {
            team_id,
            user_id,
            role,
            max_budget_usd,
        } => Call::AddTeamMembers(pb::AddTeamMembersRequest {
            team_id,
            members: vec![pb::Member {
                user_id,
                role,
                max_budget_in_team_nano_usd: max_budget_usd,
            }],
        }),
        Teams::RemoveMember { team_id, user_ids } => {
            Call::RemoveTeamMembers(pb::RemoveTeamMembersRequest { team_id, user_ids })
        }
    }
}

fn call(what: What) -> Call {
    match what {
        What::Keys(keys) => keys_call(keys),
        What::Users(users) => users_call(users),
        What::Teams(teams) => teams_call(teams),
        What::Usage { of, from, to } => {
            use pb::get_usage_request::Entity as E;
            // clap lets exactly one through.
            let entity = (of.key.map(E::Key))
                .or(of.user.map(E::UserId))
                .or(of.team.map(E::TeamId));
            Call::GetUsage(pb::GetUsageRequest {
                entity,
                start_date: from,
                end_date: to,
            })
        }
    }
}

type Client = pb::admin_client::AdminClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>,
    >,
>;

async fn connect(addr: &str, key: &SecretString) -> anyhow::Result<Client> {
    let channel = tonic::transport::Endpoint::from_shared(addr.to_owned())
        .map_err(|_| anyhow::anyhow!("--addr {addr} is not a URL like http://127.0.0.1:4002"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the admin API at {addr}: {}", root_cause(&e)))?;
    let mut bearer: MetadataValue<_> = format!("Bearer {}", key.expose_secret())
        .parse()
        .map_err(|_| anyhow::anyhow!("the admin key contains characters a header cannot carry"))?;
    bearer.set_sensitive(true);
    Ok(pb::admin_client::AdminClient::with_interceptor(
        channel,
        Box::new(move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", bearer.clone());
            Ok(r)
        }),
    ))
}

/// The innermost error says what happened ("Connection refused"); tonic's outer layers repeat
/// it.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut e = e;
    while let Some(source) = e.source() {
        e = source;
    }
    e.to_string()
}

/// Runs one admin command; the JSON answer on success.
pub(crate) async fn run(args: AdminArgs) -> anyhow::Result<String> {
    let call = call(args.what);
    let mut client = connect(&args.addr, &args.key).await?;
    match call {
        Call::GenerateKey(r) => json(client.generate_key(r).await),
        Call::GetKey(r) => json(client.get_key(r).await),
        Call::ListKeys(r) => json(client.list_keys(r).await),
        Call::UpdateKey(r) => json(client.update_key(r).await),
        Call::DeleteKeys(r) => json(client.delete_keys(r).await),
        Call::CreateUser(r) => json(client.create_user(r).await),
        Call::GetUser(r) => json(client.get_user(r).await),
        Call::UpdateUser(r) => json(client.update_user(r).await),
        Call::DeleteUsers(r) => json(client.delete_users(r).await),
        Call::CreateTeam(r) => json(client.create_team(r).await),
        Call::GetTeam(r) => json(client.get_team(r).await),
        Call::UpdateTeam(r) => json(client.update_team(r).await),
        Call::DeleteTeams(r) => json(client.delete_teams(r).await),
        Call::AddTeamMembers(r) => json(client.add_team_members(r).await),
        Call::RemoveTeamMembers(r) => json(client.remove_team_members(r).await),
        Call::GetUsage(r) => json(client.get_usage(r).await),
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
mod tests;
