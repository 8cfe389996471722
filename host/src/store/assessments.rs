//! Assessments and everything that commits with them: beneficiary history,
//! the idempotency record and the outbox row, in one transaction.
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt::Write as _,
    sync::{Arc, Mutex, MutexGuard},
};

use sqlx::{Any, AnyConnection, Connection, Row, pool::PoolConnection};
use tokio::sync::oneshot;

use super::{
    Backend, Store, StoreError,
    commit_queue::{DrainerGuard, Queued, Reply},
};

/// Idempotency records are honoured for 24 hours.
pub const IDEMPOTENCY_TTL_MS: i64 = 24 * 60 * 60 * 1000;

/// The live idempotency record of (tenant, scope, key).
pub(super) const IDEMPOTENCY_LOOKUP: &str = "SELECT request_hash, session_id, response FROM idempotency_keys \
     WHERE tenant_id = $1 AND scope = $2 AND idem_key = $3 AND created_at > $4";

/// A finished assessment and its side effects, ready to commit.
#[derive(Debug, Clone)]
pub struct AssessmentWrite {
    pub session_id: String,
    pub tenant_id: String,
    pub flow: String,
    pub decision: String,
    pub risk_score: i64,
    pub payment_id: Option<String>,
    /// JSON texts.
    pub input: String,
    pub context: String,
    pub rules: String,
    /// The decision thresholds used (JSON), for replay.
    pub thresholds: String,
    pub response: String,
    pub created_at: i64,
    /// (scope, key, request hash) when the request carried an idempotency key.
    pub idempotency: Option<(String, String, String)>,
    /// (origin key, beneficiary key) when the transfer counts toward history.
    pub history: Option<(String, String)>,
    /// (entity, key hash) pairs a pay-in counts toward (velocity).
    pub velocity: Vec<(&'static str, String)>,
    /// The domain event to deliver, committed with the assessment.
    pub outbox: Option<OutboxRow>,
}

/// A domain event waiting in the outbox: its id, name and the JSON body a
/// receiver gets (`events::Event` builds them).
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: String,
    pub event: String,
    pub payload: String,
}

/// A stored idempotency record.
#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    pub request_hash: String,
    pub session_id: String,
    pub response: String,
}

/// What committing an assessment did.
#[derive(Debug, Clone)]
pub enum CommitOutcome {
    Committed,
    /// A concurrent request with the same idempotency key committed first;
    /// nothing of this one was written.
    Replayed(IdempotencyRecord),
}

/// A stored assessment as read back.
#[derive(Debug, Clone)]
pub struct StoredAssessment {
    pub session_id: String,
    pub tenant_id: String,
    pub flow: String,
    pub decision: String,
    pub risk_score: i64,
    pub input: String,
    pub context: String,
    pub rules: String,
    pub thresholds: String,
    pub response: String,
    pub created_at: i64,
}

pub(super) const ASSESSMENT_COLUMNS: &str = "session_id, tenant_id, flow, decision, risk_score, input,     context, rules, thresholds, response, created_at";

pub(super) fn assessment_from_row(r: &sqlx::any::AnyRow) -> Result<StoredAssessment, StoreError> {
    Ok(StoredAssessment {
        session_id: r.try_get("session_id")?,
        tenant_id: r.try_get("tenant_id")?,
        flow: r.try_get("flow")?,
        decision: r.try_get("decision")?,
        risk_score: r.try_get("risk_score")?,
        input: r.try_get("input")?,
        context: r.try_get("context")?,
        rules: r.try_get("rules")?,
        thresholds: r.try_get("thresholds")?,
        response: r.try_get("response")?,
        created_at: r.try_get("created_at")?,
    })
}

/// A blocklist entry matching one of a transaction's identifiers.
#[derive(Debug, Clone)]
pub struct ListMatch {
    pub list_type: String,
    pub value: String,
    pub entry_id: String,
    pub severity: String,
}

/// The velocity counts an assessment asks for: (entity, key hash) pairs
/// and the windows' lengths, shortest first.
#[derive(Debug, Clone, Copy)]
pub struct VelocityQuery<'a> {
    pub keys: &'a [(&'static str, String)],
    pub windows_ms: [i64; 3],
}

/// Group commits a drainer runs on one writer connection before handing it
/// back to the pool (see `drain_commits`).
const BATCHES_PER_CONNECTION: usize = 8;

/// Velocity is counted in steps of five minutes: one counter row per
/// (tenant, entity, key, step).
const VELOCITY_STEP_MS: i64 = 300_000;

/// The start of the step `at_ms` falls in.
pub fn velocity_step(at_ms: i64) -> i64 {
    at_ms - at_ms.rem_euclid(VELOCITY_STEP_MS)
}

