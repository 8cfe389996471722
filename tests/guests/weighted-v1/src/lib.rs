//! Test rule `weighted-amount` 1.0.0: fires `weighted_large_amount` with
//! the weight its params give (70 by default) on payouts of at least
//! `min_minor`. Version 1.2.0 lowers the default weight and drops the
//! `legacy_mode` param, so tests can tell which params a version ran with.
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
    /// A param only this version knows.
    #[serde(default)]
    pub legacy_mode: bool,
}

fn weight() -> u32 {
    70
}

fn min_minor() -> u64 {
    100_000
}

impl Default for Params {
    fn default() -> Self {
        Self {
            weight: weight(),
            min_minor: min_minor(),
            legacy_mode: false,
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
            .signal("weighted_large_amount", 70, "payout is large")
    }

    fn evaluate(tx: &Transaction, p: &Params, _: &dyn Context) -> Result<Evaluation, RuleError> {
        let mut out = Evaluation::new();
        if tx.amount.minor >= p.min_minor {
            out.fire("weighted_large_amount", p.weight, "large payout (v1)");
        }
        Ok(out)
    }
}

export_rule!(Weighted);
