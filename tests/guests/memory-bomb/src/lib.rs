//! Test guest `hostile-memory-bomb`: allocates without bound
//!
//! Misbehaves on purpose; the runtime tests assert the host contains it.
use aduana_guest_sdk::prelude::*;

/// The misbehaving rule.
pub struct Hostile;

impl Rule for Hostile {
    type Params = NoParams;

    fn describe() -> aduana_guest_sdk::Description {
        aduana_guest_sdk::Description::new("hostile-memory-bomb", "allocates without bound")
            .flow(Flow::Payout)
    }

    fn evaluate(
        tx: &Transaction,
        _: &NoParams,
        _ctx: &dyn Context,
    ) -> Result<Evaluation, RuleError> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // Reserve without touching, so the memory cap (not fuel) stops it.
            let mut chunk = Vec::with_capacity(1 << 20);
            chunk.push((tx.amount.minor & 0xff) as u8);
            hoard.push(std::hint::black_box(chunk));
        }
    }
}

export_rule!(Hostile);
