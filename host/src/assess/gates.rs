//! Per-tenant admission to the rule sandbox.
//!
//! Rules are CPU work: each pipeline runs on a blocking worker, never on the
//! async executor, and a tenant may have at most `per_tenant` pipelines
//! running at once (default: half the cores, at least one). A tenant whose
//! rules burn their whole budget on every call therefore queues behind
//! itself — and meets its own deadline (504) — while other tenants keep the
//! remaining cores. The pipeline's CPU cost (tens of µs) is small next to
//! HTTP and the database, so the cap does not limit a tenant's throughput
//! in practice.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The semaphores, one per tenant seen.
#[derive(Debug)]
pub struct TenantGates {
    per_tenant: usize,
    gates: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Default for TenantGates {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let per_tenant = std::env::var("ADUANA_TENANT_CONCURRENCY")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or((cores / 2).max(1));
        Self::new(per_tenant)
    }
}

impl TenantGates {
    pub fn new(per_tenant: usize) -> Self {
        Self {
            per_tenant: per_tenant.max(1),
            gates: Mutex::default(),
        }
    }

    /// Waits up to `wait` for a slot of `tenant_id`; `None` when it did not
    /// come in time.
    pub async fn enter(&self, tenant_id: &str, wait: Duration) -> Option<OwnedSemaphorePermit> {
        let gate = {
            let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(
                gates
                    .entry(tenant_id.to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant))),
            )
        };
        tokio::time::timeout(wait, gate.acquire_owned())
            .await
            .ok()?
            .ok()
    }
}
