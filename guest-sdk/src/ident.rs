//! Account-identifier and amount helpers shared by rules: CLABE (Mexico),
//! IBAN (via `iban_validate`), SWIFT/BIC, exact major → minor amounts, and
//! the normalization of list values (the host uses the same function for
//! list entries, so a rule's lookup and the host's prefetch agree).
use std::net::IpAddr;

/// Why an account identifier failed its check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentError {
    /// Wrong length or characters.
    Format,
    /// Well formed but the check digit(s) do not match.
    CheckDigit,
}

impl IdentError {
    /// Stable snake_case name, used in signal details and warnings.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentError::Format => "format",
            IdentError::CheckDigit => "check_digit",
        }
    }
}

/// Checks a CLABE: 18 digits (spaces and dashes ignored) whose last digit is
/// the weighted (3, 7, 1) mod-10 check digit of the first 17.
pub fn check_clabe(raw: &str) -> Result<(), IdentError> {
    let digits: Vec<u32> = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .map(|c| c.to_digit(10).ok_or(IdentError::Format))
        .collect::<Result<_, _>>()?;
    if digits.len() != 18 {
        return Err(IdentError::Format);
    }
    const WEIGHTS: [u32; 3] = [3, 7, 1];
    let sum: u32 = digits
        .iter()
        .take(17)
        .zip(WEIGHTS.iter().cycle())
        .map(|(d, w)| (d * w) % 10)
        .sum();
    let expected = (10 - sum % 10) % 10;
    if digits.last() == Some(&expected) {
        Ok(())
    } else {
        Err(IdentError::CheckDigit)
    }
}

/// Checks an IBAN: country length and mod-97 (spaces ignored, any case).
pub fn check_iban(raw: &str) -> Result<(), IdentError> {
    let compact: String = raw
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    match compact.parse::<iban::Iban>() {
        Ok(_) => Ok(()),
        Err(iban::ParseIbanError::InvalidBaseIban {
            source: iban::ParseBaseIbanError::InvalidChecksum,
        }) => Err(IdentError::CheckDigit),
        Err(_) => Err(IdentError::Format),
    }
}

/// Checks a SWIFT/BIC: 4 letters (institution), 2 letters (country), 2
/// alphanumerics (location), optionally 3 alphanumerics (branch).
pub fn check_bic(raw: &str) -> Result<(), IdentError> {
    let b = raw.trim().as_bytes();
    if b.len() != 8 && b.len() != 11 {
        return Err(IdentError::Format);
    }
    let ok = b.iter().enumerate().all(|(i, c)| {
        if i < 6 {
            c.is_ascii_alphabetic()
        } else {
            c.is_ascii_alphanumeric()
        }
    });
    if ok { Ok(()) } else { Err(IdentError::Format) }
}

/// Converts a non-negative major-unit decimal string to minor units for a
/// currency with `exponent` decimals, exactly. `None` when malformed, with
/// more decimals than `exponent`, or on overflow.
pub fn major_to_minor(major: &str, exponent: u8) -> Option<u64> {
    let (int, frac) = match major.split_once('.') {
        Some((i, f)) => (i, f),
        None => (major, ""),
    };
    if int.is_empty() || !int.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|c| c.is_ascii_digit()) || frac.len() > usize::from(exponent) {
        return None;
    }
    let scale = 10u64.checked_pow(u32::from(exponent))?;
    let mut minor = int.parse::<u64>().ok()?.checked_mul(scale)?;
    if !frac.is_empty() {
        let pad = 10u64.checked_pow(u32::from(exponent) - frac.len() as u32)?;
        minor = minor.checked_add(frac.parse::<u64>().ok()?.checked_mul(pad)?)?;
    }
    Some(minor)
}

/// Normalizes `value` for the list `list_type` (`clabe`, `iban`, `swift_bic`,
/// `account_hash`, `beneficiary_id`, ...): CLABE and card BIN keep only
/// digits; IBAN and BIC drop spaces and dashes and go upper case; e-mails,
/// hashes and fingerprints go lower case; IPs and ranges are parsed and
/// printed canonically; phones keep digits and a leading `+`; ids stay as
/// sent (trimmed). `None` for an unknown list type, an unparsable IP, or a
/// value empty or longer than 512 bytes after normalizing.
pub fn normalize_list_value(list_type: &str, value: &str) -> Option<String> {
    let v = value.trim();
    let out = match list_type {
        "clabe" | "card_bin" => v.chars().filter(char::is_ascii_digit).collect(),
        "iban" | "swift_bic" => v
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect(),
        "country" => v.to_ascii_uppercase(),
        "email" | "email_domain" | "account_hash" | "card_hash" | "device_fingerprint" => {
            v.to_lowercase()
        }
        "ip_address" => v.parse::<IpAddr>().ok()?.to_canonical().to_string(),
        "ip_range" => canonical_network(v.parse::<ipnet::IpNet>().ok()?).to_string(),
        "phone" => {
            // E.164: `+`, then 8 to 15 digits, the first not 0.
            let kept: String = v
                .chars()
                .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
                .collect();
            let digits = kept.strip_prefix('+')?;
            if !(8..=15).contains(&digits.len())
                || !digits.bytes().all(|b| b.is_ascii_digit())
                || digits.starts_with('0')
            {
                return None;
            }
            kept
        }
        "beneficiary_id" | "customer_id" => v.to_owned(),
        _ => return None,
    };
    if out.is_empty() || out.len() > 512 {
        None
    } else {
        Some(out)
    }
}

