//! Per-key rate limits (`rate_limit_per_minute`, `rate_limit_per_day`, §12).
//!
//! Both stores implement GCRA: a key may burst its whole allowance, which
//! then refills continuously (one request every `window / limit`). By default
//! the limiters live in this node's memory; with `ADUANA_REDIS_URL` they live
//! in Redis, so every node of a cluster counts against the same budget. When
//! the configured Redis cannot answer, requests of rate-limited keys get 503
//! `RATE_LIMIT_STORE_UNAVAILABLE` rather than passing unchecked; keys without
//! limits never consult the store.
mod memory;
mod redis;

use std::time::Duration;

use crate::api::error::ApiError;

/// A window a key is limited in, and its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Requests allowed per `length`.
    pub limit: i64,
    pub length: Duration,
}

/// The windows of a key: `None` or a non-positive limit means unlimited.
fn windows(per_minute: Option<i64>, per_day: Option<i64>) -> Vec<Window> {
    [(per_minute, 60), (per_day, 86_400)]
        .into_iter()
        .filter_map(|(limit, secs)| {
            limit.filter(|&l| l > 0).map(|limit| Window {
                limit,
                length: Duration::from_secs(secs),
            })
        })
        .collect()
}

/// Where the limiters live.
pub enum RateLimits {
    Memory(memory::MemoryLimits),
    Redis(redis::RedisLimits),
}

impl Default for RateLimits {
    fn default() -> Self {
        Self::Memory(memory::MemoryLimits::default())
    }
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.store_name())
    }
}

impl RateLimits {
    /// In memory, or in the Redis at `redis_url` (connected lazily: a node
    /// starts even while Redis is down).
    pub fn new(redis_url: Option<&str>) -> anyhow::Result<Self> {
        Ok(match redis_url {
            None => Self::default(),
            Some(url) => Self::Redis(redis::RedisLimits::new(url)?),
        })
    }

    /// `memory` or `redis`.
    pub fn store_name(&self) -> &'static str {
        match self {
            Self::Memory(_) => "memory",
            Self::Redis(_) => "redis",
        }
    }

    /// Counts one request of `key_id`: `Err(RATE_LIMITED)` when over a limit
    /// (then nothing is counted in any window), `Err(RATE_LIMIT_STORE_UNAVAILABLE)`
    /// when the shared store cannot answer.
    pub async fn check(
        &self,
        key_id: &str,
        per_minute: Option<i64>,
        per_day: Option<i64>,
    ) -> Result<(), ApiError> {
        let windows = windows(per_minute, per_day);
        if windows.is_empty() {
            return Ok(());
        }
        match self {
            Self::Memory(m) => m.check(key_id, &windows),
            Self::Redis(r) => r.check(key_id, &windows).await,
        }
    }

    /// Whether the store answers (always, in memory).
    pub async fn healthy(&self) -> bool {
        match self {
            Self::Memory(_) => true,
            Self::Redis(r) => r.ping().await,
        }
    }
}

/// The `Retry-After` seconds for a wait: whole seconds, at least one.
fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_windows_are_dropped() {
        assert!(windows(None, None).is_empty());
        assert!(windows(Some(0), Some(-1)).is_empty());
        let w = windows(Some(3), None);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].length, Duration::from_secs(60));
        assert_eq!(windows(Some(3), Some(10)).len(), 2);
    }

    #[test]
    fn retry_after_is_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
