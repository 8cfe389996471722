//! Exact money: amounts are read from the JSON text with `rust_decimal`,
//! never through a float, and carried as minor units of an ISO-4217 currency.
use std::str::FromStr;

use rust_decimal::Decimal;

/// An ISO-4217 currency with its minor-unit exponent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currency {
    code: String,
    exponent: u8,
}

impl Currency {
    /// Accepts any case; `None` for unknown codes or codes without a minor
    /// unit (metals, funds).
    pub fn parse(s: &str) -> Option<Self> {
        let upper = s.trim().to_ascii_uppercase();
        let c = iso_currency::Currency::from_code(&upper)?;
        let exponent = u8::try_from(c.exponent()?).ok()?;
        Some(Self {
            code: upper,
            exponent,
        })
    }
    pub fn code(&self) -> &str {
        &self.code
    }
    pub fn exponent(&self) -> u8 {
        self.exponent
    }
}

/// Whether `amount` is in minor or major units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountUnit {
    Minor,
    Major,
}

/// Why an amount was rejected (each maps to a `VALIDATION_ERROR` message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount must be a number or a decimal string")]
    NotANumber,
    #[error("amount must not be negative")]
    Negative,
    #[error("minor amounts must be whole numbers")]
    FractionalMinor,
    #[error("amount has more decimals than {currency} allows ({exponent})")]
    TooManyDecimals { currency: String, exponent: u8 },
    #[error("amount is above the maximum allowed")]
    TooLarge,
}

/// An exact amount of a currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    pub minor: u64,
    pub currency: Currency,
}

impl Money {
    /// Parses the raw JSON text of `amount` (a number literal or a string).
    pub fn parse(
        raw_json: &str,
        unit: AmountUnit,
        currency: Currency,
        max_major: Decimal,
    ) -> Result<Self, AmountError> {
        let raw = raw_json.trim();
        let text = if let Some(inner) = raw.strip_prefix('"') {
            inner
                .strip_suffix('"')
                .ok_or(AmountError::NotANumber)?
                .trim()
        } else {
            raw
        };
        if text.is_empty() || text.starts_with('+') {
            return Err(AmountError::NotANumber);
        }
        let value = if text.contains(['e', 'E']) {
            Decimal::from_scientific(text)
        } else {
            Decimal::from_str_exact(text)
        }
        .map_err(|_| AmountError::NotANumber)?;
        if value.is_sign_negative() && !value.is_zero() {
            return Err(AmountError::Negative);
        }
        let value = value.normalize();
        let exponent = currency.exponent();
        let major = match unit {
            AmountUnit::Minor => {
                if value.scale() != 0 {
                    return Err(AmountError::FractionalMinor);
                }
                value / Decimal::from(10u64.pow(u32::from(exponent)))
            }
            AmountUnit::Major => {
                if value.scale() > u32::from(exponent) {
                    return Err(AmountError::TooManyDecimals {
                        currency: currency.code().to_owned(),
                        exponent,
                    });
                }
                value
            }
        };
        if major > max_major {
            return Err(AmountError::TooLarge);
        }
        let minor = (major * Decimal::from(10u64.pow(u32::from(exponent))))
            .normalize()
            .to_string()
            .parse::<u64>()
            .map_err(|_| AmountError::TooLarge)?;
        Ok(Self { minor, currency })
    }

    /// The amount in major units with exactly the currency's decimals.
    pub fn major_string(&self) -> String {
        let mut d = Decimal::from(self.minor);
        // Cannot fail: the exponent of an ISO currency is at most 4.
        let _ = d.set_scale(u32::from(self.currency.exponent()));
        d.to_string()
    }
}

/// Default cap on any amount, in major units.
pub fn default_max_major() -> Decimal {
    Decimal::from_str("1000000000000").unwrap_or(Decimal::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mxn() -> Currency {
        Currency::parse("MXN").unwrap_or_else(|| unreachable!())
    }

    #[test]
    fn exact_major_and_minor() {
        let m = Money::parse("25000.00", AmountUnit::Major, mxn(), default_max_major());
        assert_eq!(m.as_ref().map(|m| m.minor), Ok(2_500_000));
        assert_eq!(m.map(|m| m.major_string()), Ok("25000.00".to_owned()));
        let m = Money::parse("\"0.1\"", AmountUnit::Major, mxn(), default_max_major());
        assert_eq!(m.map(|m| m.minor), Ok(10));
        let m = Money::parse("2500000", AmountUnit::Minor, mxn(), default_max_major());
        assert_eq!(m.map(|m| m.minor), Ok(2_500_000));
    }

    #[test]
    fn rejects() {
        let max = default_max_major();
        assert_eq!(
            Money::parse("1.001", AmountUnit::Major, mxn(), max).err(),
            Some(AmountError::TooManyDecimals {
                currency: "MXN".into(),
                exponent: 2
            })
        );
        assert_eq!(
            Money::parse("-1", AmountUnit::Major, mxn(), max).err(),
            Some(AmountError::Negative)
        );
        assert_eq!(
            Money::parse("1.5", AmountUnit::Minor, mxn(), max).err(),
            Some(AmountError::FractionalMinor)
        );
        let clp = Currency::parse("clp").unwrap_or_else(|| unreachable!());
        assert!(Money::parse("10.5", AmountUnit::Major, clp, max).is_err());
        let kwd = Currency::parse("KWD").unwrap_or_else(|| unreachable!());
        assert_eq!(
            Money::parse("1.234", AmountUnit::Major, kwd, max).map(|m| m.minor),
            Ok(1234)
        );
        assert!(Currency::parse("XXQ").is_none());
    }
}
