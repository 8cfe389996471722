//! ISO 3166-1 alpha-2 country codes.

/// A valid ISO 3166-1 alpha-2 code, uppercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Country(String);

impl Country {
    /// Every code [`Country::parse`] accepts, uppercase, sorted (for the
    /// OpenAPI document).
    pub fn codes() -> Vec<&'static str> {
        let mut codes: Vec<&'static str> = celes::Country::get_countries()
            .iter()
            .map(|c| c.alpha2)
            .filter(|code| Self::parse(code).is_some())
            .collect();
        codes.sort_unstable();
        codes.dedup();
        codes
    }

    /// Accepts any case; `None` when not an assigned alpha-2 code.
    pub fn parse(s: &str) -> Option<Self> {
        let upper = s.trim().to_ascii_uppercase();
        if upper.len() != 2 {
            return None;
        }
        celes::Country::from_alpha2(&upper).ok()?;
        Some(Self(upper))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}
