//! Per-key rate limits (`rate_limit_per_minute`, `rate_limit_per_day`),
//! enforced in memory with GCRA limiters from `governor`: a key may burst
//! its whole per-minute allowance, which then refills continuously.
//!
//! In-memory limits are per node; a shared store for multi-node limits is
//! future work (see docs/decisions.md).
use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::{InMemoryState, NotKeyed},
};

use super::ApiError;

type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

struct KeyLimiters {
    per_minute: Option<i64>,
    per_day: Option<i64>,
    minute: Option<Limiter>,
    day: Option<Limiter>,
}

fn limiter(count: i64, window: Duration) -> Option<Limiter> {
    let n = NonZeroU32::new(u32::try_from(count).ok()?)?;
    let period = window.checked_div(n.get())?;
    let quota = Quota::with_period(period)?.allow_burst(n);
    Some(RateLimiter::direct(quota).with_middleware::<StateInformationMiddleware>())
}

/// The limiters of every key seen by this node.
#[derive(Default)]
pub struct RateLimits {
    keys: Mutex<HashMap<String, Arc<Mutex<KeyLimiters>>>>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").finish_non_exhaustive()
    }
}

impl RateLimits {
    /// Counts one request of `key_id`; `Err(RATE_LIMITED)` when over a limit.
    /// `None` or a non-positive limit means unlimited.
    pub fn check(
        &self,
        key_id: &str,
        per_minute: Option<i64>,
        per_day: Option<i64>,
    ) -> Result<(), ApiError> {
        if per_minute.is_none_or(|n| n <= 0) && per_day.is_none_or(|n| n <= 0) {
            return Ok(());
        }
        let entry = {
            let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(keys.entry(key_id.to_owned()).or_insert_with(|| {
                Arc::new(Mutex::new(KeyLimiters {
                    per_minute: None,
                    per_day: None,
                    minute: None,
                    day: None,
                }))
            }))
        };
        let mut k = entry.lock().unwrap_or_else(|p| p.into_inner());
        if k.per_minute != per_minute || k.minute.is_none() && per_minute.is_some_and(|n| n > 0) {
            k.per_minute = per_minute;
            k.minute = per_minute.and_then(|n| limiter(n, Duration::from_secs(60)));
        }
        if k.per_day != per_day || k.day.is_none() && per_day.is_some_and(|n| n > 0) {
            k.per_day = per_day;
            k.day = per_day.and_then(|n| limiter(n, Duration::from_secs(86_400)));
        }
        for (lim, limit) in [(&k.minute, per_minute), (&k.day, per_day)] {
            let (Some(lim), Some(limit)) = (lim, limit) else {
                continue;
            };
            if let Err(not_until) = lim.check() {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                return Err(ApiError::RateLimited {
                    limit,
                    retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                });
            }
        }
        Ok(())
    }
}
