//! Test guest `hostile-oversized-output`: returns hundreds of oversized signals
//!
//! Misbehaves on purpose; the runtime tests assert the host contains it.
use aduana_guest_sdk::prelude::*;

/// The misbehaving rule.
pub struct Hostile;

impl Rule for Hostile {
    type Params = NoParams;

    fn describe() -> aduana_guest_sdk::Description {
        aduana_guest_sdk::Description::new(
            "hostile-oversized-output",
            "returns hundreds of oversized signals",
        )
        .flow(Flow::Payout)
    }

    fn evaluate(
        tx: &Transaction,
        _: &NoParams,
        _ctx: &dyn Context,
    ) -> Result<Evaluation, RuleError> {
        let mut out = Evaluation::new();
        let description = "x".repeat(600 + (tx.amount.minor % 2) as usize);
        for _ in 0..200 {
            out.fire("payout_spam", 1, &description);
        }
        Ok(out)
    }
}

export_rule!(Hostile);
