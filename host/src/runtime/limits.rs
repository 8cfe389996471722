//! Budgets for one rule evaluation, and the store limiter enforcing memory.
use std::time::Duration;

/// Limits every evaluation runs under. All configurable.
#[derive(Debug, Clone)]
pub struct RuntimeLimits {
    /// Fuel per evaluation (deterministic instruction budget).
    pub fuel: u64,
    /// Epoch ticks per evaluation (wall-clock backstop).
    pub epoch_deadline_ticks: u64,
    /// Length of one epoch tick.
    pub epoch_tick: Duration,
    /// Linear memory cap per instance.
    pub memory_bytes: usize,
    /// Wasm stack cap.
    pub stack_bytes: usize,
    /// Concurrent instances the pooling allocator reserves.
    pub pool_instances: u32,
    /// Bytes of each linear memory reset with `memset` (kept resident)
    /// rather than `madvise` when an instance slot is reused.
    pub keep_resident_bytes: usize,
    /// Map memory images copy-on-write (`true`) or copy and `memset`
    /// (`false`; no virtual-memory calls, hence no cross-core TLB flushes,
    /// when `keep_resident_bytes` covers the memory).
    pub memory_init_cow: bool,
    /// Reset only the pages an evaluation dirtied (Linux `PAGEMAP_SCAN`,
    /// kernel 6.7+; ignored where unsupported) instead of `memset`-ing all
    /// of `keep_resident_bytes`.
    pub pagemap_scan: bool,
}

impl Default for RuntimeLimits {
    fn default() -> Self {
        Self {
            fuel: 10_000_000,
            epoch_deadline_ticks: 50,
            epoch_tick: Duration::from_millis(1),
            memory_bytes: 16 << 20,
            stack_bytes: 512 << 10,
            pool_instances: 256,
            keep_resident_bytes: 256 << 10,
            memory_init_cow: true,
            pagemap_scan: true,
        }
    }
}

/// Caps linear memory growth and records the peak and whether a growth was
/// denied (so the outcome can say "memory limit exceeded").
pub(super) struct StoreLimiter {
    max_memory: usize,
    peak: usize,
    denied: bool,
}

impl StoreLimiter {
    pub(super) fn new(max_memory: usize) -> Self {
        Self {
            max_memory,
            peak: 0,
            denied: false,
        }
    }
    pub(super) fn peak(&self) -> usize {
        self.peak
    }
    pub(super) fn denied(&self) -> bool {
        self.denied
    }
}

impl wasmtime::ResourceLimiter for StoreLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.denied = true;
            return Err(wasmtime::Error::msg("memory limit exceeded"));
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 20_000)
    }

    fn instances(&self) -> usize {
        8
    }
    fn tables(&self) -> usize {
        8
    }
    fn memories(&self) -> usize {
        2
    }
}
