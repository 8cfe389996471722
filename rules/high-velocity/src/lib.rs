//! Built-in rule `high-velocity` (pay-in): fires `high_velocity` when the
//! tenant's earlier pay-ins sharing this one's customer, card, IP, device
//! or e-mail reach a limit within a window (1 h, 24 h, 7 d). The host
//! counts them as of the assessment's time and passes the counts in the
//! context, so replay and backtest see what the decision saw. The limits
//! are params; one signal names every exceeded (entity, window, count).
use std::collections::BTreeMap;

use aduana_guest_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// Tunables.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Entity → window → the most earlier pay-ins allowed; this one fires
    /// when the count of earlier ones reaches the limit. An entity or
    /// window left out is not limited.
    pub limits: BTreeMap<String, BTreeMap<String, u32>>,
    /// Weight of the signal.
    pub weight: u32,
}

impl Default for Params {
    fn default() -> Self {
        let limits = |h1, h24, d7| {
            BTreeMap::from([
                ("1h".to_owned(), h1),
                ("24h".to_owned(), h24),
                ("7d".to_owned(), d7),
            ])
        };
        Self {
            limits: BTreeMap::from([
                ("customer".to_owned(), limits(5, 20, 60)),
                ("card".to_owned(), limits(3, 10, 30)),
                ("ip".to_owned(), limits(10, 50, 200)),
                ("device".to_owned(), limits(5, 20, 60)),
                ("email".to_owned(), limits(5, 20, 60)),
            ]),
            weight: 35,
        }
    }
}

const ENTITIES: &[&str] = &["customer", "card", "ip", "device", "email"];
const WINDOWS: &[&str] = &["1h", "24h", "7d"];

/// The rule.
pub struct HighVelocity;

impl Rule for HighVelocity {
    type Params = Params;

    fn describe() -> aduana_guest_sdk::Description {
        aduana_guest_sdk::Description::new(
            "high-velocity",
            "many pay-ins from one customer, card, IP, device or e-mail in a short time",
        )
        .flow(Flow::Payin)
        .signal(
            "high_velocity",
            35,
            "the customer, card, IP, device or e-mail reached its pay-in limit for a window",
        )
    }

    fn evaluate(
        _tx: &Transaction,
        params: &Params,
        ctx: &dyn Context,
    ) -> Result<Evaluation, RuleError> {
        for entity in params.limits.keys() {
            if !ENTITIES.contains(&entity.as_str()) {
                return Err(RuleError::InvalidParams(format!(
                    "limits: `{entity}` is not one of {}",
                    ENTITIES.join(", ")
                )));
            }
        }
        for window in params.limits.values().flat_map(BTreeMap::keys) {
            if !WINDOWS.contains(&window.as_str()) {
                return Err(RuleError::InvalidParams(format!(
                    "limits: window `{window}` is not one of {}",
                    WINDOWS.join(", ")
                )));
            }
        }
        let mut exceeded = Vec::new();
        for entity in ENTITIES {
            let Some(windows) = params.limits.get(*entity) else {
                continue;
            };
            for window in WINDOWS {
                let (Some(limit), Some(count)) =
                    (windows.get(*window), ctx.velocity(entity, window))
                else {
                    continue;
                };
                if count >= *limit {
                    exceeded.push(format!(
                        "{entity}: {count} earlier pay-ins in {window} (limit {limit})"
                    ));
                }
            }
        }
        let mut out = Evaluation::new();
        if !exceeded.is_empty() {
            out.fire("high_velocity", params.weight, &exceeded.join("; "));
        }
        Ok(out)
    }
}

export_rule!(HighVelocity);