/// The first step each window counts at `now`: the step in progress and
/// every step that started within the window before it, so a window
/// covers at least its length and at most one step (five minutes) more.
fn velocity_window_starts(now: i64, windows_ms: [i64; 3]) -> [i64; 3] {
    windows_ms.map(|w| velocity_step(now) - w)
}

/// What an assessment's rules may ask about, read in one query.
#[derive(Debug, Default)]
pub struct AssessContext {
    pub matches: Vec<ListMatch>,
    pub history: Option<HistoryRow>,
    /// (entity, key hash, counts per window) of keys seen before.
    pub velocity: Vec<(String, String, [i64; 3])>,
}

/// Beneficiary history row.
#[derive(Debug, Clone, Copy)]
pub struct HistoryRow {
    pub transfers: i64,
    pub first_at: i64,
    pub last_at: i64,
}

impl Store {
    /// The live idempotency record for `key`, if any.
    pub async fn idempotency_record(
        &self,
        tenant_id: &str,
        scope: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let row = sqlx::query(IDEMPOTENCY_LOOKUP)
            .bind(tenant_id)
            .bind(scope)
            .bind(key)
            .bind(now - IDEMPOTENCY_TTL_MS)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(IdempotencyRecord {
                request_hash: r.try_get("request_hash")?,
                session_id: r.try_get("session_id")?,
                response: r.try_get("response")?,
            })
        })
        .transpose()
    }

    /// What an assessment's rules may ask about, in one query: the
    /// tenant's active, unexpired blocklist entries matching any of `pairs`
    /// (list type, normalized value) whose scope covers `flow`, and the
    /// history of `history_key` (origin key, beneficiary key), and the
    /// pay-in velocity counts of `velocity`. Values of one type share one
    /// `SELECT` (`value IN (…)`: an IP's networks); each velocity key is an
    /// indexed range. One round
    /// trip instead of two keeps the request path to one hand-off to the
    /// database before the pipeline runs. Each identifier is its own
    /// `SELECT`, an exact probe of `blocklist_lookup` (tenant, type,
    /// value), joined by `UNION ALL`: an `OR` across the pairs makes
    /// SQLite's planner use only the tenant prefix of the index and scan
    /// the tenant's whole list (see [`Store::assess_query_plans`]).
    ///
    /// Only what can match is probed: the list types the tenant has had
    /// entries of, and an IP's networks (`ip_range` pairs) only at the
    /// lengths the tenant's ranges use. Both are cached per node with the
    /// tenant's probe counter (migrations 0010, 0011), which the same read
    /// returns: when it has moved, the cache is refreshed and the read
    /// repeated. A tenant with no ranges costs one probe per IP instead of
    /// 34 (IPv4) or 130 (IPv6); a tenant listing only e-mails and cards
    /// costs no phone, device, customer or country probe.
    pub async fn assess_context(
        &self,
        tenant_id: &str,
        flow: &str,
        pairs: &[(String, String)],
        history_key: Option<(&str, &str)>,
        velocity: &VelocityQuery<'_>,
        now: i64,
    ) -> Result<AssessContext, StoreError> {
        if pairs.is_empty() {
            let (context, _) = self
                .read_context(tenant_id, flow, &[], history_key, velocity, now, false)
                .await?;
            return Ok(context);
        }
        for _ in 0..3 {
            let probes = match self.probes.get(tenant_id) {
                Some(cached) => cached,
                None => self.refresh_probes(tenant_id).await?,
            };
            let probed: Vec<&(String, String)> = pairs
                .iter()
                .filter(|(t, v)| probes.worth_probing(t, v))
                .collect();
            let (context, seen) = self
                .read_context(tenant_id, flow, &probed, history_key, velocity, now, true)
                .await?;
            if seen == Some(probes.version) {
                return Ok(context);
            }
            self.probes.forget(tenant_id);
        }
        // The tenant's lists keep moving under us: probe every pair.
        let every: Vec<&(String, String)> = pairs.iter().collect();
        let (context, _) = self
            .read_context(tenant_id, flow, &every, history_key, velocity, now, false)
            .await?;
        Ok(context)
    }

    /// Reads the list types of the tenant's entries and the network lengths
    /// of its `ip_range` entries, and caches them with the probe counter
    /// read before them: they cover at least every entry as of that counter.
    async fn refresh_probes(&self, tenant_id: &str) -> Result<Arc<Probes>, StoreError> {
        let _one = self.probes.refreshing.lock().await;
        if let Some(cached) = self.probes.get(tenant_id) {
            return Ok(cached);
        }
        let version: i64 =
            sqlx::query("SELECT probes FROM blocklist_versions WHERE tenant_id = $1")
                .bind(tenant_id)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get("probes"))
                .transpose()?
                .unwrap_or(0);
        let types: HashSet<String> =
            sqlx::query("SELECT list_type FROM blocklist_types WHERE tenant_id = $1")
                .bind(tenant_id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| r.try_get("list_type"))
                .collect::<Result<_, _>>()?;
        let lengths: HashSet<(bool, u8)> = if types.contains(IP_RANGE) {
            sqlx::query(
                "SELECT value FROM blocklist_entries \
                 WHERE tenant_id = $1 AND list_type = 'ip_range'",
            )
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .filter_map(|r| network_length(&r.try_get::<String, _>("value").ok()?))
            .collect()
        } else {
            HashSet::new()
        };
        let probes = Arc::new(Probes {
            version,
            types,
            lengths,
        });
        self.probes.put(tenant_id, Arc::clone(&probes));
        Ok(probes)
    }

    /// [`Store::assess_context`]'s one read; with `probe_version`, also
    /// the tenant's probe counter (0 before its first entry).
    #[allow(clippy::too_many_arguments)]
    async fn read_context(
        &self,
        tenant_id: &str,
        flow: &str,
        pairs: &[&(String, String)],
        history_key: Option<(&str, &str)>,
        velocity: &VelocityQuery<'_>,
        now: i64,
        probe_version: bool,
    ) -> Result<(AssessContext, Option<i64>), StoreError> {
        let groups = group_pairs(pairs);
        let sizes: Vec<usize> = groups.iter().map(|(_, v)| v.len()).collect();
        let Some(sql) = context_sql(
            &sizes,
            history_key.is_some(),
            velocity.keys.len(),
            probe_version,
        ) else {
            return Ok((AssessContext::default(), None));
        };
        let mut q = sqlx::query(&sql).bind(tenant_id);
        if !groups.is_empty() {
            q = q.bind(now).bind(flow);
            for (t, values) in &groups {
                q = q.bind(*t);
                for v in values {
                    q = q.bind(*v);
                }
            }
        }
        if let Some((origin, beneficiary)) = history_key {
            q = q.bind(origin).bind(beneficiary);
        }
        if !velocity.keys.is_empty() {
            for start in velocity_window_starts(now, velocity.windows_ms) {
                q = q.bind(start);
            }
            q = q.bind(now);
            for (entity, key) in velocity.keys {
                q = q.bind(*entity).bind(key.as_str());
            }
        }
        let mut out = AssessContext::default();
        let mut seen = probe_version.then_some(0);
        for r in q.fetch_all(&self.pool).await? {
            let part: String = r.try_get("part")?;
            // SUM over no rows is NULL; GROUP BY yields no row then anyway.
            let count = |c: &str| -> Result<i64, sqlx::Error> {
                Ok(r.try_get::<Option<i64>, _>(c)?.unwrap_or(0))
            };
            match part.as_str() {
                "history" => {
                    out.history = Some(HistoryRow {
                        transfers: r.try_get("transfers")?,
                        first_at: r.try_get("first_at")?,
                        last_at: r.try_get("last_at")?,
                    });
                }
                "probes" => seen = Some(r.try_get("transfers")?),
                "velocity" => out.velocity.push((
                    r.try_get("id")?,
                    r.try_get("list_type")?,
                    [count("transfers")?, count("first_at")?, count("last_at")?],
                )),
                _ => out.matches.push(ListMatch {
                    entry_id: r.try_get("id")?,
                    list_type: r.try_get("list_type")?,
                    value: r.try_get("value")?,
                    severity: r.try_get("severity")?,
                }),
            }
        }
        Ok((out, seen))
    }

    /// Commits the assessment, its idempotency record, history update and
    /// outbox row together, or nothing at all. Concurrent calls share one
    /// transaction (see `commit_queue`); each returns once its own rows are
    /// committed.
    pub async fn commit_assessment(
        &self,
        write: AssessmentWrite,
    ) -> Result<CommitOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        if self.commits.push(write, reply) {
            let store = self.clone();
            tokio::spawn(async move { store.drain_commits().await });
        }
        answer.await.map_err(|_| StoreError::CommitWorkerGone)?
    }

    /// Commits queued assessments, batch after batch, until none is left.
    /// The drainer keeps its writer connection for up to
    /// [`BATCHES_PER_CONNECTION`] batches in a row: handing it back to the
    /// pool and taking it again (the pool's ping of the connection's
    /// thread, a wake of a task on a busy runtime) took ~0.85 ms of a
    /// payout batch's ~2.2 ms on SQLite's one writer (measured; 0.14 ms
    /// held). Then it hands it back, so other writers (blocklists, keys,
    /// the webhook worker) waiting for SQLite's one connection get their
    /// turn under load. A batch that failed returns its connection (the
    /// pool checks it before lending it again); its writes, retried one
    /// by one, run on the same connection: SQLite has no other.
    async fn drain_commits(self) {
        let mut guard = DrainerGuard {
            queue: &self.commits,
            finished: false,
        };
        let mut held: Option<(PoolConnection<Any>, usize)> = None;
        while let Some(batch) = self.commits.next_batch() {
            // A used-up connection goes back to the pool here, before the
            // next is asked for (SQLite's pool has only that one).
            let reuse = held
                .take()
                .filter(|(_, used)| *used < BATCHES_PER_CONNECTION);
            let (mut conn, used) = match reuse {
                Some(kept) => kept,
                None => match self.writer.acquire().await {
                    Ok(conn) => (conn, 0),
                    Err(e) => {
                        tracing::warn!(error = %e, size = batch.len(), "no writer connection for a group commit");
                        let e = e.to_string();
                        for (_, reply) in batch {
                            let _ = reply.send(Err(StoreError::Unavailable(e.clone())));
                        }
                        continue;
                    }
                },
            };
            if self.commit_batch(&mut conn, batch).await {
                held = Some((conn, used + 1));
            }
        }
        guard.finished = true;
    }

    /// Commits `batch` in one transaction on `conn`. If that fails, each
    /// write is retried in a transaction of its own, so one bad write (or a
    /// PostgreSQL deadlock between nodes) fails only itself. False when
    /// the batch as a whole failed.
    async fn commit_batch(&self, conn: &mut AnyConnection, batch: Vec<Queued>) -> bool {
        let (writes, replies): (Vec<AssessmentWrite>, Vec<Reply>) = batch.into_iter().unzip();
        let all: Vec<&AssessmentWrite> = writes.iter().collect();
        match self.write_batch(conn, &all).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // The caller may have gone (client disconnect); its
                    // assessment is committed all the same.
                    let _ = reply.send(Ok(outcome));
                }
                true
            }
            Err(e) if writes.len() == 1 => {
                if let Some(reply) = replies.into_iter().next() {
                    let _ = reply.send(Err(e));
                }
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, size = writes.len(), "group commit failed; committing its assessments one by one");
                for (write, reply) in writes.iter().zip(replies) {
                    let outcome = self.write_batch(conn, &[write]).await.and_then(|mut o| {
                        o.pop()
                            .ok_or_else(|| StoreError::Corrupt("empty commit outcome".into()))
                    });
                    let _ = reply.send(outcome);
                }
                false
            }
        }
    }

    /// Writes `writes` in one transaction of multi-row statements and says,
    /// per write, whether it committed or lost its idempotency key to an
    /// earlier request (then nothing of it was written). The queue never
    /// puts two writes with the same key in one batch.
    async fn write_batch(
        &self,
        conn: &mut AnyConnection,
        writes: &[&AssessmentWrite],
    ) -> Result<Vec<CommitOutcome>, StoreError> {
        let mut tx = conn.begin().await?;
        let in_order = self.in_order();

        // Idempotency records first: a write whose key is taken writes
        // nothing else. Sorted, so concurrent batches of several nodes lock
        // rows in one order (PostgreSQL).
        let mut keyed: Vec<(usize, &str, &str, &str, &AssessmentWrite)> = writes
            .iter()
            .enumerate()
            .filter_map(|(i, w)| {
                w.idempotency.as_ref().map(|(scope, key, _)| {
                    (i, w.tenant_id.as_str(), scope.as_str(), key.as_str(), *w)
                })
            })
            .collect();
        keyed.sort_unstable_by_key(|&(_, tenant, scope, key, _)| (tenant, scope, key));
        // Per write: its key was already taken by an earlier request.
        let mut taken = vec![false; writes.len()];
        if !keyed.is_empty() {
            // An expired record of the same key makes room for the new one.
            let mut sql = String::from("DELETE FROM idempotency_keys WHERE ");
            for i in 0..keyed.len() {
                if i > 0 {
                    sql.push_str(" OR ");
                }
                for (n, column) in [
                    "(tenant_id = ",
                    " AND scope = ",
                    " AND idem_key = ",
                    " AND created_at <= ",
                ]
                .into_iter()
                .enumerate()
                {
                    sql.push_str(column);
                    in_order.push(&mut sql, 4 * i + n + 1);
                }
                sql.push(')');
            }
            let mut q = sqlx::query(&sql);
            for &(_, tenant, scope, key, w) in &keyed {
                q = q
                    .bind(tenant)
                    .bind(scope)
                    .bind(key)
                    .bind(w.created_at - IDEMPOTENCY_TTL_MS);
            }
            q.execute(&mut *tx).await?;

            let sql = format!(
                "INSERT INTO idempotency_keys \
                 (tenant_id, scope, idem_key, request_hash, session_id, response, created_at) \
                 VALUES {} ON CONFLICT (tenant_id, scope, idem_key) DO NOTHING \
                 RETURNING tenant_id, scope, idem_key",
                values(in_order, keyed.len(), 7, "")
            );
            let mut q = sqlx::query(&sql);
            for &(_, tenant, scope, key, w) in &keyed {
                let hash = w.idempotency.as_ref().map_or("", |(_, _, h)| h.as_str());
                q = q
                    .bind(tenant)
                    .bind(scope)
                    .bind(key)
                    .bind(hash)
                    .bind(w.session_id.as_str())
                    .bind(w.response.as_str())
                    .bind(w.created_at);
            }
            let inserted: HashSet<(String, String, String)> = q
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                .collect::<Result<_, sqlx::Error>>()?;
            for &(i, tenant, scope, key, _) in &keyed {
                if let Some(t) = taken.get_mut(i) {
                    *t = !inserted.contains(&(tenant.to_owned(), scope.to_owned(), key.to_owned()));
                }
            }
        }
        let fresh: Vec<&AssessmentWrite> = writes
            .iter()
            .zip(&taken)
            .filter(|&(_, &t)| !t)
            .map(|(w, _)| *w)
            .collect();

        if !fresh.is_empty() {
            let sql = format!(
                "INSERT INTO assessments (session_id, tenant_id, flow, decision, risk_score, \
                 payment_id, input, context, rules, thresholds, response, created_at, simulated) \
                 VALUES {}",
                values(in_order, fresh.len(), 12, ", 0")
            );
            let mut q = sqlx::query(&sql);
            for a in &fresh {
                q = q
                    .bind(a.session_id.as_str())
                    .bind(a.tenant_id.as_str())
                    .bind(a.flow.as_str())
                    .bind(a.decision.as_str())
                    .bind(a.risk_score)
                    .bind(a.payment_id.as_deref())
                    .bind(a.input.as_str())
                    .bind(a.context.as_str())
                    .bind(a.rules.as_str())
                    .bind(a.thresholds.as_str())
                    .bind(a.response.as_str())
                    .bind(a.created_at);
            }
            q.execute(&mut *tx).await.map_err(StoreError::from_write)?;

            // One row per (tenant, origin, beneficiary), in key order: a
            // multi-row upsert may not touch one row twice (PostgreSQL), and
            // one lock order across nodes avoids deadlocks.
            let mut history: BTreeMap<(&str, &str, &str), (i64, i64, i64)> = BTreeMap::new();
            for a in &fresh {
                if let Some((origin, beneficiary)) = &a.history {
                    let e = history
                        .entry((a.tenant_id.as_str(), origin.as_str(), beneficiary.as_str()))
                        .or_insert((0, a.created_at, a.created_at));
                    e.0 += 1;
                    e.1 = e.1.min(a.created_at);
                    e.2 = e.2.max(a.created_at);
                }
            }
            if !history.is_empty() {
                let sql = format!(
                    "INSERT INTO beneficiary_history \
                     (tenant_id, origin_key, beneficiary_key, transfers, first_at, last_at) \
                     VALUES {} \
                     ON CONFLICT (tenant_id, origin_key, beneficiary_key) DO UPDATE SET \
                     transfers = beneficiary_history.transfers + excluded.transfers, \
                     last_at = excluded.last_at",
                    values(in_order, history.len(), 6, "")
                );
                let mut q = sqlx::query(&sql);
                for ((tenant, origin, beneficiary), (n, first, last)) in &history {
                    q = q
                        .bind(*tenant)
                        .bind(*origin)
                        .bind(*beneficiary)
                        .bind(*n)
                        .bind(*first)
                        .bind(*last);
                }
                q.execute(&mut *tx).await?;
            }

            // One counter per (tenant, entity, key, step), in key order
            // (one row per upsert, one lock order across nodes).
            let mut counted: BTreeMap<(&str, &str, &str, i64), i64> = BTreeMap::new();
            for a in &fresh {
                for (entity, key) in &a.velocity {
                    *counted
                        .entry((
                            a.tenant_id.as_str(),
                            *entity,
                            key.as_str(),
                            velocity_step(a.created_at),
                        ))
                        .or_insert(0) += 1;
                }
            }
            if !counted.is_empty() {
                let sql = format!(
                    "INSERT INTO velocity_counts (tenant_id, entity, key_hash, bucket_ms, n) \
                     VALUES {} ON CONFLICT (tenant_id, entity, key_hash, bucket_ms) \
                     DO UPDATE SET n = velocity_counts.n + excluded.n",
                    values(in_order, counted.len(), 5, "")
                );
                let mut q = sqlx::query(&sql);
                for ((tenant, entity, key, step), n) in &counted {
                    q = q
                        .bind(*tenant)
                        .bind(*entity)
                        .bind(*key)
                        .bind(*step)
                        .bind(*n);
                }
                q.execute(&mut *tx).await?;
            }

            let events: Vec<(&AssessmentWrite, &OutboxRow)> = fresh
                .iter()
                .filter_map(|a| a.outbox.as_ref().map(|o| (*a, o)))
                .collect();
            if !events.is_empty() {
                let sql = format!(
                    "INSERT INTO outbox (id, tenant_id, event, payload, created_at) VALUES {}",
                    values(in_order, events.len(), 5, "")
                );
                let mut q = sqlx::query(&sql);
                for (a, row) in &events {
                    q = q
                        .bind(row.id.as_str())
                        .bind(a.tenant_id.as_str())
                        .bind(row.event.as_str())
                        .bind(row.payload.as_str())
                        .bind(a.created_at);
                }
                q.execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;

        let mut outcomes = Vec::with_capacity(writes.len());
        for (w, &taken) in writes.iter().zip(&taken) {
            match &w.idempotency {
                Some((scope, key, _)) if taken => {
                    let existing = self
                        .idempotency_record(&w.tenant_id, scope, key, w.created_at)
                        .await?
                        .ok_or_else(|| StoreError::Corrupt("idempotency record vanished".into()))?;
                    outcomes.push(CommitOutcome::Replayed(existing));
                }
                _ => outcomes.push(CommitOutcome::Committed),
            }
        }
        Ok(outcomes)
    }

    /// A stored assessment of `tenant_id`.
    pub async fn assessment(
        &self,
        tenant_id: &str,
        session_id: &str,
    ) -> Result<Option<StoredAssessment>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ASSESSMENT_COLUMNS} FROM assessments WHERE tenant_id = $1 AND session_id = $2"
        ))
        .bind(tenant_id)
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(assessment_from_row).transpose()
    }

    /// A stored assessment of any tenant (operator tools only).
    pub async fn assessment_any_tenant(
        &self,
        session_id: &str,
    ) -> Result<Option<StoredAssessment>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ASSESSMENT_COLUMNS} FROM assessments WHERE session_id = $1"
        ))
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(assessment_from_row).transpose()
    }

    /// The tenant's live assessments of `flow` at or after `since`, newest
    /// first, at most `limit`.
    pub async fn recent_assessments(
        &self,
        tenant_id: &str,
        flow: &str,
        since: i64,
        limit: i64,
    ) -> Result<Vec<StoredAssessment>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ASSESSMENT_COLUMNS} FROM assessments WHERE tenant_id = $1 AND flow = $2 \
             AND simulated = 0 AND created_at >= $3 ORDER BY created_at DESC, session_id LIMIT $4"
        ))
        .bind(tenant_id)
        .bind(flow)
        .bind(since)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(assessment_from_row).collect()
    }

    /// The tenant's outbox rows, oldest first (at most `limit`).
    pub async fn outbox_rows(
        &self,
        tenant_id: &str,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, event, payload FROM outbox WHERE tenant_id = $1 \
             ORDER BY created_at, id LIMIT $2",
        )
        .bind(tenant_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OutboxRow {
                    id: r.try_get("id")?,
                    event: r.try_get("event")?,
                    payload: r.try_get("payload")?,
                })
            })
            .collect()
    }

    /// Counts rows of a tenant in a side-effect table (`assessments`,
    /// `outbox`, `beneficiary_history`, `idempotency_keys`, …), for tests
    /// and operators checking that nothing was written twice. For
    /// `velocity_counts`, the pay-ins counted (each entity of each pay-in
    /// once), not the counter rows.
    pub async fn count_rows(&self, table: &str, tenant_id: &str) -> Result<i64, StoreError> {
        let (table, what) = match table {
            "assessments" => ("assessments", "COUNT(*)"),
            "outbox" => ("outbox", "COUNT(*)"),
            "beneficiary_history" => ("beneficiary_history", "COUNT(*)"),
            "idempotency_keys" => ("idempotency_keys", "COUNT(*)"),
            "velocity_counts" => ("velocity_counts", "COALESCE(SUM(n), 0)"),
            "audit_log" => ("audit_log", "COUNT(*)"),
            "webhook_deliveries" => ("webhook_deliveries", "COUNT(*)"),
            "webhook_endpoints" => ("webhook_endpoints", "COUNT(*)"),
            other => return Err(StoreError::Corrupt(format!("unknown table `{other}`"))),
        };
        let row = sqlx::query(&format!(
            "SELECT CAST({what} AS BIGINT) AS n FROM {table} WHERE tenant_id = $1"
        ))
        .bind(tenant_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// Deletes up to `limit` velocity counters of steps that started before
    /// `before` (past every window), oldest first; says how many went. A
    /// bounded batch keeps the write short, so commits queued behind it
    /// wait little.
    pub async fn prune_velocity(&self, before: i64, limit: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM velocity_counts WHERE (tenant_id, entity, key_hash, bucket_ms) IN \
             (SELECT tenant_id, entity, key_hash, bucket_ms FROM velocity_counts \
              WHERE bucket_ms < $1 ORDER BY bucket_ms LIMIT $2)",
        )
        .bind(before)
        .bind(limit)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }
}

