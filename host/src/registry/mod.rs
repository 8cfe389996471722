//! Tenant rules at run time, as a service built once at start-up
//! ([`TenantRules`]): loading uploaded components (memory → this node's
//! artifact cache → its module store → the database) and compiling each
//! tenant's pipeline from its settings and activations. It depends on the
//! store and the runtime only; nothing here knows about HTTP.
//!
//! A tenant's compiled pipeline is cached against the settings text and
//! `rules_revision` it was built from. Both travel with the tenant row,
//! which every node re-reads at least once a second (the auth cache), so an
//! activation on one node reaches every node's next assess within about a
//! second. Swapping is an `Arc` replacement: assessments in flight finish on
//! the pipeline they started with.
pub mod configure;
pub mod upload;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use serde_json::Value;

use crate::{
    domain::signing::{digest_string, sha256},
    pipeline::{Mode, Pipeline, PipelineConfig, Runnable, StepConfig, config::ConfigError},
    runtime::{ArtifactCache, LoadedRule, Runtime, RuntimeError},
    store::{Store, StoreError, Tenant},
};

/// The rules every tenant can run and the ones each tenant uploaded: the
/// built-ins, this node's module store and artifact cache, and each
/// tenant's compiled pipeline.
#[derive(Debug)]
pub struct TenantRules {
    store: Store,
    runtime: Arc<Runtime>,
    /// This node's module store and compiled-artifact cache.
    modules: Arc<ArtifactCache>,
    /// Built-in rules by id.
    pub builtins: HashMap<String, Arc<LoadedRule>>,
    /// Per flow, the pipeline of tenants without their own configuration:
    /// the built-ins that declare the flow.
    default_pipelines: HashMap<&'static str, Arc<Pipeline>>,
    /// Compiled pipelines of tenants with settings or rules of their own.
    pipelines: PipelineCache,
    /// The largest module an upload may carry.
    max_module_bytes: usize,
}

/// Why a tenant's rules could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("pipeline configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("tenant settings are not valid JSON: {0}")]
    Settings(String),
    #[error("module {0} is not stored anywhere this node can read")]
    MissingModule(String),
    #[error("stored module does not hash to {0}")]
    Corrupt(String),
    #[error("compile worker failed: {0}")]
    Worker(String),
}

/// A compiled pipeline and the (settings text, rules revision) it was
/// built from.
type Cached = (String, i64, Arc<Pipeline>);

/// (tenant id, flow) → its cached pipeline.
#[derive(Debug, Default)]
pub struct PipelineCache {
    map: Mutex<HashMap<(String, &'static str), Cached>>,
}

impl PipelineCache {
    fn get(&self, tenant: &Tenant, flow: &'static str) -> Option<Arc<Pipeline>> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(tenant.id.clone(), flow))
            .filter(|(s, r, _)| *s == tenant.settings && *r == tenant.rules_revision)
            .map(|(_, _, p)| Arc::clone(p))
    }

    fn last(&self, tenant_id: &str, flow: &'static str) -> Option<Arc<Pipeline>> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(tenant_id.to_owned(), flow))
            .map(|(_, _, p)| Arc::clone(p))
    }

    fn put(&self, tenant: &Tenant, flow: &'static str, pipeline: Arc<Pipeline>) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(
            (tenant.id.clone(), flow),
            (tenant.settings.clone(), tenant.rules_revision, pipeline),
        );
    }
}

/// The tenant's stored pipeline configuration for `flow`
/// (`settings.pipeline.<flow>`), if it has one.
pub fn configured_pipeline(
    settings: &str,
    flow: &str,
) -> Result<Option<PipelineConfig>, RegistryError> {
    let parsed: Value =
        serde_json::from_str(settings).map_err(|e| RegistryError::Settings(e.to_string()))?;
    match parsed.get("pipeline").and_then(|p| p.get(flow)) {
        None => Ok(None),
        Some(cfg) => serde_json::from_value(cfg.clone())
            .map(Some)
            .map_err(|e| RegistryError::Settings(format!("pipeline.{flow}: {e}"))),
    }
}

/// How the tenant's settings configure `rule_id` in `flow` (its defaults
/// when they do not mention it): what a candidate version would run with.
pub fn step_config(settings: &str, flow: &str, rule_id: &str) -> Result<StepConfig, RegistryError> {
    Ok(configured_pipeline(settings, flow)?
        .and_then(|c| c.rules.into_iter().find(|s| s.rule_id == rule_id))
        .unwrap_or_else(|| StepConfig::new(rule_id)))
}

/// The `params_schema` of an uploaded version's manifest text.
pub fn params_schema(manifest: &str) -> Option<Value> {
    serde_json::from_str::<Value>(manifest)
        .ok()?
        .get("params_schema")
        .filter(|s| !s.is_null())
        .cloned()
}

