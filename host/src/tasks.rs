//! The background-task supervisor: one owner for every long-running task
//! (the activation watcher, the SQLite checkpointer, and each worker to
//! come). At shutdown, after the server has drained its requests, the
//! supervisor waits for the queued commits, tells every task to stop,
//! gives them a grace to finish what they are doing, and aborts whatever
//! is left. Dropped without a shutdown (a test aborting its server), it
//! aborts every task.
use std::{future::Future, time::Duration};

use tokio::{sync::watch, task::JoinHandle};

/// A task's view of the stop signal.
#[derive(Debug, Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// Whether the supervisor has asked its tasks to stop.
    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the supervisor asks its tasks to stop.
    pub async fn requested(&mut self) {
        while !*self.0.borrow_and_update() {
            if self.0.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Owns the background tasks.
#[derive(Debug)]
pub struct Supervisor {
    stop: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self {
            stop: watch::channel(false).0,
            tasks: Vec::new(),
        }
    }
}

impl Supervisor {
    /// Starts `task`, which must return soon after its [`Stop`] resolves.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, task: F)
    where
        F: FnOnce(Stop) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let stop = Stop(self.stop.subscribe());
        self.tasks.push((name, tokio::spawn(task(stop))));
    }

    /// Waits (up to `grace`) until `commits_idle` (the store's commit queue
    /// has nothing queued or committing), then stops every task, each given
    /// what is left of `grace`.
    pub async fn shutdown(mut self, commits_idle: impl Fn() -> bool, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        while !commits_idle() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if !commits_idle() {
            tracing::warn!("shutdown: commits still queued after the grace");
        }
        let _ = self.stop.send(true);
        for (name, task) in std::mem::take(&mut self.tasks) {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                tracing::warn!(task = name, "shutdown: task did not stop in time; aborted");
                abort.abort();
            }
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        for (_, task) in &self.tasks {
            task.abort();
        }
    }
}
