use std::fmt;
use std::sync::Arc;

/// A budget-holding entity: each has its own ledger, rate windows and actor.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityId {
    /// A virtual key, by token (hash).
    Key(Arc<str>),
    User(Arc<str>),
    Team(Arc<str>),
    /// A user's budget inside a team.
    Member {
        team: Arc<str>,
        user: Arc<str>,
    },
}

impl EntityId {
    /// The entity's name in storage and logs (`key:<token>`, `user:<id>`, `team:<id>`,
    /// `member:<len>:<team>/<user>`). Unambiguous: ids can't make one kind look like another.
    pub fn storage_key(&self) -> String {
        self.to_string()
    }

    /// The kind, for messages: `key`, `user`, `team`, `team member`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Key(_) => "key",
            Self::User(_) => "user",
            Self::Team(_) => "team",
            Self::Member { .. } => "team member",
        }
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key(token) => write!(f, "key:{token}"),
            Self::User(id) => write!(f, "user:{id}"),
            Self::Team(id) => write!(f, "team:{id}"),
            // The team id's length keeps `a/b` + `c` distinct from `a` + `b/c`.
            Self::Member { team, user } => write!(f, "member:{}:{team}/{user}", team.len()),
        }
    }
}
