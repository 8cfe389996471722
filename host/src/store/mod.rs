//! Storage: the only module with SQL.
//!
//! Two real backends with the same behaviour through sqlx's `Any` driver:
//! SQLite (the embedded default, a WAL file under the data dir) and
//! PostgreSQL (production and multi-node). The SQL is written once in the
//! common dialect (`$n` placeholders, `ON CONFLICT`, BIGINT times and flags);
//! migrations live per backend under `migrations/`.
mod assessments;
mod audit;
mod blocklists;
mod cases;
mod commit_queue;
mod keys;
mod plans;
mod rules;
mod tenants;
mod webhooks;

use std::{path::Path, str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    AnyPool, Executor, Row,
    any::{AnyConnectOptions, AnyPoolOptions},
};

pub use assessments::{
    AssessContext, AssessmentWrite, CommitOutcome, HistoryRow, IdempotencyRecord, ListMatch,
    OutboxRow, StoredAssessment, VelocityQuery, velocity_step,
};
pub use audit::{AuditBreak, AuditEntry, AuditEvent};
pub use blocklists::{BlocklistEntry, BlocklistFilter, BlocklistPatch, NewBlocklistEntry};
pub use cases::{
    CaseChange, CaseCounts, CaseFilter, CaseNote, CaseRecord, CaseWrite, FraudLabel,
    FraudReportOutcome, FraudReportWrite, SORT_COLUMNS as CASE_SORT_COLUMNS, StoredReport,
};
pub use keys::{ApiKeyRecord, AuthRecord, NewApiKey};
pub use plans::QueryPlan;
pub use rules::{
    Activation, ActivationChange, ActivationRecord, RuleVersionRecord, SigningKeyRecord,
};
pub use tenants::Tenant;
pub use webhooks::{
    Attempt, AttemptRecord, Claimed, Delivery, DispatchLease, Dispatched, FeedEvent, QueueStats,
    WebhookEndpoint, WebhookPatch,
};

/// How often the SQLite WAL is checkpointed off the write path.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Group commits in flight at once on PostgreSQL.
const PG_COMMITTERS: usize = 4;

/// PostgreSQL connections of a background worker's own pool
/// ([`Store::for_worker`]): a delivery turn, a claim and the metrics read
/// at once, and one spare.
const WORKER_PG_CONNECTIONS: u32 = 4;

/// Errors of the storage boundary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness constraint rejected the write (mapped to 409 by the API).
    #[error("duplicate")]
    Duplicate,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot prepare the data directory `{0}`: {1}")]
    DataDir(String, std::io::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// No connection could be had for a write (pool timeout, database
    /// gone); nothing was written.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The group-commit worker ended before answering (the runtime is
    /// shutting down); nothing is known to have been written.
    #[error("the commit worker stopped before answering")]
    CommitWorkerGone,
}

impl StoreError {
    fn from_write(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Duplicate,
            _ => StoreError::Db(e),
        }
    }
}

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How SQLite syncs commits to disk (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SqliteSync {
    /// `FULL`: every commit is fsynced before it is acknowledged, so an
    /// acknowledged assessment survives power loss (the default).
    #[default]
    Full,
    /// `NORMAL`: commits survive a process crash, but the last ones before
    /// an OS crash or power loss can be lost. An operator's explicit choice.
    Normal,
}

impl std::str::FromStr for SqliteSync {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "full" => Ok(Self::Full),
            "normal" => Ok(Self::Normal),
            other => Err(format!("`{other}` is not one of full, normal")),
        }
    }
}

impl SqliteSync {
    fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        }
    }
}

/// A connection to the database.
#[derive(Debug, Clone)]
pub struct Store {
    /// Reads (and, on PostgreSQL, writes).
    pool: AnyPool,
    /// Writes. On SQLite a single connection, so writers queue in-process
    /// instead of spinning on `SQLITE_BUSY`.
    writer: AnyPool,
    backend: Backend,
    /// Assessments waiting for the next group commit.
    commits: Arc<commit_queue::CommitQueue>,
    /// What is worth probing per tenant: list types, IP network lengths
    /// (assess context).
    probes: Arc<assessments::ProbeCache>,
}

impl Store {
    /// Connects to `database_url`, or to `<data_dir>/aduana.db` when no URL is
    /// given (created if missing), with SQLite's durable default.
    pub async fn connect(database_url: Option<&str>, data_dir: &Path) -> Result<Self, StoreError> {
        Self::connect_with(database_url, data_dir, SqliteSync::default()).await
    }

