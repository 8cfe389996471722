//! # aduana host
//!
//! The aduana service: start-up (`startup`: builds the services and serves;
//! nothing imports it), the HTTP API (`api`: router state, handlers, the
//! connection loop), the tenant rules service (`registry`: uploaded
//! components and per-tenant pipelines), replay and backtest (`replay`), the
//! assess pipeline (`pipeline`), the sandboxed Wasm rule runtime (`runtime`,
//! the only module that touches wasmtime), storage (`store`, the only
//! module with SQL) and the domain newtypes (`domain`). Dependencies flow
//! one way, without loops between files: startup → api → registry / replay
//! → pipeline → runtime / store → domain.
//!
//! What it is not: a rule SDK (see `aduana-guest-sdk`) or a rule (see
//! `rules/`).
pub mod api;
pub mod assess;
pub mod blocklists;
pub mod builtins;
pub mod cases;
pub mod config;
pub mod domain;
pub mod events;
pub mod flows;
pub mod keys;
pub mod pipeline;
pub mod registry;
pub mod replay;
pub mod runtime;
pub mod secrets;
pub mod startup;
pub mod store;
pub mod tasks;
pub mod webhooks;

pub use api::App;
pub use config::Config;
pub use startup::Server;
