use std::sync::Arc;

use http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use tollgate_accounts::{Clock, Directory, Identity, Role};
use tollgate_api::{ApiError, ErrorCode};

use crate::credential::{Presented, credential};
use crate::route::{Access, Route};

/// An authenticated caller.
#[derive(Clone, Debug)]
pub enum Principal {
    /// The configured `general_settings.master_key`.
    MasterKey,
    /// No master key is configured, so authentication is off (LiteLLM's behaviour); the node
    /// warns about it at startup.
    AuthDisabled,
    /// A virtual key (issued by the management API), with its user and team.
    VirtualKey(Identity),
}

impl Principal {
    pub fn role(&self) -> Role {
        match self {
            Self::MasterKey | Self::AuthDisabled => Role::ProxyAdmin,
            Self::VirtualKey(identity) => identity.role(),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role() == Role::ProxyAdmin
    }

    /// The virtual key's identity, if the caller is one.
    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Self::VirtualKey(identity) => Some(identity),
            Self::MasterKey | Self::AuthDisabled => None,
        }
    }
}

/// The outcome of looking at a request's credential.
#[derive(Clone, Debug)]
pub enum Caller {
    /// No key header at all.
    Anonymous,
    /// A key header that is malformed, names no known key, or a refused key; the text says
    /// which without naming the key.
    Invalid(&'static str),
    Authenticated(Principal),
}

/// Turns a request's headers into a [`Caller`]: the master key, or a virtual key looked up by
/// its hash in the [`Directory`].
#[derive(Debug)]
pub struct Authenticator {
    master_key: Option<SecretString>,
    directory: Arc<Directory>,
    clock: Arc<dyn Clock>,
}

impl Authenticator {
    pub fn new(
        master_key: Option<SecretString>,
        directory: Arc<Directory>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            master_key,
            directory,
            clock,
        }
    }

    /// Whether keys are checked at all.
    pub fn enabled(&self) -> bool {
        self.master_key.is_some()
    }

    pub fn authenticate(&self, headers: &HeaderMap) -> Caller {
        let Some(master) = &self.master_key else {
            return Caller::Authenticated(Principal::AuthDisabled);
        };
        match credential(headers) {
            Presented::None => Caller::Anonymous,
            Presented::Malformed => Caller::Invalid(
                "the API key header is malformed (use `Authorization: Bearer <key>`)",
            ),
            Presented::Key(key) if constant_time_eq(key, master.expose_secret()) => {
                Caller::Authenticated(Principal::MasterKey)
            }
            Presented::Key(key) => match self.directory.authenticate(key, self.clock.now()) {
                Ok(identity) => Caller::Authenticated(Principal::VirtualKey(identity)),
                Err(refusal) => Caller::Invalid(refusal.message()),
            },
        }
    }
}

/// Compares without an early exit, so timing does not reveal how much of a key matched.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// Decides whether `caller` may call `route`. The error says what was missing and never
/// echoes the key.
pub fn authorize(route: &Route, caller: &Caller) -> Result<(), ApiError> {
    let principal = match (route.access, caller) {
        (Access::Public, _) => return Ok(()),
        (_, Caller::Anonymous) => {
            return Err(ApiError::new(
                ErrorCode::InvalidApiKey,
                "no API key: send it as `Authorization: Bearer <key>` (or `x-api-key`, `api-key`)",
            ));
        }
        (_, Caller::Invalid(why)) => {
            return Err(ApiError::new(ErrorCode::InvalidApiKey, *why));
        }
        (_, Caller::Authenticated(principal)) => principal,
    };
    match route.access {
        Access::Public | Access::AnyKey => Ok(()),
        Access::Admin if principal.role() == Role::ProxyAdmin => Ok(()),
        Access::Admin => Err(ApiError::new(
            ErrorCode::RouteNotAllowed,
            format!(
                "{} {} needs the proxy_admin role; this key has role {}",
                route.method,
                route.path,
                principal.role().as_str()
            ),
        )),
    }
}

#[cfg(test)]
mod tests;
