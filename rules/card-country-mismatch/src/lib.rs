//! Built-in rule `card-country-mismatch` (pay-in): fires
//! `payin_card_country_mismatch` when the card's issuing country (from its
//! BIN, as the integrator sends it) differs from the billing country, the
//! classic sign of a card used away from home. Countries listed in
//! `ignore_countries` (e.g. a border market) never fire.
use aduana_guest_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// Tunables.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Weight of the signal (20 by default).
    pub weight: Option<u32>,
    /// ISO 3166-1 alpha-2 codes on either side of which a mismatch is not
    /// reported.
    pub ignore_countries: Vec<String>,
}

/// The rule.
pub struct CardCountryMismatch;

impl Rule for CardCountryMismatch {
    type Params = Params;

    fn describe() -> aduana_guest_sdk::Description {
        aduana_guest_sdk::Description::new(
            "card-country-mismatch",
            "the card's issuing country differs from the billing country",
        )
        .flow(Flow::Payin)
        .signal(
            "payin_card_country_mismatch",
            20,
            "card issued in one country, billed to another",
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
        let card = p
            .payment_method
            .as_ref()
            .and_then(|m| m.card_country.as_deref());
        let billing = p.billing.as_ref().and_then(|b| b.country.as_deref());
        let (Some(card), Some(billing)) = (card, billing) else {
            return Ok(out);
        };
        let ignored = |c: &str| {
            params
                .ignore_countries
                .iter()
                .any(|i| i.eq_ignore_ascii_case(c))
        };
        if !card.eq_ignore_ascii_case(billing) && !ignored(card) && !ignored(billing) {
            out.fire(
                "payin_card_country_mismatch",
                params.weight.unwrap_or(20),
                &format!("card issued in {card}, billing country {billing}"),
            );
        }
        Ok(out)
    }
}

export_rule!(CardCountryMismatch);
