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
mod keys;
mod rules;
mod tenants;

use std::{path::Path, str::FromStr, time::Duration};

use sqlx::{
    AnyPool, Executor,
    any::{AnyConnectOptions, AnyPoolOptions},
};

pub use assessments::{
    AssessmentWrite, CommitOutcome, HistoryRow, IdempotencyRecord, ListMatch, StoredAssessment,
};
pub use audit::{AuditBreak, AuditEntry, AuditEvent};
pub use blocklists::{BlocklistEntry, BlocklistFilter, BlocklistPatch, NewBlocklistEntry};
pub use keys::{ApiKeyRecord, AuthRecord, NewApiKey};
pub use rules::{ActivationRecord, RuleVersionRecord, SigningKeyRecord};
pub use tenants::Tenant;

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

/// A connection to the database.
#[derive(Debug, Clone)]
pub struct Store {
    /// Reads (and, on PostgreSQL, writes).
    pool: AnyPool,
    /// Writes. On SQLite a single connection, so writers queue in-process
    /// instead of spinning on `SQLITE_BUSY`.
    writer: AnyPool,
    backend: Backend,
}

impl Store {
    /// Connects to `database_url`, or to `<data_dir>/aduana.db` when no URL is
    /// given (created if missing).
    pub async fn connect(database_url: Option<&str>, data_dir: &Path) -> Result<Self, StoreError> {
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
                })
            }
            Backend::Sqlite => {
                let opts = || {
                    AnyPoolOptions::new()
                        .acquire_timeout(Duration::from_secs(10))
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                // WAL + NORMAL survives a process crash (kill -9);
                                // only power loss can drop the last commits.
                                conn.execute(
                                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                     PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
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
                })
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

    /// Closes both pools.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}
