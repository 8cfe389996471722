//! Test guest `alloc-churn`: works the guest SDK's heap allocator hard and
//! checks every byte it wrote.
//!
//! - More than the memory cap (16 MiB by default) is allocated and freed in
//!   total, in every small size class, so freed blocks must be reused.
//! - Blocks move across classes and between the small classes and the
//!   large-block allocator by `realloc`, keeping their contents.
//! - Over-aligned blocks are honoured.
//!
//! Fires `alloc_ok` when every check held; returns an internal rule error
//! naming the first check that did not.
use aduana_guest_sdk::prelude::*;

/// The rule.
pub struct AllocChurn;

/// A 64-byte aligned value (past the small classes' 16-byte alignment).
#[repr(align(64))]
#[derive(Clone, Copy)]
struct Aligned([u8; 64]);

fn fill(v: &mut Vec<u8>, len: usize, seed: u8) {
    v.clear();
    v.extend((0..len).map(|i| seed.wrapping_add(i as u8)));
}

fn intact(v: &[u8], seed: u8) -> bool {
    v.iter()
        .enumerate()
        .all(|(i, b)| *b == seed.wrapping_add(i as u8))
}

fn churn() -> Result<(), &'static str> {
    // 17.5 MB allocated and freed in total (more than the 16 MiB cap), in
    // small classes. Each block's first byte is unique among the live
    // ones, so two live blocks sharing memory would show.
    let sizes = [1usize, 16, 17, 100, 600, 2000, 2048, 2048, 2048, 2048];
    for round in 0..1_600u32 {
        let live: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let mut v = Vec::with_capacity(n);
                v.push((round as u8).wrapping_add(i as u8 * 16));
                v
            })
            .collect();
        let held = live.iter().enumerate().all(|(i, v)| {
            v[0] == (round as u8).wrapping_add(i as u8 * 16) && v.capacity() == sizes[i]
        });
        if !held {
            return Err("small blocks overlapped");
        }
    }
    // Growth from 1 byte to 16 KiB one push at a time: every small class,
    // then the large allocator, by realloc.
    let mut grown = Vec::new();
    for i in 0..(1usize << 14) {
        grown.push(i as u8);
    }
    if !intact(&grown, 0) {
        return Err("contents lost while growing");
    }
    // And back down through every class.
    let mut len = grown.len();
    while len > 1 {
        len /= 3;
        grown.truncate(len);
        grown.shrink_to_fit();
        if !intact(&grown, 0) {
            return Err("contents lost while shrinking");
        }
    }
    drop(grown);
    // Interleaved lifetimes: free every other block, reuse the holes.
    let mut blocks: Vec<Vec<u8>> = (0..512)
        .map(|i| {
            let mut v = Vec::with_capacity(24 + i % 200);
            fill(&mut v, 24 + i % 200, i as u8);
            v
        })
        .collect();
    for (i, b) in blocks.iter_mut().enumerate() {
        if i % 2 == 0 {
            *b = Vec::new();
        }
    }
    let refill: Vec<Vec<u8>> = (0..256)
        .map(|i| {
            let mut v = Vec::with_capacity(24 + i % 200);
            fill(&mut v, 24 + i % 200, 0xA5);
            v
        })
        .collect();
    for (i, b) in blocks.iter().enumerate() {
        if i % 2 == 1 && !intact(b, i as u8) {
            return Err("a live block changed when freed neighbours were reused");
        }
    }
    if !refill.iter().all(|v| intact(v, 0xA5)) {
        return Err("reused blocks overlapped");
    }
    // Over-aligned values, small and large.
    let small: Vec<Box<Aligned>> = (0..64).map(|i| Box::new(Aligned([i; 64]))).collect();
    let large: Vec<Aligned> = vec![Aligned([7; 64]); 100];
    if small
        .iter()
        .any(|b| !(&**b as *const Aligned as usize).is_multiple_of(64))
        || !(large.as_ptr() as usize).is_multiple_of(64)
    {
        return Err("alignment not honoured");
    }
    if !small.iter().enumerate().all(|(i, b)| b.0 == [i as u8; 64]) {
        return Err("aligned blocks overlapped");
    }
    Ok(())
}

impl Rule for AllocChurn {
    type Params = NoParams;

    fn describe() -> aduana_guest_sdk::Description {
        aduana_guest_sdk::Description::new("alloc-churn", "exercises the heap allocator")
            .flow(Flow::Payout)
            .signal("alloc_ok", 1, "every allocator check held")
    }

    fn evaluate(
        _: &Transaction,
        _: &NoParams,
        _ctx: &dyn Context,
    ) -> Result<Evaluation, RuleError> {
        churn().map_err(|e| RuleError::Internal(e.to_owned()))?;
        let mut out = Evaluation::new();
        out.fire("alloc_ok", 1, "every allocator check held");
        Ok(out)
    }
}

export_rule!(AllocChurn);
