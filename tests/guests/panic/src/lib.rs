//! Test guest `hostile-panic`: panics (a trap in Wasm)
//!
//! Misbehaves on purpose; the runtime tests assert the host contains it.
use aduana_guest_sdk::prelude::*;

/// The misbehaving rule.
pub struct Hostile;

impl Rule for Hostile {
    type Params = NoParams;

    fn describe() -> aduana_guest_sdk::Description {
        aduana_guest_sdk::Description::new("hostile-panic", "panics (a trap in Wasm)")
            .flow(Flow::Payout)
    }

    fn evaluate(
        tx: &Transaction,
        _: &NoParams,
        _ctx: &dyn Context,
    ) -> Result<Evaluation, RuleError> {
        #[expect(clippy::panic, reason = "this guest exists to panic")]
        if tx.amount.minor < u64::MAX {
            panic!("rule author bug");
        }
        Ok(Evaluation::new())
    }
}

export_rule!(Hostile);
