//! Example tenant rule `structuring-below-threshold`.
//!
//! Mexican AML rules make transfers at or above set amounts reportable, so
//! a customer splitting money into transfers *just under* the threshold is
//! a classic structuring pattern. This rule fires when the amount falls in
//! a band just below the tenant's reporting threshold for the currency, and
//! fires harder when the same origin already paid this beneficiary within
//! the repeat window (from the history the host prefetched, measured
//! against the transaction's own `assessed_at_ms`, never a clock).
use std::collections::BTreeMap;

use aduana_guest_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// Tunables.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Currency → reporting threshold in major units.
    pub thresholds: BTreeMap<String, String>,
    /// Width of the band below the threshold, in percent (1–50).
    pub band_percent: u32,
    /// Weight when the amount is in the band.
    pub weight: u32,
    /// Weight when it is in the band and repeats a recent transfer.
    pub repeat_weight: u32,
    /// How recent an earlier transfer to the same beneficiary must be to
    /// count as a repeat, in hours.
    pub repeat_window_hours: u32,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            thresholds: [("MXN", "150000.00"), ("USD", "7500.00")]
                .iter()
                .map(|(c, v)| ((*c).to_owned(), (*v).to_owned()))
                .collect(),
            band_percent: 10,
            weight: 25,
            repeat_weight: 45,
            repeat_window_hours: 72,
        }
    }
}

/// The rule.
pub struct Structuring;

const BAND: &str = "payout_structuring_below_threshold";
const REPEAT: &str = "payout_structuring_repeated";

impl Rule for Structuring {
    type Params = Params;

    fn describe() -> aduana_guest_sdk::Description {
        aduana_guest_sdk::Description::new(
            "structuring-below-threshold",
            "amount just under the reporting threshold, possibly repeated",
        )
        .flow(Flow::Payout)
        .signal(BAND, 25, "amount just under the reporting threshold")
        .signal(
            REPEAT,
            45,
            "repeated just-under-threshold transfers to one beneficiary",
        )
    }

    fn evaluate(
        tx: &Transaction,
        params: &Params,
        ctx: &dyn Context,
    ) -> Result<Evaluation, RuleError> {
        if !(1..=50).contains(&params.band_percent) {
            return Err(RuleError::InvalidParams(
                "band_percent must be between 1 and 50".into(),
            ));
        }
        let mut out = Evaluation::new();
        let Some(threshold) = params.thresholds.get(&tx.amount.currency) else {
            return Ok(out);
        };
        let limit = tx.amount.major_to_minor(threshold).ok_or_else(|| {
            RuleError::InvalidParams(format!("threshold `{threshold}` is not a valid amount"))
        })?;
        let floor = limit - limit / 100 * u64::from(params.band_percent);
        if tx.amount.minor < floor || tx.amount.minor >= limit {
            return Ok(out);
        }
        let history = ctx.beneficiary_history();
        let window_ms = i64::from(params.repeat_window_hours) * 3_600_000;
        let recent = history
            .last_at_ms
            .is_some_and(|last| tx.assessed_at_ms - last <= window_ms);
        if recent {
            out.fire(
                REPEAT,
                params.repeat_weight,
                &format!(
                    "{} transfer(s) to this beneficiary, the last within {} h, and this one is just under {threshold} {}",
                    history.prior_transfers, params.repeat_window_hours, tx.amount.currency
                ),
            );
        } else {
            out.fire(
                BAND,
                params.weight,
                &format!(
                    "amount is within {}% under the {threshold} {} reporting threshold",
                    params.band_percent, tx.amount.currency
                ),
            );
        }
        Ok(out)
    }
}

export_rule!(Structuring);
