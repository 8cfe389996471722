//! Rule fixtures: a transaction, the context the host would prefetch, and
//! param overrides, as JSON. Used by the rule snapshot tests (and the
//! rule-author kit) to run a real component exactly as the pipeline would.
use serde::{Deserialize, Serialize};

use crate::runtime::{
    Amount, Beneficiary, Channel, ContextSnapshot, Evaluation, Flow, Origin, Outcome,
    PayoutDetails, Transaction,
};

/// One fixture file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    #[serde(default)]
    pub description: String,
    pub transaction: FixtureTransaction,
    #[serde(default)]
    pub context: ContextSnapshot,
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
}

/// The transaction part of a fixture (the WIT `transaction`, as JSON).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureTransaction {
    #[serde(default = "payout")]
    pub flow: String,
    pub amount_minor: u64,
    pub currency: String,
    pub exponent: u8,
    #[serde(default)]
    pub beneficiary: FixtureBeneficiary,
    #[serde(default)]
    pub origin: FixtureOrigin,
    #[serde(default)]
    pub payout: FixturePayout,
    pub payment_id: Option<String>,
    pub customer_id: Option<String>,
    #[serde(default)]
    pub assessed_at_ms: i64,
    pub metadata: Option<serde_json::Value>,
}

fn payout() -> String {
    "payout".to_owned()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureBeneficiary {
    pub id: Option<String>,
    pub name: Option<String>,
    pub country: Option<String>,
    pub clabe: Option<String>,
    pub iban: Option<String>,
    pub swift_bic: Option<String>,
    pub account_hash: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureOrigin {
    pub account_id: Option<String>,
    pub country: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixturePayout {
    pub channel: Option<String>,
    pub initiated_by: Option<String>,
    pub first_to_beneficiary: Option<bool>,
}

impl FixtureTransaction {
    pub fn to_transaction(&self) -> Transaction {
        let b = &self.beneficiary;
        Transaction {
            flow: if self.flow == "payin" {
                Flow::Payin
            } else {
                Flow::Payout
            },
            amount: Amount {
                minor: self.amount_minor,
                currency: self.currency.clone(),
                exponent: self.exponent,
            },
            beneficiary: Beneficiary {
                id: b.id.clone(),
                name: b.name.clone(),
                country: b.country.clone(),
                clabe: b.clabe.clone(),
                iban: b.iban.clone(),
                swift_bic: b.swift_bic.clone(),
                account_hash: b.account_hash.clone(),
            },
            origin: Origin {
                account_id: self.origin.account_id.clone(),
                country: self.origin.country.clone(),
            },
            payout: PayoutDetails {
                channel: match self.payout.channel.as_deref() {
                    Some("spei") => Some(Channel::Spei),
                    Some("wire") => Some(Channel::Wire),
                    Some("api") => Some(Channel::Api),
                    Some("internal") => Some(Channel::Internal),
                    _ => None,
                },
                initiated_by: self.payout.initiated_by.clone(),
                first_to_beneficiary: self.payout.first_to_beneficiary,
            },
            payment_id: self.payment_id.clone(),
            customer_id: self.customer_id.clone(),
            assessed_at_ms: self.assessed_at_ms,
            metadata: self.metadata.as_ref().map(serde_json::Value::to_string),
        }
    }
}

/// A rule's output in a stable, snapshot-friendly shape.
#[derive(Debug, Clone, Serialize)]
pub struct FixtureOutput {
    pub outcome: String,
    pub reason: Option<String>,
    pub signals: Vec<FixtureSignal>,
    pub warnings: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FixtureSignal {
    pub code: String,
    pub weight: u32,
    pub description: String,
    pub hard_block: Option<String>,
}

impl FixtureOutput {
    pub fn from_outcome(outcome: &Outcome) -> Self {
        let (name, reason, eval): (&str, Option<String>, Option<&Evaluation>) = match outcome {
            Outcome::Ok(e) => ("ok", None, Some(e)),
            Outcome::RuleError(r) => ("rule_error", Some(r.clone()), None),
            Outcome::Errored(r) => ("errored", Some(r.clone()), None),
        };
        Self {
            outcome: name.to_owned(),
            reason,
            signals: eval
                .map(|e| {
                    e.signals
                        .iter()
                        .map(|s| FixtureSignal {
                            code: s.code.clone(),
                            weight: s.weight,
                            description: s.description.clone(),
                            hard_block: s.hard_block.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            warnings: eval
                .map(|e| {
                    e.warnings
                        .iter()
                        .map(|w| (w.field.clone(), w.message.clone()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}
