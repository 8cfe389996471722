//! The rules' heap: small blocks from size-class free lists over a bump
//! window, large blocks from `talc`; both carve one arena that starts in the
//! slack of the module's initial linear memory (from `__heap_base` to the
//! end of the last initial page) and grows memory only past it.
//!
//! Why this shape:
//! - The host starts every evaluation from a fresh instance, so nearly every
//!   allocation of an evaluation is a *first* allocation and the heap never
//!   lives long. A bump pointer serves those in a few instructions; measured
//!   in fuel (deterministic), the built-ins spent about half of their guest
//!   work in `talc` alone (first-beneficiary 7.6 k fuel with `talc` for
//!   everything, 2.5 k with a bare bump allocator).
//! - Freed small blocks go to a free list per power-of-two class (16 B to
//!   2 KiB) and are reused for the same class, so a rule that allocates and
//!   frees in a loop does not run out of memory.
//! - Blocks over 2 KiB (or aligned past 16) go to `talc`, which coalesces,
//!   so large buffers that grow and shrink do not waste memory.
//! - `memory.grow` makes the host expose new pages and hide them again when
//!   the instance's slot is recycled (an `mprotect` each way, with TLB
//!   shootdowns across cores). The built-ins' whole heap fits in the slack,
//!   so they never grow memory; a rule that needs more still gets it, up to
//!   the host's memory cap.
//!
//! Everything here is single-threaded: the module is only compiled for wasm32
//! without the `atomics` feature, where no second thread can exist.
#![allow(
    unsafe_code,
    reason = "a global allocator is unsafe by nature; each use says why it holds"
)]

use core::{
    alloc::{GlobalAlloc, Layout},
    cell::UnsafeCell,
    ptr::{addr_of, null_mut},
};

use talc::{
    base::{Talc, binning::Binning},
    cell::TalcSyncCell,
    source::Source,
    wasm::WasmBinning,
};

const PAGE: usize = 64 << 10;
/// Smallest class: 16 bytes (room for the free-list link, and the alignment
/// every block gets).
const MIN_SHIFT: u32 = 4;
/// Largest small class: 2 KiB.
const MAX_SMALL: usize = 2 << 10;
const CLASSES: usize = 8;
/// Block alignment of the small classes.
const SMALL_ALIGN: usize = 16;
/// Bytes the bump window takes from the arena at a time.
const WINDOW: usize = 4 << 10;
/// Least bytes handed to `talc` at a time.
const TALC_CHUNK: usize = 16 << 10;

unsafe extern "C" {
    /// First byte after the stack and static data (set by `wasm-ld`).
    static __heap_base: u8;
}

/// Allocator state. Addresses are plain `usize`s; 0 means "none" (address 0
/// is the bottom of the shadow stack, never a heap block).
struct State {
    /// The arena: unused memory `[cursor, end)`; `end` is the end of linear
    /// memory once `started`.
    started: bool,
    cursor: usize,
    end: usize,
    /// The bump window small blocks are cut from: `[bump, bump_end)`.
    bump: usize,
    bump_end: usize,
    /// Head of each class's free list; a free block's first word links to
    /// the next.
    free: [usize; CLASSES],
}

impl State {
    /// Takes `len` bytes (a multiple of 16) from the arena, growing linear
    /// memory when the arena is short. `None` when memory cannot grow (the
    /// host's cap).
    fn take(&mut self, len: usize) -> Option<usize> {
        if !self.started {
            self.started = true;
            let base = addr_of!(__heap_base) as usize;
            self.cursor = base.next_multiple_of(SMALL_ALIGN);
            self.end = core::arch::wasm32::memory_size(0) * PAGE;
        }
        if self.end.saturating_sub(self.cursor) < len {
            let short = len - self.end.saturating_sub(self.cursor);
            let pages = short.div_ceil(PAGE);
            let previous = core::arch::wasm32::memory_grow(0, pages);
            if previous == usize::MAX {
                return None;
            }
            if previous * PAGE != self.end {
                // Someone else grew memory (nothing in the SDK does): start
                // over in fresh pages, enough for the whole request.
                self.cursor = previous * PAGE;
                self.end = (previous + pages) * PAGE;
                if self.end - self.cursor < len {
                    let more = (len - (self.end - self.cursor)).div_ceil(PAGE);
                    if core::arch::wasm32::memory_grow(0, more) == usize::MAX {
                        return None;
                    }
                    self.end += more * PAGE;
                }
            } else {
                self.end += pages * PAGE;
            }
        }
        let block = self.cursor;
        self.cursor += len;
        Some(block)
    }

