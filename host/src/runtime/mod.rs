//! The Wasm rule runtime: the only module that touches wasmtime.
//!
//! One [`Engine`] per process (pooling allocator, fuel and epoch
//! interruption), one [`Linker`] serving the `aduana:rules` world at every
//! WIT version this host binds (0.1.0, 0.2.0 and 0.3.0), and per component digest a
//! pre-instantiated [`InstancePre`] kept in memory.
//! Every evaluation gets a fresh [`Store`] and instance, so nothing carries
//! over between transactions; each runs under a fuel budget, an epoch
//! deadline and a memory cap. Whatever a rule does wrong becomes
//! [`Outcome::Errored`], never an error of the caller.
mod artifacts;
mod inspect;
mod limits;
mod output;
mod wire;

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use sha2::{Digest as _, Sha256};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig, Store,
    Trap,
    component::{
        Component, ComponentExportIndex, HasSelf, InstancePre, Linker, TypedFunc,
        types::ComponentItem,
    },
};

use crate::domain::lists::normalize_value;
pub use artifacts::{ArtifactCache, digest_hex};
pub use inspect::{SUPPORTED_WIT_VERSIONS, inspect};
pub use limits::RuntimeLimits;
use limits::StoreLimiter;

/// Bindings of WIT 0.1.0, whose rules ask the host through the imported
/// `context` interface. Its types are identical in 0.2.0 and, but for the
/// transaction and the context, in 0.3.0 (records are typed structurally),
/// so they serve components of every version; [`wire`] adds 0.3.0's
/// transaction and the `context` records.
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
        world: "rule",
    });
}

pub use bindings::aduana::rules::types::{
    Amount, Beneficiary, Channel, Evaluation, FieldWarning, Flow, History, ListHit, Origin,
    PayoutDetails, Severity, Signal,
};
use bindings::aduana::rules::types::{
    Metadata as WitMetadata, RuleError, Transaction as LegacyTransaction,
};
pub use wire::{Billing, Device, PayinDetails, PaymentMethod, Transaction};
use wire::{WireContext, WireContextV02, WireListMatch, WireVelocity};

/// The WIT interfaces a rule component may import. Anything else (WASI
/// included) is rejected at load.
pub const ALLOWED_IMPORTS: &[&str] = &[
    "aduana:rules/types@0.1.0",
    "aduana:rules/context@0.1.0",
    "aduana:rules/types@0.2.0",
    "aduana:rules/types@0.3.0",
];

/// The WIT version a component was built against, read from its
/// `evaluate` export's arity at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WitAbi {
    /// `evaluate(tx, params)`; context through imported host functions.
    V0_1,
    /// `evaluate(tx, params, context)`; no host functions at all.
    V0_2,
    /// 0.2.0 plus pay-in: the transaction's `payin` and the context's
    /// `velocity`.
    V0_3,
}

impl WitAbi {
    /// The package version, e.g. `0.2.0`.
    pub fn version(self) -> &'static str {
        match self {
            WitAbi::V0_1 => "0.1.0",
            WitAbi::V0_2 => "0.2.0",
            WitAbi::V0_3 => "0.3.0",
        }
    }
}

/// Errors loading a component. Evaluation never returns an error: it
/// returns an [`Outcome`].
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("engine configuration rejected: {0}")]
    Engine(String),
    #[error("not a valid rule component: {0}")]
    Invalid(String),
    #[error("not a component: {0}")]
    NotComponent(String),
    #[error("does not match the aduana:rules `rule` world: {0}")]
    WrongWorld(String),
    #[error("unsupported WIT version: {0}")]
    UnsupportedWitVersion(String),
    #[error(
        "component imports `{0}`, which is outside the rule interface (rules get no WASI: no files, sockets, clocks or randomness)"
    )]
    ForbiddenImport(String),
    #[error("module store: {0}")]
    Cache(String),
    #[error("component `metadata` export failed: {0}")]
    Metadata(String),
}

