//! Webhook endpoints, the event feed, and deliveries: numbering and
//! fanning out the outbox (the dispatcher), claiming due deliveries (the
//! worker; `FOR UPDATE SKIP LOCKED` on PostgreSQL so nodes share the
//! work), and recording attempts. Always scoped by tenant where a tenant
//! asks.
use std::collections::{HashMap, HashSet};

use sqlx::{Row, any::AnyRow};

use super::{
    AuditEvent, Backend, Store, StoreError,
    assessments::{Params, values},
    audit::append as append_audit,
};

/// A stored endpoint; `secret` and `previous_secret` are sealed.
#[derive(Debug, Clone)]
pub struct WebhookEndpoint {
    pub id: String,
    pub tenant_id: String,
    pub url: String,
    pub description: Option<String>,
    /// Subscribed event names; empty = every event.
    pub events: Vec<String>,
    pub is_active: bool,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<i64>,
    pub disabled_reason: Option<String>,
    pub failure_streak: i64,
    pub failing_since: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl WebhookEndpoint {
    /// Whether the endpoint wants `event`.
    pub fn wants(&self, event: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == event)
    }
}

/// Changes to an endpoint; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub description: Option<Option<String>>,
    pub events: Option<Vec<String>>,
    /// `Some(true)` also clears a disable reason and the failure streak.
    pub is_active: Option<bool>,
}

/// A numbered event, as the feed and the deliveries carry it.
#[derive(Debug, Clone)]
pub struct FeedEvent {
    pub id: String,
    pub event: String,
    /// The body without `sequence` and `previous_id`.
    pub payload: String,
    pub sequence: i64,
    pub previous_id: Option<String>,
    pub created_at: i64,
}

/// A delivery (one event to one endpoint) and its state.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub tenant_id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub last_attempt_at: Option<i64>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One logged attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub delivery_id: String,
    pub attempt: i64,
    pub at_ms: i64,
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub error: Option<String>,
    pub response_head: Option<String>,
}

/// A delivery the worker claimed, with what it needs to send it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery_id: String,
    pub tenant_id: String,
    pub endpoint_id: String,
    /// Attempts made before this one.
    pub attempts: i64,
    /// The lease this claim holds (the delivery's `next_attempt_at` until
    /// the outcome is recorded).
    pub lease_until: i64,
    pub event: FeedEvent,
    pub endpoint: WebhookEndpoint,
}

/// How many deliveries a dispatch may lease to this node right away, and
/// for how long: `room` in all, at most `per_endpoint` in flight per
/// endpoint (`in_flight` counts what is already out).
#[derive(Debug)]
pub struct DispatchLease<'a> {
    pub until: i64,
    pub room: usize,
    pub per_endpoint: usize,
    pub in_flight: &'a mut HashMap<String, usize>,
}

impl DispatchLease<'_> {
    /// Takes a slot for `endpoint`, if there is one.
    fn take(&mut self, endpoint: &str) -> bool {
        let n = self.in_flight.get(endpoint).copied().unwrap_or(0);
        if self.room == 0 || n >= self.per_endpoint {
            return false;
        }
        self.room -= 1;
        self.in_flight.insert(endpoint.to_owned(), n + 1);
        true
    }
}

/// What a dispatch did.
#[derive(Debug, Default)]
pub struct Dispatched {
    /// Events numbered.
    pub numbered: usize,
    /// Deliveries created leased to this node, to send now.
    pub leased: Vec<Claimed>,
}

/// What became of an attempt, for [`Store::record_attempts`].
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub attempt: Attempt,
    /// The claim's lease: the delivery's state is only written while it
    /// still holds it (a retry or recovery asked meanwhile wins).
    pub lease_until: i64,
    pub tenant_id: String,
    pub endpoint_id: String,
    /// `pending` (retry at `next_attempt_at`), `delivered` or `failed`.
    pub status: &'static str,
    pub next_attempt_at: Option<i64>,
    /// The attempt succeeded (resets the endpoint's failure streak).
    pub succeeded: bool,
    /// Disable the endpoint with this reason (a 410).
    pub disable: Option<String>,
}

/// Deliveries waiting, for the metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueStats {
    /// Pending deliveries plus events not yet dispatched.
    pub depth: i64,
    /// Creation time of the oldest of them.
    pub oldest_at: Option<i64>,
}

const ENDPOINT_COLUMNS: &str = "id, tenant_id, url, description, events, is_active, secret, \
    previous_secret, previous_secret_until, disabled_reason, failure_streak, failing_since, \
    created_at, updated_at";

const DELIVERY_COLUMNS: &str = "id, tenant_id, endpoint_id, event_id, event, status, attempts, \
    next_attempt_at, last_attempt_at, last_status, last_error, created_at, updated_at";

