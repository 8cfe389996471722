//! Test guest `hostile-deep-recursion`: recurses without bound
//!
//! Misbehaves on purpose; the tests assert the host stops it (stack
//! overflow) and keeps serving.
use aduana_guest_sdk::prelude::*;

/// The misbehaving rule.
pub struct Hostile;

#[inline(never)]
fn descend(n: u64, acc: &mut [u64; 16]) -> u64 {
    // Never true in practice; keeps the recursion formally conditional.
    if n == u64::MAX {
        return 0;
    }
    let mut local = *acc;
    local[(n % 16) as usize] = n;
    std::hint::black_box(&mut local);
    descend(n.wrapping_add(1), &mut local).wrapping_add(local[0])
}

impl Rule for Hostile {
    type Params = NoParams;

    fn describe() -> aduana_guest_sdk::Description {
        aduana_guest_sdk::Description::new("hostile-deep-recursion", "recurses without bound")
            .flow(Flow::Payout)
    }

    fn evaluate(
        tx: &Transaction,
        _: &NoParams,
        _ctx: &dyn Context,
    ) -> Result<Evaluation, RuleError> {
        let mut acc = [0u64; 16];
        let _ = std::hint::black_box(descend(tx.amount.minor, &mut acc));
        Ok(Evaluation::new())
    }
}

export_rule!(Hostile);
