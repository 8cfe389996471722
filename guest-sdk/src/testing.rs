//! Native fixture runs for a rule crate's own snapshot tests.
//!
//! A fixture is the JSON file `aduana rule test` reads too: the transaction,
//! the context the host would prefetch, and param overrides. Here the rule
//! runs natively (fast, debuggable); `aduana rule test` runs the compiled
//! component in the real sandbox and is the authority on fuel and memory.
//!
//! ```ignore
//! #[test]
//! fn fixtures() {
//!     insta::glob!("../fixtures", "*.json", |path| {
//!         let out = aduana_guest_sdk::testing::run_fixture::<MyRule>(path).unwrap();
//!         insta::assert_json_snapshot!(out);
//!     });
//! }
//! ```
use std::{collections::BTreeMap, path::Path};

use serde::{Deserialize, Serialize};

use crate::{
    Amount, Beneficiary, Billing, Channel, Context, Device, Flow, History, ListHit, Origin,
    PayinDetails, PaymentMethod, PayoutDetails, Rule, RuleError, Severity, Transaction,
};

/// One fixture file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// What the fixture shows.
    #[serde(default)]
    pub description: String,
    /// The transaction as the host builds it.
    pub transaction: FixtureTransaction,
    /// What the host would have prefetched.
    #[serde(default)]
    pub context: FixtureContext,
    /// Overrides merged over the rule's default params.
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
}

/// The transaction part of a fixture.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct FixtureTransaction {
    /// `payout` (the default) or `payin`.
    #[serde(default)]
    pub flow: Option<String>,
    pub amount_minor: u64,
    pub currency: String,
    pub exponent: u8,
    #[serde(default)]
    pub beneficiary: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub origin: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub payout: FixturePayout,
    pub payment_id: Option<String>,
    pub customer_id: Option<String>,
    #[serde(default)]
    pub assessed_at_ms: i64,
    pub metadata: Option<serde_json::Value>,
    /// Pay-in details (with `flow: "payin"`).
    #[serde(default)]
    pub payin: Option<FixturePayin>,
}

/// `payin` of a fixture transaction, field names as on the wire.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct FixturePayin {
    pub order_id: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub session_id: Option<String>,
    pub payment_method: Option<BTreeMap<String, Option<String>>>,
    pub device: Option<BTreeMap<String, Option<String>>>,
    pub billing: Option<BTreeMap<String, Option<String>>>,
}

impl FixturePayin {
    /// The WIT record.
    pub fn to_details(&self) -> PayinDetails {
        let get = |m: &BTreeMap<String, Option<String>>, k: &str| m.get(k).cloned().flatten();
        PayinDetails {
            order_id: self.order_id.clone(),
            email: self.email.clone(),
            email_domain: self
                .email
                .as_deref()
                .and_then(crate::ident::registrable_domain),
            phone: self.phone.clone(),
            session_id: self.session_id.clone(),
            payment_method: self.payment_method.as_ref().map(|m| PaymentMethod {
                method_type: get(m, "type"),
                card_bin: get(m, "card_bin"),
                card_last4: get(m, "card_last4"),
                card_country: get(m, "card_country"),
                card_brand: get(m, "card_brand"),
                card_hash: get(m, "card_hash"),
            }),
            device: self.device.as_ref().map(|m| Device {
                ip: get(m, "ip"),
                fingerprint: get(m, "fingerprint"),
                user_agent: get(m, "user_agent"),
                timezone: get(m, "timezone"),
            }),
            billing: self.billing.as_ref().map(|m| Billing {
                country: get(m, "country"),
                city: get(m, "city"),
                postal_code: get(m, "postal_code"),
            }),
        }
    }
}

/// `payout` of a fixture transaction.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct FixturePayout {
    pub channel: Option<String>,
    pub initiated_by: Option<String>,
    pub first_to_beneficiary: Option<bool>,
}

/// The prefetched context of a fixture.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
#[allow(missing_docs)]
pub struct FixtureContext {
    pub list_hits: Vec<FixtureListHit>,
    pub history: FixtureHistory,
    /// Pay-in velocity counts.
    pub velocity: Vec<FixtureVelocity>,
}

/// One prefetched velocity count.
#[derive(Debug, Clone, Deserialize)]
#[allow(missing_docs)]
pub struct FixtureVelocity {
    pub entity: String,
    pub window: String,
    pub count: u32,
}