/// How a statement's parameters are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Params {
    /// `$1`, `$2`, …: any order, a parameter may appear twice.
    Numbered,
    /// Each parameter appears once, bound in the order it appears: `?` on
    /// SQLite, `$n` on PostgreSQL. For long multi-row statements: binding
    /// a statement's parameters looks each one's name up in the list of the
    /// statement's named ones (sqlx asks SQLite for every name, and SQLite
    /// walks the list), so `$n` parameters cost time quadratic in their
    /// number — 0.3 ms of a group commit of 32 pay-ins, ~18 ms of a
    /// 500-row blocklist import chunk — while `?` ones have no name.
    InOrder(Backend),
}

impl Params {
    /// Appends the placeholder of the `n`th parameter (from 1) to `out`.
    pub(super) fn push(self, out: &mut String, n: usize) {
        if self == Params::InOrder(Backend::Sqlite) {
            out.push('?');
        } else {
            // Writing to a `String` cannot fail.
            let _ = write!(out, "${n}");
        }
    }
}

impl Store {
    /// [`Params::InOrder`] for this store's backend.
    pub(super) fn in_order(&self) -> Params {
        Params::InOrder(self.backend)
    }
}

/// `($1, …, $cols<tail>), (…)`: placeholders for `rows` rows of `cols`
/// parameters each, numbered on from row to row (or `?`, see [`Params`]);
/// `tail` is appended to every row (literal columns).
pub(super) fn values(params: Params, rows: usize, cols: usize, tail: &str) -> String {
    let mut out = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            params.push(&mut out, r * cols + c + 1);
        }
        out.push_str(tail);
        out.push(')');
    }
    out
}

