//! Test rule `large-table`: a component of about 200 KB, most of it a
//! lookup table in the data segment, for the upload → active benchmark.
use aduana_guest_sdk::prelude::*;

const SIZE: usize = 200 * 1024;

const fn table() -> [u8; SIZE] {
    let mut t = [0u8; SIZE];
    let mut x: u32 = 0x9E37_79B9;
    let mut i = 0;
    while i < SIZE {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        t[i] = (x >> 24) as u8;
        i += 1;
    }
    t
}

static TABLE: [u8; SIZE] = table();

/// The rule.
pub struct LargeTable;

impl Rule for LargeTable {
    type Params = NoParams;

    fn describe() -> aduana_guest_sdk::Description {
        aduana_guest_sdk::Description::new("large-table", "looks the amount up in a large table")
            .flow(Flow::Payout)
            .signal("large_table_hit", 5, "table says so")
    }

    fn evaluate(tx: &Transaction, _: &NoParams, _: &dyn Context) -> Result<Evaluation, RuleError> {
        let mut out = Evaluation::new();
        let idx = (tx.amount.minor % SIZE as u64) as usize;
        if std::hint::black_box(&TABLE)[idx] == 0 {
            out.fire("large_table_hit", 5, "table entry is zero");
        }
        Ok(out)
    }
}

export_rule!(LargeTable);
