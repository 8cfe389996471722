//! # aduana host
//!
//! The aduana service: the HTTP API (`api`), the assess pipeline
//! (`pipeline`), the sandboxed Wasm rule runtime (`runtime`, the only module
//! that touches wasmtime), storage (`store`, the only module with SQL) and
//! the domain newtypes (`domain`), and the tenant-rule registry
//! (`registry`: uploaded components and per-tenant pipelines). Dependencies
//! flow one way: api → registry → pipeline → runtime / store.
//!
//! What it is not: a rule SDK (see `aduana-guest-sdk`) or a rule (see
//! `rules/`).
pub mod api;
pub mod app;
pub mod builtins;
pub mod config;
pub mod domain;
pub mod pipeline;
pub mod registry;
pub mod replay;
pub mod runtime;
pub mod store;

pub use app::{App, Server};
pub use config::Config;