/// The SQL of [`Store::assess_context`] for `pairs` identifiers and,
/// optionally, the history row; `None` when there is nothing to read.
/// Parameters: `$1` tenant; with identifiers `$2` now, `$3` flow, then a
/// (type, value) pair each; then (origin, beneficiary) for the history.
pub(super) fn context_sql(
    groups: &[usize],
    history: bool,
    velocity: usize,
    probe_version: bool,
) -> Option<String> {
    let mut parts = Vec::with_capacity(groups.len() + 2 + velocity);
    // $1 is the tenant; with identifiers, $2 the time and $3 the flow.
    let mut next = if groups.is_empty() { 2 } else { 4 };
    for &n in groups {
        // One list type: its value, or its values (an IP's networks).
        let values = if n == 1 {
            format!("value = ${}", next + 1)
        } else {
            let list: Vec<String> = (0..n).map(|i| format!("${}", next + 1 + i)).collect();
            format!("value IN ({})", list.join(", "))
        };
        parts.push(format!(
            "SELECT 'list' AS part, id, list_type, value, severity, \
             CAST(0 AS BIGINT) AS transfers, CAST(0 AS BIGINT) AS first_at, \
             CAST(0 AS BIGINT) AS last_at FROM blocklist_entries \
             WHERE tenant_id = $1 AND list_type = ${next} AND {values} AND is_active = 1 \
             AND (expires_at IS NULL OR expires_at > $2) AND flow_scope IN ($3, 'all')"
        ));
        next += 1 + n;
    }
    if history {
        parts.push(format!(
            "SELECT 'history' AS part, '' AS id, '' AS list_type, '' AS value, '' AS severity, \
             transfers, first_at, last_at FROM beneficiary_history \
             WHERE tenant_id = $1 AND origin_key = ${} AND beneficiary_key = ${}",
            next,
            next + 1
        ));
        next += 2;
    }
    if velocity > 0 {
        // The three windows' first steps, then now; then (entity, key
        // hash) pairs. The counts travel in the history's columns.
        let (w0, w1, w2, now) = (next, next + 1, next + 2, next + 3);
        next += 4;
        for _ in 0..velocity {
            let (e, k) = (next, next + 1);
            next += 2;
            parts.push(format!(
                "SELECT 'velocity' AS part, entity AS id, key_hash AS list_type, '' AS value, \
                 '' AS severity, \
                 CAST(SUM(CASE WHEN bucket_ms >= ${w0} THEN n ELSE 0 END) AS BIGINT) AS transfers, \
                 CAST(SUM(CASE WHEN bucket_ms >= ${w1} THEN n ELSE 0 END) AS BIGINT) AS first_at, \
                 CAST(SUM(n) AS BIGINT) AS last_at FROM velocity_counts \
                 WHERE tenant_id = $1 AND entity = ${e} AND key_hash = ${k} \
                 AND bucket_ms >= ${w2} AND bucket_ms <= ${now} GROUP BY entity, key_hash"
            ));
        }
    }
    if probe_version {
        // Only `$1`: the tenant's probe counter, in the counts' column.
        parts.push(
            "SELECT 'probes' AS part, '' AS id, '' AS list_type, '' AS value, \
             '' AS severity, probes AS transfers, CAST(0 AS BIGINT) AS first_at, \
             CAST(0 AS BIGINT) AS last_at FROM blocklist_versions WHERE tenant_id = $1"
                .to_owned(),
        );
    }
    (!parts.is_empty()).then(|| parts.join(" UNION ALL "))
}

