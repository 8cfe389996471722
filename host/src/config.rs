//! Service configuration, from the environment (and CLI flags in `main`).
use std::{net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use rust_decimal::Decimal;

use crate::{domain::money::default_max_major, runtime::RuntimeLimits, store::SqliteSync};

/// Default largest rule component accepted by upload.
pub const DEFAULT_RULE_MAX_BYTES: usize = 1 << 20;

/// Everything the service needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// `ADUANA_LISTEN`, default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// `ADUANA_DATA_DIR`, default `./data`: holds the SQLite file.
    pub data_dir: PathBuf,
    /// `DATABASE_URL`: `postgres://…` for PostgreSQL; unset for SQLite.
    pub database_url: Option<String>,
    /// `ADUANA_SQLITE_SYNCHRONOUS`: `full` (default: fsync every commit) or
    /// `normal` (survives a process crash, not a power loss).
    pub sqlite_sync: SqliteSync,
    /// Per-evaluation limits (`ADUANA_RULE_FUEL`, `ADUANA_RULE_DEADLINE_MS`,
    /// `ADUANA_RULE_MEMORY_MB`).
    pub limits: RuntimeLimits,
    /// `ADUANA_ASSESS_DEADLINE_MS`, default 800.
    pub assess_deadline: Duration,
    /// `ADUANA_MAX_AMOUNT_MAJOR`, default 1 000 000 000 000.
    pub max_amount_major: Decimal,
    /// `ADUANA_RULE_MAX_BYTES`: largest accepted rule component, default 1 MiB.
    pub rule_max_bytes: usize,
    /// `ADUANA_OPERATOR_TOKEN`: enables the operator API; unset = off.
    pub operator_token: Option<String>,
    /// `ADUANA_REDIS_URL` (`redis://host:port/db`): keep rate limits in
    /// Redis, shared by every node; unset = in this node's memory.
    pub redis_url: Option<String>,
    /// Connection timeouts and limits: `ADUANA_HEADER_TIMEOUT_MS` (10 s),
    /// `ADUANA_BODY_TIMEOUT_MS` (30 s), `ADUANA_IDLE_TIMEOUT_MS` (60 s),
    /// `ADUANA_MAX_CONNECTIONS` (0 = from the open-file limit),
    /// `ADUANA_SHUTDOWN_GRACE_MS` (10 s), `ADUANA_MAX_HEADER_BYTES` (16 KiB).
    pub server: ServerLimits,
    /// `ADUANA_SECRETS_KEY`: base64 of the 32-byte key sealing stored
    /// secrets; unset = `<data dir>/secrets.key` (see `secrets`).
    pub secrets_key: Option<String>,
    /// Outbound webhooks (see [`WebhookConfig`]).
    pub webhooks: WebhookConfig,
}

/// How webhooks are delivered. Every field is configurable.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// `ADUANA_WEBHOOK_DELIVERY=off` keeps this node from delivering (an
    /// API-only node; other nodes on the database deliver).
    pub deliver: bool,
    /// `ADUANA_WEBHOOK_ALLOW_PRIVATE=1`: allow private, loopback and
    /// link-local targets and plain `http` (tests, on-premise receivers).
    pub allow_private: bool,
    /// `ADUANA_WEBHOOK_TIMEOUT_MS` (15 s): a 2xx within it is a delivery.
    pub timeout: Duration,
    /// `ADUANA_WEBHOOK_RETRY_SCHEDULE`: seconds before each attempt,
    /// comma-separated (`0,5,300,1800,7200,18000,36000,50400,72000,86400`);
    /// after the last one fails the delivery is `failed`. Each later delay
    /// gets ±10% jitter.
    pub retry_schedule: Vec<Duration>,
    /// `ADUANA_WEBHOOK_ROTATION_OVERLAP_SECS` (86,400): how long a rotated
    /// secret keeps signing beside the new one.
    pub rotation_overlap: Duration,
    /// `ADUANA_WEBHOOK_DISABLE_AFTER_SECS` (5 days): an endpoint failing
    /// without a success for this long is disabled.
    pub disable_after: Duration,
    /// `ADUANA_EVENT_RETENTION_DAYS` (30): events, deliveries and attempts
    /// are kept this long.
    pub retention: Duration,
    /// `ADUANA_WEBHOOK_ENDPOINT_CONCURRENCY` (16): attempts in flight per
    /// endpoint on one node.
    pub endpoint_concurrency: usize,
    /// `ADUANA_WEBHOOK_CONCURRENCY` (256): attempts in flight on one node.
    pub concurrency: usize,
    /// `ADUANA_WEBHOOK_POLL_MS` (20): how often an idle worker looks for
    /// new events and due retries.
    pub poll: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            deliver: true,
            allow_private: false,
            timeout: Duration::from_secs(15),
            retry_schedule: [
                0, 5, 300, 1800, 7200, 18_000, 36_000, 50_400, 72_000, 86_400,
            ]
            .into_iter()
            .map(Duration::from_secs)
            .collect(),
            rotation_overlap: Duration::from_secs(86_400),
            disable_after: Duration::from_secs(5 * 86_400),
            retention: Duration::from_secs(30 * 86_400),
            endpoint_concurrency: 16,
            concurrency: 256,
            poll: Duration::from_millis(20),
        }
    }
}

