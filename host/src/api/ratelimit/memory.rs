//! The in-memory store: one `governor` GCRA limiter per key and window, on
//! this node only.
use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    state::{InMemoryState, NotKeyed},
};

use super::{ApiError, Window, retry_after_secs};

type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock>;

fn limiter(w: Window) -> Option<Limiter> {
    let n = NonZeroU32::new(u32::try_from(w.limit).ok()?)?;
    let period = w.length.checked_div(n.get())?;
    let quota = Quota::with_period(period)?.allow_burst(n);
    Some(RateLimiter::direct(quota))
}

/// A key's limiters, rebuilt when its limits change.
#[derive(Default)]
struct KeyLimiters {
    windows: Vec<Window>,
    limiters: Vec<Option<Limiter>>,
}

/// The limiters of every key seen by this node.
#[derive(Default)]
pub struct MemoryLimits {
    keys: Mutex<HashMap<String, Arc<Mutex<KeyLimiters>>>>,
}

impl MemoryLimits {
    pub fn check(&self, key_id: &str, windows: &[Window]) -> Result<(), ApiError> {
        let entry = {
            let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(keys.entry(key_id.to_owned()).or_default())
        };
        let mut k = entry.lock().unwrap_or_else(|p| p.into_inner());
        if k.windows != windows {
            k.windows = windows.to_vec();
            k.limiters = windows.iter().map(|w| limiter(*w)).collect();
        }
        for (w, lim) in k.windows.iter().zip(&k.limiters) {
            let Some(lim) = lim else { continue };
            if let Err(not_until) = lim.check() {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                return Err(ApiError::RateLimited {
                    limit: w.limit,
                    retry_after_secs: retry_after_secs(wait),
                });
            }
        }
        Ok(())
    }
}