    fn alloc_small(&mut self, class: usize) -> *mut u8 {
        let head = self.free[class];
        if head != 0 {
            // SAFETY: `head` is a free block of this class, whose first word
            // `dealloc_small` set to the next free block.
            self.free[class] = unsafe { *(head as *const usize) };
            return head as *mut u8;
        }
        let size = class_size(class);
        if self.bump_end - self.bump < size {
            let Some(window) = self.take(WINDOW.max(size)) else {
                return null_mut();
            };
            self.bump = window;
            self.bump_end = window + WINDOW.max(size);
        }
        let block = self.bump;
        self.bump += size;
        block as *mut u8
    }

    fn dealloc_small(&mut self, ptr: *mut u8, class: usize) {
        // SAFETY: `ptr` is a block of this class that its owner gave back;
        // it is at least 16 bytes and 16-aligned, so it holds the link.
        unsafe { *(ptr as *mut usize) = self.free[class] };
        self.free[class] = ptr as usize;
    }
}

/// The size class serving `layout`, if it is small.
#[inline]
fn small_class(size: usize, align: usize) -> Option<usize> {
    if size > MAX_SMALL || align > SMALL_ALIGN {
        return None;
    }
    let rounded = size.max(1 << MIN_SHIFT);
    Some((usize::BITS - (rounded - 1).leading_zeros() - MIN_SHIFT) as usize)
}

#[inline]
fn class_size(class: usize) -> usize {
    1 << (class as u32 + MIN_SHIFT)
}

/// `talc`'s memory source: chunks of the shared arena.
#[derive(Debug)]
pub struct FromArena;

// SAFETY: `acquire` never allocates, and hands talc only arena memory, which
// nothing else uses once taken.
unsafe impl Source for FromArena {
    fn acquire<B: Binning>(talc: &mut Talc<Self, B>, layout: Layout) -> Result<(), ()> {
        // Room for the chunk's header and alignment padding on top of the
        // request.
        let needed = layout.size().checked_add(layout.align() + 64).ok_or(())?;
        let len = needed.max(TALC_CHUNK).next_multiple_of(SMALL_ALIGN);
        // SAFETY: single-threaded (see the module docs); `talc` only calls
        // this from inside `Heap::alloc`/`realloc`, which hold no other
        // borrow of the state across the call.
        let state = unsafe { &mut *HEAP.state.get() };
        let base = state.take(len).ok_or(())?;
        // SAFETY: `[base, base + len)` was just taken from the arena and
        // belongs to no one else.
        unsafe { talc.claim(base as *mut u8, len) }
            .map(|_| ())
            .ok_or(())
    }
}

/// The global allocator: small classes in front of `talc`.
struct Heap {
    state: UnsafeCell<State>,
    large: TalcSyncCell<FromArena, WasmBinning>,
}

// SAFETY: this module is compiled only for wasm32 without `atomics`, where
// the program has exactly one thread.
unsafe impl Sync for Heap {}

// SAFETY: small blocks come from arena memory owned by no one else and are
// handed out at most once until given back; large ones are talc's. Every
// block is at least `layout.size()` bytes and aligned to `layout.align()`
// (small: 16-aligned blocks only serve `align <= 16`).
unsafe impl GlobalAlloc for Heap {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match small_class(layout.size(), layout.align()) {
            // SAFETY: single-threaded; no borrow of the state outlives this call.
            Some(class) => unsafe { (*self.state.get()).alloc_small(class) },
            // SAFETY: forwarded as received.
            None => unsafe { self.large.alloc(layout) },
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match small_class(layout.size(), layout.align()) {
            // SAFETY: as in `alloc`; `ptr` came from `alloc_small` of this class.
            Some(class) => unsafe { (*self.state.get()).dealloc_small(ptr, class) },
            // SAFETY: `ptr` came from talc with this layout.
            None => unsafe { self.large.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = small_class(layout.size(), layout.align());
        let new = small_class(new_size, layout.align());
        match (old, new) {
            (Some(a), Some(b)) if a == b => return ptr,
            // SAFETY: both sizes are talc's; forwarded as received.
            (None, None) => return unsafe { self.large.realloc(ptr, layout, new_size) },
            _ => {}
        }
        // SAFETY: the caller guarantees `new_size` with `layout.align()` is
        // a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: `new_layout` has a non-zero size (the caller's contract).
        let moved = unsafe { self.alloc(new_layout) };
        if !moved.is_null() {
            // SAFETY: both blocks are live, distinct, and at least this long.
            unsafe {
                core::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        moved
    }
}

#[global_allocator]
static HEAP: Heap = Heap {
    state: UnsafeCell::new(State {
        started: false,
        cursor: 0,
        end: 0,
        bump: 0,
        bump_end: 0,
        free: [0; CLASSES],
    }),
    large: TalcSyncCell::new_wasm(FromArena),
};
