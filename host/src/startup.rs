//! Start-up: connect the store, start the runtime, load the built-in rules,
//! build the services, and serve. Nothing else in the crate imports this
//! module.
use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use anyhow::Context as _;
use tokio::{net::TcpListener, task::JoinHandle};

use crate::{
    api::{App, auth::AuthCache, metrics, ratelimit::RateLimits, server},
    assess::Assessor,
    builtins,
    config::Config,
    pipeline::{PipelineConfig, Runnable},
    registry::TenantRules,
    runtime::Runtime,
    secrets::Sealer,
    store::Store,
    tasks::Supervisor,
    webhooks::{Webhooks, delivery},
};

impl App {
    /// Connects, migrates, starts the runtime and loads the built-in rules.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let runtime =
            Arc::new(Runtime::new(config.limits.clone()).context("starting the rule runtime")?);
        Self::build_with(config, runtime, &[]).await
    }

    /// Like [`App::build`] on an existing runtime, with `extra` components
    /// loaded next to the built-ins (tests use this for misbehaving rules
    /// that a tenant pipeline can then reference by id).
    pub async fn build_with(
        config: Config,
        runtime: Arc<Runtime>,
        extra: &[&[u8]],
    ) -> anyhow::Result<Self> {
        let store = Store::connect_with(
            config.database_url.as_deref(),
            &config.data_dir,
            config.sqlite_sync,
        )
        .await
        .context("connecting to the database")?;
        store.migrate().await.context("running migrations")?;
        let modules = runtime
            .open_cache(&config.data_dir)
            .context("opening the module store")?;
        let mut loaded = HashMap::new();
        for (id, bytes) in builtins::BUILTIN_COMPONENTS {
            // From memory, else this node's artifact cache, else compiled
            // once and cached: a restart does not recompile the built-ins.
            let rule = runtime
                .load_builtin(&modules, bytes)
                .with_context(|| format!("loading built-in rule `{id}`"))?;
            anyhow::ensure!(
                rule.metadata.id == *id,
                "built-in component `{id}` reports id `{}`",
                rule.metadata.id
            );
            loaded.insert((*id).to_owned(), rule);
        }
        for bytes in extra {
            let rule = runtime.load(bytes).context("loading an extra component")?;
            loaded.insert(rule.metadata.id.clone(), rule);
        }
        // Per flow, the built-ins that declare it, in built-in order.
        let mut default_pipelines = HashMap::new();
        for flow in crate::flows::NAMES {
            let ids: Vec<&str> = builtins::ids()
                .into_iter()
                .filter(|id| {
                    loaded
                        .get(*id)
                        .is_some_and(|r| r.metadata.flows.contains(flow))
                })
                .collect();
            let mut default = PipelineConfig::with_rules(&ids);
            default.deadline_ms = u64::try_from(config.assess_deadline.as_millis()).unwrap_or(800);
            let pipeline = default
                .compile(|id| loaded.get(id).map(Runnable::active))
                .with_context(|| format!("compiling the default {flow} pipeline"))?;
            default_pipelines.insert(*flow, Arc::new(pipeline));
        }
        let rate_limits =
            RateLimits::new(config.redis_url.as_deref()).context("configuring rate limits")?;
        let rules = Arc::new(TenantRules::new(
            store.clone(),
            Arc::clone(&runtime),
            Arc::new(modules),
            loaded,
            default_pipelines,
            config.rule_max_bytes,
        ));
        let assessor = Arc::new(Assessor::new(
            store.clone(),
            Arc::clone(&rules),
            config.max_amount_major,
        ));
        let sealer = Sealer::load(config.secrets_key.as_deref(), &config.data_dir)
            .context("loading the secrets key")?;
        let webhooks = Webhooks::new(
            store.clone(),
            Arc::new(sealer),
            Arc::new(config.webhooks.clone()),
        );
        let app = Self {
            webhooks,
            cases: crate::cases::Cases::new(store.clone()),
            store,
            runtime,
            config: Arc::new(config),
            rules,
            auth_cache: Arc::new(AuthCache::default()),
            rate_limits: Arc::new(rate_limits),
            assessor,
        };
        let started = std::time::Instant::now();
        let warmed = app
            .rules
            .warm()
            .await
            .context("loading the tenants' active rules")?;
        tracing::info!(
            rules = warmed,
            ms = started.elapsed().as_millis() as u64,
            "active tenant rules loaded"
        );
        Ok(app)
    }

    /// Binds the configured address and serves until SIGTERM or Ctrl-C,
    /// then drains within the configured shutdown grace.
    pub async fn serve(self) -> anyhow::Result<Server> {
        let listener = TcpListener::bind(self.config.listen)
            .await
            .with_context(|| format!("binding {}", self.config.listen))?;
        let addr = listener.local_addr()?;
        metrics::install();
        let mut limits = self.config.server.clone();
        let open_files = server::raise_open_file_limit();
        if limits.max_connections == 0 {
            limits.max_connections = server::connections_for(open_files);
        }
        tracing::info!(
            open_files,
            max_connections = limits.max_connections,
            "connection limits"
        );
        let mut tasks = Supervisor::default();
        tasks.spawn("activation watcher", {
            let rules = Arc::clone(&self.rules);
            move |stop| rules.watch_activations(stop)
        });
        tasks.spawn("sqlite checkpointer", {
            let store = self.store.clone();
            move |stop| async move { store.checkpoint_until(stop).await }
        });
        tasks.spawn("velocity pruner", {
            let store = self.store.clone();
            move |stop| crate::assess::prune_velocity_until(store, stop)
        });
        if self.config.webhooks.deliver {
            tasks.spawn("webhook delivery", {
                let hooks = self.webhooks.clone();
                move |stop| delivery::run_isolated(hooks, stop)
            });
        }
        let store = self.store.clone();
        let grace = limits.shutdown_grace;
        let router = crate::api::router(self);
        let handle = tokio::spawn(async move {
            // Requests first (they wait for their own commits), then the
            // commit queue and the background tasks. Aborting this task
            // drops the supervisor, which aborts the tasks.
            let served = server::serve(listener, router, limits, shutdown_signal()).await;
            tasks.shutdown(|| store.commits_idle(), grace).await;
            served.context("serving HTTP")
        });
        Ok(Server { addr, handle })
    }
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    pub handle: JoinHandle<anyhow::Result<()>>,
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
