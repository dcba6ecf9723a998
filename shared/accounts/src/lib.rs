//! Who may spend what: virtual keys, users, teams and team members as records, the roles they
//! carry, which models each may use, and the in-memory [`Directory`] the node authenticates
//! against.
//!
//! Records are plain data shared by every face of the management API (HTTP, gRPC, CLI) and by
//! the store; money in them is integer nano-USD. Only a key's SHA-256 hash (its `token`) is ever
//! stored; the key itself is shown once, when it is generated.
//!
//! # Layout
//! - `record`: [`KeyRecord`], [`UserRecord`], [`TeamRecord`], [`Member`], [`Limits`], [`Role`].
//! - `entity`: [`EntityId`], the budget-holding entities a request is admitted against.
//! - `access`: model access (`models` lists, wildcards, access groups, `all-team-models`).
//! - `directory`: [`Directory`] (hash → key, users, teams) and [`Identity`] (a resolved caller).
//! - `secret`: key generation and hashing.
//! - `clock`: [`Clock`], the one source of "now" (injectable for tests).

mod access;
mod clock;
mod directory;
mod entity;
mod record;
mod secret;

pub use access::{ALL_TEAM_MODELS, AccessGroups};
pub use clock::{Clock, ManualClock, SystemClock};
pub use directory::{Directory, Identity, Refusal};
pub use entity::EntityId;
pub use record::{KeyRecord, Limits, Member, Role, TeamRecord, TeamRole, UserRecord};
pub use secret::{NewKey, generate_key, hash_key, key_name};