/// Static description of a loaded rule, read from its `metadata` export.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleMetadata {
    pub id: String,
    pub version: String,
    pub description: String,
    pub flows: Vec<&'static str>,
    pub signals: Vec<SignalSpec>,
    pub default_params: serde_json::Map<String, serde_json::Value>,
}

/// A signal a rule may emit.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SignalSpec {
    pub code: String,
    pub default_weight: u32,
    pub description: String,
}

/// A compiled, pre-linked rule component, shared by every evaluation.
pub struct LoadedRule {
    pre: InstancePre<RuleState>,
    /// Where `evaluate` sits in the component's exports, resolved at load.
    evaluate: ComponentExportIndex,
    /// How `evaluate` is called (checked against its type at load).
    pub abi: WitAbi,
    pub metadata: RuleMetadata,
    /// `sha256:<hex>` of the component bytes.
    pub digest: String,
}

impl std::fmt::Debug for LoadedRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedRule")
            .field("id", &self.metadata.id)
            .field("version", &self.metadata.version)
            .field("digest", &self.digest)
            .finish()
    }
}

/// What the host prefetched for one transaction: the answers to every
/// question a rule may ask through the `context` interface.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ContextSnapshot {
    /// (list type, normalized value) → hit, for the transaction's identifiers.
    pub list_hits: Vec<ListHitRecord>,
    pub history: HistoryRecord,
    /// Pay-in velocity counts (empty for a payout).
    pub velocity: Vec<VelocityRecord>,
}

/// One prefetched velocity count: earlier live pay-ins of the tenant
/// sharing `entity` with this one within `window`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VelocityRecord {
    pub entity: String,
    pub window: String,
    pub count: u32,
}

impl ContextSnapshot {
    /// The snapshot as WIT 0.3.0's `context` record.
    fn to_wire(&self) -> WireContext {
        let v2 = self.to_wire_v02();
        WireContext {
            list_hits: v2.list_hits,
            history: v2.history,
            velocity: (!self.velocity.is_empty()).then(|| {
                self.velocity
                    .iter()
                    .map(|v| WireVelocity {
                        entity: v.entity.clone(),
                        window: v.window.clone(),
                        count: v.count,
                    })
                    .collect()
            }),
        }
    }

    /// The snapshot as WIT 0.2.0's `context` record.
    fn to_wire_v02(&self) -> WireContextV02 {
        let list_hits = (!self.list_hits.is_empty()).then(|| {
            self.list_hits
                .iter()
                .map(|h| WireListMatch {
                    list_type: h.list_type.clone(),
                    value: h.value.clone(),
                    hit: h.to_hit(),
                })
                .collect()
        });
        WireContextV02 {
            list_hits,
            history: History {
                prior_transfers: self.history.prior_transfers,
                first_at_ms: self.history.first_at_ms,
                last_at_ms: self.history.last_at_ms,
            },
        }
    }
}

/// One prefetched list hit.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ListHitRecord {
    pub list_type: String,
    pub value: String,
    pub entry_id: String,
    pub severity: String,
}

impl ListHitRecord {
    fn to_hit(&self) -> ListHit {
        ListHit {
            entry_id: self.entry_id.clone(),
            severity: match self.severity.as_str() {
                "block" => Severity::Block,
                "flag" => Severity::Flag,
                _ => Severity::Review,
            },
        }
    }
}

/// Prefetched beneficiary history.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct HistoryRecord {
    pub prior_transfers: u32,
    pub first_at_ms: Option<i64>,
    pub last_at_ms: Option<i64>,
}

/// How one evaluation ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The rule ran and returned a valid evaluation.
    Ok(Evaluation),
    /// The rule ran and reported that it could not judge.
    RuleError(String),
    /// The rule misbehaved or hit a limit; `reason` says which.
    Errored(String),
}

/// One rule run: outcome plus what it cost.
#[derive(Debug, Clone)]
pub struct RuleRun {
    pub outcome: Outcome,
    pub fuel_used: u64,
    pub duration: Duration,
    pub peak_memory: usize,
}

