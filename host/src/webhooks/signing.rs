//! The two signatures every delivery carries (API.md §6), over the exact
//! bytes sent:
//!
//! - the contract's `X-Clausum-Signature: t=<unix>,v1=<hex>`, an
//!   HMAC-SHA256 keyed with the secret string as shown (`whsec_…`) over
//!   `"<t>.<body>"`;
//! - Standard Webhooks' `webhook-signature: v1,<base64>`, an HMAC-SHA256
//!   keyed with the base64-decoded part after `whsec_` over
//!   `"<id>.<t>.<body>"`, so off-the-shelf verifiers accept it.
//!
//! While a rotated secret is still valid, both secrets sign: the
//! Standard Webhooks header lists both signatures space-separated and the
//! contract header carries two `v1=` values.
use base64::{Engine as _, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The prefix of a signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// A fresh signing secret: `whsec_` and the base64 of 32 random bytes.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The Standard Webhooks key of `secret`: the base64 after `whsec_`
/// decoded (a secret that is not base64 is used as its bytes, as the
/// reference libraries do).
fn standard_key(secret: &str) -> Vec<u8> {
    let b64 = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    STANDARD
        .decode(b64)
        .unwrap_or_else(|_| b64.as_bytes().to_vec())
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable_key(),
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

#[cold]
fn unreachable_key() -> ! {
    unreachable!("HMAC-SHA256 accepts keys of every length")
}

/// One Standard Webhooks signature: `v1,<base64>`.
pub fn standard_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let t = timestamp.to_string();
    let mac = hmac(
        &standard_key(secret),
        &[id.as_bytes(), b".", t.as_bytes(), b".", body],
    );
    format!("v1,{}", STANDARD.encode(mac))
}

/// One contract signature value: the hex HMAC of `"<t>.<body>"`.
pub fn clausum_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let t = timestamp.to_string();
    hex::encode(hmac(secret.as_bytes(), &[t.as_bytes(), b".", body]))
}

/// The signature headers of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// `X-Clausum-Signature`.
    pub clausum: String,
    /// `webhook-signature`.
    pub standard: String,
}

/// Signs `body` (event `id`, at `timestamp` Unix seconds) with every
/// secret in `secrets` (the current one first).
pub fn sign(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> Signed {
    let mut clausum = format!("t={timestamp}");
    let mut standard = Vec::with_capacity(secrets.len());
    for s in secrets {
        clausum.push_str(",v1=");
        clausum.push_str(&clausum_signature(s, timestamp, body));
        standard.push(standard_signature(s, id, timestamp, body));
    }
    Signed {
        clausum,
        standard: standard.join(" "),
    }
}

/// Whether `header` (`t=…,v1=…[,v1=…]`) holds a valid contract signature
/// of `body` under `secret`, compared in constant time, with its time
/// within `tolerance_secs` of `now_secs`. (The receiver's side: used by
/// the tests and the documentation's examples.)
pub fn verify_clausum(
    secret: &str,
    header: &str,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> bool {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.push(v),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now_secs - t).abs() > tolerance_secs {
        return false;
    }
    let expected = clausum_signature(secret, t, body);
    sigs.iter()
        .any(|s| bool::from(s.as_bytes().ct_eq(expected.as_bytes())))
}

/// Whether `header` (`v1,<b64>[ v1,<b64>]`) holds a valid Standard
/// Webhooks signature of `body` under `secret`, in constant time.
pub fn verify_standard(secret: &str, header: &str, id: &str, timestamp: i64, body: &[u8]) -> bool {
    let expected = standard_signature(secret, id, timestamp, body);
    header
        .split(' ')
        .any(|s| bool::from(s.as_bytes().ct_eq(expected.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_published_vector() {
        // The test vector the Standard Webhooks specification publishes.
        assert_eq!(
            standard_signature(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#,
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn clausum_signature_is_hex_hmac_of_time_dot_body() {
        // Computed independently: printf '1700000000.{"a":1}' |
        //   openssl dgst -sha256 -hmac 'whsec_test' -hex
        let sig = clausum_signature("whsec_test", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(
            sig,
            "38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
        assert!(verify_clausum(
            "whsec_test",
            &format!("t=1700000000,v1={sig}"),
            br#"{"a":1}"#,
            1_700_000_100,
            300
        ));
        // Too old, wrong body, wrong secret.
        assert!(!verify_clausum(
            "whsec_test",
            &format!("t=1700000000,v1={sig}"),
            br#"{"a":1}"#,
            1_700_001_000,
            300
        ));
        assert!(!verify_clausum(
            "whsec_test",
            &format!("t=1700000000,v1={sig}"),
            br#"{"a":2}"#,
            1_700_000_000,
            300
        ));
        assert!(!verify_clausum(
            "whsec_other",
            &format!("t=1700000000,v1={sig}"),
            br#"{"a":1}"#,
            1_700_000_000,
            300
        ));
    }

    #[test]
    fn both_secrets_sign_during_a_rotation() {
        let (new, old) = (new_secret(), new_secret());
        let body = br#"{"id":"evt_1"}"#;
        let signed = sign(&[&new, &old], "evt_1", 1_700_000_000, body);
        assert_eq!(signed.standard.split(' ').count(), 2);
        assert_eq!(signed.clausum.matches("v1=").count(), 2);
        for s in [&new, &old] {
            assert!(verify_standard(
                s,
                &signed.standard,
                "evt_1",
                1_700_000_000,
                body
            ));
            assert!(verify_clausum(s, &signed.clausum, body, 1_700_000_000, 300));
        }
        assert!(!verify_standard(
            &new_secret(),
            &signed.standard,
            "evt_1",
            1_700_000_000,
            body
        ));
    }

    #[test]
    fn secrets_are_whsec_and_32_random_bytes() {
        let s = new_secret();
        assert!(s.starts_with(SECRET_PREFIX));
        assert_eq!(standard_key(&s).len(), 32);
        assert_ne!(s, new_secret());
    }
}
