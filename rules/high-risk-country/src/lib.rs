//! Built-in rule `high-risk-country`: fires `payout_high_risk_country` when
//! the beneficiary's country is on the tenant's high-risk list.
//!
//! Default list: the FATF "black" list (high-risk jurisdictions subject to a
//! call for action) and "grey" list (jurisdictions under increased
//! monitoring) as published after the February 2026 plenary. Both lists are
//! params, so a tenant updates them without a new rule version. Black-listed
//! countries can be made a hard block.
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
    /// Weight of `payout_high_risk_country`.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// ISO 3166-1 alpha-2 codes under a call for action (FATF black list).
    #[serde(default = "default_black_list")]
    pub black_list: Vec<String>,
    /// ISO 3166-1 alpha-2 codes under increased monitoring (FATF grey list).
    #[serde(default = "default_grey_list")]
    pub grey_list: Vec<String>,
    /// Black-listed beneficiary countries force `decline`.
    #[serde(default)]
    pub hard_block_black_list: bool,
}

const BLACK: &[&str] = &["KP", "IR", "MM"];
const GREY: &[&str] = &[
    "DZ", "AO", "BO", "BG", "CM", "CI", "CD", "HT", "KE", "KW", "LA", "LB", "MC", "NA", "NP", "PG",
    "SS", "SY", "VE", "VN", "VG", "YE",
];

fn default_weight() -> u32 {
    40
}

fn default_black_list() -> Vec<String> {
    BLACK.iter().map(|c| (*c).to_owned()).collect()
}

fn default_grey_list() -> Vec<String> {
    GREY.iter().map(|c| (*c).to_owned()).collect()
}

impl Default for Params {
    fn default() -> Self {
        Self {
            weight: default_weight(),
            black_list: default_black_list(),
            grey_list: default_grey_list(),
            hard_block_black_list: false,
        }
    }
}

/// The rule.
pub struct HighRiskCountry;

const CODE: &str = "payout_high_risk_country";

impl Rule for HighRiskCountry {
    type Params = Params;

    fn describe() -> aduana_guest_sdk::Description {
        aduana_guest_sdk::Description::new(
            "high-risk-country",
            "beneficiary country on the tenant's high-risk list",
        )
        .flow(Flow::Payout)
        .signal(CODE, 40, "beneficiary country is high risk")
    }

    fn evaluate(
        tx: &Transaction,
        params: &Params,
        _ctx: &dyn Context,
    ) -> Result<Evaluation, RuleError> {
        let mut out = Evaluation::new();
        let Some(country) = tx.beneficiary.country.as_deref() else {
            return Ok(out);
        };
        let on = |list: &[String]| list.iter().any(|c| c.eq_ignore_ascii_case(country));
        if on(&params.black_list) {
            let why = format!("beneficiary country `{country}` is under a FATF call for action");
            if params.hard_block_black_list {
                out.block(CODE, params.weight, &why, "high_risk_country:black_list");
            } else {
                out.fire(CODE, params.weight, &why);
            }
        } else if on(&params.grey_list) {
            let why = format!("beneficiary country `{country}` is under increased monitoring");
            out.fire(CODE, params.weight, &why);
        }
        Ok(out)
    }
}

export_rule!(HighRiskCountry);