fn endpoint_from_row(r: &AnyRow) -> Result<WebhookEndpoint, StoreError> {
    let events: String = r.try_get("events")?;
    Ok(WebhookEndpoint {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        url: r.try_get("url")?,
        description: r.try_get("description")?,
        events: serde_json::from_str(&events)
            .map_err(|e| StoreError::Corrupt(format!("webhook events: {e}")))?,
        is_active: r.try_get::<i64, _>("is_active")? != 0,
        secret: r.try_get("secret")?,
        previous_secret: r.try_get("previous_secret")?,
        previous_secret_until: r.try_get("previous_secret_until")?,
        disabled_reason: r.try_get("disabled_reason")?,
        failure_streak: r.try_get("failure_streak")?,
        failing_since: r.try_get("failing_since")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn delivery_from_row(r: &AnyRow) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        endpoint_id: r.try_get("endpoint_id")?,
        event_id: r.try_get("event_id")?,
        event: r.try_get("event")?,
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        last_attempt_at: r.try_get("last_attempt_at")?,
        last_status: r.try_get("last_status")?,
        last_error: r.try_get("last_error")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn feed_from_row(r: &AnyRow) -> Result<FeedEvent, StoreError> {
    Ok(FeedEvent {
        id: r.try_get("id")?,
        event: r.try_get("event")?,
        payload: r.try_get("payload")?,
        sequence: r.try_get("sequence")?,
        previous_id: r.try_get("previous_id")?,
        created_at: r.try_get("created_at")?,
    })
}

fn events_json(events: &[String]) -> String {
    serde_json::Value::from(events.to_vec()).to_string()
}

/// `$from, …` for `n` parameters numbered from `from`.
fn params(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows per multi-row delivery insert.
const INSERT_ROWS: usize = 200;

/// Rows per `UPDATE … SET col = CASE id WHEN … END` statement.
const CASE_ROWS: usize = 100;

/// `CASE id WHEN $<id> THEN $<value> … END` over `rows` rows of `cols`
/// parameters from `$first`, the id first in each row and the value at
/// `col` within the row.
fn case_by_id(first: usize, rows: usize, cols: usize, col: usize) -> String {
    let mut out = String::from("CASE id");
    for r in 0..rows {
        let base = first + r * cols;
        out.push_str(&format!(" WHEN ${base} THEN ${}", base + col));
    }
    out.push_str(" END");
    out
}

/// `$first, …` of each row's id.
fn ids_of(first: usize, rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| format!("${}", first + r * cols))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether an active endpoint outside `$2, …` (`busy` of them) has a
/// pending delivery due at `$1`: one probe of `webhook_deliveries_pending`
/// per endpoint. A scalar subquery, not `EXISTS`: PostgreSQL may turn an
/// `EXISTS` into a semi-join that walks every due row instead.
pub(super) fn due_outside_sql(busy: usize) -> String {
    format!(
        "SELECT 1 AS due FROM webhook_endpoints e \
         WHERE e.is_active = 1 AND e.id NOT IN ({}) AND (\
         SELECT 1 FROM webhook_deliveries d WHERE d.endpoint_id = e.id \
         AND d.status = 'pending' AND d.next_attempt_at <= $1 LIMIT 1) = 1 LIMIT 1",
        params(2, busy)
    )
}

/// Numbers `rows` (id, sequence, previous id) and marks them dispatched
/// at `now`, in one statement.
async fn number_events(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    rows: &[(&str, i64, Option<String>)],
    now: i64,
) -> Result<(), StoreError> {
    // $1 = now; then (id, sequence, previous id) per row.
    let sql = format!(
        "UPDATE outbox SET delivered_at = $1, sequence = {}, previous_id = {} WHERE id IN ({})",
        case_by_id(2, rows.len(), 3, 1),
        case_by_id(2, rows.len(), 3, 2),
        ids_of(2, rows.len(), 3),
    );
    let mut q = sqlx::query(&sql).bind(now);
    for (id, sequence, previous) in rows {
        q = q.bind(*id).bind(*sequence).bind(previous.as_deref());
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Disabled endpoints that have pending deliveries: one probe of the
/// pending-deliveries index per disabled endpoint.
pub(super) const PARKABLE_ENDPOINTS: &str = "SELECT e.id FROM webhook_endpoints e \
     WHERE e.is_active = 0 AND EXISTS (SELECT 1 FROM webhook_deliveries d \
     WHERE d.endpoint_id = e.id AND d.status = 'pending')";

/// Parks one endpoint's pending deliveries if it is (still) disabled.
pub(super) const PARK_ENDPOINT: &str = "UPDATE webhook_deliveries SET status = 'paused' \
     WHERE endpoint_id = $1 AND status = 'pending' \
     AND EXISTS (SELECT 1 FROM webhook_endpoints WHERE id = $1 AND is_active = 0)";

impl Store {
    /// Inserts an endpoint and its audit entry, together.
    pub async fn insert_webhook_endpoint(
        &self,
        e: &WebhookEndpoint,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .bind(&e.id)
        .bind(&e.tenant_id)
        .bind(&e.url)
        .bind(&e.description)
        .bind(events_json(&e.events))
        .bind(i64::from(e.is_active))
        .bind(&e.secret)
        .bind(&e.previous_secret)
        .bind(e.previous_secret_until)
        .bind(&e.disabled_reason)
        .bind(e.failure_streak)
        .bind(e.failing_since)
        .bind(e.created_at)
        .bind(e.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from_write)?;
        append_audit(&mut tx, &e.tenant_id, e.created_at, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The tenant's endpoints, oldest first.
    pub async fn webhook_endpoints(
        &self,
        tenant_id: &str,
    ) -> Result<Vec<WebhookEndpoint>, StoreError> {
        sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 \
             ORDER BY created_at, id"
        ))
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(endpoint_from_row)
        .collect()
    }

    pub async fn webhook_endpoint(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(endpoint_from_row)
        .transpose()
    }

    /// Applies `patch` and appends `audit`, together; the endpoint after
    /// it, `None` (and nothing written) when the tenant has no such
    /// endpoint.
    pub async fn update_webhook_endpoint(
        &self,
        tenant_id: &str,
        id: &str,
        patch: &WebhookPatch,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        let mut sets = vec!["updated_at = $3".to_owned()];
        let mut n = 3;
        let mut set = |sets: &mut Vec<String>, col: &str| {
            n += 1;
            sets.push(format!("{col} = ${n}"));
        };
        if patch.url.is_some() {
            set(&mut sets, "url");
        }
        if patch.description.is_some() {
            set(&mut sets, "description");
        }
        if patch.events.is_some() {
            set(&mut sets, "events");
        }
        if patch.is_active.is_some() {
            set(&mut sets, "is_active");
        }
        if patch.is_active == Some(true) {
            sets.push(
                "disabled_reason = NULL, failure_streak = 0, failing_since = NULL".to_owned(),
            );
        }
        let sql = format!(
            "UPDATE webhook_endpoints SET {} WHERE tenant_id = $1 AND id = $2",
            sets.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(tenant_id).bind(id).bind(now);
        if let Some(url) = &patch.url {
            q = q.bind(url);
        }
        if let Some(d) = &patch.description {
            q = q.bind(d);
        }
        if let Some(events) = &patch.events {
            q = q.bind(events_json(events));
        }
        if let Some(active) = patch.is_active {
            q = q.bind(i64::from(active));
        }
        let mut tx = self.writer.begin().await?;
        let done = q.execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        match patch.is_active {
            Some(false) => park_if_disabled(&mut tx, id).await?,
            Some(true) => {
                sqlx::query(
                    "UPDATE webhook_deliveries SET status = 'pending', updated_at = $2 \
                     WHERE endpoint_id = $1 AND status = 'paused'",
                )
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            None => {}
        }
        finish_change(tx, tenant_id, id, now, audit).await
    }

    /// Parks the pending deliveries of every disabled endpoint (status
    /// `paused`), so the due read and the claim walk only deliveries that
    /// can go. Disabling parks at once; this catches what became pending
    /// for a disabled endpoint afterwards (an attempt in flight at the
    /// time, a manual retry, a recovery). Says how many it parked.
    ///
    /// Normally no disabled endpoint has a pending delivery, and then this
    /// is one read of each disabled endpoint's pending deliveries (the
    /// partial index `webhook_deliveries_pending`) and no write at all. A
    /// single `UPDATE … WHERE status = 'pending' AND endpoint_id IN
    /// (disabled)` walked every pending delivery instead — a hanging
    /// endpoint's backlog grows by one per event — and on SQLite did it on
    /// the one writer connection, so every few seconds the group commits
    /// waited for a walk that grew with the backlog.
    pub async fn park_inactive_deliveries(&self) -> Result<u64, StoreError> {
        let endpoints: Vec<String> = sqlx::query(PARKABLE_ENDPOINTS)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?;
        let mut parked = 0;
        for id in &endpoints {
            // Still disabled when the update runs: an endpoint enabled in
            // between keeps its deliveries pending.
            let done = sqlx::query(PARK_ENDPOINT)
                .bind(id)
                .execute(&self.writer)
                .await?;
            parked += done.rows_affected();
        }
        Ok(parked)
    }

    /// Replaces the signing secret (the old one stays valid until
    /// `previous_until`, or not at all with `None`) and appends `audit`,
    /// together.
    #[allow(clippy::too_many_arguments)]
    pub async fn rotate_webhook_secret(
        &self,
        tenant_id: &str,
        id: &str,
        sealed: &str,
        previous_sealed: Option<&str>,
        previous_until: Option<i64>,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET secret = $3, previous_secret = $4, \
             previous_secret_until = $5, updated_at = $6 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(sealed)
        .bind(previous_sealed)
        .bind(previous_until)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        finish_change(tx, tenant_id, id, now, audit).await
    }

    /// Deletes an endpoint with its deliveries and their attempts, and
    /// appends `audit`, together; whether the tenant had it.
    pub async fn delete_webhook_endpoint(
        &self,
        tenant_id: &str,
        id: &str,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "DELETE FROM webhook_attempts WHERE tenant_id = $1 AND delivery_id IN \
             (SELECT id FROM webhook_deliveries WHERE tenant_id = $1 AND endpoint_id = $2)",
        )
        .bind(tenant_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM webhook_deliveries WHERE tenant_id = $1 AND endpoint_id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        append_audit(&mut tx, tenant_id, now, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// One turn of a node's delivery worker in one transaction (one
    /// fsync, one hold of SQLite's write lock): records the outcomes of
    /// finished attempts ([`Store::record_attempts`]), then dispatches
    /// (see `dispatch_in`).
    pub async fn webhook_turn(
        &self,
        records: &[AttemptRecord],
        disable_failing_before: i64,
        limit: i64,
        now: i64,
        lease: &mut DispatchLease<'_>,
    ) -> Result<Dispatched, StoreError> {
        let mut tx = self.writer.begin().await?;
        if !records.is_empty() {
            self.record_in(&mut tx, records, now, disable_failing_before)
                .await?;
        }
        let dispatched = self.dispatch_in(&mut tx, limit, now, lease).await?;
        tx.commit().await?;
        Ok(dispatched)
    }

    /// Numbers up to `limit` undispatched outbox events, per tenant in
    /// order of creation, and creates a delivery for each active endpoint
    /// subscribed to each, in one transaction. On PostgreSQL the events are
    /// claimed with `SKIP LOCKED` and each tenant's counter row is locked,
    /// so nodes dispatching at once never share a number.
    ///
    /// The deliveries `lease` has room for are created already leased to
    /// this node and returned, ready to send: the common case (a fresh
    /// event, an endpoint with free slots) needs no separate claim. The
    /// rest are created due now, for a claim.
    async fn dispatch_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        limit: i64,
        now: i64,
        lease: &mut DispatchLease<'_>,
    ) -> Result<Dispatched, StoreError> {
        let pg = self.backend == Backend::Postgres;
        let rows = sqlx::query(if pg {
            "SELECT id, tenant_id, event, payload, created_at FROM outbox \
             WHERE delivered_at IS NULL ORDER BY created_at, id LIMIT $1 FOR UPDATE SKIP LOCKED"
        } else {
            "SELECT id, tenant_id, event, payload, created_at FROM outbox \
             WHERE delivered_at IS NULL ORDER BY created_at, id LIMIT $1"
        })
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?;
        let mut dispatched = Dispatched::default();
        if rows.is_empty() {
            return Ok(dispatched);
        }
        dispatched.numbered = rows.len();
        let mut by_tenant: Vec<(String, Vec<(String, String)>)> = Vec::new();
        let mut bodies: HashMap<String, (String, i64)> = HashMap::with_capacity(rows.len());
        for r in &rows {
            let tenant: String = r.try_get("tenant_id")?;
            let id: String = r.try_get("id")?;
            bodies.insert(
                id.clone(),
                (r.try_get("payload")?, r.try_get("created_at")?),
            );
            let pair = (id, r.try_get("event")?);
            match by_tenant.iter_mut().find(|(t, _)| *t == tenant) {
                Some((_, events)) => events.push(pair),
                None => by_tenant.push((tenant, vec![pair])),
            }
        }
        // Tenants in one order, so nodes lock counter rows alike.
        by_tenant.sort_by(|a, b| a.0.cmp(&b.0));
        for (tenant, events) in &by_tenant {
            sqlx::query(
                "INSERT INTO event_sequences (tenant_id, last_sequence, last_id) \
                 VALUES ($1, 0, '') ON CONFLICT (tenant_id) DO NOTHING",
            )
            .bind(tenant)
            .execute(&mut **tx)
            .await?;
            let row = sqlx::query(if pg {
                "SELECT last_sequence, last_id FROM event_sequences WHERE tenant_id = $1 FOR UPDATE"
            } else {
                "SELECT last_sequence, last_id FROM event_sequences WHERE tenant_id = $1"
            })
            .bind(tenant)
            .fetch_one(&mut **tx)
            .await?;
            let mut sequence: i64 = row.try_get("last_sequence")?;
            let mut previous: String = row.try_get("last_id")?;
            // (id, sequence, previous id) of each event, in order.
            let mut numbered: Vec<(&str, i64, Option<String>)> = Vec::with_capacity(events.len());
            for (id, _) in events {
                sequence += 1;
                numbered.push((
                    id,
                    sequence,
                    (!previous.is_empty()).then(|| previous.clone()),
                ));
                previous.clone_from(id);
            }
            for chunk in numbered.chunks(CASE_ROWS) {
                number_events(tx, chunk, now).await?;
            }
            sqlx::query(
                "UPDATE event_sequences SET last_sequence = $2, last_id = $3 WHERE tenant_id = $1",
            )
            .bind(tenant)
            .bind(sequence)
            .bind(&previous)
            .execute(&mut **tx)
            .await?;
            let endpoints: Vec<WebhookEndpoint> = sqlx::query(&format!(
                "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints \
                 WHERE tenant_id = $1 AND is_active = 1"
            ))
            .bind(tenant)
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(endpoint_from_row)
            .collect::<Result<_, _>>()?;
            let mut fan_out: Vec<NewDelivery<'_>> = Vec::new();
            let mut leased: Vec<Claimed> = Vec::new();
            for (n, (id, event)) in events.iter().enumerate() {
                for e in endpoints.iter().filter(|e| e.wants(event)) {
                    let delivery_id = crate::domain::ids::ordered_object_id("whd");
                    let due = if lease.take(&e.id) {
                        let (payload, created_at) = bodies.get(id).cloned().unwrap_or_default();
                        let (_, sequence, previous_id) = &numbered[n];
                        leased.push(Claimed {
                            delivery_id: delivery_id.clone(),
                            tenant_id: tenant.clone(),
                            endpoint_id: e.id.clone(),
                            attempts: 0,
                            lease_until: lease.until,
                            event: FeedEvent {
                                id: id.clone(),
                                event: event.clone(),
                                payload: payload.clone(),
                                sequence: *sequence,
                                previous_id: previous_id.clone(),
                                created_at,
                            },
                            endpoint: e.clone(),
                        });
                        lease.until
                    } else {
                        now
                    };
                    fan_out.push((delivery_id, e.id.as_str(), id.as_str(), event.as_str(), due));
                }
            }
            let inserted = insert_deliveries(tx, self.in_order(), tenant, &fan_out, now).await?;
            dispatched.leased.extend(
                leased
                    .into_iter()
                    .filter(|c| inserted.contains(&c.delivery_id)),
            );
        }
        Ok(dispatched)
    }

    /// Whether any delivery of an active endpoint outside `busy` is due (a
    /// read, so an idle worker does not take the write lock to find
    /// nothing to claim). First the due index (one probe when nothing is
    /// due); when something is and some endpoints are busy, per endpoint
    /// (`webhook_deliveries_pending`): a busy endpoint's backlog (one that
    /// hangs) is all due, and the claim would walk it under the write lock
    /// on every turn only to skip it.
    pub async fn deliveries_due(&self, now: i64, busy: &[String]) -> Result<bool, StoreError> {
        let any = sqlx::query(
            "SELECT 1 AS due FROM webhook_deliveries d WHERE d.status = 'pending' \
             AND d.next_attempt_at <= $1 AND EXISTS (SELECT 1 FROM webhook_endpoints e \
             WHERE e.id = d.endpoint_id AND e.is_active = 1) LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .is_some();
        if !any || busy.is_empty() {
            return Ok(any);
        }
        let sql = due_outside_sql(busy.len());
        let mut q = sqlx::query(&sql).bind(now);
        for b in busy {
            q = q.bind(b);
        }
        Ok(q.fetch_optional(&self.pool).await?.is_some())
    }

    /// Claims up to `limit` due deliveries of active endpoints, except
    /// those of `busy` endpoints, leasing each until `lease_until` (a node
    /// that dies mid-attempt leaves it due again then). The deliveries
    /// are the only table in the claim's `FROM`, so both databases walk
    /// the due index (status, next_attempt_at) instead of an endpoint's
    /// whole history.
    pub async fn claim_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
        busy: &[String],
    ) -> Result<Vec<Claimed>, StoreError> {
        let pg = self.backend == Backend::Postgres;
        let exclude = if busy.is_empty() {
            String::new()
        } else {
            format!(" AND d.endpoint_id NOT IN ({})", params(5, busy.len()))
        };
        let sql = format!(
            "UPDATE webhook_deliveries SET next_attempt_at = $1, updated_at = $2 WHERE id IN \
             (SELECT d.id FROM webhook_deliveries d \
              WHERE d.status = 'pending' AND d.next_attempt_at <= $3{exclude} \
              AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = d.endpoint_id AND e.is_active = 1) \
              ORDER BY d.next_attempt_at LIMIT $4{}) \
             RETURNING id, tenant_id, endpoint_id, event_id, attempts",
            if pg {
                " FOR UPDATE OF d SKIP LOCKED"
            } else {
                ""
            }
        );
        let mut q = sqlx::query(&sql)
            .bind(lease_until)
            .bind(now)
            .bind(now)
            .bind(limit);
        for b in busy {
            q = q.bind(b);
        }
        let claimed = q.fetch_all(&self.writer).await?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let mut event_ids = HashSet::new();
        let mut endpoint_ids = HashSet::new();
        for r in &claimed {
            event_ids.insert(r.try_get::<String, _>("event_id")?);
            endpoint_ids.insert(r.try_get::<String, _>("endpoint_id")?);
        }
        let events = self.events_by_id(&event_ids).await?;
        let endpoints = self.endpoints_by_id(&endpoint_ids).await?;
        let mut out = Vec::with_capacity(claimed.len());
        for r in &claimed {
            let event_id: String = r.try_get("event_id")?;
            let endpoint_id: String = r.try_get("endpoint_id")?;
            let (Some(event), Some(endpoint)) =
                (events.get(&event_id), endpoints.get(&endpoint_id))
            else {
                // Pruned or deleted meanwhile: nothing to send.
                continue;
            };
            out.push(Claimed {
                delivery_id: r.try_get("id")?,
                tenant_id: r.try_get("tenant_id")?,
                endpoint_id,
                attempts: r.try_get("attempts")?,
                lease_until,
                event: event.clone(),
                endpoint: endpoint.clone(),
            });
        }
        Ok(out)
    }

    async fn events_by_id(
        &self,
        ids: &HashSet<String>,
    ) -> Result<HashMap<String, FeedEvent>, StoreError> {
        let ids: Vec<&String> = ids.iter().collect();
        let mut out = HashMap::new();
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT id, event, payload, sequence, previous_id, created_at FROM outbox \
                 WHERE id IN ({})",
                params(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id.as_str());
            }
            for r in q.fetch_all(&self.pool).await? {
                let e = feed_from_row(&r)?;
                out.insert(e.id.clone(), e);
            }
        }
        Ok(out)
    }

    async fn endpoints_by_id(
        &self,
        ids: &HashSet<String>,
    ) -> Result<HashMap<String, WebhookEndpoint>, StoreError> {
        let ids: Vec<&String> = ids.iter().collect();
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id IN ({})",
            params(1, ids.len())
        );
        let mut q = sqlx::query(&sql);
        for id in &ids {
            q = q.bind(id.as_str());
        }
        let mut out = HashMap::new();
        for r in q.fetch_all(&self.pool).await? {
            let e = endpoint_from_row(&r)?;
            out.insert(e.id.clone(), e);
        }
        Ok(out)
    }

    /// Records attempts and their consequences in one transaction: the
    /// attempt log (multi-row inserts), each delivery's new state (one
    /// statement per hundred), each endpoint's failure streak (one
    /// statement per endpoint); endpoints failing since before
    /// `disable_failing_before` are disabled with a reason.
    pub async fn record_attempts(
        &self,
        records: &[AttemptRecord],
        now: i64,
        disable_failing_before: i64,
    ) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
        self.record_in(&mut tx, records, now, disable_failing_before)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// [`Store::record_attempts`] inside `tx`.
    async fn record_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        records: &[AttemptRecord],
        now: i64,
        disable_failing_before: i64,
    ) -> Result<(), StoreError> {
        for chunk in records.chunks(CASE_ROWS) {
            let sql = format!(
                "INSERT INTO webhook_attempts (delivery_id, attempt, tenant_id, at_ms, status_code, \
                 duration_ms, error, response_head) VALUES {} \
                 ON CONFLICT (delivery_id, attempt) DO NOTHING",
                values(self.in_order(), chunk.len(), 8, "")
            );
            let mut q = sqlx::query(&sql);
            for rec in chunk {
                let a = &rec.attempt;
                q = q
                    .bind(&a.delivery_id)
                    .bind(a.attempt)
                    .bind(&rec.tenant_id)
                    .bind(a.at_ms)
                    .bind(a.status_code)
                    .bind(a.duration_ms)
                    .bind(&a.error)
                    .bind(&a.response_head);
            }
            q.execute(&mut **tx).await?;
            // $1 = now; then (id, status, attempts, next, last at, last
            // status, last error, lease) per row. A delivery whose lease
            // changed (retried or recovered meanwhile) keeps its new state.
            let n = chunk.len();
            let sql = format!(
                "UPDATE webhook_deliveries SET updated_at = $1, status = {}, attempts = {}, \
                 next_attempt_at = {}, last_attempt_at = {}, last_status = {}, last_error = {} \
                 WHERE id IN ({}) AND next_attempt_at = {}",
                case_by_id(2, n, 8, 1),
                case_by_id(2, n, 8, 2),
                case_by_id(2, n, 8, 3),
                case_by_id(2, n, 8, 4),
                case_by_id(2, n, 8, 5),
                case_by_id(2, n, 8, 6),
                ids_of(2, n, 8),
                case_by_id(2, n, 8, 7),
            );
            let mut q = sqlx::query(&sql).bind(now);
            for rec in chunk {
                let a = &rec.attempt;
                q = q
                    .bind(&a.delivery_id)
                    .bind(rec.status)
                    .bind(a.attempt)
                    .bind(rec.next_attempt_at)
                    .bind(a.at_ms)
                    .bind(a.status_code)
                    .bind(&a.error)
                    .bind(rec.lease_until);
            }
            q.execute(&mut **tx).await?;
        }
        // Per endpoint, in one order (two nodes' batches never deadlock):
        // the streak after this batch's attempts, oldest first.
        let mut by_endpoint: Vec<(&str, Vec<&AttemptRecord>)> = Vec::new();
        for rec in records {
            match by_endpoint.iter_mut().find(|(e, _)| *e == rec.endpoint_id) {
                Some((_, recs)) => recs.push(rec),
                None => by_endpoint.push((&rec.endpoint_id, vec![rec])),
            }
        }
        by_endpoint.sort_by(|a, b| a.0.cmp(b.0));
        for (endpoint, mut recs) in by_endpoint {
            recs.sort_by_key(|r| r.attempt.at_ms);
            let last_success = recs.iter().rposition(|r| r.succeeded);
            let failures_after = &recs[last_success.map_or(0, |i| i + 1)..];
            if last_success.is_some() {
                // A success resets the streak to the failures after it.
                sqlx::query(
                    "UPDATE webhook_endpoints SET failure_streak = $2, failing_since = $3 \
                     WHERE id = $1 AND (failure_streak <> $2 OR failing_since IS NOT NULL OR $3 IS NOT NULL)",
                )
                .bind(endpoint)
                .bind(failures_after.len() as i64)
                .bind(failures_after.first().map(|r| r.attempt.at_ms))
                .execute(&mut **tx)
                .await?;
            } else {
                sqlx::query(
                    "UPDATE webhook_endpoints SET failure_streak = failure_streak + $2, \
                     failing_since = COALESCE(failing_since, $3) WHERE id = $1",
                )
                .bind(endpoint)
                .bind(failures_after.len() as i64)
                .bind(failures_after.first().map(|r| r.attempt.at_ms))
                .execute(&mut **tx)
                .await?;
            }
            if !failures_after.is_empty() {
                sqlx::query(
                    "UPDATE webhook_endpoints SET is_active = 0, updated_at = $3, \
                     disabled_reason = 'failing without a success since ' || CAST(failing_since AS TEXT) \
                     || ' (epoch ms), over the limit of consecutive failing days' \
                     WHERE id = $1 AND is_active = 1 AND failing_since < $2",
                )
                .bind(endpoint)
                .bind(disable_failing_before)
                .bind(now)
                .execute(&mut **tx)
                .await?;
            }
            if let Some(reason) = recs.iter().rev().find_map(|r| r.disable.as_deref()) {
                sqlx::query(
                    "UPDATE webhook_endpoints SET is_active = 0, disabled_reason = $2, \
                     updated_at = $3 WHERE id = $1",
                )
                .bind(endpoint)
                .bind(reason)
                .bind(now)
                .execute(&mut **tx)
                .await?;
            }
            if !failures_after.is_empty() {
                // Disabled just now (410, or failing too long)?
                park_if_disabled(tx, endpoint).await?;
            }
        }
        Ok(())
    }

    /// A page of an endpoint's deliveries, newest first, each with its
    /// attempts (oldest first).
    pub async fn webhook_deliveries(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        status: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<(Delivery, Vec<Attempt>)>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
             WHERE tenant_id = $1 AND endpoint_id = $2{} \
             ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4",
            if status.is_some() {
                " AND status = $5"
            } else {
                ""
            }
        );
        let mut q = sqlx::query(&sql)
            .bind(tenant_id)
            .bind(endpoint_id)
            .bind(limit)
            .bind(offset);
        if let Some(s) = status {
            q = q.bind(s);
        }
        let deliveries: Vec<Delivery> = q
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(delivery_from_row)
            .collect::<Result<_, _>>()?;
        if deliveries.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT delivery_id, attempt, at_ms, status_code, duration_ms, error, response_head \
             FROM webhook_attempts WHERE tenant_id = $1 AND delivery_id IN ({}) \
             ORDER BY delivery_id, attempt",
            params(2, deliveries.len())
        );
        let mut q = sqlx::query(&sql).bind(tenant_id);
        for d in &deliveries {
            q = q.bind(&d.id);
        }
        let mut attempts: HashMap<String, Vec<Attempt>> = HashMap::new();
        for r in q.fetch_all(&self.pool).await? {
            let a = Attempt {
                delivery_id: r.try_get("delivery_id")?,
                attempt: r.try_get("attempt")?,
                at_ms: r.try_get("at_ms")?,
                status_code: r.try_get("status_code")?,
                duration_ms: r.try_get("duration_ms")?,
                error: r.try_get("error")?,
                response_head: r.try_get("response_head")?,
            };
            attempts.entry(a.delivery_id.clone()).or_default().push(a);
        }
        Ok(deliveries
            .into_iter()
            .map(|d| {
                let a = attempts.remove(&d.id).unwrap_or_default();
                (d, a)
            })
            .collect())
    }

    /// Makes one delivery due now again (whatever its state); the
    /// delivery after it, `None` when the tenant's endpoint has no such
    /// delivery.
    pub async fn retry_delivery(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        delivery_id: &str,
        now: i64,
    ) -> Result<Option<Delivery>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $4, \
             updated_at = $4 WHERE tenant_id = $1 AND endpoint_id = $2 AND id = $3 \
             RETURNING {DELIVERY_COLUMNS}"
        ))
        .bind(tenant_id)
        .bind(endpoint_id)
        .bind(delivery_id)
        .bind(now)
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(delivery_from_row).transpose()
    }

    /// Queues every numbered event of the tenant since `since` that the
    /// endpoint subscribes to, due now: new deliveries for events it never
    /// had, and delivered or failed ones again. Returns how many.
    pub async fn recover_deliveries(
        &self,
        endpoint: &WebhookEndpoint,
        since: i64,
        now: i64,
    ) -> Result<usize, StoreError> {
        let mut tx = self.writer.begin().await?;
        let rows = sqlx::query(
            "SELECT id, event FROM outbox WHERE tenant_id = $1 AND created_at >= $2 \
             AND sequence IS NOT NULL ORDER BY sequence",
        )
        .bind(&endpoint.tenant_id)
        .bind(since)
        .fetch_all(&mut *tx)
        .await?;
        let mut wanted = Vec::new();
        for r in &rows {
            let id: String = r.try_get("id")?;
            let event: String = r.try_get("event")?;
            if endpoint.wants(&event) {
                wanted.push((id, event));
            }
        }
        for chunk in wanted.chunks(500) {
            let sql = format!(
                "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $2, \
                 updated_at = $2 WHERE endpoint_id = $1 AND event_id IN ({})",
                params(3, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(&endpoint.id).bind(now);
            for (id, _) in chunk {
                q = q.bind(id);
            }
            q.execute(&mut *tx).await?;
        }
        let fan_out: Vec<NewDelivery<'_>> = wanted
            .iter()
            .map(|(id, event)| {
                (
                    crate::domain::ids::ordered_object_id("whd"),
                    endpoint.id.as_str(),
                    id.as_str(),
                    event.as_str(),
                    now,
                )
            })
            .collect();
        insert_deliveries(&mut tx, self.in_order(), &endpoint.tenant_id, &fan_out, now).await?;
        tx.commit().await?;
        Ok(wanted.len())
    }

    /// The tenant's numbered events after `after_sequence`, in order, of
    /// `event` when given.
    pub async fn event_feed(
        &self,
        tenant_id: &str,
        after_sequence: i64,
        event: Option<&str>,
        limit: i64,
    ) -> Result<Vec<FeedEvent>, StoreError> {
        let sql = format!(
            "SELECT id, event, payload, sequence, previous_id, created_at FROM outbox \
             WHERE tenant_id = $1 AND sequence > $2{} ORDER BY sequence LIMIT $3",
            if event.is_some() {
                " AND event = $4"
            } else {
                ""
            }
        );
        let mut q = sqlx::query(&sql)
            .bind(tenant_id)
            .bind(after_sequence)
            .bind(limit);
        if let Some(e) = event {
            q = q.bind(e);
        }
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(feed_from_row)
            .collect()
    }

    /// The sequence number of the tenant's event `id`, if numbered.
    pub async fn event_sequence(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT sequence FROM outbox WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .map(|r| r.try_get::<Option<i64>, _>("sequence"))
            .transpose()?
            .flatten())
    }

    /// Deletes events created before `before` that were dispatched, with
    /// their deliveries and attempts. Returns how many events.
    pub async fn prune_events(&self, before: i64) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "DELETE FROM webhook_attempts WHERE at_ms < $1 OR delivery_id IN \
             (SELECT id FROM webhook_deliveries WHERE created_at < $1)",
        )
        .bind(before)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM webhook_deliveries WHERE created_at < $1")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        let done =
            sqlx::query("DELETE FROM outbox WHERE created_at < $1 AND delivered_at IS NOT NULL")
                .bind(before)
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// What is waiting to be delivered.
    pub async fn webhook_queue_stats(&self) -> Result<QueueStats, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n, MIN(created_at) AS oldest FROM \
             (SELECT created_at FROM webhook_deliveries WHERE status = 'pending' \
              UNION ALL SELECT created_at FROM outbox WHERE delivered_at IS NULL) AS waiting",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(QueueStats {
            depth: row.try_get("n")?,
            oldest_at: row.try_get("oldest")?,
        })
    }

    /// (endpoint id, failure streak) of every endpoint failing now.
    pub async fn webhook_failure_streaks(&self) -> Result<Vec<(String, i64)>, StoreError> {
        sqlx::query("SELECT id, failure_streak FROM webhook_endpoints WHERE failure_streak > 0")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("failure_streak")?)))
            .collect()
    }
}