/// Per-store state: the limiter and the prefetched context.
pub struct RuleState {
    limiter: StoreLimiter,
    context: Arc<ContextSnapshot>,
}

impl bindings::aduana::rules::types::Host for RuleState {}

impl bindings::aduana::rules::context::Host for RuleState {
    fn list_lookup(&mut self, list_type: String, value: String) -> Option<ListHit> {
        let value = normalize_value(&list_type, &value)?;
        self.context
            .list_hits
            .iter()
            .find(|h| h.list_type == list_type && h.value == value)
            .map(ListHitRecord::to_hit)
    }

    fn beneficiary_history(&mut self) -> History {
        let h = &self.context.history;
        History {
            prior_transfers: h.prior_transfers,
            first_at_ms: h.first_at_ms,
            last_at_ms: h.last_at_ms,
        }
    }
}

/// The process-wide rule runtime.
pub struct Runtime {
    engine: Engine,
    linker: Linker<RuleState>,
    limits: RuntimeLimits,
    loaded: RwLock<HashMap<String, Arc<LoadedRule>>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("limits", &self.limits)
            .finish()
    }
}

impl Runtime {
    /// Builds the engine and linker and starts the epoch ticker.
    pub fn new(limits: RuntimeLimits) -> Result<Self, RuntimeError> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(limits.pool_instances)
            .total_core_instances(limits.pool_instances * 2)
            .total_memories(limits.pool_instances * 2)
            .total_tables(limits.pool_instances * 2)
            .max_memory_size(limits.memory_bytes)
            .max_core_instances_per_component(8)
            .max_memories_per_component(2)
            .max_tables_per_component(4)
            .max_component_instance_size(1 << 20)
            .table_elements(20_000)
            .linear_memory_keep_resident(limits.keep_resident_bytes)
            .table_keep_resident(limits.keep_resident_bytes)
            .pagemap_scan(if limits.pagemap_scan {
                Enabled::Auto
            } else {
                Enabled::No
            });
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .concurrency_support(false)
            .consume_fuel(true)
            .epoch_interruption(true)
            .memory_init_cow(limits.memory_init_cow)
            .max_wasm_stack(limits.stack_bytes)
            .cranelift_opt_level(OptLevel::Speed)
            .cranelift_nan_canonicalization(true)
            .wasm_relaxed_simd(false)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        bindings::Rule::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        // 0.2.0 and 0.3.0 import only types: instances with no functions.
        for types in ["aduana:rules/types@0.2.0", "aduana:rules/types@0.3.0"] {
            linker
                .instance(types)
                .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        }
        spawn_epoch_ticker(&engine, limits.epoch_tick);
        Ok(Self {
            engine,
            linker,
            limits,
            loaded: RwLock::new(HashMap::new()),
        })
    }

    /// The limits every evaluation runs under.
    pub fn limits(&self) -> &RuntimeLimits {
        &self.limits
    }

    /// Compiles (or finds in the cache) the component `bytes`, checks that it
    /// imports only the rule interface, and reads its metadata.
    pub fn load(&self, bytes: &[u8]) -> Result<Arc<LoadedRule>, RuntimeError> {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        if let Some(rule) = self.cached(&digest) {
            return Ok(rule);
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| RuntimeError::Invalid(format!("{e:#}")))?;
        self.finish(component, digest)
    }

    /// Opens the node's module store and artifact cache under `data_dir`.
    pub fn open_cache(&self, data_dir: &std::path::Path) -> Result<ArtifactCache, RuntimeError> {
        ArtifactCache::open(data_dir, &self.engine)
    }

    /// The rule with `digest` if it is in memory or has a valid artifact in
    /// `cache` (no compiling).
    pub fn load_cached(
        &self,
        cache: &ArtifactCache,
        digest: &str,
    ) -> Option<Result<Arc<LoadedRule>, RuntimeError>> {
        if let Some(rule) = self.cached(digest) {
            return Some(Ok(rule));
        }
        let artifact = cache.artifact(digest)?;
        // SAFETY: wasmtime trusts serialized artifacts; this one was produced
        // by `precompile_component` of an engine with this configuration
        // (the file name carries the engine's compatibility hash) and its
        // HMAC tag, keyed by this host's secret, verified over the digest,
        // that hash and the bytes.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(&self.engine, &artifact) };
        match component {
            Ok(component) => Some(self.finish(component, digest.to_owned())),
            Err(e) => {
                tracing::warn!(digest, error = %e, "artifact not loadable; recompiling");
                None
            }
        }
    }

    /// A built-in component: from memory, else from a valid artifact, else
    /// compiled and cached.
    pub fn load_builtin(
        &self,
        cache: &ArtifactCache,
        bytes: &[u8],
    ) -> Result<Arc<LoadedRule>, RuntimeError> {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        match self.load_cached(cache, &digest) {
            Some(loaded) => loaded,
            None => self.compile_cached(cache, bytes),
        }
    }

    /// Checks, compiles once and caches an uploaded component: the bytes go
    /// to the module store, the compiled artifact to the artifact cache.
    /// Both are written even when the rule is already in memory, so a
    /// restart never has to recompile what was accepted.
    pub fn compile_cached(
        &self,
        cache: &ArtifactCache,
        bytes: &[u8],
    ) -> Result<Arc<LoadedRule>, RuntimeError> {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        if cache.has_artifact(&digest)
            && let Some(loaded) = self.load_cached(cache, &digest)
        {
            cache.put_module(&digest, bytes)?;
            return loaded;
        }
        inspect(bytes)?;
        let artifact = self
            .engine
            .precompile_component(bytes)
            .map_err(|e| RuntimeError::Invalid(format!("{e:#}")))?;
        let rule = match self.cached(&digest) {
            Some(rule) => rule,
            None => {
                // SAFETY: `artifact` was produced just now by this engine.
                #[allow(unsafe_code)]
                let component = unsafe { Component::deserialize(&self.engine, &artifact) }
                    .map_err(|e| RuntimeError::Invalid(format!("{e:#}")))?;
                self.finish(component, digest.clone())?
            }
        };
        // Only components that passed every check reach the disk.
        cache.put_module(&digest, bytes)?;
        cache.put_artifact(&digest, &artifact)?;
        Ok(rule)
    }

    /// Import check, linking against the world, metadata read; then the rule
    /// joins the in-memory cache.
    fn finish(
        &self,
        component: Component,
        digest: String,
    ) -> Result<Arc<LoadedRule>, RuntimeError> {
        for (name, _) in component.component_type().imports(&self.engine) {
            if !ALLOWED_IMPORTS.contains(&name) {
                return Err(RuntimeError::ForbiddenImport(name.to_owned()));
            }
        }
        let abi = self.abi_of(&component)?;
        let export = |name: &str| {
            component
                .get_export_index(None, name)
                .ok_or_else(|| RuntimeError::WrongWorld(format!("no `{name}` export")))
        };
        let (metadata_export, evaluate) = (export("metadata")?, export("evaluate")?);
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| RuntimeError::WrongWorld(format!("{e:#}")))?;
        let metadata = self.read_metadata(&pre, abi, metadata_export, evaluate)?;
        let rule = Arc::new(LoadedRule {
            pre,
            evaluate,
            abi,
            metadata,
            digest: digest.clone(),
        });
        // Two threads may load the same component at once; the first to
        // finish is the one every caller shares.
        let shared = Arc::clone(
            self.loaded
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .entry(digest)
                .or_insert(rule),
        );
        Ok(shared)
    }

    /// Drops a rule from the in-memory cache (it stays in the module store).
    pub fn evict(&self, digest: &str) {
        self.loaded
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(digest);
    }

    /// How many components are loaded in memory.
    pub fn loaded_count(&self) -> usize {
        self.loaded.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The loaded rule with `digest`, if it is in memory.
    pub fn cached(&self, digest: &str) -> Option<Arc<LoadedRule>> {
        self.loaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
            .cloned()
    }

    fn new_store(&self, context: Arc<ContextSnapshot>) -> Store<RuleState> {
        let state = RuleState {
            limiter: StoreLimiter::new(self.limits.memory_bytes),
            context,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        // Fuel is only unavailable when disabled in the config, which it never is.
        let _ = store.set_fuel(self.limits.fuel);
        store.set_epoch_deadline(self.limits.epoch_deadline_ticks);
        store.epoch_deadline_trap();
        store
    }

    /// Which WIT version the component's `evaluate` export follows.
    fn abi_of(&self, component: &Component) -> Result<WitAbi, RuntimeError> {
        let ty = component.component_type();
        // 0.2.0 and 0.3.0 share the arity; the types interface a component
        // imports says which it was built against.
        let imports_v03 = ty
            .imports(&self.engine)
            .any(|(name, _)| name == "aduana:rules/types@0.3.0");
        match ty.get_export(&self.engine, "evaluate").map(|e| e.ty) {
            Some(ComponentItem::ComponentFunc(f)) => match f.params().len() {
                2 => Ok(WitAbi::V0_1),
                3 if imports_v03 => Ok(WitAbi::V0_3),
                3 => Ok(WitAbi::V0_2),
                n => Err(RuntimeError::WrongWorld(format!(
                    "`evaluate` takes {n} parameters; the `rule` world's takes 3 \
                     (transaction, params, context; WIT 0.2.0 and 0.3.0) or 2 (WIT 0.1.0)"
                ))),
            },
            Some(_) => Err(RuntimeError::WrongWorld(
                "`evaluate` is not a function".to_owned(),
            )),
            None => Err(RuntimeError::WrongWorld("no `evaluate` export".to_owned())),
        }
    }

    /// Instantiates the rule once: type-checks both exports against the
    /// world of its WIT version (so `evaluate` can later be called without
    /// checking again) and reads its metadata.
    fn read_metadata(
        &self,
        pre: &InstancePre<RuleState>,
        abi: WitAbi,
        metadata: ComponentExportIndex,
        evaluate: ComponentExportIndex,
    ) -> Result<RuleMetadata, RuntimeError> {
        let mut store = self.new_store(Arc::new(ContextSnapshot::default()));
        let instance = pre
            .instantiate(&mut store)
            .map_err(|e| RuntimeError::Metadata(format!("{e:#}")))?;
        let wrong_world =
            |e: wasmtime::Error| RuntimeError::WrongWorld(format!("{e:#} (WIT {})", abi.version()));
        match abi {
            WitAbi::V0_1 => instance
                .get_typed_func::<EvaluateV01Params<'_>, EvaluateResults>(&mut store, &evaluate)
                .map(drop),
            WitAbi::V0_2 => instance
                .get_typed_func::<EvaluateV02Params<'_>, EvaluateResults>(&mut store, &evaluate)
                .map(drop),
            WitAbi::V0_3 => instance
                .get_typed_func::<EvaluateV03Params<'_>, EvaluateResults>(&mut store, &evaluate)
                .map(drop),
        }
        .map_err(wrong_world)?;
        let metadata = instance
            .get_typed_func::<(), (WitMetadata,)>(&mut store, &metadata)
            .map_err(wrong_world)?;
        let (meta,) = metadata
            .call(&mut store, ())
            .map_err(|e| RuntimeError::Metadata(describe_failure(&e, &store)))?;
        output::check_metadata(meta).map_err(RuntimeError::Metadata)
    }

    /// Runs `rule` on `tx` with `params` (JSON object text) in a fresh
    /// instance, under the configured limits.
    pub fn evaluate(
        &self,
        rule: &LoadedRule,
        tx: &Transaction,
        params: &str,
        context: &Arc<ContextSnapshot>,
    ) -> RuleRun {
        let start = Instant::now();
        let mut store = self.new_store(Arc::clone(context));
        // The generic bindings would type-check both exports again on every
        // instantiation; `finish` checked them once, so look `evaluate` up by
        // its resolved index and call it with the known signature.
        let result = rule.pre.instantiate(&mut store).and_then(|instance| {
            let func = instance
                .get_func(&mut store, rule.evaluate)
                .ok_or_else(|| wasmtime::format_err!("`evaluate` export missing"))?;
            // SAFETY (both arms): `func` is the `evaluate` export of a
            // component whose `evaluate` `read_metadata` type-checked at load
            // against exactly this signature for the component's `abi`.
            #[allow(unsafe_code)]
            match rule.abi {
                WitAbi::V0_1 => {
                    let typed = unsafe {
                        TypedFunc::<EvaluateV01Params<'_>, EvaluateResults>::new_unchecked(func)
                    };
                    typed.call(&mut store, (&tx.to_legacy(), params))
                }
                WitAbi::V0_2 => {
                    let typed = unsafe {
                        TypedFunc::<EvaluateV02Params<'_>, EvaluateResults>::new_unchecked(func)
                    };
                    typed.call(
                        &mut store,
                        (&tx.to_legacy(), params, &context.to_wire_v02()),
                    )
                }
                WitAbi::V0_3 => {
                    let typed = unsafe {
                        TypedFunc::<EvaluateV03Params<'_>, EvaluateResults>::new_unchecked(func)
                    };
                    typed.call(&mut store, (tx, params, &context.to_wire()))
                }
            }
            .map(|(r,)| r)
        });
        let fuel_used = self
            .limits
            .fuel
            .saturating_sub(store.get_fuel().unwrap_or(0));
        let outcome = match result {
            Ok(Ok(evaluation)) => match output::check_evaluation(&evaluation, &rule.metadata) {
                Ok(()) => Outcome::Ok(evaluation),
                Err(reason) => Outcome::Errored(reason),
            },
            Ok(Err(e)) => Outcome::RuleError(match e {
                RuleError::InvalidParams(m) => format!("invalid params: {}", output::clip(&m)),
                RuleError::InvalidInput(m) => format!("invalid input: {}", output::clip(&m)),
                RuleError::Internal(m) => format!("internal: {}", output::clip(&m)),
            }),
            Err(e) => Outcome::Errored(describe_failure(&e, &store)),
        };
        RuleRun {
            outcome,
            fuel_used,
            duration: start.elapsed(),
            peak_memory: store.data().limiter.peak(),
        }
    }
}

/// `evaluate(tx: transaction, params: string)` of WIT 0.1.0.
type EvaluateV01Params<'a> = (&'a LegacyTransaction, &'a str);
/// `evaluate(tx: transaction, params: string, context: context)` of 0.2.0.
type EvaluateV02Params<'a> = (&'a LegacyTransaction, &'a str, &'a WireContextV02);
/// The same of 0.3.0, with pay-in in the transaction and the context.
type EvaluateV03Params<'a> = (&'a Transaction, &'a str, &'a WireContext);
/// `-> result<evaluation, rule-error>`, every version.
type EvaluateResults = (Result<Evaluation, RuleError>,);

/// Turns a wasmtime failure into a stable, user-facing reason.
fn describe_failure(e: &wasmtime::Error, store: &Store<RuleState>) -> String {
    if store.data().limiter.denied() {
        return "memory limit exceeded".to_owned();
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => "fuel budget exhausted".to_owned(),
        Some(Trap::Interrupt) => "deadline exceeded".to_owned(),
        Some(Trap::StackOverflow) => "stack overflow".to_owned(),
        Some(Trap::UnreachableCodeReached) => {
            "trap: unreachable (the rule panicked or aborted)".to_owned()
        }
        Some(trap) => format!("trap: {trap}"),
        None => format!("failed: {}", output::clip(&format!("{e:#}"))),
    }
}

/// Advances the engine's epoch every `tick` until the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine, tick: Duration) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("aduana-epoch".to_owned())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the epoch ticker; deadlines fall back to fuel");
    }
}
