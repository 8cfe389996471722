//! The pay-in request (§3): parsing and validation, the rule transaction,
//! the identifiers its blocklists are probed for and the entities its
//! velocity is counted on.
//!
//! Card data: only `card_bin` (6 or 8 digits), `card_last4` and a
//! bank-computed `card_hash` are accepted. Before anything is typed, every
//! string (and every integer that starts like a card number) anywhere in
//! the body is checked: 12–19 digits (spaces and dashes aside) passing the
//! Luhn check is a full card number, and the request is refused with the
//! field's path and never the value; nothing of it is stored or logged.
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use super::common::Invalid;
use super::{
    AssessFlow,
    common::{clean, country, deserialize, invalid, parse_money},
};
use crate::{
    domain::{lists::normalize_value, money::Money},
    pipeline::FieldWarning,
    runtime::{
        Amount, Beneficiary, Billing, Device, Flow, Origin, PayinDetails, PaymentMethod,
        PayoutDetails, Transaction,
    },
};

#[derive(Debug, Deserialize)]
struct Wire {
    #[serde(default)]
    amount: Option<serde::de::IgnoredAny>,
    amount_unit: Option<String>,
    currency: Option<String>,
    transaction_type: Option<String>,
    payment_id: Option<String>,
    customer_id: Option<String>,
    order_id: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    session_id: Option<String>,
    payment_method: Option<WirePaymentMethod>,
    device: Option<WireDevice>,
    billing: Option<WireBilling>,
    idempotency_key: Option<String>,
    metadata: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct WirePaymentMethod {
    #[serde(rename = "type")]
    method_type: Option<String>,
    card_bin: Option<String>,
    card_last4: Option<String>,
    card_country: Option<String>,
    card_brand: Option<String>,
    card_hash: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireDevice {
    ip: Option<String>,
    fingerprint: Option<String>,
    user_agent: Option<String>,
    timezone: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireBilling {
    country: Option<String>,
    city: Option<String>,
    postal_code: Option<String>,
}

/// A validated pay-in request (stored with the assessment; replay reads it
/// back).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PayinInput {
    #[serde(skip)]
    pub money: Option<Money>,
    pub amount_minor: u64,
    pub currency: String,
    pub transaction_type: Option<String>,
    pub payment_id: Option<String>,
    pub customer_id: Option<String>,
    pub order_id: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub session_id: Option<String>,
    pub payment_method: Option<PaymentMethodInput>,
    pub device: Option<DeviceInput>,
    pub billing: Option<BillingInput>,
    pub idempotency_key: Option<String>,
    pub metadata: Option<Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentMethodInput {
    #[serde(rename = "type")]
    pub method_type: Option<String>,
    pub card_bin: Option<String>,
    pub card_last4: Option<String>,
    pub card_country: Option<String>,
    pub card_brand: Option<String>,
    pub card_hash: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceInput {
    pub ip: Option<String>,
    pub fingerprint: Option<String>,
    pub user_agent: Option<String>,
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingInput {
    pub country: Option<String>,
    pub city: Option<String>,
    pub postal_code: Option<String>,
}

/// Whether `digits` (ASCII digits only) passes the Luhn check.
fn luhn_valid(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let twice = d * 2;
                if twice > 9 { twice - 9 } else { twice }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Whether `text` is a full card number: 12–19 digits, spaces and dashes
/// aside, passing the Luhn check.
pub fn is_card_number(text: &str) -> bool {
    let trimmed = text.trim();
    if trimmed.is_empty()
        || !trimmed
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b' ' || b == b'-')
    {
        return false;
    }
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    (12..=19).contains(&digits.len()) && luhn_valid(&digits)
}

/// The path of the first card number anywhere in `value` (strings, object
/// keys, and integers starting with 2–6, the major card ranges; epoch-ms
/// timestamps start with 1).
fn find_card_number(value: &Value, path: &str) -> Option<String> {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        Value::String(s) => is_card_number(s).then(|| path.to_owned()),
        Value::Number(n) => {
            let text = n.to_string();
            (n.is_u64() && text.starts_with(['2', '3', '4', '5', '6']) && is_card_number(&text))
                .then(|| path.to_owned())
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_card_number(v, &format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if path.is_empty() && k == "amount" {
                // The amount is validated as an amount.
                return None;
            }
            if is_card_number(k) {
                return Some(join("<key>"));
            }
            find_card_number(v, &join(k))
        }),
        _ => None,
    }
}

fn digits_of_len(
    field: &str,
    v: Option<String>,
    lens: &[usize],
) -> Result<Option<String>, Invalid> {
    match clean(v) {
        None => Ok(None),
        Some(s) if s.bytes().all(|b| b.is_ascii_digit()) && lens.contains(&s.len()) => Ok(Some(s)),
        Some(_) => Err(invalid(
            field,
            match lens {
                [4] => "must be exactly 4 digits".to_owned(),
                _ => "must be 6 or 8 digits (the card's BIN); never send a full card number"
                    .to_owned(),
            },
        )),
    }
}

/// `phone` in E.164, normalized as the `phone` list normalizes it (one
/// function, so a listed phone and a request's phone agree).
fn e164(v: Option<String>) -> Result<Option<String>, Invalid> {
    let Some(raw) = clean(v) else {
        return Ok(None);
    };
    normalize_value("phone", &raw).map(Some).ok_or_else(|| {
        invalid(
            "phone",
            "must be E.164: `+`, the country code and the number (8 to 15 digits)",
        )
    })
}

fn email(v: Option<String>) -> Result<Option<String>, Invalid> {
    let Some(raw) = clean(v) else {
        return Ok(None);
    };
    let lower = raw.to_lowercase();
    match lower.rsplit_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !lower.chars().any(char::is_whitespace)
                && lower.len() <= 254 =>
        {
            Ok(Some(lower))
        }
        _ => Err(invalid("email", "is not an e-mail address")),
    }
}

/// Parses and validates a pay-in request body. Returns the input and the
/// field warnings validation produced.
pub fn parse(body: &[u8], max_major: Decimal) -> Result<(PayinInput, Vec<FieldWarning>), Invalid> {
    // Card numbers first, before any typed parsing could echo a value.
    if let Ok(value) = serde_json::from_slice::<Value>(body)
        && let Some(path) = find_card_number(&value, "")
    {
        return Err(invalid(
            &path,
            "looks like a full card number; send only payment_method.card_bin and \
             payment_method.card_last4 (or a card_hash you compute)",
        ));
    }
    let wire: Wire = deserialize(body)?;
    let _ = wire.amount;
    let money = parse_money(body, wire.currency, wire.amount_unit.as_deref(), max_major)?;
    let payment_method = match wire.payment_method {
        None => None,
        Some(m) => Some(PaymentMethodInput {
            method_type: clean(m.method_type).map(|t| t.to_ascii_lowercase()),
            card_bin: digits_of_len("payment_method.card_bin", m.card_bin, &[6, 8])?,
            card_last4: digits_of_len("payment_method.card_last4", m.card_last4, &[4])?,
            card_country: country("payment_method.card_country", m.card_country)?,
            card_brand: clean(m.card_brand).map(|b| b.to_ascii_lowercase()),
            card_hash: clean(m.card_hash).map(|h| h.to_ascii_lowercase()),
        }),
    };
    let device = match wire.device {
        None => None,
        Some(d) => Some(DeviceInput {
            ip: match clean(d.ip) {
                None => None,
                Some(ip) => Some(
                    normalize_value("ip_address", &ip)
                        .ok_or_else(|| invalid("device.ip", "is not an IPv4 or IPv6 address"))?,
                ),
            },
            fingerprint: clean(d.fingerprint),
            user_agent: clean(d.user_agent),
            timezone: clean(d.timezone),
        }),
    };
    let billing = match wire.billing {
        None => None,
        Some(b) => Some(BillingInput {
            country: country("billing.country", b.country)?,
            city: clean(b.city),
            postal_code: clean(b.postal_code),
        }),
    };
    let input = PayinInput {
        amount_minor: money.minor,
        currency: money.currency.code().to_owned(),
        money: Some(money),
        transaction_type: clean(wire.transaction_type),
        payment_id: clean(wire.payment_id),
        customer_id: clean(wire.customer_id),
        order_id: clean(wire.order_id),
        email: email(wire.email)?,
        phone: e164(wire.phone)?,
        session_id: clean(wire.session_id),
        payment_method,
        device,
        billing,
        idempotency_key: super::common::idempotency_key(wire.idempotency_key)?,
        metadata: super::common::metadata(wire.metadata)?,
    };
    Ok((input, Vec::new()))
}

pub use aduana_guest_sdk::ident::{ip_networks, registrable_domain};

/// How a segment (the tenant's `organization_type`) rates the optional
/// pay-in fields.
#[derive(Debug, Clone, Copy)]
pub struct SegmentFields {
    pub segment: &'static str,
    pub required: &'static [&'static str],
    pub recommended: &'static [&'static str],
    pub not_applicable: &'static [&'static str],
}