/// Every network containing the IP address `ip` (IPv4-mapped IPv6 taken as
/// IPv4), canonical (`10.0.0.0/8`), from `/0` to the address itself: the
/// values an `ip_range` list entry containing `ip` can have.
pub fn ip_networks(ip: &str) -> Vec<String> {
    let Ok(ip) = ip.trim().parse::<IpAddr>() else {
        return Vec::new();
    };
    let ip = ip.to_canonical();
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (0..=max)
        .filter_map(|len| ipnet::IpNet::new(ip, len).ok())
        .map(|net| net.trunc().to_string())
        .collect()
}

/// The registrable domain of an e-mail address or host name, by the
/// public suffix list: `example.co.uk` for `ana@mail.example.co.uk`. The
/// host part itself (lower case) when the list knows no suffix for it.
pub fn registrable_domain(email_or_host: &str) -> Option<String> {
    let host = email_or_host
        .rsplit_once('@')
        .map_or(email_or_host, |(_, h)| h)
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    Some(psl::domain_str(&host).map_or_else(|| host.clone(), str::to_owned))
}

/// `net` truncated to its network address; an IPv4-mapped IPv6 network
/// (`::ffff:0:0/96` and longer) as the IPv4 network it maps.
fn canonical_network(net: ipnet::IpNet) -> ipnet::IpNet {
    if let ipnet::IpNet::V6(v6) = net
        && let Some(v4) = v6.network().to_ipv4_mapped()
        && v6.prefix_len() >= 96
        && let Ok(mapped) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return ipnet::IpNet::V4(mapped.trunc());
    }
    net.trunc()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clabe_check_digit() {
        // 032180000118359719 is a commonly published valid CLABE.
        assert_eq!(check_clabe("032180000118359719"), Ok(()));
        assert_eq!(
            check_clabe("012180001234567890"),
            Err(IdentError::CheckDigit)
        );
        assert_eq!(check_clabe("01218000123456789"), Err(IdentError::Format));
        assert_eq!(check_clabe("01218000123456789X"), Err(IdentError::Format));
    }

    #[test]
    fn iban_and_bic() {
        assert_eq!(check_iban("DE89 3704 0044 0532 0130 00"), Ok(()));
        assert_eq!(
            check_iban("DE89370400440532013001"),
            Err(IdentError::CheckDigit)
        );
        assert_eq!(check_iban("DE89 37?0"), Err(IdentError::Format));
        assert_eq!(check_bic("BNMXMXMM"), Ok(()));
        assert_eq!(check_bic("BNMXMXMMXXX"), Ok(()));
        assert_eq!(check_bic("BNM1MXMM"), Err(IdentError::Format));
    }

    #[test]
    fn pay_in_values() {
        let n = |t: &str, v: &str| normalize_list_value(t, v);
        assert_eq!(
            n("ip_address", "::ffff:10.1.2.3").as_deref(),
            Some("10.1.2.3")
        );
        assert_eq!(
            n("ip_range", "::ffff:10.1.2.3/104").as_deref(),
            Some("10.0.0.0/8")
        );
        assert_eq!(
            n("ip_range", "2001:db8::1/32").as_deref(),
            Some("2001:db8::/32")
        );
        assert_eq!(
            n("phone", "+52 (55) 1234-5678").as_deref(),
            Some("+525512345678")
        );
        assert_eq!(n("phone", "5512345678"), None);
        assert_eq!(n("phone", "+0123456789"), None);
        assert_eq!(
            registrable_domain("Ana@Mail.Example.co.uk").as_deref(),
            Some("example.co.uk")
        );
        assert_eq!(
            registrable_domain("x@mailinator.com").as_deref(),
            Some("mailinator.com")
        );
        let nets = ip_networks("::ffff:10.1.2.3");
        assert_eq!(nets.len(), 33);
        assert_eq!(nets[8], "10.0.0.0/8");
        assert_eq!(nets[32], "10.1.2.3/32");
    }

    #[test]
    fn major_minor() {
        assert_eq!(major_to_minor("25000.00", 2), Some(2_500_000));
        assert_eq!(major_to_minor("25000.5", 2), Some(2_500_050));
        assert_eq!(major_to_minor("7", 0), Some(7));
        assert_eq!(major_to_minor("7.1", 0), None);
        assert_eq!(major_to_minor("-7", 2), None);
        assert_eq!(major_to_minor("1.234", 2), None);
    }
}