impl TenantRules {
    pub fn new(
        store: Store,
        runtime: Arc<Runtime>,
        modules: Arc<ArtifactCache>,
        builtins: HashMap<String, Arc<LoadedRule>>,
        default_pipelines: HashMap<&'static str, Arc<Pipeline>>,
        max_module_bytes: usize,
    ) -> Self {
        Self {
            store,
            runtime,
            modules,
            builtins,
            default_pipelines,
            pipelines: PipelineCache::default(),
            max_module_bytes,
        }
    }

    /// The pipeline of tenants without configuration or rules of their
    /// own, for `flow` (an empty one for a flow no built-in declares).
    pub fn default_pipeline(&self, flow: &str) -> Arc<Pipeline> {
        self.default_pipelines.get(flow).map_or_else(
            || {
                Arc::new(Pipeline {
                    steps: Vec::new(),
                    thresholds: Default::default(),
                    deadline: std::time::Duration::from_millis(
                        PipelineConfig::default().deadline_ms,
                    ),
                })
            },
            Arc::clone,
        )
    }

    /// The runtime rules run on.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// This node's module store and artifact cache.
    pub fn modules(&self) -> &Arc<ArtifactCache> {
        &self.modules
    }

    /// The tenant's uploaded `rule_id@version`, loaded, as a version that
    /// counts (what simulation and backtest judge); `None` when the tenant has
    /// no such version.
    pub async fn candidate(
        &self,
        tenant_id: &str,
        rule_id: &str,
        version: &str,
    ) -> Result<Option<Runnable>, RegistryError> {
        let Some(v) = self.store.rule_version(tenant_id, rule_id, version).await? else {
            return Ok(None);
        };
        let rule = self.load_rule(tenant_id, &v.digest).await?;
        Ok(Some(Runnable {
            rule,
            mode: Mode::Active,
            params_schema: params_schema(&v.manifest).map(Arc::new),
        }))
    }

    /// Loads the component `digest` uploaded by `tenant_id`, compiling it only
    /// if no artifact of this node has it.
    pub async fn load_rule(
        &self,
        tenant_id: &str,
        digest: &str,
    ) -> Result<Arc<LoadedRule>, RegistryError> {
        if let Some(rule) = self.runtime.cached(digest) {
            return Ok(rule);
        }
        let (rt, cache, d) = (
            Arc::clone(&self.runtime),
            Arc::clone(&self.modules),
            digest.to_owned(),
        );
        let local = tokio::task::spawn_blocking(move || match rt.load_cached(&cache, &d) {
            Some(r) => Some(r),
            None => cache
                .module(&d)
                .map(|bytes| rt.compile_cached(&cache, &bytes)),
        })
        .await
        .map_err(|e| RegistryError::Worker(e.to_string()))?;
        if let Some(loaded) = local {
            return Ok(loaded?);
        }
        let bytes = self
            .store
            .rule_module(tenant_id, digest)
            .await?
            .ok_or_else(|| RegistryError::MissingModule(digest.to_owned()))?;
        if digest_string(&sha256(&bytes)) != digest {
            return Err(RegistryError::Corrupt(digest.to_owned()));
        }
        let (rt, cache) = (Arc::clone(&self.runtime), Arc::clone(&self.modules));
        let rule = tokio::task::spawn_blocking(move || rt.compile_cached(&cache, &bytes))
            .await
            .map_err(|e| RegistryError::Worker(e.to_string()))??;
        Ok(rule)
    }

    /// The tenant's compiled pipeline for `flow`, built when its settings or rules
    /// revision changed. If building fails, the last good pipeline keeps
    /// serving (and the failure is logged).
    pub async fn tenant_pipeline(
        &self,
        tenant: &Tenant,
        flow: &'static str,
    ) -> Result<Arc<Pipeline>, RegistryError> {
        if let Some(p) = self.pipelines.get(tenant, flow) {
            return Ok(p);
        }
        match self.build_pipeline(tenant, flow).await {
            Ok(p) => {
                self.pipelines.put(tenant, flow, Arc::clone(&p));
                Ok(p)
            }
            Err(e) => match self.pipelines.last(&tenant.id, flow) {
                Some(last) => {
                    tracing::error!(error = %e, tenant_id = %tenant.id, "cannot rebuild the pipeline; keeping the last good one");
                    Ok(last)
                }
                None => Err(e),
            },
        }
    }