/// Field requirements per segment (`GET /api/v1/assess`).
pub const SEGMENTS: &[SegmentFields] = &[
    SegmentFields {
        segment: "comercio",
        required: &["amount", "currency"],
        recommended: &[
            "order_id",
            "customer_id",
            "email",
            "device.ip",
            "payment_method.card_bin",
        ],
        not_applicable: &[],
    },
    SegmentFields {
        segment: "psp",
        required: &["amount", "currency"],
        recommended: &[
            "payment_id",
            "customer_id",
            "email",
            "device.ip",
            "payment_method.type",
        ],
        not_applicable: &[],
    },
    SegmentFields {
        segment: "banco",
        required: &["amount", "currency"],
        recommended: &["payment_id", "customer_id"],
        not_applicable: &["order_id"],
    },
];

impl PayinInput {
    fn field_present(&self, field: &str) -> bool {
        let pm = self.payment_method.as_ref();
        match field {
            "amount" | "currency" => true,
            "payment_id" => self.payment_id.is_some(),
            "customer_id" => self.customer_id.is_some(),
            "order_id" => self.order_id.is_some(),
            "email" => self.email.is_some(),
            "device.ip" => self.device.as_ref().is_some_and(|d| d.ip.is_some()),
            "payment_method.card_bin" => pm.is_some_and(|m| m.card_bin.is_some()),
            "payment_method.type" => pm.is_some_and(|m| m.method_type.is_some()),
            _ => false,
        }
    }

