//! Blocklist vocabulary (list types, flow scopes, severities, sources) and
//! value normalization, applied identically before storage and before
//! matching.

/// Payout identifier list types.
pub const PAYOUT_TYPES: &[&str] = &[
    "clabe",
    "iban",
    "account_hash",
    "swift_bic",
    "beneficiary_id",
];
/// Pay-in list types.
pub const PAYIN_TYPES: &[&str] = &[
    "email",
    "email_domain",
    "ip_address",
    "ip_range",
    "device_fingerprint",
    "card_bin",
    "card_hash",
    "country",
    "phone",
    "customer_id",
];
pub const FLOW_SCOPES: &[&str] = &["payin", "payout", "all"];
pub const SEVERITIES: &[&str] = &["block", "flag", "review"];
pub const SOURCES: &[&str] = &[
    "manual",
    "rule",
    "fraud_report",
    "chargeback",
    "api",
    "network",
];

/// Whether `t` is a known list type.
pub fn is_list_type(t: &str) -> bool {
    PAYOUT_TYPES.contains(&t) || PAYIN_TYPES.contains(&t)
}

/// Canonical form of `value` for list type `list_type`; `None` when the
/// value cannot be an identifier of that type (empty, or not an IP for
/// `ip_address`, ...).
pub fn normalize_value(list_type: &str, value: &str) -> Option<String> {
    aduana_guest_sdk::ident::normalize_list_value(list_type, value)
}

/// The flow scopes that cover an assessment of `flow`.
pub fn scopes_covering(flow: &str) -> [&'static str; 2] {
    if flow == "payin" {
        ["payin", "all"]
    } else {
        ["payout", "all"]
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_value;

    #[test]
    fn normalizes() {
        assert_eq!(
            normalize_value("clabe", " 0121 8000-1234567890 ").as_deref(),
            Some("012180001234567890")
        );
        assert_eq!(
            normalize_value("iban", "de89 3704 0044").as_deref(),
            Some("DE8937040044")
        );
        assert_eq!(
            normalize_value("email", " A@B.com").as_deref(),
            Some("a@b.com")
        );
        assert!(normalize_value("ip_address", "::ffff:0:1").is_some());
        assert_eq!(
            normalize_value("ip_range", "10.1.2.3/8").as_deref(),
            Some("10.0.0.0/8")
        );
        assert_eq!(normalize_value("ip_address", "nope"), None);
        assert_eq!(normalize_value("clabe", "   "), None);
    }
}
