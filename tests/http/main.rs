//! HTTP integration suite: the real app over loopback HTTP, once on SQLite
//! and once on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
pub mod common;

mod assess;
mod auth_keys;
mod blocklists;
mod candidates;
mod cases;
mod cli;
mod containment;
mod group_commit;
mod idempotency;
mod nodes;
mod payin;
mod pipeline;
mod rules;
mod validation;
mod webhooks;
mod wire;