    /// The card as one entity: its hash, else BIN and last four.
    pub fn card_key(&self) -> Option<String> {
        let pm = self.payment_method.as_ref()?;
        if let Some(hash) = &pm.card_hash {
            return Some(format!("hash:{hash}"));
        }
        match (&pm.card_bin, &pm.card_last4) {
            (Some(bin), Some(last4)) => Some(format!("bin:{bin}:{last4}")),
            _ => None,
        }
    }

    /// (list type, normalized value) pairs the blocklists are probed for.
    /// An IP is probed as itself and as every network containing it
    /// (`ip_range` entries are stored as canonical CIDR networks, so a
    /// match is an exact probe); an e-mail's domain as written and as its
    /// registrable domain.
    pub fn list_identifiers(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut push = |t: &str, v: Option<&str>| {
            if let Some(v) = v.and_then(|v| normalize_value(t, v)) {
                let pair = (t.to_owned(), v);
                if !out.contains(&pair) {
                    out.push(pair);
                }
            }
        };
        push("email", self.email.as_deref());
        if let Some(email) = &self.email {
            let host = email.rsplit_once('@').map(|(_, h)| h);
            push("email_domain", host);
            push("email_domain", registrable_domain(email).as_deref());
        }
        push("phone", self.phone.as_deref());
        push("customer_id", self.customer_id.as_deref());
        let pm = self.payment_method.as_ref();
        push("card_bin", pm.and_then(|m| m.card_bin.as_deref()));
        // A listed 6-digit BIN covers the 8-digit BINs under it.
        if let Some(bin) = pm.and_then(|m| m.card_bin.as_deref())
            && bin.len() == 8
        {
            push("card_bin", Some(&bin[..6]));
        }
        push("card_hash", pm.and_then(|m| m.card_hash.as_deref()));
        push("country", pm.and_then(|m| m.card_country.as_deref()));
        push(
            "country",
            self.billing.as_ref().and_then(|b| b.country.as_deref()),
        );
        let device = self.device.as_ref();
        push(
            "device_fingerprint",
            device.and_then(|d| d.fingerprint.as_deref()),
        );
        if let Some(ip) = device.and_then(|d| d.ip.as_deref()) {
            push("ip_address", Some(ip));
            for net in ip_networks(ip) {
                out.push(("ip_range".to_owned(), net));
            }
        }
        out
    }

    /// (entity, key) pairs the velocity counts are kept for: customer,
    /// card, IP, device and e-mail, each when present.
    pub fn velocity_keys(&self) -> Vec<(&'static str, String)> {
        let device = self.device.as_ref();
        [
            ("customer", self.customer_id.clone()),
            ("card", self.card_key()),
            ("ip", device.and_then(|d| d.ip.clone())),
            ("device", device.and_then(|d| d.fingerprint.clone())),
            ("email", self.email.clone()),
        ]
        .into_iter()
        .filter_map(|(entity, key)| Some((entity, key?)))
        .collect()
    }

