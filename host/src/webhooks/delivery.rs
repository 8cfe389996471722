//! The delivery worker, one per node under the task supervisor.
//!
//! Each turn it (1) dispatches: numbers new outbox events and fans them
//! out as deliveries (`Store::webhook_turn`), those it has room for
//! created already leased to this node and sent at once; (2) when a read
//! finds any due (retries, recoveries, overflow), claims due deliveries
//! of active endpoints, leasing each for twice the timeout plus a margin (on
//! PostgreSQL with `SKIP LOCKED`, so several nodes share the work and an
//! event is in flight on one node at a time; a node killed mid-attempt
//! leaves the lease to run out and the delivery due again: at least once);
//! (3) sends each claimed delivery in its own task, at most
//! `endpoint_concurrency` per endpoint and `concurrency` in all, so a slow
//! or dead endpoint only ever holds its own slots. Outcomes are recorded
//! at the next turn (attempt log, delivery state, endpoint failure streak)
//! in the dispatch's own transaction: one transaction, one fsync, one hold
//! of SQLite's write lock per turn, not per attempt.
//!
//! A 2xx within the timeout is delivered; redirects are not followed; 410
//! disables the endpoint; 429 and 503 with `Retry-After` are retried then;
//! anything else is retried on the configured schedule with jitter, then
//! marked failed. An endpoint failing without a success for
//! `disable_after` is disabled, and says why.
use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rand::Rng;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION, RETRY_AFTER};
use tokio::{sync::mpsc, task::JoinSet};

use super::{Webhooks, body, signing, target};
use crate::{
    domain::now_ms,
    store::{Attempt, AttemptRecord, Claimed, DispatchLease, Store},
    tasks::Stop,
};

/// Events numbered and fanned out per dispatch transaction.
const DISPATCH_BATCH: i64 = 500;

/// A lease lasts twice the request timeout and this much more: long
/// enough for the attempt and its recording, short enough that a
/// delivery a dead node held goes out again soon.
const LEASE_MARGIN_MS: i64 = 5_000;

/// Attempt outcomes recorded per turn, at most.
const RECORD_BATCH: usize = 500;

/// Bytes of a response kept in the attempt log.
const RESPONSE_HEAD: usize = 512;

/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How often queue metrics are refreshed and old events pruned.
const STATS_EVERY_MS: i64 = 5_000;
const PRUNE_EVERY_MS: i64 = 3_600_000;

