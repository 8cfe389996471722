//! Built-in rule `first-beneficiary`: fires `payout_first_beneficiary` on the
//! first transfer from an origin (or the tenant, without an origin) to a
//! beneficiary.
//!
//! The core's own flag wins when present (`true` fires, an explicit `false`
//! is trusted); without it, aduana's history decides.
use aduana_guest_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// Tunables.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Weight of `payout_first_beneficiary`.
    pub weight: u32,
}

impl Default for Params {
    fn default() -> Self {
        Self { weight: 15 }
    }
}

/// The rule.
pub struct FirstBeneficiary;

const CODE: &str = "payout_first_beneficiary";

impl Rule for FirstBeneficiary {
    type Params = Params;

    fn describe() -> aduana_guest_sdk::Description {
        aduana_guest_sdk::Description::new(
            "first-beneficiary",
            "first transfer from this origin to this beneficiary",
        )
        .flow(Flow::Payout)
        .signal(
            CODE,
            15,
            "first transfer from this origin to this beneficiary",
        )
    }

    fn evaluate(
        tx: &Transaction,
        params: &Params,
        ctx: &dyn Context,
    ) -> Result<Evaluation, RuleError> {
        let mut out = Evaluation::new();
        let first = match tx.payout.first_to_beneficiary {
            Some(flag) => flag,
            None => ctx.beneficiary_history().prior_transfers == 0,
        };
        if first {
            let why = if tx.payout.first_to_beneficiary.is_some() {
                "the core reports a first transfer to this beneficiary"
            } else {
                "no earlier transfer from this origin to this beneficiary"
            };
            out.fire(CODE, params.weight, why);
        }
        Ok(out)
    }
}

export_rule!(FirstBeneficiary);
