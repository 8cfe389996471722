//! Blocklist entries, always scoped by tenant.
use sqlx::{Any, Row, Transaction, any::AnyRow};

use super::{Backend, Store, StoreError};

/// On PostgreSQL, takes the tenant's probe counter row (migrations 0010,
/// 0011) before the transaction writes any entry. The triggers move that
/// counter at the end of a statement, after the statement's entries are
/// written: a writer holding the counter from an earlier statement (an
/// import's first chunk, a fraud report's first entry) and waiting on an
/// equal entry another writer had just inserted, while that writer waited
/// for the counter, was a deadlock, and PostgreSQL aborted one of them (a
/// 500). Taking the counter first orders every blocklist writer of a tenant
/// behind one lock. SQLite has one writer: nothing to order.
async fn lock_probe_counter(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    tenant_id: &str,
) -> Result<(), StoreError> {
    if backend == Backend::Postgres {
        sqlx::query(
            "INSERT INTO blocklist_versions (tenant_id, probes) VALUES ($1, 0) \
             ON CONFLICT (tenant_id) DO UPDATE SET probes = blocklist_versions.probes",
        )
        .bind(tenant_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl Store {
    /// A write transaction for blocklist entries of `tenants`, their probe
    /// counters taken first (see [`lock_probe_counter`]), in one order.
    pub(super) async fn blocklist_write(
        &self,
        tenants: &[&str],
    ) -> Result<Transaction<'static, Any>, StoreError> {
        let mut tenants = tenants.to_vec();
        tenants.sort_unstable();
        tenants.dedup();
        let mut tx = self.writer.begin().await?;
        for tenant in tenants {
            lock_probe_counter(&mut tx, self.backend, tenant).await?;
        }
        Ok(tx)
    }
}

/// A stored entry.
#[derive(Debug, Clone)]
pub struct BlocklistEntry {
    pub id: String,
    pub tenant_id: String,
    pub list_type: String,
    pub value: String,
    pub flow_scope: String,
    pub severity: String,
    pub reason: Option<String>,
    pub source: String,
    pub is_active: bool,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An entry to insert (already validated and normalized).
pub type NewBlocklistEntry = BlocklistEntry;

/// Filters of a listing.
#[derive(Debug, Clone, Default)]
pub struct BlocklistFilter {
    pub list_type: Option<String>,
    pub flow_scope: Option<String>,
    pub is_active: Option<bool>,
    pub q: Option<String>,
    pub limit: i64,
    /// Keyset cursor: (created_at, id) of the last entry of the previous page.
    pub after: Option<(i64, String)>,
}

/// Changes to an entry; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct BlocklistPatch {
    pub severity: Option<String>,
    pub flow_scope: Option<String>,
    pub reason: Option<Option<String>>,
    pub is_active: Option<bool>,
    pub expires_at: Option<Option<i64>>,
}

pub(super) const COLUMNS: &str = "id, tenant_id, list_type, value, flow_scope, severity, reason, source, \
    is_active, expires_at, created_at, updated_at";

pub(super) fn from_row(r: &AnyRow) -> Result<BlocklistEntry, StoreError> {
    Ok(BlocklistEntry {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        list_type: r.try_get("list_type")?,
        value: r.try_get("value")?,
        flow_scope: r.try_get("flow_scope")?,
        severity: r.try_get("severity")?,
        reason: r.try_get("reason")?,
        source: r.try_get("source")?,
        is_active: r.try_get::<i64, _>("is_active")? != 0,
        expires_at: r.try_get("expires_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// What a bulk insert did: how many rows it inserted, and the positions of
/// the ones it skipped because an equal entry (type, value, scope) exists.
#[derive(Debug, Clone, Default)]
pub struct BulkInsert {
    pub inserted: usize,
    pub skipped: Vec<usize>,
}

/// Binds `e`'s twelve columns, in [`COLUMNS`] order.
pub(super) fn bind_entry<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    e: &'q NewBlocklistEntry,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    q.bind(&e.id)
        .bind(&e.tenant_id)
        .bind(&e.list_type)
        .bind(&e.value)
        .bind(&e.flow_scope)
        .bind(&e.severity)
        .bind(&e.reason)
        .bind(&e.source)
        .bind(i64::from(e.is_active))
        .bind(e.expires_at)
        .bind(e.created_at)
        .bind(e.updated_at)
}

/// Rows per `INSERT` of a bulk import (12 parameters each).
const BULK_ROWS: usize = 500;

impl Store {
    /// Inserts `entries` in one transaction, skipping those equal to an
    /// existing entry; with `abort_on_duplicate`, any skipped row rolls the
    /// whole insert back (and the skipped ones are still reported).
    pub async fn import_blocklist_entries(
        &self,
        entries: &[&NewBlocklistEntry],
        abort_on_duplicate: bool,
    ) -> Result<BulkInsert, StoreError> {
        let tenants: Vec<&str> = entries.iter().map(|e| e.tenant_id.as_str()).collect();
        let mut tx = self.blocklist_write(&tenants).await?;
        let mut result = BulkInsert::default();
        for (chunk_no, chunk) in entries.chunks(BULK_ROWS).enumerate() {
            let sql = format!(
                "INSERT INTO blocklist_entries ({COLUMNS}) VALUES {} \
                 ON CONFLICT (tenant_id, list_type, value, flow_scope) DO NOTHING RETURNING id",
                super::assessments::values(self.in_order(), chunk.len(), 12, "")
            );
            let mut q = sqlx::query(&sql);
            for e in chunk {
                q = bind_entry(q, e);
            }
            let inserted: std::collections::HashSet<String> = q
                .fetch_all(&mut *tx)
                .await
                .map_err(StoreError::from_write)?
                .iter()
                .map(|r| r.try_get::<String, _>("id"))
                .collect::<Result<_, _>>()?;
            result.inserted += inserted.len();
            for (i, e) in chunk.iter().enumerate() {
                if !inserted.contains(&e.id) {
                    result.skipped.push(chunk_no * BULK_ROWS + i);
                }
            }
        }
        if abort_on_duplicate && !result.skipped.is_empty() {
            tx.rollback().await?;
            result.inserted = 0;
        } else {
            tx.commit().await?;
        }
        Ok(result)
    }

    pub async fn insert_blocklist_entry(&self, e: &NewBlocklistEntry) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO blocklist_entries ({COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        );
        let mut tx = self.blocklist_write(&[&e.tenant_id]).await?;
        bind_entry(sqlx::query(&sql), e)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write)?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn blocklist_entry(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<BlocklistEntry>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM blocklist_entries WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A page of entries, newest first.
    pub async fn list_blocklist(
        &self,
        tenant_id: &str,
        f: &BlocklistFilter,
    ) -> Result<Vec<BlocklistEntry>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM blocklist_entries WHERE tenant_id = $1");
        let mut n = 1;
        let mut next = |sql: &mut String, clause: &str| {
            n += 1;
            sql.push_str(&clause.replace("$?", &format!("${n}")));
        };
        if f.list_type.is_some() {
            next(&mut sql, " AND list_type = $?");
        }
        if f.flow_scope.is_some() {
            next(&mut sql, " AND flow_scope = $?");
        }
        if f.is_active.is_some() {
            next(&mut sql, " AND is_active = $?");
        }
        if f.q.is_some() {
            next(
                &mut sql,
                " AND (LOWER(value) LIKE $? ESCAPE '\\' OR LOWER(COALESCE(reason, '')) LIKE $? ESCAPE '\\')",
            );
        }
        if f.after.is_some() {
            next(&mut sql, " AND (created_at < $?");
            next(&mut sql, " OR (created_at = $?");
            next(&mut sql, " AND id < $?))");
        }
        next(&mut sql, " ORDER BY created_at DESC, id DESC LIMIT $?");
        let mut q = sqlx::query(&sql).bind(tenant_id);
        if let Some(v) = &f.list_type {
            q = q.bind(v);
        }
        if let Some(v) = &f.flow_scope {
            q = q.bind(v);
        }
        if let Some(v) = f.is_active {
            q = q.bind(i64::from(v));
        }
        if let Some(v) = &f.q {
            let escaped = v
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            q = q.bind(format!("%{escaped}%"));
        }
        if let Some((at, id)) = &f.after {
            q = q.bind(*at).bind(*at).bind(id);
        }
        let rows = q.bind(f.limit).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    /// Applies `patch` to an entry of `tenant_id`; `None` if there is none.
    pub async fn update_blocklist_entry(
        &self,
        tenant_id: &str,
        id: &str,
        patch: &BlocklistPatch,
        now: i64,
    ) -> Result<Option<BlocklistEntry>, StoreError> {
        let Some(mut e) = self.blocklist_entry(tenant_id, id).await? else {
            return Ok(None);
        };
        if let Some(v) = &patch.severity {
            e.severity.clone_from(v);
        }
        if let Some(v) = &patch.flow_scope {
            e.flow_scope.clone_from(v);
        }
        if let Some(v) = &patch.reason {
            e.reason.clone_from(v);
        }
        if let Some(v) = patch.is_active {
            e.is_active = v;
        }
        if let Some(v) = patch.expires_at {
            e.expires_at = v;
        }
        e.updated_at = now;
        let mut tx = self.blocklist_write(&[tenant_id]).await?;
        let done = sqlx::query(
            "UPDATE blocklist_entries SET severity = $1, flow_scope = $2, reason = $3, \
             is_active = $4, expires_at = $5, updated_at = $6 WHERE tenant_id = $7 AND id = $8",
        )
        .bind(&e.severity)
        .bind(&e.flow_scope)
        .bind(&e.reason)
        .bind(i64::from(e.is_active))
        .bind(e.expires_at)
        .bind(e.updated_at)
        .bind(tenant_id)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from_write)?;
        tx.commit().await?;
        Ok((done.rows_affected() == 1).then_some(e))
    }

    /// Deletes an entry of `tenant_id`; `false` if there is none.
    pub async fn delete_blocklist_entry(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.blocklist_write(&[tenant_id]).await?;
        let done = sqlx::query("DELETE FROM blocklist_entries WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}
