//! Built-in rule `blocklist`: asks the host whether each identifier of the
//! transaction is on the tenant's lists for this flow (a payout's
//! beneficiary; a pay-in's e-mail and its domain, phone, customer, card,
//! countries, device and IP, the IP also against listed CIDR ranges) and
//! fires `blocklist_<type>` per hit. Severity `block` is a hard block
//! (`blocked_by` = `blocklist:<type>`); `flag` and `review` add weight.
use aduana_guest_sdk::{ident, prelude::*};
use serde::{Deserialize, Serialize};

/// Tunables.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Weight of a `block` hit (the decision is `decline` regardless).
    pub block_weight: u32,
    /// Weight of a `flag` hit.
    pub flag_weight: u32,
    /// Weight of a `review` hit.
    pub review_weight: u32,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            block_weight: 100,
            flag_weight: 40,
            review_weight: 25,
        }
    }
}

/// The rule.
pub struct Blocklist;

/// Payout identifiers checked, as (list type, signal code).
const PAYOUT_TYPES: &[(&str, &str)] = &[
    ("clabe", "blocklist_clabe"),
    ("iban", "blocklist_iban"),
    ("account_hash", "blocklist_account_hash"),
    ("swift_bic", "blocklist_swift_bic"),
    ("beneficiary_id", "blocklist_beneficiary_id"),
];

/// Pay-in list types, as (list type, signal code).
const PAYIN_TYPES: &[(&str, &str)] = &[
    ("email", "blocklist_email"),
    ("email_domain", "blocklist_email_domain"),
    ("phone", "blocklist_phone"),
    ("customer_id", "blocklist_customer_id"),
    ("card_bin", "blocklist_card_bin"),
    ("card_hash", "blocklist_card_hash"),
    ("country", "blocklist_country"),
    ("device_fingerprint", "blocklist_device_fingerprint"),
    ("ip_address", "blocklist_ip_address"),
    ("ip_range", "blocklist_ip_range"),
];

/// A pay-in's (list type, value) candidates, in [`PAYIN_TYPES`] order.
fn payin_values(tx: &Transaction) -> Vec<(&'static str, String)> {
    let Some(p) = &tx.payin else {
        return Vec::new();
    };
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let mut push = |t: &'static str, v: Option<&str>| {
        if let Some(v) = v {
            out.push((t, v.to_owned()));
        }
    };
    push("email", p.email.as_deref());
    if let Some(email) = &p.email {
        push("email_domain", email.rsplit_once('@').map(|(_, h)| h));
    }
    push("email_domain", p.email_domain.as_deref());
    push("phone", p.phone.as_deref());
    push("customer_id", tx.customer_id.as_deref());
    let pm = p.payment_method.as_ref();
    let bin = pm.and_then(|m| m.card_bin.as_deref());
    push("card_bin", bin);
    // A listed 6-digit BIN covers the 8-digit BINs under it.
    push("card_bin", bin.filter(|b| b.len() == 8).map(|b| &b[..6]));
    push("card_hash", pm.and_then(|m| m.card_hash.as_deref()));
    push("country", pm.and_then(|m| m.card_country.as_deref()));
    push(
        "country",
        p.billing.as_ref().and_then(|b| b.country.as_deref()),
    );
    let device = p.device.as_ref();
    push(
        "device_fingerprint",
        device.and_then(|d| d.fingerprint.as_deref()),
    );
    if let Some(ip) = device.and_then(|d| d.ip.as_deref()) {
        push("ip_address", Some(ip));
        for net in ident::ip_networks(ip) {
            out.push(("ip_range", net));
        }
    }
    out
}

impl Rule for Blocklist {
    type Params = Params;

    fn describe() -> aduana_guest_sdk::Description {
        PAYOUT_TYPES.iter().chain(PAYIN_TYPES).fold(
            aduana_guest_sdk::Description::new(
                "blocklist",
                "identifiers of the transaction on the tenant's blocklists",
            )
            .flow(Flow::Payout)
            .flow(Flow::Payin),
            |d, (_, code)| d.signal(code, 100, "identifier on a blocklist"),
        )
    }

    fn evaluate(
        tx: &Transaction,
        params: &Params,
        ctx: &dyn Context,
    ) -> Result<Evaluation, RuleError> {
        let mut out = Evaluation::new();
        let b = &tx.beneficiary;
        let payout = [&b.clabe, &b.iban, &b.account_hash, &b.swift_bic, &b.id]
            .into_iter()
            .zip(PAYOUT_TYPES)
            .filter_map(|(v, (t, _))| Some((*t, v.clone()?)));
        let candidates: Vec<(&str, String)> = match tx.flow {
            Flow::Payout => payout.collect(),
            Flow::Payin => payin_values(tx),
        };
        // One signal per list type: the most severe of its hits (an IP may
        // sit in several listed ranges, an e-mail domain or a BIN be listed
        // at two levels).
        let rank = |s: &Severity| match s {
            Severity::Block => 0,
            Severity::Flag => 1,
            Severity::Review => 2,
        };
        let mut best: Vec<(&str, &str, ListHit)> = Vec::new();
        for (list_type, value) in &candidates {
            let Some(code) = PAYOUT_TYPES
                .iter()
                .chain(PAYIN_TYPES)
                .find(|(t, _)| t == list_type)
                .map(|(_, c)| *c)
            else {
                continue;
            };
            let Some(hit) = ctx.list_lookup(list_type, value) else {
                continue;
            };
            match best.iter_mut().find(|(t, _, _)| t == list_type) {
                Some(slot) if rank(&hit.severity) < rank(&slot.2.severity) => slot.2 = hit,
                Some(_) => {}
                None => best.push((list_type, code, hit)),
            }
        }
        for (list_type, code, hit) in best {
            let why = format!("{list_type} is on the blocklist (entry {})", hit.entry_id);
            match hit.severity {
                Severity::Block => {
                    let reason = format!("blocklist:{list_type}");
                    out.block(code, params.block_weight, &why, &reason)
                }
                Severity::Flag => out.fire(code, params.flag_weight, &why),
                Severity::Review => out.fire(code, params.review_weight, &why),
            };
        }
        Ok(out)
    }
}

export_rule!(Blocklist);