/// The list type an IP's networks are probed under.
const IP_RANGE: &str = "ip_range";

/// (IPv6, prefix length) of a network written `address/length`.
fn network_length(network: &str) -> Option<(bool, u8)> {
    let (address, length) = network.rsplit_once('/')?;
    Some((address.contains(':'), length.parse().ok()?))
}

/// What is worth probing for one tenant, as of its probe counter.
#[derive(Debug)]
pub(super) struct Probes {
    version: i64,
    /// The list types the tenant has had entries of.
    types: HashSet<String>,
    /// (IPv6, prefix length) pairs its `ip_range` entries use.
    lengths: HashSet<(bool, u8)>,
}

impl Probes {
    fn worth_probing(&self, list_type: &str, value: &str) -> bool {
        self.types.contains(list_type)
            && (list_type != IP_RANGE
                || network_length(value).is_some_and(|l| self.lengths.contains(&l)))
    }
}

/// Per node: each tenant's [`Probes`].
#[derive(Debug, Default)]
pub(super) struct ProbeCache {
    cached: Mutex<HashMap<String, Arc<Probes>>>,
    /// One refresh at a time per node: requests that find the cache empty
    /// together wait for the first one's read instead of each reading.
    refreshing: tokio::sync::Mutex<()>,
}

impl ProbeCache {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Probes>>> {
        // A poisoned map is still a consistent cache.
        self.cached.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, tenant_id: &str) -> Option<Arc<Probes>> {
        self.lock().get(tenant_id).cloned()
    }

