//! Generated identifiers.
use rand::{Rng, distr::Alphanumeric};

const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

fn lower_alnum(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(LOWER_ALNUM[rng.random_range(0..LOWER_ALNUM.len())]))
        .collect()
}

fn alnum(n: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// `ps_<epoch-ms>_<9 lowercase alphanumerics>` (payout sessions).
pub fn payout_session_id(now_ms: i64) -> String {
    format!("ps_{now_ms}_{}", lower_alnum(9))
}

/// `pi_<epoch-ms>_<9 lowercase alphanumerics>` (pay-in sessions).
pub fn payin_session_id(now_ms: i64) -> String {
    format!("pi_{now_ms}_{}", lower_alnum(9))
}

/// `<prefix>_<20 lowercase alphanumerics>` for stored objects.
pub fn object_id(prefix: &str) -> String {
    format!("{prefix}_{}", lower_alnum(20))
}

/// `<prefix>_<a UUIDv7 as 32 lowercase hex digits>` for rows written by
/// the thousand per second (events, webhook deliveries): an id made later
/// sorts later (UUIDv7 starts with the time in milliseconds, and the
/// crate keeps ids of one process increasing within a millisecond), so
/// the indexes keyed by these ids grow at their end instead of taking a
/// new row into a random page. Fewer pages change per commit: less to
/// write to the WAL and to checkpoint. The time it shows is no secret:
/// the event carries its timestamp anyway.
pub fn ordered_object_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// A fresh API key secret with its kind's prefix (`clm_sk_`, ...): 40
/// alphanumerics, about 238 bits of entropy.
pub fn api_key_secret(prefix: &str) -> String {
    format!("{prefix}{}", alnum(40))
}

/// Whether `s` has the shape of a payout session id.
pub fn is_payout_session_id(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("ps_") else {
        return false;
    };
    let Some((ms, tail)) = rest.split_once('_') else {
        return false;
    };
    !ms.is_empty()
        && ms.bytes().all(|c| c.is_ascii_digit())
        && tail.len() == 9
        && tail.bytes().all(|c| LOWER_ALNUM.contains(&c))
}

/// A case's reference number: `CLM-` and 6 uppercase alphanumerics (§7).
pub fn case_reference() -> String {
    const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    let tail: String = (0..6)
        .map(|_| char::from(UPPER_ALNUM[rng.random_range(0..UPPER_ALNUM.len())]))
        .collect();
    format!("CLM-{tail}")
}

/// Whether `s` has the shape of a case reference number.
pub fn is_case_reference(s: &str) -> bool {
    s.strip_prefix("CLM-").is_some_and(|t| {
        t.len() == 6
            && t.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn session_id_format() {
        let id = super::payout_session_id(1_763_822_400_000);
        assert!(super::is_payout_session_id(&id), "{id}");
        assert!(id.starts_with("ps_1763822400000_"));
    }

    #[test]
    fn ordered_ids_sort_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..1000).map(|_| super::ordered_object_id("evt")).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, ids, "made in order, all distinct");
        let hex = ids[0].strip_prefix("evt_").unwrap_or_default();
        assert_eq!(hex.len(), 32, "{}", ids[0]);
        assert!(
            hex.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }
}