    /// [`Store::connect`] with SQLite's sync mode chosen (ignored on
    /// PostgreSQL, whose durability is the server's `synchronous_commit`).
    pub async fn connect_with(
        database_url: Option<&str>,
        data_dir: &Path,
        sync: SqliteSync,
    ) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let url = match database_url {
            Some(url) => url.to_owned(),
            None => {
                std::fs::create_dir_all(data_dir)
                    .map_err(|e| StoreError::DataDir(data_dir.display().to_string(), e))?;
                format!("sqlite://{}/aduana.db?mode=rwc", data_dir.display())
            }
        };
        let backend = if url.starts_with("postgres") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let options = AnyConnectOptions::from_str(&url)?;
        match backend {
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(32)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_with(options)
                    .await?;
                Ok(Self {
                    writer: pool.clone(),
                    pool,
                    backend,
                    commits: Arc::new(commit_queue::CommitQueue::new(PG_COMMITTERS)),
                    probes: Arc::default(),
                })
            }
            Backend::Sqlite => {
                let opts = || {
                    AnyPoolOptions::new()
                        .acquire_timeout(Duration::from_secs(10))
                        .after_connect(move |conn, _| {
                            Box::pin(async move {
                                // WAL + FULL fsyncs the WAL at every commit
                                // (one per group commit), so an acknowledged
                                // write survives power loss; NORMAL only a
                                // process crash. Checkpoints run off the write
                                // path (`checkpoint_until`); the high
                                // automatic threshold only bounds the WAL
                                // should that task fall behind or not run (CLI).
                                conn.execute(
                                    format!(
                                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {}; \
                                         PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
                                         PRAGMA temp_store = MEMORY; \
                                         PRAGMA wal_autocheckpoint = 16384; \
                                         PRAGMA journal_size_limit = 67108864;",
                                        sync.pragma()
                                    )
                                    .as_str(),
                                )
                                .await?;
                                Ok(())
                            })
                        })
                };
                let writer = opts()
                    .max_connections(1)
                    .connect_with(options.clone())
                    .await?;
                let pool = opts().max_connections(8).connect_with(options).await?;
                Ok(Self {
                    pool,
                    writer,
                    backend,
                    // One writer connection: one batch at a time.
                    commits: Arc::new(commit_queue::CommitQueue::new(1)),
                    probes: Arc::default(),
                })
            }
        }
    }

    /// The same store for a background worker running on a runtime of its
    /// own, with connections of its own, opened lazily by the worker's
    /// thread. On SQLite, a reader connection (same writer and commit
    /// queue): a SQLite connection is a thread, created by the thread that
    /// opens it and sharing its OS priority, so a worker running at a
    /// lower priority must not open connections request handlers later
    /// borrow. On PostgreSQL, a small pool for its reads and writes: a
    /// pooled connection is socket I/O registered with the runtime that
    /// opened it, so the worker must not share the request runtime's
    /// connections (nor they its).
    pub fn for_worker(&self) -> Self {
        let options = (*self.pool.connect_options()).clone();
        match self.backend {
            Backend::Sqlite => {
                let pool = AnyPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(10))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA busy_timeout = 10000;").await?;
                            Ok(())
                        })
                    })
                    .connect_lazy_with(options);
                Self {
                    pool,
                    ..self.clone()
                }
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(WORKER_PG_CONNECTIONS)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_lazy_with(options);
                Self {
                    writer: pool.clone(),
                    pool,
                    ..self.clone()
                }
            }
        }
    }

    /// Applies pending migrations for this backend.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => {
                sqlx::migrate!("../migrations/sqlite")
                    .run(&self.writer)
                    .await?
            }
            Backend::Postgres => {
                sqlx::migrate!("../migrations/postgres")
                    .run(&self.writer)
                    .await?
            }
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Readiness probe: the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// How commits reach the disk, as the writer connection reports it:
    /// `sqlite synchronous=FULL|NORMAL|…`, or `postgresql` (the server's
    /// `synchronous_commit` decides).
    pub async fn durability(&self) -> Result<String, StoreError> {
        if self.backend == Backend::Postgres {
            return Ok("postgresql".to_owned());
        }
        let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&self.writer)
            .await?;
        let name = match level {
            0 => "OFF",
            1 => "NORMAL",
            2 => "FULL",
            3 => "EXTRA",
            _ => "unknown",
        };
        Ok(format!("sqlite synchronous={name}"))
    }

    /// On SQLite, the WAL checkpointer (a supervised task): copies committed
    /// pages from the WAL into the database file every 250 ms, on a reader
    /// connection, until `stop`. Left to SQLite, the checkpoint (and its two `fsync`s)
    /// runs inside whichever commit crosses the threshold, and every
    /// request queued behind that commit waits for the disk: on this
    /// project's test machine that was most of the p99 latency. A passive
    /// checkpoint never blocks the writer or readers. Returns at once on
    /// PostgreSQL.
    pub async fn checkpoint_until(&self, mut stop: crate::tasks::Stop) {
        if self.backend != Backend::Sqlite {
            return;
        }
        let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !self.pool.is_closed() {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.requested() => return,
            }
            match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_optional(&self.pool)
                .await
            {
                // (busy, frames in the WAL, frames checkpointed); -1 when
                // the checkpoint could not run this time.
                Ok(Some(row)) => {
                    let frames: i64 = row.try_get(1).unwrap_or(-1);
                    let done: i64 = row.try_get(2).unwrap_or(-1);
                    if frames >= 0 && done >= 0 {
                        metrics::gauge!("aduana_sqlite_wal_frames").set(frames as f64);
                        metrics::gauge!("aduana_sqlite_wal_frames_behind")
                            .set((frames - done) as f64);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    if self.pool.is_closed() {
                        break;
                    }
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
            }
        }
    }

    /// No assessment is waiting for, or in, a group commit.
    pub fn commits_idle(&self) -> bool {
        self.commits.is_idle()
    }

    /// Closes both pools.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}
