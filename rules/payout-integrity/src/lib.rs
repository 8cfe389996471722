//! Built-in rule `payout-integrity`: judges the payout instruction itself.
//!
//! - `payout_invalid_beneficiary_account`: a CLABE, IBAN or SWIFT/BIC fails
//!   its format or check digit. Account identifiers are judged, never
//!   rejected: a 400 would push fail-open integrations to release money
//!   unassessed. Each failure also becomes a field warning.
//! - `payout_unattributed_initiator`: `payout.initiated_by` is missing or a
//!   generic account (`api`, `system`, `admin`, ...).
use aduana_guest_sdk::ident::{IdentError, check_bic, check_clabe, check_iban};
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
    /// Weight of `payout_invalid_beneficiary_account`.
    #[serde(default = "default_invalid_account_weight")]
    pub invalid_account_weight: u32,
    /// Weight of `payout_unattributed_initiator`.
    #[serde(default = "default_unattributed_initiator_weight")]
    pub unattributed_initiator_weight: u32,
    /// Initiator values treated as "nobody in particular" (case-insensitive).
    #[serde(default = "default_generic_initiators")]
    pub generic_initiators: Vec<String>,
}

fn default_invalid_account_weight() -> u32 {
    25
}

fn default_unattributed_initiator_weight() -> u32 {
    10
}

impl Default for Params {
    fn default() -> Self {
        Self {
            invalid_account_weight: default_invalid_account_weight(),
            unattributed_initiator_weight: default_unattributed_initiator_weight(),
            generic_initiators: default_generic_initiators(),
        }
    }
}

fn default_generic_initiators() -> Vec<String> {
    let generic = [
        "api",
        "system",
        "admin",
        "administrator",
        "root",
        "service",
        "automation",
        "auto",
        "bot",
        "batch",
        "cron",
        "scheduler",
        "default",
        "unknown",
        "none",
        "null",
        "n/a",
        "test",
        "user",
        "core",
        "integration",
    ];
    generic.iter().map(|g| (*g).to_owned()).collect()
}

/// The rule.
pub struct PayoutIntegrity;

type Check = fn(&str) -> Result<(), IdentError>;

const INVALID: &str = "payout_invalid_beneficiary_account";
const UNATTRIBUTED: &str = "payout_unattributed_initiator";

impl Rule for PayoutIntegrity {
    type Params = Params;

    fn describe() -> aduana_guest_sdk::Description {
        aduana_guest_sdk::Description::new(
            "payout-integrity",
            "beneficiary account identifiers and initiator attribution",
        )
        .flow(Flow::Payout)
        .signal(
            INVALID,
            25,
            "beneficiary account fails its format or check digit",
        )
        .signal(UNATTRIBUTED, 10, "payout initiator missing or generic")
    }

    fn evaluate(
        tx: &Transaction,
        params: &Params,
        _ctx: &dyn Context,
    ) -> Result<Evaluation, RuleError> {
        let mut out = Evaluation::new();
        let b = &tx.beneficiary;
        let checks: [(&str, &Option<String>, Check); 3] = [
            ("clabe", &b.clabe, check_clabe),
            ("iban", &b.iban, check_iban),
            ("swift_bic", &b.swift_bic, check_bic),
        ];
        let mut failed = Vec::new();
        for (name, value, check) in checks {
            if let Some(Err(e)) = value.as_deref().map(check) {
                let message = format!("{name} failed its {} check", e.as_str());
                out.warn(&format!("beneficiary.{name}"), &message);
                failed.push(format!("{name}:{}", e.as_str()));
            }
        }
        if !failed.is_empty() {
            let why = format!("invalid beneficiary account ({})", failed.join(", "));
            out.fire(INVALID, params.invalid_account_weight, &why);
        }
        let initiator = tx.payout.initiated_by.as_deref().map(str::trim);
        let generic = match initiator {
            None | Some("") => Some("payout.initiated_by is missing".to_owned()),
            Some(i)
                if params
                    .generic_initiators
                    .iter()
                    .any(|g| g.eq_ignore_ascii_case(i)) =>
            {
                Some(format!("payout.initiated_by `{i}` names no person"))
            }
            Some(_) => None,
        };
        if let Some(why) = generic {
            out.fire(UNATTRIBUTED, params.unattributed_initiator_weight, &why);
        }
        Ok(out)
    }
}

export_rule!(PayoutIntegrity);
