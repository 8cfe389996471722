//! WIT 0.3.0's own records as the host lowers them: the transaction (with
//! `payin`) and the context (with `velocity`), plus 0.2.0's context. The
//! records 0.3.0 shares with 0.1.0 come from the 0.1.0 bindings (records
//! are typed structurally, by field names and types, in this order).
use wasmtime::component::{ComponentType, Lower};

use super::bindings::aduana::rules::types::{
    Amount, Beneficiary, Flow, History, ListHit, Origin, PayoutDetails,
    Transaction as LegacyTransaction,
};

/// WIT 0.3.0 `payment-method`.
#[derive(Debug, Clone, Default, PartialEq, Eq, ComponentType, Lower)]
#[component(record)]
pub struct PaymentMethod {
    #[component(name = "method-type")]
    pub method_type: Option<String>,
    #[component(name = "card-bin")]
    pub card_bin: Option<String>,
    #[component(name = "card-last4")]
    pub card_last4: Option<String>,
    #[component(name = "card-country")]
    pub card_country: Option<String>,
    #[component(name = "card-brand")]
    pub card_brand: Option<String>,
    #[component(name = "card-hash")]
    pub card_hash: Option<String>,
}

/// WIT 0.3.0 `device`.
#[derive(Debug, Clone, Default, PartialEq, Eq, ComponentType, Lower)]
#[component(record)]
pub struct Device {
    pub ip: Option<String>,
    pub fingerprint: Option<String>,
    #[component(name = "user-agent")]
    pub user_agent: Option<String>,
    pub timezone: Option<String>,
}

/// WIT 0.3.0 `billing`.
#[derive(Debug, Clone, Default, PartialEq, Eq, ComponentType, Lower)]
#[component(record)]
pub struct Billing {
    pub country: Option<String>,
    pub city: Option<String>,
    #[component(name = "postal-code")]
    pub postal_code: Option<String>,
}

/// WIT 0.3.0 `payin-details`.
#[derive(Debug, Clone, Default, PartialEq, Eq, ComponentType, Lower)]
#[component(record)]
pub struct PayinDetails {
    #[component(name = "order-id")]
    pub order_id: Option<String>,
    pub email: Option<String>,
    #[component(name = "email-domain")]
    pub email_domain: Option<String>,
    pub phone: Option<String>,
    #[component(name = "session-id")]
    pub session_id: Option<String>,
    #[component(name = "payment-method")]
    pub payment_method: Option<PaymentMethod>,
    pub device: Option<Device>,
    pub billing: Option<Billing>,
}

/// WIT 0.3.0 `transaction`: the transaction under assessment, for every
/// flow.
#[derive(Debug, Clone, ComponentType, Lower)]
#[component(record)]
pub struct Transaction {
    pub flow: Flow,
    pub amount: Amount,
    pub beneficiary: Beneficiary,
    pub origin: Origin,
    pub payout: PayoutDetails,
    #[component(name = "payment-id")]
    pub payment_id: Option<String>,
    #[component(name = "customer-id")]
    pub customer_id: Option<String>,
    #[component(name = "assessed-at-ms")]
    pub assessed_at_ms: i64,
    pub metadata: Option<String>,
    pub payin: Option<PayinDetails>,
}

impl Transaction {
    /// The transaction as WIT 0.1.0 and 0.2.0 know it (no `payin`): what
    /// rules built against them receive.
    pub(super) fn to_legacy(&self) -> LegacyTransaction {
        LegacyTransaction {
            flow: self.flow,
            amount: self.amount.clone(),
            beneficiary: self.beneficiary.clone(),
            origin: self.origin.clone(),
            payout: self.payout.clone(),
            payment_id: self.payment_id.clone(),
            customer_id: self.customer_id.clone(),
            assessed_at_ms: self.assessed_at_ms,
            metadata: self.metadata.clone(),
        }
    }
}

/// WIT 0.2.0 and 0.3.0 `list-match`.
#[derive(ComponentType, Lower)]
#[component(record)]
pub(super) struct WireListMatch {
    #[component(name = "list-type")]
    pub list_type: String,
    pub value: String,
    pub hit: ListHit,
}

/// WIT 0.3.0 `velocity-count`.
#[derive(ComponentType, Lower)]
#[component(record)]
pub(super) struct WireVelocity {
    pub entity: String,
    pub window: String,
    pub count: u32,
}

/// WIT 0.2.0 `context`: `evaluate`'s third argument.
#[derive(ComponentType, Lower)]
#[component(record)]
pub(super) struct WireContextV02 {
    #[component(name = "list-hits")]
    pub list_hits: Option<Vec<WireListMatch>>,
    pub history: History,
}

/// WIT 0.3.0 `context`.
#[derive(ComponentType, Lower)]
#[component(record)]
pub(super) struct WireContext {
    #[component(name = "list-hits")]
    pub list_hits: Option<Vec<WireListMatch>>,
    pub history: History,
    pub velocity: Option<Vec<WireVelocity>>,
}
