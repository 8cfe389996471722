//! Group commit for assessments.
//!
//! Every assessment commits with its history update, idempotency record and
//! outbox row. Committed one transaction each, the durable write path spends
//! most of its time on per-statement hand-offs to the database connection
//! and on rewriting the same pages into the WAL. Instead, requests queue
//! their write here and a drainer commits everything queued in one
//! transaction of multi-row statements. Nobody waits for a batch to fill:
//! a request that finds a drainer place free is committed on its own at
//! once, and under load the queue fills while the running batches commit.
//! A request still answers only after its own rows are committed.
use std::{
    collections::{HashSet, VecDeque},
    sync::{Mutex, MutexGuard},
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

/// Writes waiting for a drainer, and how many drainers run.
#[derive(Debug)]
pub(super) struct CommitQueue {
    state: Mutex<State>,
    /// Most drainers at once: 1 on SQLite (one writer), a few on
    /// PostgreSQL, where batches commit in parallel and one slow `fsync`
    /// should not hold up every request behind it.
    max_drainers: usize,
}

#[derive(Debug, Default)]
struct State {
    pending: VecDeque<Queued>,
    drainers: usize,
}

impl CommitQueue {
    pub(super) fn new(max_drainers: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            max_drainers: max_drainers.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned queue is still
        // a consistent queue.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `write`. True when the caller must start a drainer: fewer
    /// than `max_drainers` run. Below that, a write never waits for
    /// another batch; at it, writes gather into the next batch.
    pub(super) fn push(&self, write: AssessmentWrite, reply: Reply) -> bool {
        let mut state = self.lock();
        state.pending.push_back((write, reply));
        if state.drainers < self.max_drainers {
            state.drainers += 1;
            true
        } else {
            false
        }
    }

    /// The next batch for a running drainer, or `None` when the queue is
    /// empty and the drainer must stop. Checking the queue and stopping
    /// happen under one lock, so a write is never left without a drainer.
    pub(super) fn next_batch(&self) -> Option<Vec<Queued>> {
        let mut state = self.lock();
        let batch = take(&mut state.pending);
        if batch.is_empty() {
            state.drainers = state.drainers.saturating_sub(1);
            None
        } else {
            Some(batch)
        }
    }

    /// No write is queued and no drainer runs.
    pub(super) fn is_idle(&self) -> bool {
        let state = self.lock();
        state.pending.is_empty() && state.drainers == 0
    }

    /// Called when a drainer ends without `next_batch` returning `None`
    /// (its task was cancelled or panicked), so a later push starts
    /// another one.
    pub(super) fn drainer_gone(&self) {
        let mut state = self.lock();
        state.drainers = state.drainers.saturating_sub(1);
    }
}

/// Up to `MAX_BATCH` writes in arrival order, at most one per idempotency
/// key: a later write with a key already in the batch waits for the next
/// one, where it finds the first write's record and replays it, exactly as
/// if the two had arrived one after the other.
fn take(pending: &mut VecDeque<Queued>) -> Vec<Queued> {
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

/// Gives the drainer's place back if its task ends abnormally.
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
            velocity: Vec::new(),
            outbox: None,
        }
    }

    fn ids(batch: &[Queued]) -> Vec<String> {
        batch.iter().map(|(w, _)| w.session_id.clone()).collect()
    }

    #[test]
    fn one_drainer_at_a_time_and_none_left_idle() {
        let q = CommitQueue::new(1);
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
        let q = CommitQueue::new(1);
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
    fn up_to_max_drainers_run_at_once() {
        let q = CommitQueue::new(2);
        let mut keep = Vec::new();
        let mut started = Vec::new();
        for n in 0..4 {
            let (tx, rx) = oneshot::channel();
            started.push(q.push(write(n, None), tx));
            keep.push(rx);
        }
        assert_eq!(started, [true, true, false, false]);
        // The first drainer takes all four; the second finds nothing and
        // stops, which frees one place.
        assert_eq!(q.next_batch().map(|b| b.len()), Some(4));
        assert!(q.next_batch().is_none());
        let (tx, _rx) = oneshot::channel();
        assert!(q.push(write(9, None), tx));
    }

    #[test]
    fn batches_are_bounded() {
        let q = CommitQueue::new(1);
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
