//! Built-in rule `disposable-email` (pay-in): fires `disposable_email` when
//! the payer's e-mail is at a disposable (throwaway) mailbox provider.
//!
//! The list is data shipped with the rule (`data/disposable-domains.txt`,
//! dated, refreshed by `scripts/update-disposable-domains.sh`), with an
//! allowlist (`data/allowlist.txt`) that always wins. A domain matches when
//! the e-mail's host or its registrable domain (the host passes it,
//! computed from the public suffix list) is listed, so
//! `ana@x.mailinator.com` matches `mailinator.com`. Tenants extend both
//! lists with params.
use aduana_guest_sdk::prelude::*;
use serde::{Deserialize, Serialize};

mod lists {
    include!(concat!(env!("OUT_DIR"), "/lists.rs"));
}

/// Tunables.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Weight of the signal.
    pub weight: u32,
    /// More domains to treat as disposable.
    pub extra_domains: Vec<String>,
    /// Domains never treated as disposable (wins over every list).
    pub allow_domains: Vec<String>,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            weight: 30,
            extra_domains: Vec::new(),
            allow_domains: Vec::new(),
        }
    }
}

/// The rule.
pub struct DisposableEmail;

fn listed(list: &[&str], domain: &str) -> bool {
    list.binary_search(&domain).is_ok()
}

fn named(list: &[String], domain: &str) -> bool {
    list.iter().any(|d| d.trim().eq_ignore_ascii_case(domain))
}

impl Rule for DisposableEmail {
    type Params = Params;

    fn describe() -> aduana_guest_sdk::Description {
        aduana_guest_sdk::Description::new(
            "disposable-email",
            "the payer's e-mail is at a disposable mailbox provider",
        )
        .flow(Flow::Payin)
        .signal(
            "disposable_email",
            30,
            "e-mail at a disposable (throwaway) mailbox provider",
        )
    }

    fn evaluate(
        tx: &Transaction,
        params: &Params,
        _ctx: &dyn Context,
    ) -> Result<Evaluation, RuleError> {
        let mut out = Evaluation::new();
        let Some(p) = &tx.payin else {
            return Ok(out);
        };
        let Some(host) = p
            .email
            .as_deref()
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, h)| h)
        else {
            return Ok(out);
        };
        let host = host.to_ascii_lowercase();
        let registrable = p.email_domain.as_deref().map(str::to_ascii_lowercase);
        let candidates: Vec<&str> = std::iter::once(host.as_str())
            .chain(registrable.as_deref().filter(|r| *r != host))
            .collect();
        let allowed = candidates
            .iter()
            .any(|d| listed(lists::ALLOWED, d) || named(&params.allow_domains, d));
        if allowed {
            return Ok(out);
        }
        let hit = candidates
            .iter()
            .find(|d| listed(lists::DISPOSABLE, d) || named(&params.extra_domains, d));
        if let Some(domain) = hit {
            let source = if listed(lists::DISPOSABLE, domain) {
                format!("the disposable-domain list of {}", lists::LIST_DATE)
            } else {
                "the tenant's extra_domains".to_owned()
            };
            out.fire(
                "disposable_email",
                params.weight,
                &format!("e-mail domain {domain} is disposable (per {source})"),
            );
        }
        Ok(out)
    }
}

export_rule!(DisposableEmail);

#[cfg(test)]
mod tests {
    use super::lists;

    #[test]
    fn lists_are_sorted_and_dated() {
        assert!(lists::DISPOSABLE.len() > 10_000);
        assert!(lists::DISPOSABLE.windows(2).all(|w| w[0] < w[1]));
        assert!(!lists::LIST_DATE.is_empty());
        assert!(super::listed(lists::DISPOSABLE, "mailinator.com"));
    }
}
