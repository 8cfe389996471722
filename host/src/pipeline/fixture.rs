//! Rule fixtures: a transaction, the context the host would prefetch, and
//! param overrides, as JSON. Used by the rule snapshot tests (and the
//! rule-author kit) to run a real component exactly as the pipeline would.
use serde::{Deserialize, Serialize};

use crate::flows::payin::{BillingInput, DeviceInput, PayinInput, PaymentMethodInput};
use crate::flows::payout::{BeneficiaryInput, OriginInput, PayoutDetailsInput, PayoutInput};
use crate::runtime::{ContextSnapshot, Evaluation, Outcome, Transaction};

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

/// The transaction part of a fixture: a validated payout (or, with
/// `flow: "payin"`, pay-in) input plus the currency exponent and the
/// assessment time the host would fix.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureTransaction {
    /// `payout` (the default) or `payin`.
    #[serde(default)]
    pub flow: Option<String>,
    pub amount_minor: u64,
    pub currency: String,
    pub exponent: u8,
    #[serde(default)]
    pub beneficiary: BeneficiaryInput,
    #[serde(default)]
    pub origin: OriginInput,
    #[serde(default)]
    pub payout: PayoutDetailsInput,
    pub payment_id: Option<String>,
    pub customer_id: Option<String>,
    #[serde(default)]
    pub assessed_at_ms: i64,
    pub metadata: Option<serde_json::Value>,
    /// Pay-in fields, named as on the wire.
    #[serde(default)]
    pub payin: Option<FixturePayin>,
}

/// The pay-in part of a fixture transaction.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixturePayin {
    pub order_id: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub session_id: Option<String>,
    pub payment_method: Option<PaymentMethodInput>,
    pub device: Option<DeviceInput>,
    pub billing: Option<BillingInput>,
}

impl FixtureTransaction {
    /// The WIT transaction, built exactly as a live assessment builds it.
    pub fn to_transaction(&self) -> Transaction {
        if self.flow.as_deref() == Some("payin") {
            let p = self.payin.clone().unwrap_or_default();
            let input = PayinInput {
                money: None,
                amount_minor: self.amount_minor,
                currency: self.currency.clone(),
                transaction_type: None,
                payment_id: self.payment_id.clone(),
                customer_id: self.customer_id.clone(),
                order_id: p.order_id,
                email: p.email,
                phone: p.phone,
                session_id: p.session_id,
                payment_method: p.payment_method,
                device: p.device,
                billing: p.billing,
                idempotency_key: None,
                metadata: self.metadata.clone(),
            };
            return input.to_transaction(self.exponent, self.assessed_at_ms);
        }
        let input = PayoutInput {
            money: None,
            amount_minor: self.amount_minor,
            currency: self.currency.clone(),
            transaction_type: None,
            beneficiary: self.beneficiary.clone(),
            origin: self.origin.clone(),
            payout: self.payout.clone(),
            payment_id: self.payment_id.clone(),
            customer_id: self.customer_id.clone(),
            idempotency_key: None,
            metadata: self.metadata.clone(),
        };
        input.to_transaction(self.exponent, self.assessed_at_ms)
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
