//! Test guest `hostile-infinite-loop`: spins forever
//!
//! Misbehaves on purpose; the runtime tests assert the host contains it.
use aduana_guest_sdk::prelude::*;

/// The misbehaving rule.
pub struct Hostile;

impl Rule for Hostile {
    type Params = NoParams;

    fn describe() -> aduana_guest_sdk::Description {
        aduana_guest_sdk::Description::new("hostile-infinite-loop", "spins forever")
            .flow(Flow::Payout)
    }

    fn evaluate(
        tx: &Transaction,
        _: &NoParams,
        _ctx: &dyn Context,
    ) -> Result<Evaluation, RuleError> {
        let mut n = tx.amount.minor;
        loop {
            n = std::hint::black_box(n.wrapping_mul(31).wrapping_add(7));
        }
    }
}

export_rule!(Hostile);
