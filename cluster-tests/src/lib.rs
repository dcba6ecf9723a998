//! Tests that start real processes: the `tollgate` binary, the `tollgate-mock-provider` binary,
//! and (in later suites) redis-server and several nodes. The binaries are built by the test
//! command before these run (`cargo build --bins`); see `tests/process.rs`.
//!
//! # Layout
//! - `tests/process.rs`: the CLI contract (exit codes, `check` output), SIGTERM drain, secrets
//!   kept out of logs.
//! - `sdk/`: the official OpenAI Python SDK against a running node (pytest).
//! - `bench/`: the benchmark harness (not a test; prints a table).
