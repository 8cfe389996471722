//! Assessments and everything that commits with them: beneficiary history,
//! the idempotency record and the outbox row, in one transaction.
use sqlx::Row;

use super::{Store, StoreError};

/// Idempotency records are honoured for 24 hours.
pub const IDEMPOTENCY_TTL_MS: i64 = 24 * 60 * 60 * 1000;

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
    /// (outbox id, event name, payload JSON).
    pub outbox: Option<(String, String, String)>,
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

const ASSESSMENT_COLUMNS: &str = "session_id, tenant_id, flow, decision, risk_score, input,     context, rules, thresholds, response, created_at";

fn assessment_from_row(r: &sqlx::any::AnyRow) -> Result<StoredAssessment, StoreError> {
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
        let row = sqlx::query(
            "SELECT request_hash, session_id, response FROM idempotency_keys \
             WHERE tenant_id = $1 AND scope = $2 AND idem_key = $3 AND created_at > $4",
        )
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

    /// Active, unexpired entries of `tenant_id` matching any of `pairs`
    /// (list type, normalized value) whose scope covers `flow`.
    pub async fn list_matches(
        &self,
        tenant_id: &str,
        flow: &str,
        pairs: &[(String, String)],
        now: i64,
    ) -> Result<Vec<ListMatch>, StoreError> {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = String::from(
            "SELECT id, list_type, value, severity FROM blocklist_entries \
             WHERE tenant_id = $1 AND is_active = 1 AND (expires_at IS NULL OR expires_at > $2) \
             AND flow_scope IN ($3, 'all') AND (",
        );
        for i in 0..pairs.len() {
            if i > 0 {
                sql.push_str(" OR ");
            }
            sql.push_str(&format!(
                "(list_type = ${} AND value = ${})",
                4 + 2 * i,
                5 + 2 * i
            ));
        }
        sql.push(')');
        let mut q = sqlx::query(&sql).bind(tenant_id).bind(now).bind(flow);
        for (t, v) in pairs {
            q = q.bind(t).bind(v);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(ListMatch {
                    entry_id: r.try_get("id")?,
                    list_type: r.try_get("list_type")?,
                    value: r.try_get("value")?,
                    severity: r.try_get("severity")?,
                })
            })
            .collect()
    }

    pub async fn beneficiary_history(
        &self,
        tenant_id: &str,
        origin_key: &str,
        beneficiary_key: &str,
    ) -> Result<Option<HistoryRow>, StoreError> {
        let row = sqlx::query(
            "SELECT transfers, first_at, last_at FROM beneficiary_history \
             WHERE tenant_id = $1 AND origin_key = $2 AND beneficiary_key = $3",
        )
        .bind(tenant_id)
        .bind(origin_key)
        .bind(beneficiary_key)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(HistoryRow {
                transfers: r.try_get("transfers")?,
                first_at: r.try_get("first_at")?,
                last_at: r.try_get("last_at")?,
            })
        })
        .transpose()
    }

    /// Commits the assessment, its idempotency record, history update and
    /// outbox row together, or nothing at all.
    pub async fn commit_assessment(
        &self,
        a: &AssessmentWrite,
    ) -> Result<CommitOutcome, StoreError> {
        let mut tx = self.writer.begin().await?;
        if let Some((scope, key, hash)) = &a.idempotency {
            sqlx::query(
                "DELETE FROM idempotency_keys \
                 WHERE tenant_id = $1 AND scope = $2 AND idem_key = $3 AND created_at <= $4",
            )
            .bind(&a.tenant_id)
            .bind(scope)
            .bind(key)
            .bind(a.created_at - IDEMPOTENCY_TTL_MS)
            .execute(&mut *tx)
            .await?;
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys \
                 (tenant_id, scope, idem_key, request_hash, session_id, response, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (tenant_id, scope, idem_key) DO NOTHING",
            )
            .bind(&a.tenant_id)
            .bind(scope)
            .bind(key)
            .bind(hash)
            .bind(&a.session_id)
            .bind(&a.response)
            .bind(a.created_at)
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 0 {
                tx.rollback().await?;
                let existing = self
                    .idempotency_record(&a.tenant_id, scope, key, a.created_at)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt("idempotency record vanished".into()))?;
                return Ok(CommitOutcome::Replayed(existing));
            }
        }
        sqlx::query(
            "INSERT INTO assessments (session_id, tenant_id, flow, decision, risk_score, \
             payment_id, input, context, rules, thresholds, response, simulated, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12)",
        )
        .bind(&a.session_id)
        .bind(&a.tenant_id)
        .bind(&a.flow)
        .bind(&a.decision)
        .bind(a.risk_score)
        .bind(&a.payment_id)
        .bind(&a.input)
        .bind(&a.context)
        .bind(&a.rules)
        .bind(&a.thresholds)
        .bind(&a.response)
        .bind(a.created_at)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from_write)?;
        if let Some((origin, beneficiary)) = &a.history {
            sqlx::query(
                "INSERT INTO beneficiary_history \
                 (tenant_id, origin_key, beneficiary_key, transfers, first_at, last_at) \
                 VALUES ($1, $2, $3, 1, $4, $4) \
                 ON CONFLICT (tenant_id, origin_key, beneficiary_key) DO UPDATE SET \
                 transfers = beneficiary_history.transfers + 1, last_at = excluded.last_at",
            )
            .bind(&a.tenant_id)
            .bind(origin)
            .bind(beneficiary)
            .bind(a.created_at)
            .execute(&mut *tx)
            .await?;
        }
        if let Some((id, event, payload)) = &a.outbox {
            sqlx::query(
                "INSERT INTO outbox (id, tenant_id, event, payload, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(&a.tenant_id)
            .bind(event)
            .bind(payload)
            .bind(a.created_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(CommitOutcome::Committed)
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

    /// Counts rows of a tenant in a side-effect table (`assessments`,
    /// `outbox`, `beneficiary_history`, `idempotency_keys`), for tests and
    /// operators checking that nothing was written twice.
    pub async fn count_rows(&self, table: &str, tenant_id: &str) -> Result<i64, StoreError> {
        let table = match table {
            "assessments" => "assessments",
            "outbox" => "outbox",
            "beneficiary_history" => "beneficiary_history",
            "idempotency_keys" => "idempotency_keys",
            other => return Err(StoreError::Corrupt(format!("unknown table `{other}`"))),
        };
        let row = sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM {table} WHERE tenant_id = $1"
        ))
        .bind(tenant_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }
}
