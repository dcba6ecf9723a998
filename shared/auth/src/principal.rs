use http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use tollgate_api::{ApiError, ErrorCode};

use crate::credential::{Presented, credential};
use crate::route::{Access, Route};

/// A role, as LiteLLM names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    ProxyAdmin,
    InternalUser,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProxyAdmin => "proxy_admin",
            Self::InternalUser => "internal_user",
        }
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The configured `general_settings.master_key`.
    MasterKey,
    /// No master key is configured, so authentication is off (LiteLLM's behaviour); the node
    /// warns about it at startup.
    AuthDisabled,
    /// A virtual key (issued by the management API).
    VirtualKey { role: Role },
}

impl Principal {
    pub fn role(&self) -> Role {
        match self {
            Self::MasterKey | Self::AuthDisabled => Role::ProxyAdmin,
            Self::VirtualKey { role } => *role,
        }
    }
}

/// The outcome of looking at a request's credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// No key header at all.
    Anonymous,
    /// A key header that is malformed or names no known key.
    Invalid,
    Authenticated(Principal),
}

/// Turns a request's headers into a [`Caller`].
#[derive(Debug)]
pub struct Authenticator {
    master_key: Option<SecretString>,
}

impl Authenticator {
    pub fn new(master_key: Option<SecretString>) -> Self {
        Self { master_key }
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
            Presented::Malformed => Caller::Invalid,
            Presented::Key(key) if constant_time_eq(key, master.expose_secret()) => {
                Caller::Authenticated(Principal::MasterKey)
            }
            Presented::Key(_) => Caller::Invalid,
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
        (_, Caller::Invalid) => {
            return Err(ApiError::new(
                ErrorCode::InvalidApiKey,
                "the API key is not valid (unknown, malformed, expired or blocked)",
            ));
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