    /// The WIT transaction the rules receive.
    pub fn to_transaction(&self, exponent: u8, assessed_at_ms: i64) -> Transaction {
        Transaction {
            flow: Flow::Payin,
            amount: Amount {
                minor: self.amount_minor,
                currency: self.currency.clone(),
                exponent,
            },
            beneficiary: Beneficiary {
                id: None,
                name: None,
                country: None,
                clabe: None,
                iban: None,
                swift_bic: None,
                account_hash: None,
            },
            origin: Origin {
                account_id: None,
                country: None,
            },
            payout: PayoutDetails {
                channel: None,
                initiated_by: None,
                first_to_beneficiary: None,
            },
            payment_id: self.payment_id.clone(),
            customer_id: self.customer_id.clone(),
            assessed_at_ms,
            metadata: self.metadata.as_ref().map(Value::to_string),
            payin: Some(PayinDetails {
                order_id: self.order_id.clone(),
                email: self.email.clone(),
                email_domain: self.email.as_deref().and_then(registrable_domain),
                phone: self.phone.clone(),
                session_id: self.session_id.clone(),
                payment_method: self.payment_method.as_ref().map(|m| PaymentMethod {
                    method_type: m.method_type.clone(),
                    card_bin: m.card_bin.clone(),
                    card_last4: m.card_last4.clone(),
                    card_country: m.card_country.clone(),
                    card_brand: m.card_brand.clone(),
                    card_hash: m.card_hash.clone(),
                }),
                device: self.device.as_ref().map(|d| Device {
                    ip: d.ip.clone(),
                    fingerprint: d.fingerprint.clone(),
                    user_agent: d.user_agent.clone(),
                    timezone: d.timezone.clone(),
                }),
                billing: self.billing.as_ref().map(|b| Billing {
                    country: b.country.clone(),
                    city: b.city.clone(),
                    postal_code: b.postal_code.clone(),
                }),
            }),
        }
    }
}

/// The pay-in flow (§3): `POST /api/v1/assess`.
#[derive(Debug, Clone, Copy)]
pub struct Payin;

impl AssessFlow for Payin {
    const NAME: &'static str = "payin";
    const IDEMPOTENCY_SCOPE: &'static str = "assess_payin";
    const PUBLISHABLE_KEYS: bool = true;
    type Input = PayinInput;

    fn parse(body: &[u8], max_major: Decimal) -> Result<(PayinInput, Vec<FieldWarning>), Invalid> {
        parse(body, max_major)
    }

    fn segment_warnings(input: &PayinInput, segment: &str) -> Vec<FieldWarning> {
        let Some(fields) = SEGMENTS.iter().find(|s| s.segment == segment) else {
            return Vec::new();
        };
        let mut warnings: Vec<FieldWarning> = fields
            .recommended
            .iter()
            .filter(|f| !input.field_present(f))
            .map(|f| FieldWarning {
                field: (*f).to_owned(),
                message: "recommended field is missing".to_owned(),
            })
            .collect();
        warnings.extend(
            fields
                .not_applicable
                .iter()
                .filter(|f| input.field_present(f))
                .map(|f| FieldWarning {
                    field: (*f).to_owned(),
                    message: format!(
                        "not applicable to the `{segment}` segment; ignored by the built-in rules"
                    ),
                }),
        );
        warnings
    }

    fn minor_and_currency(input: &PayinInput) -> (u64, &str) {
        (input.amount_minor, &input.currency)
    }

    fn exponent(input: &PayinInput) -> u8 {
        super::common::exponent_of(input.money.as_ref(), &input.currency)
    }

    fn list_identifiers(input: &PayinInput) -> Vec<(String, String)> {
        input.list_identifiers()
    }

    /// The payer's email and IP blocked, the card's BIN flagged (§8).
    fn fraud_entries(input: &PayinInput) -> Vec<(&'static str, String, &'static str)> {
        use crate::domain::lists::normalize_value;
        let pm = input.payment_method.as_ref();
        [
            ("email", input.email.as_deref(), "block"),
            ("card_bin", pm.and_then(|m| m.card_bin.as_deref()), "flag"),
            (
                "ip_address",
                input.device.as_ref().and_then(|d| d.ip.as_deref()),
                "block",
            ),
        ]
        .into_iter()
        .filter_map(|(t, v, severity)| Some((t, normalize_value(t, v?)?, severity)))
        .collect()
    }