fn webhook_config() -> Result<WebhookConfig, ConfigError> {
    let d = WebhookConfig::default();
    let schedule = match std::env::var("ADUANA_WEBHOOK_RETRY_SCHEDULE") {
        Ok(v) if !v.trim().is_empty() => v
            .split(',')
            .map(|s| s.trim().parse::<u64>().map(Duration::from_secs))
            .collect::<Result<Vec<_>, _>>()
            .ok()
            .filter(|s| !s.is_empty())
            .ok_or(ConfigError {
                name: "ADUANA_WEBHOOK_RETRY_SCHEDULE",
                value: v,
            })?,
        _ => d.retry_schedule.clone(),
    };
    let positive = |name: &'static str, v: u64| {
        if v == 0 {
            Err(ConfigError {
                name,
                value: "0".to_owned(),
            })
        } else {
            Ok(v)
        }
    };
    Ok(WebhookConfig {
        deliver: !matches!(
            std::env::var("ADUANA_WEBHOOK_DELIVERY").as_deref(),
            Ok("off" | "0" | "false" | "no")
        ),
        allow_private: matches!(
            std::env::var("ADUANA_WEBHOOK_ALLOW_PRIVATE").as_deref(),
            Ok("1" | "true" | "yes")
        ),
        timeout: Duration::from_millis(positive(
            "ADUANA_WEBHOOK_TIMEOUT_MS",
            var("ADUANA_WEBHOOK_TIMEOUT_MS", 15_000)?,
        )?),
        retry_schedule: schedule,
        rotation_overlap: Duration::from_secs(var(
            "ADUANA_WEBHOOK_ROTATION_OVERLAP_SECS",
            d.rotation_overlap.as_secs(),
        )?),
        disable_after: Duration::from_secs(positive(
            "ADUANA_WEBHOOK_DISABLE_AFTER_SECS",
            var(
                "ADUANA_WEBHOOK_DISABLE_AFTER_SECS",
                d.disable_after.as_secs(),
            )?,
        )?),
        retention: Duration::from_secs(
            positive(
                "ADUANA_EVENT_RETENTION_DAYS",
                var("ADUANA_EVENT_RETENTION_DAYS", 30)?,
            )? * 86_400,
        ),
        endpoint_concurrency: usize::try_from(positive(
            "ADUANA_WEBHOOK_ENDPOINT_CONCURRENCY",
            var("ADUANA_WEBHOOK_ENDPOINT_CONCURRENCY", 16)?,
        )?)
        .unwrap_or(16),
        concurrency: usize::try_from(positive(
            "ADUANA_WEBHOOK_CONCURRENCY",
            var("ADUANA_WEBHOOK_CONCURRENCY", 256)?,
        )?)
        .unwrap_or(256),
        poll: Duration::from_millis(positive(
            "ADUANA_WEBHOOK_POLL_MS",
            var("ADUANA_WEBHOOK_POLL_MS", 20)?,
        )?),
    })
}

/// How the server treats its connections. Every field is configurable
/// (see [`Config::server`]).
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// From a request's first byte to the end of its head.
    pub header_timeout: Duration,
    /// From the end of the head to the end of the body.
    pub body_timeout: Duration,
    /// Between requests on a keep-alive connection.
    pub idle_timeout: Duration,
    /// Open connections at most (the rest of the descriptors are for the
    /// database, files and Redis).
    pub max_connections: usize,
    /// Longest a shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// Request line and headers, in bytes (431 past it).
    pub max_header_bytes: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            shutdown_grace: Duration::from_secs(10),
            max_header_bytes: 16 << 10,
        }
    }
}

