//! The router's state: the services built at start-up (`startup.rs`) and
//! this node's HTTP-side caches. Handlers and extractors take the part they
//! use through `FromRef`.
use std::sync::Arc;

use axum::extract::FromRef;

use super::{auth::AuthCache, ratelimit::RateLimits};
use crate::{
    assess::Assessor, cases::Cases, config::Config, registry::TenantRules, runtime::Runtime,
    store::Store, webhooks::Webhooks,
};

/// Shared state of a running service.
#[derive(Clone)]
pub struct App {
    pub store: Store,
    pub runtime: Arc<Runtime>,
    pub config: Arc<Config>,
    /// Built-in and tenant rules, and each tenant's compiled pipeline.
    pub rules: Arc<TenantRules>,
    pub(crate) auth_cache: Arc<AuthCache>,
    pub(crate) rate_limits: Arc<RateLimits>,
    /// The assess use case, for every flow.
    pub assessor: Arc<Assessor>,
    /// Webhook endpoints, the event feed (the worker runs under the
    /// supervisor).
    pub webhooks: Webhooks,
    /// Cases, fraud reports and their labels.
    pub cases: Cases,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("config", &self.config).finish()
    }
}

impl FromRef<App> for Store {
    fn from_ref(app: &App) -> Self {
        app.store.clone()
    }
}

impl FromRef<App> for Arc<AuthCache> {
    fn from_ref(app: &App) -> Self {
        Arc::clone(&app.auth_cache)
    }
}

impl FromRef<App> for Arc<RateLimits> {
    fn from_ref(app: &App) -> Self {
        Arc::clone(&app.rate_limits)
    }
}

impl FromRef<App> for Webhooks {
    fn from_ref(app: &App) -> Self {
        app.webhooks.clone()
    }
}

impl FromRef<App> for Cases {
    fn from_ref(app: &App) -> Self {
        app.cases.clone()
    }
}
