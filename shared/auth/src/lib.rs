//! Who is calling and what they may call.
//!
//! Authorization is ONE table ([`ROUTES`]): every route the node serves is a row keyed by method
//! and path pattern, naming what it is and who may call it. Anything not in the table is denied
//! (404/405 before any credential is looked at). LiteLLM kept route permissions as several
//! hand-maintained string lists that disagreed with each other; here a route cannot exist
//! without its access rule.
//!
//! # Layout
//! - `route`: the table ([`ROUTES`]), [`RouteId`], [`Access`] and the matcher [`RouteTable`].
//! - `credential`: reading a key from any of the accepted headers.
//! - `principal`: [`Authenticator`] (credential → [`Caller`]) and [`authorize`] (caller × access).
//! - `passthrough`: the rows of config-defined pass-through endpoints, joined to the table at
//!   startup with [`RouteTable::with_extra`].

mod credential;
mod passthrough;
mod principal;
mod route;

pub use credential::{KEY_HEADERS, credential};
pub use passthrough::{PASS_THROUGH_METHODS, pass_through_routes};
pub use principal::{Authenticator, Caller, Principal, authorize};
pub use route::{
    Access, Manage, Matched, ROUTES, Route, RouteConflict, RouteId, RouteTable, metrics_route,
};
pub use tollgate_accounts::{Identity, Role};