/// A malformed environment variable.
#[derive(Debug, thiserror::Error)]
#[error("environment variable `{name}` is invalid: `{value}`")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
}

fn var<T: FromStr>(name: &'static str, default: T) -> Result<T, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            v.trim().parse().map_err(|_| ConfigError { name, value: v })
        }
        _ => Ok(default),
    }
}

impl Config {
    /// Reads the configuration from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = RuntimeLimits::default();
        let limits = RuntimeLimits {
            fuel: var("ADUANA_RULE_FUEL", defaults.fuel)?,
            epoch_deadline_ticks: var("ADUANA_RULE_DEADLINE_MS", defaults.epoch_deadline_ticks)?,
            memory_bytes: var("ADUANA_RULE_MEMORY_MB", defaults.memory_bytes >> 20)? << 20,
            ..defaults
        };
        Ok(Self {
            listen: var("ADUANA_LISTEN", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            data_dir: var("ADUANA_DATA_DIR", PathBuf::from("./data"))?,
            database_url: std::env::var("DATABASE_URL")
                .ok()
                .filter(|u| !u.trim().is_empty()),
            sqlite_sync: var("ADUANA_SQLITE_SYNCHRONOUS", SqliteSync::Full)?,
            limits,
            assess_deadline: Duration::from_millis(var("ADUANA_ASSESS_DEADLINE_MS", 800)?),
            max_amount_major: var("ADUANA_MAX_AMOUNT_MAJOR", default_max_major())?,
            rule_max_bytes: var("ADUANA_RULE_MAX_BYTES", DEFAULT_RULE_MAX_BYTES)?,
            operator_token: std::env::var("ADUANA_OPERATOR_TOKEN")
                .ok()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty()),
            redis_url: std::env::var("ADUANA_REDIS_URL")
                .ok()
                .map(|u| u.trim().to_owned())
                .filter(|u| !u.is_empty()),
            server: server_limits()?,
            secrets_key: std::env::var("ADUANA_SECRETS_KEY")
                .ok()
                .map(|k| k.trim().to_owned())
                .filter(|k| !k.is_empty()),
            webhooks: webhook_config()?,
        })
    }

    /// Defaults for a given database, for tests and tools.
    pub fn for_database(database_url: Option<String>, data_dir: PathBuf) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            database_url,
            sqlite_sync: SqliteSync::Full,
            limits: RuntimeLimits::default(),
            assess_deadline: Duration::from_millis(800),
            max_amount_major: default_max_major(),
            rule_max_bytes: DEFAULT_RULE_MAX_BYTES,
            operator_token: None,
            redis_url: None,
            server: ServerLimits {
                max_connections: 0,
                ..ServerLimits::default()
            },
            secrets_key: None,
            webhooks: WebhookConfig::default(),
        }
    }
}

fn server_limits() -> Result<ServerLimits, ConfigError> {
    let d = ServerLimits::default();
    let ms = |name, default: Duration| -> Result<Duration, ConfigError> {
        let millis = var(name, u64::try_from(default.as_millis()).unwrap_or(u64::MAX))?;
        if millis == 0 {
            return Err(ConfigError {
                name,
                value: "0".to_owned(),
            });
        }
        Ok(Duration::from_millis(millis))
    };
    Ok(ServerLimits {
        header_timeout: ms("ADUANA_HEADER_TIMEOUT_MS", d.header_timeout)?,
        body_timeout: ms("ADUANA_BODY_TIMEOUT_MS", d.body_timeout)?,
        idle_timeout: ms("ADUANA_IDLE_TIMEOUT_MS", d.idle_timeout)?,
        // 0: derived from the open-file limit at start-up.
        max_connections: var("ADUANA_MAX_CONNECTIONS", 0)?,
        shutdown_grace: ms("ADUANA_SHUTDOWN_GRACE_MS", d.shutdown_grace)?,
        max_header_bytes: var("ADUANA_MAX_HEADER_BYTES", d.max_header_bytes)?,
    })
}
