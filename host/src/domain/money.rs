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

    /// Every code [`Currency::parse`] accepts, uppercase, sorted (for the
    /// OpenAPI document).
    pub fn codes() -> Vec<&'static str> {
        use iso_currency::IntoEnumIterator as _;
        let mut codes: Vec<&'static str> = iso_currency::Currency::iter()
            .map(|c| c.code())
            .filter(|code| Self::parse(code).is_some())
            .collect();
        codes.sort_unstable();
        codes
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
    #[error(
        "amount must be digits with an optional decimal part, as a JSON number or string \
         (2500000, \"25000.00\"): no exponent, sign, spaces or separators"
    )]
    NotANumber,
    #[error("amount must not be negative")]
    Negative,
    #[error(
        "amount_unit is `minor` (the default), so amount must be a whole number of minor units: \
         send minor units as an integer (2500000 for 25000.00 MXN) or set amount_unit to `major`"
    )]
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
        // The text itself, number or string: digits with an optional
        // decimal part. Anything looser (exponents, signs, spaces, `_`
        // separators) has been read differently by some client or library.
        let raw = raw_json.trim();
        let text = match raw.strip_prefix('"') {
            Some(inner) => inner.strip_suffix('"').ok_or(AmountError::NotANumber)?,
            None => raw,
        };
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = match digits.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (digits, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(whole) || !fraction.is_none_or(all_digits) {
            return Err(AmountError::NotANumber);
        }
        if negative {
            return Err(AmountError::Negative);
        }
        // Even `.00`: a minor amount with a decimal point was almost
        // certainly meant as major units.
        if unit == AmountUnit::Minor && fraction.is_some() {
            return Err(AmountError::FractionalMinor);
        }
        let exponent = currency.exponent();
        let too_many_decimals = || AmountError::TooManyDecimals {
            currency: currency.code().to_owned(),
            exponent,
        };
        // Past 28 digits `rust_decimal` gives up: on the fraction that is
        // too many decimals, on the whole part too large an amount.
        let value = Decimal::from_str_exact(digits)
            .map_err(|_| match fraction {
                Some(f) if f.len() > 20 => too_many_decimals(),
                _ => AmountError::TooLarge,
            })?
            .normalize();
        let major = match unit {
            AmountUnit::Minor => value / Decimal::from(10u64.pow(u32::from(exponent))),
            AmountUnit::Major => {
                if value.scale() > u32::from(exponent) {
                    return Err(too_many_decimals());
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
    fn only_plain_decimals() {
        let max = default_max_major();
        for text in [
            "1e5",
            "1E+5",
            "\"1e5\"",
            "\" 100\"",
            "\"100 \"",
            "\"12_3\"",
            "+5",
            "\"+5\"",
            ".5",
            "5.",
            "\"0x10\"",
            "\"1,000\"",
            "\"\"",
            "\"1.2.3\"",
            "true",
            "\"١٢\"",
        ] {
            for unit in [AmountUnit::Major, AmountUnit::Minor] {
                assert_eq!(
                    Money::parse(text, unit, mxn(), max).err(),
                    Some(AmountError::NotANumber),
                    "{text}"
                );
            }
        }
        // A decimal point in minor units, even `.00`, is refused.
        for text in ["25000.00", "\"25000.00\"", "1.0"] {
            assert_eq!(
                Money::parse(text, AmountUnit::Minor, mxn(), max).err(),
                Some(AmountError::FractionalMinor),
                "{text}"
            );
        }
        assert!(
            AmountError::FractionalMinor
                .to_string()
                .contains("set amount_unit to `major`")
        );
        assert_eq!(
            Money::parse("\"2500000\"", AmountUnit::Minor, mxn(), max).map(|m| m.minor),
            Ok(2_500_000)
        );
        assert_eq!(
            Money::parse("\"25000.00\"", AmountUnit::Major, mxn(), max).map(|m| m.minor),
            Ok(2_500_000)
        );
        assert_eq!(
            Money::parse(
                "99999999999999999999999999999999",
                AmountUnit::Minor,
                mxn(),
                max
            )
            .err(),
            Some(AmountError::TooLarge)
        );
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