/// One prefetched list hit.
#[derive(Debug, Clone, Deserialize)]
#[allow(missing_docs)]
pub struct FixtureListHit {
    pub list_type: String,
    pub value: String,
    pub entry_id: String,
    pub severity: String,
}

/// Prefetched beneficiary history.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
#[allow(missing_docs)]
pub struct FixtureHistory {
    pub prior_transfers: u32,
    pub first_at_ms: Option<i64>,
    pub last_at_ms: Option<i64>,
}

impl Context for FixtureContext {
    fn list_lookup(&self, list_type: &str, value: &str) -> Option<ListHit> {
        let wanted = crate::ident::normalize_list_value(list_type, value)?;
        self.list_hits
            .iter()
            .find(|h| {
                h.list_type == list_type
                    && crate::ident::normalize_list_value(list_type, &h.value).as_ref()
                        == Some(&wanted)
            })
            .map(|h| ListHit {
                entry_id: h.entry_id.clone(),
                severity: match h.severity.as_str() {
                    "block" => Severity::Block,
                    "flag" => Severity::Flag,
                    _ => Severity::Review,
                },
            })
    }

    fn beneficiary_history(&self) -> History {
        History {
            prior_transfers: self.history.prior_transfers,
            first_at_ms: self.history.first_at_ms,
            last_at_ms: self.history.last_at_ms,
        }
    }

    fn velocity(&self, entity: &str, window: &str) -> Option<u32> {
        self.velocity
            .iter()
            .find(|v| v.entity == entity && v.window == window)
            .map(|v| v.count)
    }
}

impl FixtureTransaction {
    /// The transaction as the host would pass it.
    pub fn to_transaction(&self) -> Transaction {
        let get = |m: &BTreeMap<String, Option<String>>, k: &str| m.get(k).cloned().flatten();
        Transaction {
            flow: if self.flow.as_deref() == Some("payin") {
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
                id: get(&self.beneficiary, "id"),
                name: get(&self.beneficiary, "name"),
                country: get(&self.beneficiary, "country"),
                clabe: get(&self.beneficiary, "clabe"),
                iban: get(&self.beneficiary, "iban"),
                swift_bic: get(&self.beneficiary, "swift_bic"),
                account_hash: get(&self.beneficiary, "account_hash"),
            },
            origin: Origin {
                account_id: get(&self.origin, "account_id"),
                country: get(&self.origin, "country"),
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
            metadata: self.metadata.as_ref().map(|m| m.to_string()),
            payin: self.payin.as_ref().map(FixturePayin::to_details),
        }
    }
}

/// A rule's result on a fixture, in the shape `aduana rule test` snapshots.
#[derive(Debug, Clone, Serialize)]
#[allow(missing_docs)]
pub struct FixtureOutput {
    pub fixture: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub signals: Vec<SignalOut>,
    pub warnings: Vec<(String, String)>,
}

/// A fired signal.
#[derive(Debug, Clone, Serialize)]
#[allow(missing_docs)]
pub struct SignalOut {
    pub code: String,
    pub weight: u32,
    pub description: String,
    pub hard_block: Option<String>,
}

/// Reads the fixture at `path` and runs `R` on it natively.
pub fn run_fixture<R: Rule>(path: &Path) -> Result<FixtureOutput, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let fixture: Fixture =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut params = serde_json::to_value(R::Params::default())
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    params.extend(fixture.params.clone());
    let params = serde_json::Value::Object(params).to_string();
    let result = crate::evaluate_native::<R>(
        &fixture.transaction.to_transaction(),
        &params,
        &fixture.context,
    );
    Ok(match result {
        Ok(e) => FixtureOutput {
            fixture: fixture.description,
            outcome: "ok".into(),
            reason: None,
            signals: e
                .signals
                .into_iter()
                .map(|s| SignalOut {
                    code: s.code,
                    weight: s.weight,
                    description: s.description,
                    hard_block: s.hard_block,
                })
                .collect(),
            warnings: e
                .warnings
                .into_iter()
                .map(|w| (w.field, w.message))
                .collect(),
        },
        Err(e) => FixtureOutput {
            fixture: fixture.description,
            outcome: "rule_error".into(),
            reason: Some(match e {
                RuleError::InvalidParams(m) => format!("invalid params: {m}"),
                RuleError::InvalidInput(m) => format!("invalid input: {m}"),
                RuleError::Internal(m) => format!("internal: {m}"),
            }),
            signals: Vec::new(),
            warnings: Vec::new(),
        },
    })
}
