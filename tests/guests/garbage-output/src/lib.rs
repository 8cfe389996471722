//! Test guest `hostile-garbage-output`: returns a signal with an invalid code and weight
//!
//! Misbehaves on purpose; the runtime tests assert the host contains it.
use aduana_guest_sdk::prelude::*;

/// The misbehaving rule.
pub struct Hostile;

impl Rule for Hostile {
    type Params = NoParams;

    fn describe() -> aduana_guest_sdk::Description {
        aduana_guest_sdk::Description::new(
            "hostile-garbage-output",
            "returns a signal with an invalid code and weight",
        )
        .flow(Flow::Payout)
    }

    fn evaluate(
        tx: &Transaction,
        _: &NoParams,
        _ctx: &dyn Context,
    ) -> Result<Evaluation, RuleError> {
        let mut out = Evaluation::new();
        out.fire(
            "NOT A CODE!",
            4_000_000_000 + (tx.amount.minor % 2) as u32,
            "",
        );
        Ok(out)
    }
}

export_rule!(Hostile);
