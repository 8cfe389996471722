//! Built-in rule `blocklist`: asks the host whether each beneficiary
//! identifier is on the tenant's lists for this flow and fires
//! `blocklist_<type>` per hit. Severity `block` is a hard block
//! (`blocked_by` = `blocklist:<type>`); `flag` and `review` add weight.
use aduana_guest_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// Tunables.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Weight of a `block` hit (the decision is `decline` regardless).
    pub block_weight: u32,
    /// Weight of a `flag` hit.
    pub flag_weight: u32,
    /// Weight of a `review` hit.
    pub review_weight: u32,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            block_weight: 100,
            flag_weight: 40,
            review_weight: 25,
        }
    }
}

/// The rule.
pub struct Blocklist;

/// Payout identifiers checked, as (list type, signal code).
const PAYOUT_TYPES: &[(&str, &str)] = &[
    ("clabe", "blocklist_clabe"),
    ("iban", "blocklist_iban"),
    ("account_hash", "blocklist_account_hash"),
    ("swift_bic", "blocklist_swift_bic"),
    ("beneficiary_id", "blocklist_beneficiary_id"),
];

impl Rule for Blocklist {
    type Params = Params;

    fn describe() -> aduana_guest_sdk::Description {
        PAYOUT_TYPES.iter().fold(
            aduana_guest_sdk::Description::new(
                "blocklist",
                "beneficiary identifiers on the tenant's blocklists",
            )
            .flow(Flow::Payout),
            |d, (_, code)| d.signal(code, 100, "identifier on a blocklist"),
        )
    }

    fn evaluate(
        tx: &Transaction,
        params: &Params,
        ctx: &dyn Context,
    ) -> Result<Evaluation, RuleError> {
        let mut out = Evaluation::new();
        let b = &tx.beneficiary;
        let values = [&b.clabe, &b.iban, &b.account_hash, &b.swift_bic, &b.id];
        for ((list_type, code), value) in PAYOUT_TYPES.iter().zip(values) {
            let Some(value) = value.as_deref() else {
                continue;
            };
            let Some(hit) = ctx.list_lookup(list_type, value) else {
                continue;
            };
            let why = format!("{list_type} is on the blocklist (entry {})", hit.entry_id);
            match hit.severity {
                Severity::Block => {
                    let reason = format!("blocklist:{list_type}");
                    out.block(code, params.block_weight, &why, &reason)
                }
                Severity::Flag => out.fire(code, params.flag_weight, &why),
                Severity::Review => out.fire(code, params.review_weight, &why),
            };
        }
        Ok(out)
    }
}

export_rule!(Blocklist);
