//! What every flow's request parsing shares: the error, the JSON object
//! check with paths in errors, exact amounts, trimmed strings, countries.
use rust_decimal::Decimal;
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::value::RawValue;

use crate::domain::{
    country::Country,
    money::{AmountError, AmountUnit, Currency, Money},
};

/// A request that failed validation: `field` is the JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

pub fn invalid(field: &str, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

#[derive(Debug, Deserialize)]
struct AmountProbe<'a> {
    #[serde(borrow, default)]
    amount: Option<&'a RawValue>,
}

/// Trims; empty strings count as absent.
pub fn clean(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

pub fn country(field: &str, v: Option<String>) -> Result<Option<String>, Invalid> {
    match clean(v) {
        None => Ok(None),
        Some(c) => Country::parse(&c)
            .map(|c| Some(c.into_string()))
            .ok_or_else(|| {
                invalid(
                    field,
                    format!("`{c}` is not an ISO 3166-1 alpha-2 country code"),
                )
            }),
    }
}

/// Deserializes a request body that must be a JSON object, naming the
/// JSON path of the first mistake.
pub fn deserialize<T: DeserializeOwned>(body: &[u8]) -> Result<T, Invalid> {
    // Serde would accept a JSON array for a struct; the contract is an object.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(invalid("body", "request body must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body".to_owned() } else { path };
        invalid(&field, e.inner().to_string())
    })
}

/// The body's `amount`, read from its JSON text exactly, in `currency`
/// and `amount_unit` (minor by default), at most `max_major`.
pub fn parse_money(
    body: &[u8],
    currency: Option<String>,
    amount_unit: Option<&str>,
    max_major: Decimal,
) -> Result<Money, Invalid> {
    let probe: AmountProbe<'_> =
        serde_json::from_slice(body).map_err(|e| invalid("body", e.to_string()))?;
    let currency_code = clean(currency).ok_or_else(|| invalid("currency", "is required"))?;
    let currency = Currency::parse(&currency_code).ok_or_else(|| {
        invalid(
            "currency",
            format!("`{currency_code}` is not an ISO 4217 currency"),
        )
    })?;
    let unit = match amount_unit.map(str::trim) {
        None | Some("minor") => AmountUnit::Minor,
        Some("major") => AmountUnit::Major,
        Some(other) => {
            return Err(invalid(
                "amount_unit",
                format!("`{other}` is not one of `minor`, `major`"),
            ));
        }
    };
    let raw = probe
        .amount
        .filter(|r| r.get() != "null")
        .ok_or_else(|| invalid("amount", "is required"))?;
    Money::parse(raw.get(), unit, currency, max_major).map_err(|e| match e {
        AmountError::TooManyDecimals { .. }
        | AmountError::Negative
        | AmountError::FractionalMinor
        | AmountError::NotANumber
        | AmountError::TooLarge => invalid("amount", e.to_string()),
    })
}

/// The exponent of a stored input's currency (2 when unknown).
pub fn exponent_of(money: Option<&Money>, currency: &str) -> u8 {
    money.map_or_else(
        || Currency::parse(currency).map_or(2, |c| c.exponent()),
        |m| m.currency.exponent(),
    )
}

/// The body's `metadata`: an object or nothing.
pub fn metadata(value: Option<serde_json::Value>) -> Result<Option<serde_json::Value>, Invalid> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(m @ serde_json::Value::Object(_)) => Ok(Some(m)),
        Some(_) => Err(invalid("metadata", "must be a JSON object")),
    }
}

/// The body's `idempotency_key`, trimmed, at most 255 characters.
pub fn idempotency_key(value: Option<String>) -> Result<Option<String>, Invalid> {
    let key = clean(value);
    if key.as_ref().is_some_and(|k| k.len() > 255) {
        return Err(invalid("idempotency_key", "is longer than 255 characters"));
    }
    Ok(key)
}
