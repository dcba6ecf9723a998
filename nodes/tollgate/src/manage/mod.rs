//! Management: keys, users, teams and usage. One service layer ([`Service`]) holds the rules;
//! the LiteLLM-compatible HTTP routes (`http`) and the gRPC admin API are thin faces over it.
//!
//! Every mutation writes the store first (durably) and then the in-memory directory, so what a
//! caller was told exists survives a crash. Budget changes reach the entity actors with the
//! next request (each admission carries the current limits).

pub(crate) mod grpc;
mod http;
mod input;
mod service;
mod view;

pub(crate) use http::handle;
pub(crate) use service::Service;