/// Appends `audit` and reads the changed endpoint back, then commits.
async fn finish_change(
    mut tx: sqlx::Transaction<'static, sqlx::Any>,
    tenant_id: &str,
    id: &str,
    now: i64,
    audit: &AuditEvent,
) -> Result<Option<WebhookEndpoint>, StoreError> {
    append_audit(&mut tx, tenant_id, now, audit).await?;
    let endpoint = sqlx::query(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .as_ref()
    .map(endpoint_from_row)
    .transpose()?;
    tx.commit().await?;
    Ok(endpoint)
}

/// One delivery to insert: its id, endpoint, event id and name, and when
/// it is due (now, or the end of the lease of the node about to send it).
type NewDelivery<'a> = (String, &'a str, &'a str, &'a str, i64);

/// Parks an endpoint's pending deliveries if it is disabled (in `tx`).
async fn park_if_disabled(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    endpoint_id: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE webhook_deliveries SET status = 'paused' WHERE endpoint_id = $1 \
         AND status = 'pending' AND EXISTS (SELECT 1 FROM webhook_endpoints \
         WHERE id = $1 AND is_active = 0)",
    )
    .bind(endpoint_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inserts pending deliveries; an existing (endpoint, event) pair is left
/// alone. Returns the ids inserted.
async fn insert_deliveries(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    params: Params,
    tenant_id: &str,
    rows: &[NewDelivery<'_>],
    now: i64,
) -> Result<HashSet<String>, StoreError> {
    let mut inserted = HashSet::with_capacity(rows.len());
    for chunk in rows.chunks(INSERT_ROWS) {
        let sql = format!(
            "INSERT INTO webhook_deliveries (id, tenant_id, endpoint_id, event_id, event, \
             next_attempt_at, created_at, updated_at, status, attempts) VALUES {} \
             ON CONFLICT (endpoint_id, event_id) DO NOTHING RETURNING id",
            values(params, chunk.len(), 8, ", 'pending', 0")
        );
        let mut q = sqlx::query(&sql);
        for (id, endpoint_id, event_id, event, due) in chunk {
            q = q
                .bind(id.as_str())
                .bind(tenant_id)
                .bind(*endpoint_id)
                .bind(*event_id)
                .bind(*event)
                .bind(*due)
                .bind(now)
                .bind(now);
        }
        for r in q.fetch_all(&mut **tx).await? {
            inserted.insert(r.try_get("id")?);
        }
    }
    Ok(inserted)
}
