//! Quarantine for rules that keep exhausting their budget.
//!
//! A rule that runs out of fuel, time or memory three times in a row is
//! not run again for 30 seconds: each of its steps is recorded as
//! `errored` ("quarantined …") at no cost, and `on_error` applies as for any
//! failure. After the cooldown one run is tried; success closes the
//! breaker, another exhaustion opens it again. This bounds how much CPU a
//! hostile or broken rule can take from everyone else, whatever its
//! tenant's rate limit. Traps and panics fail fast and are not counted.
//!
//! State lives with the compiled step, so it is per tenant pipeline and
//! per node, and resets when the pipeline is rebuilt. Replay and backtest
//! use fresh steps and always run the rule.
use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

/// Consecutive exhaustions that open the breaker.
pub const THRESHOLD: u32 = 3;
/// How long an open breaker skips the rule.
pub const COOLDOWN: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
    last_reason: String,
}

/// One step's breaker.
#[derive(Debug, Default)]
pub struct Breaker {
    state: Mutex<State>,
}

/// Whether a failure reason means the rule exhausted a budget.
fn is_exhaustion(reason: &str) -> bool {
    reason.starts_with("fuel budget exhausted")
        || reason.starts_with("deadline exceeded")
        || reason.starts_with("memory limit exceeded")
}

impl Breaker {
    /// `Some(reason)` while the breaker is open (the rule must not run).
    pub fn open_reason(&self) -> Option<String> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match state.open_until {
            Some(until) if Instant::now() < until => Some(format!(
                "quarantined: exhausted its budget {} times in a row (last: {}); retried in {} s",
                state.failures,
                state.last_reason,
                until.saturating_duration_since(Instant::now()).as_secs() + 1
            )),
            _ => None,
        }
    }

    /// Records how a run ended (`None` = completed).
    pub fn record(&self, errored: Option<&str>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match errored {
            Some(reason) if is_exhaustion(reason) => {
                state.failures += 1;
                state.last_reason = reason.to_owned();
                if state.failures >= THRESHOLD {
                    state.open_until = Some(Instant::now() + COOLDOWN);
                }
            }
            _ => {
                state.failures = 0;
                state.open_until = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_exhaustions_only() {
        let b = Breaker::default();
        b.record(Some("fuel budget exhausted"));
        b.record(Some("trap: unreachable"));
        b.record(Some("fuel budget exhausted"));
        b.record(Some("fuel budget exhausted"));
        assert!(b.open_reason().is_none(), "the trap reset the count");
        b.record(Some("memory limit exceeded"));
        assert!(
            b.open_reason()
                .is_some_and(|r| r.contains("memory limit exceeded"))
        );
        b.record(None);
        assert!(b.open_reason().is_none());
    }
}
