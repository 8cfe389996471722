//! The shared store: GCRA state in Redis, judged by one Lua script on the
//! Redis server's own clock, so every node agrees on one budget per key and
//! node clocks never matter.
use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use anyhow::Context as _;
use redis::{
    Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use super::{ApiError, Window, retry_after_secs};

/// How long a request waits for Redis before it is answered 503. A limit
/// check sits on the assess path, so this is short.
const ANSWER_WITHIN: Duration = Duration::from_millis(250);

/// GCRA over every window of a key, atomically. `KEYS[i]` holds window i's
/// theoretical arrival time in µs; `ARGV[2i-1]` is its emission interval in
/// µs and `ARGV[2i]` its limit (the burst). Nothing is written unless every
/// window admits the request. Returns `{1, 0, 0}` when admitted and
/// `{0, i, wait_us}` when window i refuses.
const GCRA: &str = r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local next_tat = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = interval * tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now) or now
  if tat < now then tat = now end
  local new_tat = tat + interval
  if new_tat - tolerance > now then
    return {0, i, new_tat - tolerance - now}
  end
  next_tat[i] = new_tat
end
for i = 1, #KEYS do
  local ttl_ms = math.ceil((next_tat[i] - now) / 1000) + 1000
  redis.call('SET', KEYS[i], string.format('%d', next_tat[i]), 'PX', ttl_ms)
end
return {1, 0, 0}
";

pub struct RedisLimits {
    conn: ConnectionManager,
    script: Script,
    /// Whether the last exchange with Redis worked, to log transitions once
    /// instead of every refused request.
    up: AtomicBool,
}

impl RedisLimits {
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("ADUANA_REDIS_URL is not a Redis URL")?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(ANSWER_WITHIN))
            .set_response_timeout(Some(ANSWER_WITHIN))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .context("setting up the Redis connection")?;
        Ok(Self {
            conn,
            script: Script::new(GCRA),
            up: AtomicBool::new(true),
        })
    }

    pub async fn check(&self, key_id: &str, windows: &[Window]) -> Result<(), ApiError> {
        let mut invocation = self.script.prepare_invoke();
        for w in windows {
            // The hash tag keeps a key's windows in one cluster slot.
            invocation.key(format!("aduana:rl:{{{key_id}}}:{}", w.length.as_secs()));
            let interval_us = (w.length.as_micros() / u128::from(w.limit.unsigned_abs())).max(1);
            invocation.arg(u64::try_from(interval_us).unwrap_or(u64::MAX));
            invocation.arg(w.limit);
        }
        let mut conn = self.conn.clone();
        let answer = tokio::time::timeout(
            ANSWER_WITHIN,
            invocation.invoke_async::<(i64, i64, i64)>(&mut conn),
        )
        .await;
        let (admitted, window, value) = match answer {
            Ok(Ok(v)) => {
                self.mark(true, None);
                v
            }
            Ok(Err(e)) => {
                self.mark(false, Some(&e.to_string()));
                return Err(ApiError::RateLimitStoreUnavailable);
            }
            Err(_) => {
                self.mark(false, Some("no answer within 250 ms"));
                return Err(ApiError::RateLimitStoreUnavailable);
            }
        };
        if admitted == 1 {
            return Ok(());
        }
        let refused = usize::try_from(window - 1)
            .ok()
            .and_then(|i| windows.get(i))
            .or(windows.first());
        Err(ApiError::RateLimited {
            limit: refused.map_or(0, |w| w.limit),
            retry_after_secs: retry_after_secs(Duration::from_micros(value.unsigned_abs())),
        })
    }

    pub async fn ping(&self) -> bool {
        let mut conn = self.conn.clone();
        let answer = tokio::time::timeout(
            ANSWER_WITHIN,
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await;
        matches!(answer, Ok(Ok(_)))
    }

    fn mark(&self, up: bool, error: Option<&str>) {
        if !up {
            metrics::counter!("aduana_rate_limit_store_errors_total").increment(1);
        }
        if self.up.swap(up, Ordering::Relaxed) != up {
            match error {
                Some(e) => tracing::warn!(error = e, "Redis rate-limit store unavailable"),
                None => tracing::info!("Redis rate-limit store reachable again"),
            }
        }
    }
}