    fn put(&self, tenant_id: &str, probes: Arc<Probes>) {
        self.lock().insert(tenant_id.to_owned(), probes);
    }

    fn forget(&self, tenant_id: &str) {
        self.lock().remove(tenant_id);
    }
}

/// `pairs` grouped by list type, in order of first appearance: the type
/// and its values.
pub(super) fn group_pairs<'a>(pairs: &[&'a (String, String)]) -> Vec<(&'a str, Vec<&'a str>)> {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for &(t, v) in pairs {
        match groups.iter_mut().find(|(g, _)| g == t) {
            Some((_, values)) => values.push(v),
            None => groups.push((t, vec![v])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_numbers_parameters_across_rows() {
        use super::{Backend, Params, values};
        assert_eq!(values(Params::Numbered, 1, 2, ""), "($1, $2)");
        assert_eq!(
            values(Params::Numbered, 2, 3, ", 0"),
            "($1, $2, $3, 0), ($4, $5, $6, 0)"
        );
        assert_eq!(
            values(Params::InOrder(Backend::Postgres), 2, 1, ""),
            "($1), ($2)"
        );
        assert_eq!(
            values(Params::InOrder(Backend::Sqlite), 2, 2, ", 0"),
            "(?, ?, 0), (?, ?, 0)"
        );
    }
}
