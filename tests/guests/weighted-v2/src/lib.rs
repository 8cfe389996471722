//! Test rule `weighted-amount` 1.2.0: as 1.0.0, but its default weight is
//! 40 and it no longer knows `legacy_mode` (an unknown param is an error).
use aduana_guest_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// Tunables.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    #[serde(default = "weight")]
    pub weight: u32,
    /// Minor units from which the signal fires.
    #[serde(default = "min_minor")]
    pub min_minor: u64,
}

fn weight() -> u32 {
    40
}

fn min_minor() -> u64 {
    100_000
}

impl Default for Params {
    fn default() -> Self {
        Self {
            weight: weight(),
            min_minor: min_minor(),
        }
    }
}

/// The rule.
pub struct Weighted;

impl Rule for Weighted {
    type Params = Params;

    fn describe() -> aduana_guest_sdk::Description {
        aduana_guest_sdk::Description::new("weighted-amount", "large payout, weighted by params")
            .flow(Flow::Payout)
            .signal("weighted_large_amount", 40, "payout is large")
    }

    fn evaluate(tx: &Transaction, p: &Params, _: &dyn Context) -> Result<Evaluation, RuleError> {
        let mut out = Evaluation::new();
        if tx.amount.minor >= p.min_minor {
            out.fire("weighted_large_amount", p.weight, "large payout (v2)");
        }
        Ok(out)
    }
}

export_rule!(Weighted);
