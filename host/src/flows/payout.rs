//! The payout request: parsing and validation per the API contract (§2).
//!
//! Amounts are read from the JSON text itself (never through an `f64`);
//! unknown fields are ignored; account identifiers are *not* validated here
//! (the `payout-integrity` rule judges them, so a bad CLABE still gets a 200).
use rust_decimal::Decimal;
use serde::Deserialize;

pub use super::common::Invalid;
use super::{
    AssessFlow,
    common::{clean, country, deserialize, invalid, parse_money},
};
use crate::domain::money::Money;
use crate::{
    pipeline::FieldWarning,
    runtime::{Amount, Beneficiary, Channel, Flow, Origin, PayoutDetails, Transaction},
};

#[derive(Debug, Deserialize)]
struct Wire {
    #[serde(default)]
    amount: Option<serde::de::IgnoredAny>,
    amount_unit: Option<String>,
    currency: Option<String>,
    transaction_type: Option<String>,
    beneficiary: Option<WireBeneficiary>,
    origin: Option<WireOrigin>,
    payout: Option<WirePayout>,
    payment_id: Option<String>,
    customer_id: Option<String>,
    idempotency_key: Option<String>,
    metadata: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct WireBeneficiary {
    id: Option<String>,
    name: Option<String>,
    country: Option<String>,
    clabe: Option<String>,
    iban: Option<String>,
    swift_bic: Option<String>,
    account_hash: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireOrigin {
    account_id: Option<String>,
    country: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WirePayout {
    channel: Option<String>,
    rail: Option<String>,
    initiated_by: Option<String>,
    first_to_beneficiary: Option<bool>,
}

/// A validated payout request (stored with the assessment; replay reads
/// it back).
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct PayoutInput {
    #[serde(skip)]
    pub money: Option<Money>,
    pub amount_minor: u64,
    pub currency: String,
    pub transaction_type: Option<String>,
    pub beneficiary: BeneficiaryInput,
    pub origin: OriginInput,
    pub payout: PayoutDetailsInput,
    pub payment_id: Option<String>,
    pub customer_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeneficiaryInput {
    pub id: Option<String>,
    pub name: Option<String>,
    pub country: Option<String>,
    pub clabe: Option<String>,
    pub iban: Option<String>,
    pub swift_bic: Option<String>,
    pub account_hash: Option<String>,
}

#[derive(Debug, Clone, Default, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginInput {
    pub account_id: Option<String>,
    pub country: Option<String>,
}

#[derive(Debug, Clone, Default, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayoutDetailsInput {
    pub channel: Option<String>,
    pub initiated_by: Option<String>,
    pub first_to_beneficiary: Option<bool>,
}

/// Channel values accepted in `payout.channel` / `payout.rail`.
pub const CHANNELS: &[&str] = &["spei", "wire", "api", "internal"];

/// Parses and validates a payout request body. Returns the input and the
/// field warnings validation produced.
pub fn parse(body: &[u8], max_major: Decimal) -> Result<(PayoutInput, Vec<FieldWarning>), Invalid> {
    let wire: Wire = deserialize(body)?;
    let _ = wire.amount;
    let money = parse_money(body, wire.currency, wire.amount_unit.as_deref(), max_major)?;

    let wb = wire
        .beneficiary
        .ok_or_else(|| invalid("beneficiary", "is required"))?;
    let beneficiary = BeneficiaryInput {
        id: clean(wb.id),
        name: clean(wb.name),
        country: country("beneficiary.country", wb.country)?,
        clabe: clean(wb.clabe),
        iban: clean(wb.iban),
        swift_bic: clean(wb.swift_bic),
        account_hash: clean(wb.account_hash),
    };
    if beneficiary.id.is_none()
        && beneficiary.name.is_none()
        && beneficiary.country.is_none()
        && beneficiary.clabe.is_none()
        && beneficiary.iban.is_none()
        && beneficiary.account_hash.is_none()
    {
        return Err(invalid(
            "beneficiary",
            "needs at least one of `country`, `name`, `clabe`, `iban`, `account_hash`, `id`",
        ));
    }
    let wo = wire.origin.unwrap_or(WireOrigin {
        account_id: None,
        country: None,
    });
    let origin = OriginInput {
        account_id: clean(wo.account_id),
        country: country("origin.country", wo.country)?,
    };
    let wp = wire.payout.unwrap_or(WirePayout {
        channel: None,
        rail: None,
        initiated_by: None,
        first_to_beneficiary: None,
    });
    let (channel_field, channel) = match (clean(wp.channel), clean(wp.rail)) {
        (Some(c), _) => ("payout.channel", Some(c)),
        (None, Some(r)) => ("payout.rail", Some(r)),
        (None, None) => ("payout.channel", None),
    };
    let channel = match channel {
        Some(c) => {
            let lower = c.to_ascii_lowercase();
            if !CHANNELS.contains(&lower.as_str()) {
                return Err(invalid(
                    channel_field,
                    format!("`{c}` is not one of `spei`, `wire`, `api`, `internal`"),
                ));
            }
            Some(lower)
        }
        None => None,
    };
    let payout = PayoutDetailsInput {
        channel,
        initiated_by: clean(wp.initiated_by),
        first_to_beneficiary: wp.first_to_beneficiary,
    };
    let metadata = super::common::metadata(wire.metadata)?;
    let idempotency_key = super::common::idempotency_key(wire.idempotency_key)?;

    let mut warnings = Vec::new();
    let recommended = [
        ("origin.account_id", origin.account_id.is_none()),
        ("origin.country", origin.country.is_none()),
        ("payout.channel", payout.channel.is_none()),
    ];
    for (field, missing) in recommended {
        if missing {
            warnings.push(FieldWarning {
                field: field.to_owned(),
                message: "recommended field is missing".to_owned(),
            });
        }
    }
    let input = PayoutInput {
        amount_minor: money.minor,
        currency: money.currency.code().to_owned(),
        money: Some(money),
        transaction_type: clean(wire.transaction_type),
        beneficiary,
        origin,
        payout,
        payment_id: clean(wire.payment_id),
        customer_id: clean(wire.customer_id),
        idempotency_key,
        metadata,
    };
    Ok((input, warnings))
}

impl PayoutInput {
    /// The WIT transaction the rules receive.
    pub fn to_transaction(&self, exponent: u8, assessed_at_ms: i64) -> Transaction {
        let b = &self.beneficiary;
        Transaction {
            flow: Flow::Payout,
            amount: Amount {
                minor: self.amount_minor,
                currency: self.currency.clone(),
                exponent,
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
                channel: self.payout.channel.as_deref().and_then(|c| match c {
                    "spei" => Some(Channel::Spei),
                    "wire" => Some(Channel::Wire),
                    "api" => Some(Channel::Api),
                    "internal" => Some(Channel::Internal),
                    _ => None,
                }),
                initiated_by: self.payout.initiated_by.clone(),
                first_to_beneficiary: self.payout.first_to_beneficiary,
            },
            payment_id: self.payment_id.clone(),
            customer_id: self.customer_id.clone(),
            assessed_at_ms,
            metadata: self.metadata.as_ref().map(serde_json::Value::to_string),
            payin: None,
        }
    }

    /// History key of the sender: the origin account, or the tenant itself.
    pub fn origin_key(&self) -> String {
        match &self.origin.account_id {
            Some(a) => format!("acct:{a}"),
            None => "tenant".to_owned(),
        }
    }

    /// History key of the beneficiary: its most specific identifier.
    pub fn beneficiary_key(&self) -> Option<String> {
        use crate::domain::lists::normalize_value;
        let b = &self.beneficiary;
        if let Some(id) = &b.id {
            return Some(format!("id:{id}"));
        }
        if let Some(v) = b.clabe.as_deref().and_then(|v| normalize_value("clabe", v)) {
            return Some(format!("clabe:{v}"));
        }
        if let Some(v) = b.iban.as_deref().and_then(|v| normalize_value("iban", v)) {
            return Some(format!("iban:{v}"));
        }
        if let Some(v) = b
            .account_hash
            .as_deref()
            .and_then(|v| normalize_value("account_hash", v))
        {
            return Some(format!("hash:{v}"));
        }
        b.name
            .as_ref()
            .map(|n| format!("name:{}", n.to_lowercase()))
    }

    /// (list type, normalized value) of every identifier the blocklist rule
    /// may ask about.
    pub fn list_identifiers(&self) -> Vec<(String, String)> {
        use crate::domain::lists::normalize_value;
        let b = &self.beneficiary;
        [
            ("clabe", &b.clabe),
            ("iban", &b.iban),
            ("account_hash", &b.account_hash),
            ("swift_bic", &b.swift_bic),
            ("beneficiary_id", &b.id),
        ]
        .into_iter()
        .filter_map(|(t, v)| {
            let v = normalize_value(t, v.as_deref()?)?;
            Some((t.to_owned(), v))
        })
        .collect()
    }
}

/// The payout flow (§2): `POST /api/v1/assess/payout`.
#[derive(Debug, Clone, Copy)]
pub struct Payout;

impl AssessFlow for Payout {
    const NAME: &'static str = "payout";
    const IDEMPOTENCY_SCOPE: &'static str = "assess_payout";
    type Input = PayoutInput;

    fn parse(body: &[u8], max_major: Decimal) -> Result<(PayoutInput, Vec<FieldWarning>), Invalid> {
        parse(body, max_major)
    }

    fn minor_and_currency(input: &PayoutInput) -> (u64, &str) {
        (input.amount_minor, &input.currency)
    }

    fn exponent(input: &PayoutInput) -> u8 {
        super::common::exponent_of(input.money.as_ref(), &input.currency)
    }

    fn list_identifiers(input: &PayoutInput) -> Vec<(String, String)> {
        input.list_identifiers()
    }

    fn history_key(input: &PayoutInput) -> Option<(String, String)> {
        input
            .beneficiary_key()
            .map(|beneficiary| (input.origin_key(), beneficiary))
    }

    fn to_transaction(input: &PayoutInput, assessed_at_ms: i64) -> Transaction {
        input.to_transaction(Self::exponent(input), assessed_at_ms)
    }

    fn payment_id(input: &PayoutInput) -> Option<&str> {
        input.payment_id.as_deref()
    }

    /// The beneficiary's account and id, blocked for payouts (§8).
    fn fraud_entries(input: &PayoutInput) -> Vec<(&'static str, String, &'static str)> {
        use crate::domain::lists::normalize_value;
        let b = &input.beneficiary;
        [
            ("clabe", &b.clabe),
            ("iban", &b.iban),
            ("beneficiary_id", &b.id),
        ]
        .into_iter()
        .filter_map(|(t, v)| Some((t, normalize_value(t, v.as_deref()?)?, "block")))
        .collect()
    }

    fn case_facts(input: &PayoutInput) -> super::CaseFacts {
        let b = &input.beneficiary;
        super::CaseFacts {
            country: input.origin.country.clone(),
            counterparty_name: b.name.clone(),
            account: b
                .clabe
                .clone()
                .or_else(|| b.iban.clone())
                .or_else(|| b.account_hash.clone())
                .or_else(|| b.id.clone()),
            email: None,
            channel: input.payout.channel.clone(),
            customer_id: input.customer_id.clone(),
        }
    }

    fn idempotency_key(input: &PayoutInput) -> Option<&str> {
        input.idempotency_key.as_deref()
    }

    fn session_id(now_ms: i64) -> String {
        crate::domain::ids::payout_session_id(now_ms)
    }

    /// A domestic and a cross-border payout, so rules that stop early on
    /// one still read their params on the other.
    fn probe_transactions() -> Vec<Transaction> {
        let domestic = PayoutInput {
            money: None,
            amount_minor: 100_000,
            currency: "MXN".into(),
            transaction_type: None,
            beneficiary: BeneficiaryInput {
                country: Some("MX".into()),
                name: Some("Probe".into()),
                ..Default::default()
            },
            origin: OriginInput {
                account_id: Some("probe".into()),
                country: Some("MX".into()),
            },
            payout: Default::default(),
            payment_id: None,
            customer_id: None,
            idempotency_key: None,
            metadata: None,
        };
        let mut cross = domestic.clone();
        cross.beneficiary.country = Some("US".into());
        vec![domestic.to_transaction(2, 0), cross.to_transaction(2, 0)]
    }
}
