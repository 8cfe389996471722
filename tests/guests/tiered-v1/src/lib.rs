//! Test rule `tiered-amount` 1.0.0: flags payouts of 10,000.00 or more (in
//! any currency with two decimals). Version 2.0.0 lowers the bar, so tests
//! can tell which version ran.
use aduana_guest_sdk::prelude::*;

/// Minor units from which the signal fires.
const LIMIT_MINOR: u64 = 1_000_000;

/// The rule.
pub struct Tiered;

impl Rule for Tiered {
    type Params = NoParams;

    fn describe() -> aduana_guest_sdk::Description {
        aduana_guest_sdk::Description::new("tiered-amount", "large payout (10,000.00)")
            .flow(Flow::Payout)
            .signal("tiered_large_amount", 40, "payout is large")
    }

    fn evaluate(tx: &Transaction, _: &NoParams, _: &dyn Context) -> Result<Evaluation, RuleError> {
        let mut out = Evaluation::new();
        if tx.amount.minor >= LIMIT_MINOR {
            out.fire("tiered_large_amount", 40, "at least 10,000.00 (v1)");
        }
        Ok(out)
    }
}

export_rule!(Tiered);
