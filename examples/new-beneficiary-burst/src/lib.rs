//! Example tenant rule `new-beneficiary-large-transfer`.
//!
//! A fraudster who takes over an account registers their own beneficiary
//! and empties the account minutes later. The bank's core knows when the
//! beneficiary was registered and sends it in the assess request's
//! `metadata.beneficiary_registered_at_ms`; this rule fires when the first
//! transfer to that beneficiary is large and comes within minutes of its
//! registration (both measured on the transaction, never a clock).
use std::collections::BTreeMap;

use aduana_guest_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// Tunables.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Minutes after registration during which a large transfer is suspect.
    pub window_minutes: u32,
    /// Currency → amount in major units from which a transfer is "large".
    pub thresholds: BTreeMap<String, String>,
    pub weight: u32,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            window_minutes: 30,
            thresholds: [("MXN", "20000.00"), ("USD", "1000.00")]
                .iter()
                .map(|(c, v)| ((*c).to_owned(), (*v).to_owned()))
                .collect(),
            weight: 40,
        }
    }
}

/// The rule.
pub struct NewBeneficiaryBurst;

const CODE: &str = "payout_new_beneficiary_large_transfer";

#[derive(Deserialize)]
struct Meta {
    beneficiary_registered_at_ms: Option<i64>,
}

impl Rule for NewBeneficiaryBurst {
    type Params = Params;

    fn describe() -> aduana_guest_sdk::Description {
        aduana_guest_sdk::Description::new(
            "new-beneficiary-large-transfer",
            "large first transfer to a beneficiary registered minutes ago",
        )
        .flow(Flow::Payout)
        .signal(
            CODE,
            40,
            "large first transfer to a just-registered beneficiary",
        )
    }

    fn evaluate(
        tx: &Transaction,
        params: &Params,
        ctx: &dyn Context,
    ) -> Result<Evaluation, RuleError> {
        let mut out = Evaluation::new();
        let registered = tx
            .metadata
            .as_deref()
            .and_then(|m| serde_json::from_str::<Meta>(m).ok())
            .and_then(|m| m.beneficiary_registered_at_ms);
        let Some(registered) = registered else {
            if tx.metadata.is_some() {
                out.warn(
                    "metadata.beneficiary_registered_at_ms",
                    "send it so new-beneficiary fraud can be judged",
                );
            }
            return Ok(out);
        };
        let first = match tx.payout.first_to_beneficiary {
            Some(flag) => flag,
            None => ctx.beneficiary_history().prior_transfers == 0,
        };
        let Some(threshold) = params.thresholds.get(&tx.amount.currency) else {
            return Ok(out);
        };
        let limit = tx.amount.major_to_minor(threshold).ok_or_else(|| {
            RuleError::InvalidParams(format!("threshold `{threshold}` is not a valid amount"))
        })?;
        let age_ms = tx.assessed_at_ms - registered;
        let window_ms = i64::from(params.window_minutes) * 60_000;
        if first && tx.amount.minor >= limit && (0..=window_ms).contains(&age_ms) {
            out.fire(
                CODE,
                params.weight,
                &format!(
                    "first transfer of at least {threshold} {} to a beneficiary registered {} min ago",
                    tx.amount.currency,
                    age_ms / 60_000
                ),
            );
        }
        Ok(out)
    }
}

export_rule!(NewBeneficiaryBurst);
