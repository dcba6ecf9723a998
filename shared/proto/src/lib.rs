//! Generated code of the `.proto` files in `proto/` (the source of truth), compiled at build
//! time by protox and tonic-prost-build (no `protoc` binary needed). Every message also derives
//! `serde::Serialize`, so `tollgate admin` can print answers as JSON.
//!
//! # Layout
//! - `admin::v1`: `tollgate.admin.v1`, the admin API: its messages, `admin_server` (served by
//!   each node) and `admin_client` (used by `tollgate admin`).

#![allow(missing_debug_implementations, clippy::all, reason = "generated code")]

pub mod admin {
    pub mod v1 {
        tonic::include_proto!("tollgate.admin.v1");
    }
}
