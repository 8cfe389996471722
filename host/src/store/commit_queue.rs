//! Group commit for assessments.
//!
//! Every assessment commits with its history update, idempotency record and
//! outbox row. Committed one transaction each, the durable write path spends
//! most of its time on per-statement hand-offs to the database connection
//! and on rewriting the same pages into the WAL. Instead, requests queue
//! their write here and one drainer at a time commits everything queued in
//! one transaction of multi-row statements. Nobody waits for a batch to
//! fill: a request that arrives while the drainer is idle is committed on
//! its own at once, and under load the queue fills while the previous batch
//! commits. A request still answers only after its own rows are committed.
use std::{
    collections::{HashSet, VecDeque},
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::sync::oneshot;

use super::{AssessmentWrite, CommitOutcome, StoreError};

/// Most assessments one transaction carries. Bounds the statement size
/// (13 parameters per assessment row) and the work lost to one rollback.
pub(super) const MAX_BATCH: usize = 64;

/// Where a queued write's outcome goes.
pub(super) type Reply = oneshot::Sender<Result<CommitOutcome, StoreError>>;

/// A queued write and who waits for it.
pub(super) type Queued = (AssessmentWrite, Reply);

/// Writes waiting for the drainer, and whether one runs.
#[derive(Debug, Default)]
pub(super) struct CommitQueue {
    pending: Mutex<VecDeque<Queued>>,
    draining: AtomicBool,
}

impl CommitQueue {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Queued>> {
        // Nothing panics while holding the lock; a poisoned queue is still
        // a consistent queue.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `write`. True when no drainer runs and the caller must start
    /// one.
    pub(super) fn push(&self, write: AssessmentWrite, reply: Reply) -> bool {
        self.lock().push_back((write, reply));
        !self.draining.swap(true, Ordering::SeqCst)
    }

    /// The next batch for the running drainer, or `None` when the queue is
    /// empty and the drainer must stop.
    ///
    /// A write pushed while the drainer decides to stop is never stranded:
    /// either the drainer sees it on its second look, or the pusher finds
    /// `draining` false and starts a new drainer.
    pub(super) fn next_batch(&self) -> Option<Vec<Queued>> {
        loop {
            let batch = self.take();
            if !batch.is_empty() {
                return Some(batch);
            }
            self.draining.store(false, Ordering::SeqCst);
            if self.lock().is_empty() || self.draining.swap(true, Ordering::SeqCst) {
                return None;
            }
        }
    }

    /// Called when a drainer ends without `next_batch` returning `None`
    /// (its task was cancelled or panicked), so the next push starts
    /// another one.
    pub(super) fn drainer_gone(&self) {
        self.draining.store(false, Ordering::SeqCst);
    }

    /// Up to `MAX_BATCH` writes in arrival order, at most one per
    /// idempotency key: a later write with a key already in the batch waits
    /// for the next one, where it finds the first write's record and
    /// replays it, exactly as if the two had arrived one after the other.
    fn take(&self) -> Vec<Queued> {
        let mut pending = self.lock();
        let mut batch = Vec::with_capacity(pending.len().min(MAX_BATCH));
        let mut keys: HashSet<(String, String, String)> = HashSet::new();
        let mut deferred = Vec::new();
        while batch.len() < MAX_BATCH {
            let Some(item) = pending.pop_front() else {
                break;
            };
            let fresh = match &item.0.idempotency {
                Some((scope, key, _)) => {
                    keys.insert((item.0.tenant_id.clone(), scope.clone(), key.clone()))
                }
                None => true,
            };
            if fresh {
                batch.push(item);
            } else {
                deferred.push(item);
            }
        }
        for item in deferred.into_iter().rev() {
            pending.push_front(item);
        }
        batch
    }
}

/// Resets the queue's drainer flag if the drainer task ends abnormally.
pub(super) struct DrainerGuard<'a> {
    pub(super) queue: &'a CommitQueue,
    pub(super) finished: bool,
}

impl Drop for DrainerGuard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.queue.drainer_gone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(n: usize, key: Option<&str>) -> AssessmentWrite {
        AssessmentWrite {
            session_id: format!("s{n}"),
            tenant_id: "t".into(),
            flow: "payout".into(),
            decision: "approve".into(),
            risk_score: 0,
            payment_id: None,
            input: "{}".into(),
            context: "{}".into(),
            rules: "[]".into(),
            thresholds: "{}".into(),
            response: "{}".into(),
            created_at: 0,
            idempotency: key.map(|k| ("s".into(), k.into(), "h".into())),
            history: None,
            outbox: None,
        }
    }

    fn ids(batch: &[Queued]) -> Vec<String> {
        batch.iter().map(|(w, _)| w.session_id.clone()).collect()
    }

    #[test]
    fn one_drainer_at_a_time_and_none_left_idle() {
        let q = CommitQueue::default();
        let (tx, _rx) = oneshot::channel();
        assert!(q.push(write(1, None), tx), "first push starts a drainer");
        let (tx, _rx) = oneshot::channel();
        assert!(!q.push(write(2, None), tx), "a drainer already runs");
        assert_eq!(ids(&q.next_batch().unwrap_or_default()), ["s1", "s2"]);
        assert!(q.next_batch().is_none(), "empty queue stops the drainer");
        let (tx, _rx) = oneshot::channel();
        assert!(
            q.push(write(3, None), tx),
            "after it stopped, a push starts one"
        );
    }

    #[test]
    fn same_idempotency_key_waits_for_the_next_batch_in_order() {
        let q = CommitQueue::default();
        let mut keep = Vec::new();
        for (n, key) in [
            (1, Some("a")),
            (2, Some("a")),
            (3, None),
            (4, Some("b")),
            (5, Some("a")),
        ] {
            let (tx, rx) = oneshot::channel();
            q.push(write(n, key), tx);
            keep.push(rx);
        }
        assert_eq!(ids(&q.next_batch().unwrap_or_default()), ["s1", "s3", "s4"]);
        assert_eq!(ids(&q.next_batch().unwrap_or_default()), ["s2"]);
        assert_eq!(ids(&q.next_batch().unwrap_or_default()), ["s5"]);
        assert!(q.next_batch().is_none());
    }

    #[test]
    fn batches_are_bounded() {
        let q = CommitQueue::default();
        let mut keep = Vec::new();
        for n in 0..(MAX_BATCH + 3) {
            let (tx, rx) = oneshot::channel();
            q.push(write(n, None), tx);
            keep.push(rx);
        }
        assert_eq!(q.next_batch().map(|b| b.len()), Some(MAX_BATCH));
        assert_eq!(q.next_batch().map(|b| b.len()), Some(3));
    }
}