    fn case_facts(input: &PayinInput) -> super::CaseFacts {
        let pm = input.payment_method.as_ref();
        let card = pm.and_then(|m| match (&m.card_bin, &m.card_last4) {
            (Some(bin), Some(last4)) => Some(format!("{bin}******{last4}")),
            (Some(bin), None) => Some(format!("{bin}******")),
            _ => None,
        });
        super::CaseFacts {
            country: input
                .billing
                .as_ref()
                .and_then(|b| b.country.clone())
                .or_else(|| pm.and_then(|m| m.card_country.clone())),
            counterparty_name: None,
            account: card,
            email: input.email.clone(),
            channel: pm.and_then(|m| m.method_type.clone()),
            customer_id: input.customer_id.clone(),
        }
    }

    fn history_key(_input: &PayinInput) -> Option<(String, String)> {
        None
    }

    fn velocity_keys(input: &PayinInput) -> Vec<(&'static str, String)> {
        input.velocity_keys()
    }

    fn to_transaction(input: &PayinInput, assessed_at_ms: i64) -> Transaction {
        input.to_transaction(Self::exponent(input), assessed_at_ms)
    }

    fn payment_id(input: &PayinInput) -> Option<&str> {
        input.payment_id.as_deref()
    }

    fn idempotency_key(input: &PayinInput) -> Option<&str> {
        input.idempotency_key.as_deref()
    }

    fn session_id(now_ms: i64) -> String {
        crate::domain::ids::payin_session_id(now_ms)
    }

    /// A card pay-in with every detail, and a bare one.
    fn probe_transactions() -> Vec<Transaction> {
        let full = PayinInput {
            amount_minor: 100_000,
            currency: "MXN".into(),
            customer_id: Some("probe".into()),
            email: Some("probe@example.com".into()),
            phone: Some("+525512345678".into()),
            payment_method: Some(PaymentMethodInput {
                method_type: Some("card".into()),
                card_bin: Some("411111".into()),
                card_last4: Some("1111".into()),
                card_country: Some("MX".into()),
                ..Default::default()
            }),
            device: Some(DeviceInput {
                ip: Some("192.0.2.1".into()),
                fingerprint: Some("probe".into()),
                ..Default::default()
            }),
            billing: Some(BillingInput {
                country: Some("MX".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let bare = PayinInput {
            amount_minor: 100_000,
            currency: "MXN".into(),
            ..Default::default()
        };
        vec![full.to_transaction(2, 0), bare.to_transaction(2, 0)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_are_found_anywhere() {
        assert!(is_card_number("4111 1111 1111 1111"));
        assert!(is_card_number("4111-1111-1111-1111"));
        assert!(!is_card_number("4111 1111 1111 1112"));
        assert!(!is_card_number("411111"));
        let body = serde_json::json!({
            "amount": 100, "currency": "MXN",
            "metadata": {"notes": ["ok", "5555555555554444"]},
        });
        assert_eq!(
            find_card_number(&body, "").as_deref(),
            Some("metadata.notes[1]")
        );
        let number = serde_json::json!({"metadata": {"n": 4_111_111_111_111_111_u64}});
        assert_eq!(find_card_number(&number, "").as_deref(), Some("metadata.n"));
        // An epoch-ms timestamp is not a card number.
        let ts = serde_json::json!({"metadata": {"at": 1_765_000_000_000_u64}});
        assert_eq!(find_card_number(&ts, ""), None);
    }

    #[test]
    fn identifiers_and_normalization() {
        let (input, _) = parse(
            br#"{"amount": 100, "currency": "MXN", "email": " Ana@Mail.Example.co.uk ",
                 "phone": "+52 (55) 1234-5678",
                 "device": {"ip": "::ffff:10.1.2.3"},
                 "payment_method": {"card_bin": "41111111", "card_last4": "1111"}}"#,
            Decimal::from(1_000_000),
        )
        .unwrap();
        assert_eq!(input.phone.as_deref(), Some("+525512345678"));
        assert_eq!(
            input.device.as_ref().unwrap().ip.as_deref(),
            Some("10.1.2.3")
        );
        let ids = input.list_identifiers();
        let has = |t: &str, v: &str| ids.iter().any(|(a, b)| a == t && b == v);
        assert!(has("email", "ana@mail.example.co.uk"));
        assert!(has("email_domain", "example.co.uk"));
        assert!(has("email_domain", "mail.example.co.uk"));
        assert!(has("ip_address", "10.1.2.3"));
        assert!(has("ip_range", "10.0.0.0/8"));
        assert!(has("ip_range", "10.1.2.3/32"));
        assert!(has("card_bin", "41111111") && has("card_bin", "411111"));
        assert_eq!(input.card_key().as_deref(), Some("bin:41111111:1111"));
    }
}
