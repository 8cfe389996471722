//! The append-only audit log: one hash chain per tenant.
//!
//! Each entry's `hash` is `sha256(prev_hash ‖ "\n" ‖ canonical JSON of the
//! entry)`, where the first entry's `prev_hash` is 64 zeros. Changing,
//! removing or reordering any stored entry breaks every hash after it,
//! which [`Store::verify_audit`] reports.
use sha2::{Digest as _, Sha256};
use sqlx::{Any, Row, Transaction, any::AnyRow};

use super::{Store, StoreError};

/// `prev_hash` of a chain's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Something to record: who did what to which subject.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// Key id of the caller (or `cli` / `system`).
    pub actor: String,
    /// Dotted action name, e.g. `rule.uploaded`.
    pub action: String,
    /// What it acted on, e.g. `fraud-night-spei@1.0.0`.
    pub subject: String,
    /// Action-specific facts (digests, modes, reasons).
    pub details: serde_json::Value,
}

/// A stored entry.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEntry {
    pub tenant_id: String,
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// Where a chain first fails verification.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditBreak {
    pub tenant_id: String,
    pub seq: i64,
    pub problem: String,
}

/// The hashed part of an entry; serialized in declaration order, so the
/// JSON text is canonical.
#[derive(serde::Serialize)]
struct Canonical<'a> {
    tenant_id: &'a str,
    seq: i64,
    at: i64,
    actor: &'a str,
    action: &'a str,
    subject: &'a str,
    details: &'a str,
}

fn entry_hash(prev_hash: &str, entry: &Canonical<'_>) -> String {
    let canonical = serde_json::to_string(entry).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(canonical.as_bytes());
    hex::encode(h.finalize())
}

/// Appends `event` to the tenant's chain inside `tx`. The tenant row is
/// touched first, so concurrent appends for one tenant serialize on its row
/// lock (PostgreSQL) or the single writer (SQLite).
pub(super) async fn append(
    tx: &mut Transaction<'static, Any>,
    tenant_id: &str,
    at: i64,
    event: &AuditEvent,
) -> Result<AuditEntry, StoreError> {
    sqlx::query("UPDATE tenants SET id = id WHERE id = $1")
        .bind(tenant_id)
        .execute(&mut **tx)
        .await?;
    let last = sqlx::query(
        "SELECT seq, hash FROM audit_log WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(tenant_id)
    .fetch_optional(&mut **tx)
    .await?;
    let (seq, prev_hash) = match last {
        Some(r) => (
            r.try_get::<i64, _>("seq")? + 1,
            r.try_get::<String, _>("hash")?,
        ),
        None => (1, GENESIS.to_owned()),
    };
    let details = event.details.to_string();
    let hash = entry_hash(
        &prev_hash,
        &Canonical {
            tenant_id,
            seq,
            at,
            actor: &event.actor,
            action: &event.action,
            subject: &event.subject,
            details: &details,
        },
    );
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, seq, at, actor, action, subject, details, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(tenant_id)
    .bind(seq)
    .bind(at)
    .bind(&event.actor)
    .bind(&event.action)
    .bind(&event.subject)
    .bind(&details)
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut **tx)
    .await?;
    Ok(AuditEntry {
        tenant_id: tenant_id.to_owned(),
        seq,
        at,
        actor: event.actor.clone(),
        action: event.action.clone(),
        subject: event.subject.clone(),
        details: event.details.clone(),
        prev_hash,
        hash,
    })
}

struct RawEntry {
    tenant_id: String,
    seq: i64,
    at: i64,
    actor: String,
    action: String,
    subject: String,
    details: String,
    prev_hash: String,
    hash: String,
}

fn raw_from_row(r: &AnyRow) -> Result<RawEntry, StoreError> {
    Ok(RawEntry {
        tenant_id: r.try_get("tenant_id")?,
        seq: r.try_get("seq")?,
        at: r.try_get("at")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        subject: r.try_get("subject")?,
        details: r.try_get("details")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

const COLUMNS: &str = "tenant_id, seq, at, actor, action, subject, details, prev_hash, hash";

impl Store {
    /// Appends one event on its own (e.g. a rejected upload, which changes
    /// nothing else).
    pub async fn append_audit(
        &self,
        tenant_id: &str,
        at: i64,
        event: &AuditEvent,
    ) -> Result<AuditEntry, StoreError> {
        let mut tx = self.writer.begin().await?;
        let entry = append(&mut tx, tenant_id, at, event).await?;
        tx.commit().await?;
        Ok(entry)
    }

    /// A page of the tenant's log, oldest first, after `after_seq`.
    pub async fn audit_log(
        &self,
        tenant_id: &str,
        after_seq: i64,
        limit: i64,
        action: Option<&str>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_log WHERE tenant_id = $1 AND seq > $2 \
             AND ($3 = '' OR action = $3) ORDER BY seq LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant_id)
            .bind(after_seq)
            .bind(action.unwrap_or(""))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let raw = raw_from_row(r)?;
                Ok(AuditEntry {
                    details: serde_json::from_str(&raw.details)
                        .unwrap_or(serde_json::Value::String(raw.details)),
                    tenant_id: raw.tenant_id,
                    seq: raw.seq,
                    at: raw.at,
                    actor: raw.actor,
                    action: raw.action,
                    subject: raw.subject,
                    prev_hash: raw.prev_hash,
                    hash: raw.hash,
                })
            })
            .collect()
    }

    /// Re-computes every chain (or only `tenant_id`'s). Returns the number
    /// of entries checked and every chain's first break.
    pub async fn verify_audit(
        &self,
        tenant_id: Option<&str>,
    ) -> Result<(u64, Vec<AuditBreak>), StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_log WHERE ($1 = '' OR tenant_id = $1) ORDER BY tenant_id, seq"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant_id.unwrap_or(""))
            .fetch_all(&self.pool)
            .await?;
        let mut checked = 0;
        let mut breaks: Vec<AuditBreak> = Vec::new();
        let mut current: Option<(String, i64, String)> = None; // tenant, seq, hash
        let mut broken_tenant: Option<String> = None;
        for r in &rows {
            let e = raw_from_row(r)?;
            checked += 1;
            if broken_tenant.as_deref() == Some(e.tenant_id.as_str()) {
                continue;
            }
            let (expected_seq, expected_prev) = match &current {
                Some((t, seq, hash)) if *t == e.tenant_id => (seq + 1, hash.clone()),
                _ => (1, GENESIS.to_owned()),
            };
            let problem = if e.seq != expected_seq {
                Some(format!("expected entry {expected_seq}, found {}", e.seq))
            } else if e.prev_hash != expected_prev {
                Some("prev_hash does not match the previous entry's hash".to_owned())
            } else if entry_hash(
                &e.prev_hash,
                &Canonical {
                    tenant_id: &e.tenant_id,
                    seq: e.seq,
                    at: e.at,
                    actor: &e.actor,
                    action: &e.action,
                    subject: &e.subject,
                    details: &e.details,
                },
            ) != e.hash
            {
                Some("hash does not match the entry's contents".to_owned())
            } else {
                None
            };
            if let Some(problem) = problem {
                breaks.push(AuditBreak {
                    tenant_id: e.tenant_id.clone(),
                    seq: e.seq,
                    problem,
                });
                broken_tenant = Some(e.tenant_id.clone());
            }
            current = Some((e.tenant_id, e.seq, e.hash));
        }
        Ok((checked, breaks))
    }
}
