//! Test rule `weighted-amount` 1.3.0, hostile: moves megabytes around
//! until the host stops it, by fuel or (with a large fuel budget) by its
//! wall-clock deadline. Tests put it in shadow beside a good version and
//! check the live decision and deadline never notice.
use aduana_guest_sdk::prelude::*;

/// The misbehaving rule.
pub struct Hostile;

impl Rule for Hostile {
    type Params = NoParams;

    fn describe() -> aduana_guest_sdk::Description {
        aduana_guest_sdk::Description::new("weighted-amount", "never finishes")
            .flow(Flow::Payout)
            .signal("weighted_large_amount", 100, "never fired")
    }

    fn evaluate(tx: &Transaction, _: &NoParams, _: &dyn Context) -> Result<Evaluation, RuleError> {
        const HALF: usize = 1 << 20;
        let mut buf = vec![0u8; 2 * HALF];
        buf[0] = (tx.amount.minor & 0xff) as u8;
        let mut sum = 0u64;
        // Every round reads what the copies wrote, so none can be elided;
        // u64::MAX rounds never end.
        for round in 0..u64::MAX {
            buf.copy_within(..HALF, HALF);
            buf.copy_within(HALF.., 0);
            let at = (round as usize).wrapping_mul(4099) % (2 * HALF);
            buf[at] = buf[at].wrapping_add(1);
            sum = sum.wrapping_add(u64::from(buf[(at + HALF) % (2 * HALF)]));
        }
        let mut out = Evaluation::new();
        out.fire("weighted_large_amount", 100, &format!("after all ({sum})"));
        Ok(out)
    }
}

export_rule!(Hostile);