    async fn build_pipeline(
        &self,
        tenant: &Tenant,
        flow: &str,
    ) -> Result<Arc<Pipeline>, RegistryError> {
        let configured = configured_pipeline(&tenant.settings, flow)?;
        if configured.is_none() && tenant.rules_revision == 0 {
            return Ok(self.default_pipeline(flow));
        }
        let activations = self.store.activations(&tenant.id).await?;
        let mut runnable: HashMap<String, Vec<Runnable>> = self
            .builtins
            .iter()
            .map(|(id, r)| (id.clone(), vec![Runnable::active(r)]))
            .collect();
        for a in &activations {
            let rule = self.load_rule(&tenant.id, &a.digest).await?;
            let versions = runnable.entry(a.rule_id.clone()).or_default();
            versions.push(Runnable {
                rule,
                mode: Mode::parse(&a.mode).unwrap_or(Mode::Shadow),
                params_schema: params_schema(&a.manifest).map(Arc::new),
            });
            // Active first: the decision's steps, then what is only watched.
            versions.sort_by_key(|r| r.mode != Mode::Active);
        }
        // Activated rules join the flows they declare.
        let activated: Vec<String> = activations
            .iter()
            .filter(|a| {
                runnable
                    .get(&a.rule_id)
                    .and_then(|v| v.first())
                    .is_some_and(|r| r.rule.metadata.flows.contains(&flow))
            })
            .map(|a| a.rule_id.clone())
            .collect();
        let config = self.effective_config(flow, configured, &activated, &runnable);
        Ok(Arc::new(config.compile(|id| {
            runnable.get(id).cloned().unwrap_or_default()
        })?))
    }

    /// The configuration that runs: the stored one (or the default), without
    /// custom rules that are not activated, plus activated rules it does not
    /// mention (appended, with their defaults).
    pub fn effective_config(
        &self,
        flow: &str,
        configured: Option<PipelineConfig>,
        activated: &[String],
        runnable: &HashMap<String, Vec<Runnable>>,
    ) -> PipelineConfig {
        let mut config = configured.unwrap_or_else(|| {
            let default = self.default_pipeline(flow);
            let ids: Vec<&str> = default
                .steps
                .iter()
                .map(|s| s.rule.metadata.id.as_str())
                .collect();
            let mut d = PipelineConfig::with_rules(&ids);
            d.deadline_ms = default.deadline.as_millis() as u64;
            d.thresholds = default.thresholds;
            d
        });
        config.rules.retain(|s| runnable.contains_key(&s.rule_id));
        for id in activated {
            if !config.rules.iter().any(|s| &s.rule_id == id) {
                config.rules.push(StepConfig::new(id));
            }
        }
        config
    }

    /// Loads every activated rule of every tenant, so the first assessments
    /// after a start do not compile or read the database; one loader per core.
    /// Returns how many loaded.
    pub async fn warm(self: &Arc<Self>) -> Result<usize, RegistryError> {
        let digests = self.store.all_active_digests().await?;
        let workers = std::thread::available_parallelism().map_or(2, usize::from);
        let queue = Arc::new(Mutex::new(digests));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers {
            let (rules, queue) = (Arc::clone(self), Arc::clone(&queue));
            tasks.spawn(async move {
            let mut loaded = 0usize;
            loop {
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop();
                let Some((tenant_id, digest)) = next else {
                    return loaded;
                };
                match rules.load_rule(&tenant_id, &digest).await {
                    Ok(_) => loaded += 1,
                    Err(e) => {
                        tracing::error!(tenant_id = %tenant_id, digest = %digest, error = %e, "cannot load an active rule")
                    }
                }
            }
        });
        }
        let mut total = 0;
        while let Some(done) = tasks.join_next().await {
            total += done.map_err(|e| RegistryError::Worker(e.to_string()))?;
        }
        Ok(total)
    }

    /// Loads rules activated on any node before this node's first assessment
    /// needs them, so compiling (or reading an artifact) stays off the assess
    /// path: every 250 ms, the activations of the last few seconds are loaded.
    /// A supervised task; returns when `stop` resolves.
    pub async fn watch_activations(self: Arc<Self>, mut stop: crate::tasks::Stop) {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.requested() => return,
            }
            // Generous overlap: node clocks may differ by a few seconds.
            let since = crate::domain::now_ms() - 10_000;
            let recent = match self.store.activated_since(since).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot poll activations");
                    continue;
                }
            };
            for (tenant_id, digest) in recent {
                if self.runtime.cached(&digest).is_some() {
                    continue;
                }
                if let Err(e) = self.load_rule(&tenant_id, &digest).await {
                    tracing::error!(tenant_id = %tenant_id, digest = %digest, error = %e, "cannot preload an activated rule");
                }
            }
        }
    }

    /// The component a stored record ran: a built-in, or one the tenant
    /// uploaded (loaded from this node's caches or the database).
    pub async fn by_digest(
        &self,
        tenant_id: &str,
        digest: &str,
    ) -> Result<Arc<LoadedRule>, RegistryError> {
        if let Some(b) = self.builtins.values().find(|r| r.digest == digest) {
            return Ok(Arc::clone(b));
        }
        self.load_rule(tenant_id, digest).await
    }
}
