//! The rules' heap: `talc`, starting in the slack of the module's initial
//! linear memory (from `__heap_base` to the end of the last initial page)
//! and growing memory only past it.
//!
//! Why: the host starts every evaluation from a fresh instance, and a
//! `memory.grow` makes the host expose new pages and hide them again when
//! the instance's slot is recycled (an `mprotect` each way, with TLB
//! shootdowns across cores). Rust's default wasm allocator grows memory on
//! its first allocation, i.e. on every evaluation. The built-in rules' whole
//! heap fits in that slack, so they never grow memory; a rule that needs
//! more still gets it, up to the host's memory cap.
#![allow(
    unsafe_code,
    reason = "a global allocator is unsafe by nature; each use says why it holds"
)]

use core::{alloc::Layout, ptr::addr_of};

use talc::{
    base::{Talc, binning::Binning},
    cell::TalcSyncCell,
    source::Source,
    wasm::WasmBinning,
};

const PAGE: usize = 64 << 10;

unsafe extern "C" {
    /// First byte after the stack and static data (set by `wasm-ld`).
    static __heap_base: u8;
}

/// Claims the initial memory's slack on the first shortage, then grows
/// linear memory.
#[derive(Debug)]
pub struct SlackThenGrow {
    slack_claimed: bool,
}

// SAFETY: `acquire` never allocates, and hands talc only memory nothing
// else uses: the slack above `__heap_base` (claimed once) and freshly grown
// pages.
unsafe impl Source for SlackThenGrow {
    fn acquire<B: Binning>(talc: &mut Talc<Self, B>, layout: Layout) -> Result<(), ()> {
        if !talc.source.slack_claimed {
            talc.source.slack_claimed = true;
            let base = addr_of!(__heap_base) as usize;
            let end = core::arch::wasm32::memory_size(0) * PAGE;
            if end > base {
                // SAFETY: [base, end) is inside linear memory, above all
                // static data and the stack, and not yet claimed.
                if unsafe { talc.claim(base as *mut u8, end - base) }.is_some() {
                    return Ok(());
                }
            }
        }
        // Room for the chunk's header and alignment padding on top of the
        // request, in whole pages.
        let needed = layout.size().checked_add(layout.align() + 64).ok_or(())?;
        let pages = needed.div_ceil(PAGE);
        let previous = core::arch::wasm32::memory_grow(0, pages);
        if previous == usize::MAX {
            return Err(());
        }
        // SAFETY: the pages were just added to linear memory and belong to
        // no one else.
        unsafe { talc.claim((previous * PAGE) as *mut u8, pages * PAGE) }
            .map(|_| ())
            .ok_or(())
    }
}

#[global_allocator]
static HEAP: TalcSyncCell<SlackThenGrow, WasmBinning> = TalcSyncCell::new_wasm(SlackThenGrow {
    slack_claimed: false,
});
