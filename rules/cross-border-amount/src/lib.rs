//! Built-in rule `cross-border-amount`: fires
//! `payout_cross_border_high_amount` when the beneficiary's country differs
//! from the origin's and the amount reaches the currency's threshold.
//!
//! Thresholds are per currency, in major units as decimal strings, and are
//! compared exactly in minor units. A currency without a threshold never
//! fires; a transfer whose countries are unknown is not judged cross-border.
use std::collections::BTreeMap;

use aduana_guest_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// Tunables.
///
/// Defaults are per field, not `#[serde(default)]` on the struct: that would
/// build the whole default value (every list entry) before parsing, on every
/// evaluation, only to drop it, since the host always passes every field.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Weight of `payout_cross_border_high_amount`.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Currency code → threshold in major units (`"200000.00"`).
    #[serde(default = "default_thresholds")]
    pub thresholds: BTreeMap<String, String>,
}

fn default_weight() -> u32 {
    35
}

impl Default for Params {
    fn default() -> Self {
        Self {
            weight: default_weight(),
            thresholds: default_thresholds(),
        }
    }
}

fn default_thresholds() -> BTreeMap<String, String> {
    // Roughly USD 10,000 in each currency, rounded; tenants tune these.
    let t = [
        ("MXN", "200000"),
        ("USD", "10000"),
        ("EUR", "10000"),
        ("GBP", "8000"),
        ("CAD", "14000"),
        ("CHF", "9000"),
        ("JPY", "1500000"),
        ("BRL", "55000"),
        ("CLP", "9500000"),
        ("COP", "40000000"),
        ("PEN", "37000"),
        ("ARS", "10000000"),
        ("UYU", "400000"),
    ];
    t.iter()
        .map(|(c, v)| ((*c).to_owned(), (*v).to_owned()))
        .collect()
}

/// The rule.
pub struct CrossBorderAmount;

const CODE: &str = "payout_cross_border_high_amount";

impl Rule for CrossBorderAmount {
    type Params = Params;

    fn describe() -> aduana_guest_sdk::Description {
        aduana_guest_sdk::Description::new(
            "cross-border-amount",
            "cross-border transfer at or above the currency's threshold",
        )
        .flow(Flow::Payout)
        .signal(CODE, 35, "cross-border transfer above threshold")
    }

    fn evaluate(
        tx: &Transaction,
        params: &Params,
        _ctx: &dyn Context,
    ) -> Result<Evaluation, RuleError> {
        let mut out = Evaluation::new();
        let (Some(to), Some(from)) = (
            tx.beneficiary.country.as_deref(),
            tx.origin.country.as_deref(),
        ) else {
            return Ok(out);
        };
        if to.eq_ignore_ascii_case(from) {
            return Ok(out);
        }
        let Some(threshold) = params.thresholds.get(&tx.amount.currency) else {
            return Ok(out);
        };
        let limit = tx.amount.major_to_minor(threshold).ok_or_else(|| {
            RuleError::InvalidParams(format!(
                "threshold `{threshold}` for `{}` is not a valid amount",
                tx.amount.currency
            ))
        })?;
        if tx.amount.minor >= limit {
            let why = format!(
                "transfer {from} → {to} at or above {threshold} {}",
                tx.amount.currency
            );
            out.fire(CODE, params.weight, &why);
        }
        Ok(out)
    }
}

export_rule!(CrossBorderAmount);