/// The HTTP client deliveries go through: no redirects, the configured
/// timeout, and a resolver that only yields addresses allowed by
/// [`target`].
pub fn client(hooks: &Webhooks) -> reqwest::Result<reqwest::Client> {
    let cfg = hooks.config();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(cfg.timeout)
        .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
        .dns_resolver(
            target::SafeResolver {
                allow_private: cfg.allow_private,
            }
            .shared(),
        )
        .pool_max_idle_per_host(cfg.endpoint_concurrency)
        .https_only(!cfg.allow_private)
        .user_agent(concat!("aduana-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The OS priority (nice value) of the delivery thread: when
/// the CPU is short, assessments (synchronous, on a bank's payment path)
/// go first and deliveries (asynchronous by contract) take what is left.
/// Under no contention it changes nothing.
const WORKER_NICE: i32 = 10;

/// Runs the worker ([`run`]) where it least delays requests, until it
/// ends: on a thread and runtime of its own at a lower OS priority
/// ([`WORKER_NICE`]), with database connections of its own opened by that
/// thread ([`Store::for_worker`](crate::store::Store::for_worker)). A
/// burst of deliveries then never occupies the request-serving workers,
/// and when the CPU is short the OS runs requests first. On SQLite its
/// writes still go through the one writer.
pub async fn run_isolated(hooks: Webhooks, stop: Stop) {
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("aduana-webhooks".into())
        .spawn(move || {
            // Linux: PRIO_PROCESS with no pid is the calling thread; the
            // threads it starts (its SQLite connection, blocking DNS
            // lookups) inherit the value.
            if let Err(e) = rustix::process::setpriority_process(None, WORKER_NICE) {
                tracing::warn!(error = %e, "webhook delivery keeps the default OS priority");
            }
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(async move {
                    // Inside the runtime: the pool's upkeep is a task.
                    let store = hooks.store().for_worker();
                    run(hooks.with_store(store), stop).await;
                }),
                Err(e) => tracing::error!(error = %e, "webhook delivery disabled: no runtime"),
            }
            let _ = done.send(());
        });
    match spawned {
        Ok(_) => {
            let _ = finished.await;
        }
        Err(e) => tracing::error!(error = %e, "webhook delivery disabled: no thread"),
    }
}

/// Runs the worker until `stop`; then lets attempts in flight finish and
/// records them (the supervisor aborts whatever outlasts its grace; their
/// leases make them due again).
pub async fn run(hooks: Webhooks, mut stop: Stop) {
    let client = match client(&hooks) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook delivery disabled: cannot build the HTTP client");
            return;
        }
    };
    let cfg = hooks.config().clone();
    let disable_after_ms = i64::try_from(cfg.disable_after.as_millis()).unwrap_or(i64::MAX);
    // Finished attempts wait here for the next turn's transaction.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut finished: Vec<AttemptRecord> = Vec::new();
    let inflight: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let mut tasks = JoinSet::new();
    let (mut last_stats, mut last_prune) = (0_i64, 0_i64);
    let mut failing = HashSet::new();
    let timeout_ms = i64::try_from(cfg.timeout.as_millis()).unwrap_or(i64::MAX);
    loop {
        while tasks.try_join_next().is_some() {}
        while let Ok(r) = rx.try_recv() {
            finished.push(r);
        }
        let now = now_ms();
        let mut more = false;
        let lease_until = now.saturating_add(2 * timeout_ms + LEASE_MARGIN_MS);
        let mut counts = lock(&inflight).clone();
        let mut lease = DispatchLease {
            until: lease_until,
            room: cfg.concurrency.saturating_sub(tasks.len()),
            per_endpoint: cfg.endpoint_concurrency,
            in_flight: &mut counts,
        };
        let recording = finished.len().min(RECORD_BATCH);
        match hooks
            .store()
            .webhook_turn(
                &finished[..recording],
                now.saturating_sub(disable_after_ms),
                DISPATCH_BATCH,
                now,
                &mut lease,
            )
            .await
        {
            Ok(d) => {
                finished.drain(..recording);
                more |= d.numbered as i64 == DISPATCH_BATCH || !finished.is_empty();
                for c in d.leased {
                    spawn_attempt(&mut tasks, &hooks, &client, &tx, &inflight, c);
                }
            }
            // Outcomes not recorded stay for the next turn (and, should
            // the node stop first, their leases make them due again).
            Err(e) => tracing::warn!(error = %e, "webhook dispatch failed; retrying"),
        }
        let room = cfg.concurrency.saturating_sub(tasks.len());
        // Retries, recoveries and what the dispatch had no room for.
        let busy: Vec<String> = lock(&inflight)
            .iter()
            .filter(|(_, n)| **n >= cfg.endpoint_concurrency)
            .map(|(id, _)| id.clone())
            .collect();
        if room > 0
            && hooks
                .store()
                .deliveries_due(now, &busy)
                .await
                .unwrap_or(true)
        {
            match hooks
                .store()
                .claim_deliveries(now, lease_until, room as i64, &busy)
                .await
            {
                Ok(claimed) => {
                    more |= claimed.len() == room;
                    for c in claimed {
                        spawn_attempt(&mut tasks, &hooks, &client, &tx, &inflight, c);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "claiming webhook deliveries failed"),
            }
        }
        if now - last_stats >= STATS_EVERY_MS {
            last_stats = now;
            refresh_metrics(hooks.store(), now, &mut failing).await;
            if let Err(e) = hooks.store().park_inactive_deliveries().await {
                tracing::warn!(error = %e, "parking disabled endpoints' deliveries failed");
            }
        }
        if now - last_prune >= PRUNE_EVERY_MS {
            last_prune = now;
            let retention = i64::try_from(cfg.retention.as_millis()).unwrap_or(i64::MAX);
            match hooks
                .store()
                .prune_events(now.saturating_sub(retention))
                .await
            {
                Ok(n) if n > 0 => tracing::info!(events = n, "pruned events past retention"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "pruning events failed"),
            }
        }
        let full = tasks.len() >= cfg.concurrency;
        if more && !full {
            if stop.is_requested() {
                break;
            }
            continue;
        }
        // Finished attempts wake the loop only when they free a full
        // node; otherwise new work is looked for once per poll, in batches.
        tokio::select! {
            () = stop.requested() => break,
            () = tokio::time::sleep(cfg.poll), if !full => {}
            Some(_) = tasks.join_next(), if full => {}
        }
    }
    while tasks.join_next().await.is_some() {}
    drop(tx);
    while let Some(r) = rx.recv().await {
        finished.push(r);
    }
    for chunk in finished.chunks(RECORD_BATCH) {
        for tries in 1..=3 {
            let now = now_ms();
            match hooks
                .store()
                .record_attempts(chunk, now, now.saturating_sub(disable_after_ms))
                .await
            {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, tries, "recording webhook attempts at shutdown failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// Sends `c` in a task of its own, counting it against its endpoint's
/// slots until it is done; its outcome goes to the recorder.
fn spawn_attempt(
    tasks: &mut JoinSet<()>,
    hooks: &Webhooks,
    client: &reqwest::Client,
    tx: &mpsc::UnboundedSender<AttemptRecord>,
    inflight: &Arc<Mutex<HashMap<String, usize>>>,
    c: Claimed,
) {
    *lock(inflight).entry(c.endpoint_id.clone()).or_default() += 1;
    let (hooks, client, tx, inflight) = (
        hooks.clone(),
        client.clone(),
        tx.clone(),
        Arc::clone(inflight),
    );
    tasks.spawn(async move {
        let endpoint = c.endpoint_id.clone();
        let record = attempt(&hooks, &client, c).await;
        let _ = tx.send(record);
        let mut map = lock(&inflight);
        if let Some(n) = map.get_mut(&endpoint) {
            *n -= 1;
            if *n == 0 {
                map.remove(&endpoint);
            }
        }
    });
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Refreshes the queue gauges and the failure streaks (`failing`: the
/// endpoints reported failing last time, set back to 0 once they recover).
async fn refresh_metrics(store: &Store, now: i64, failing: &mut HashSet<String>) {
    match store.webhook_queue_stats().await {
        Ok(s) => {
            metrics::gauge!("aduana_webhook_queue_depth").set(s.depth as f64);
            let age = s
                .oldest_at
                .map_or(0.0, |at| (now - at).max(0) as f64 / 1000.0);
            metrics::gauge!("aduana_webhook_oldest_pending_seconds").set(age);
        }
        Err(e) => tracing::warn!(error = %e, "reading the webhook queue failed"),
    }
    if let Ok(streaks) = store.webhook_failure_streaks().await {
        let now_failing: HashSet<String> = streaks.iter().map(|(id, _)| id.clone()).collect();
        for recovered in failing.difference(&now_failing) {
            metrics::gauge!("aduana_webhook_endpoint_failure_streak", "endpoint_id" => recovered.clone())
                .set(0.0);
        }
        for (endpoint, streak) in streaks {
            metrics::gauge!("aduana_webhook_endpoint_failure_streak", "endpoint_id" => endpoint)
                .set(streak as f64);
        }
        *failing = now_failing;
    }
}

/// What the receiver did.
#[derive(Debug)]
enum Outcome {
    Response {
        status: u16,
        retry_after: Option<Duration>,
        location: Option<String>,
        head: String,
    },
    Failed(String),
}

/// Sends one claimed delivery and says what to record.
async fn attempt(hooks: &Webhooks, client: &reqwest::Client, c: Claimed) -> AttemptRecord {
    let at_ms = now_ms();
    let started = Instant::now();
    let outcome = send(hooks, client, &c, at_ms).await;
    let duration = started.elapsed();
    metrics::histogram!("aduana_webhook_delivery_duration_seconds").record(duration.as_secs_f64());
    let n = c.attempts + 1;
    let schedule = &hooks.config().retry_schedule;
    let retry_at = |min: Option<Duration>| -> Option<i64> {
        let planned = schedule.get(usize::try_from(n).unwrap_or(usize::MAX))?;
        let delay = jitter(*planned).max(min.unwrap_or_default());
        Some(at_ms.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)))
    };
    let (status_code, error, head, next, succeeded, disable) = match outcome {
        Outcome::Response { status, head, .. } if (200..300).contains(&status) => {
            (Some(status), None, head, None, true, None)
        }
        Outcome::Response {
            status: 410, head, ..
        } => (
            Some(410),
            Some("410 Gone: the endpoint is disabled".to_owned()),
            head,
            None,
            false,
            Some("the receiver answered 410 Gone".to_owned()),
        ),
        Outcome::Response {
            status,
            retry_after,
            location,
            head,
        } => {
            let error = match (status, &location) {
                (300..=399, Some(l)) => format!("HTTP {status}: redirect to `{l}` not followed"),
                (300..=399, None) => format!("HTTP {status}: redirects are not followed"),
                _ => format!("HTTP {status}"),
            };
            let honoured = matches!(status, 429 | 503).then_some(retry_after).flatten();
            (
                Some(status),
                Some(error),
                head,
                retry_at(honoured),
                false,
                None,
            )
        }
        Outcome::Failed(error) => (
            None,
            Some(error),
            String::new(),
            retry_at(None),
            false,
            None,
        ),
    };
    let status = if succeeded {
        "delivered"
    } else if next.is_some() {
        "pending"
    } else {
        "failed"
    };
    let outcome = match (status, &disable) {
        (_, Some(_)) => "disabled",
        ("pending", _) => "retry",
        (s, _) => s,
    };
    metrics::counter!("aduana_webhook_deliveries_total", "outcome" => outcome).increment(1);
    AttemptRecord {
        attempt: Attempt {
            delivery_id: c.delivery_id,
            attempt: n,
            at_ms,
            status_code: status_code.map(i64::from),
            duration_ms: i64::try_from(duration.as_millis()).unwrap_or(i64::MAX),
            error,
            response_head: (!head.is_empty()).then_some(head),
        },
        lease_until: c.lease_until,
        tenant_id: c.tenant_id,
        endpoint_id: c.endpoint_id,
        status,
        next_attempt_at: next,
        succeeded,
        disable,
    }
}

/// ±10% of `d`.
fn jitter(d: Duration) -> Duration {
    if d.is_zero() {
        return d;
    }
    d.mul_f64(rand::rng().random_range(0.9..1.1))
}

async fn send(hooks: &Webhooks, client: &reqwest::Client, c: &Claimed, at_ms: i64) -> Outcome {
    let secrets = match hooks.signing_secrets(&c.endpoint, at_ms) {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    // An address literal is checked here; a name by the client's resolver.
    let url = match target::check_url(&c.endpoint.url, hooks.config().allow_private) {
        Ok(u) => u,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let body = body(&c.event);
    let t = at_ms / 1000;
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let signed = signing::sign(&refs, &c.event.id, t, body.as_bytes());
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let pairs = [
        ("x-clausum-event", c.event.event.clone()),
        ("x-clausum-timestamp", t.to_string()),
        ("x-clausum-signature", signed.clausum),
        ("webhook-id", c.event.id.clone()),
        ("webhook-timestamp", t.to_string()),
        ("webhook-signature", signed.standard),
    ];
    for (name, value) in pairs {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    let mut resp = match client.post(url).headers(headers).body(body).send().await {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(describe(&e, hooks.config().timeout)),
    };
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, at_ms));
    let location = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(|l| l.chars().take(200).collect());
    let mut head = Vec::new();
    while head.len() < RESPONSE_HEAD {
        match resp.chunk().await {
            Ok(Some(chunk)) => head.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    head.truncate(RESPONSE_HEAD);
    Outcome::Response {
        status,
        retry_after,
        location,
        head: String::from_utf8_lossy(&head).into_owned(),
    }
}

/// A transport error in a sentence, with its causes.
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {} ms", timeout.as_millis());
    }
    let mut text = if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `Retry-After` as seconds or an HTTP date, capped at a day.
fn parse_retry_after(v: &str, now_ms: i64) -> Option<Duration> {
    let v = v.trim();
    let d = if let Ok(secs) = v.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = chrono::DateTime::parse_from_rfc2822(v)
            .ok()?
            .timestamp_millis();
        Duration::from_millis(u64::try_from(at - now_ms).ok()?)
    };
    Some(d.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("120", 0), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("999999", 0), Some(MAX_RETRY_AFTER));
        // 2015-10-21T07:28:00Z, 30 s after "now".
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1_445_412_450_000),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", 0), None);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(100));
            assert!(j >= Duration::from_secs(90) && j <= Duration::from_secs(110));
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }
}
