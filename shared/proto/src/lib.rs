//! Generated code of the `.proto` files in `proto/` (the source of truth): the admin API
//! `tollgate.admin.v1` (server and client).

#![allow(missing_debug_implementations, clippy::all, reason = "generated code")]

pub mod admin {
    pub mod v1 {
        tonic::include_proto!("tollgate.admin.v1");
    }
}
