//! Cases, their notes, history, links and stored reports; fraud labels and
//! the fraud-report transaction. Always scoped by tenant.
use sqlx::{Row, any::AnyRow};

use super::{
    AuditEvent, Store, StoreError, StoredAssessment,
    assessments::{ASSESSMENT_COLUMNS, Params, assessment_from_row, values},
    audit::append as append_audit,
    blocklists::{BlocklistEntry, NewBlocklistEntry, bind_entry, from_row as entry_from_row},
};
use crate::store::OutboxRow;

/// A stored case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRecord {
    pub id: String,
    pub tenant_id: String,
    pub reference_number: String,
    pub status: String,
    pub priority: String,
    pub priority_rank: i64,
    pub jurisdiction: String,
    pub incident_type: String,
    pub incident_date: Option<i64>,
    pub detected_at: i64,
    pub due_at: i64,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub victim_name: Option<String>,
    pub victim_email: Option<String>,
    pub description: Option<String>,
    pub unusual_reasons: Option<String>,
    /// JSON object.
    pub subject: Option<String>,
    pub resolution: Option<String>,
    pub source: String,
    pub version: i64,
    pub created_by: String,
    pub reviewed_by: Option<String>,
    pub submitted_by: Option<String>,
    pub submitted_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const CASE_COLUMNS: &str = "id, tenant_id, reference_number, status, priority, priority_rank, \
    jurisdiction, incident_type, incident_date, detected_at, due_at, amount_minor, currency, \
    victim_name, victim_email, description, unusual_reasons, subject, resolution, source, version, \
    created_by, reviewed_by, submitted_by, submitted_at, created_at, updated_at";

fn case_from_row(r: &AnyRow) -> Result<CaseRecord, StoreError> {
    Ok(CaseRecord {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        reference_number: r.try_get("reference_number")?,
        status: r.try_get("status")?,
        priority: r.try_get("priority")?,
        priority_rank: r.try_get("priority_rank")?,
        jurisdiction: r.try_get("jurisdiction")?,
        incident_type: r.try_get("incident_type")?,
        incident_date: r.try_get("incident_date")?,
        detected_at: r.try_get("detected_at")?,
        due_at: r.try_get("due_at")?,
        amount_minor: r.try_get("amount_minor")?,
        currency: r.try_get("currency")?,
        victim_name: r.try_get("victim_name")?,
        victim_email: r.try_get("victim_email")?,
        description: r.try_get("description")?,
        unusual_reasons: r.try_get("unusual_reasons")?,
        subject: r.try_get("subject")?,
        resolution: r.try_get("resolution")?,
        source: r.try_get("source")?,
        version: r.try_get("version")?,
        created_by: r.try_get("created_by")?,
        reviewed_by: r.try_get("reviewed_by")?,
        submitted_by: r.try_get("submitted_by")?,
        submitted_at: r.try_get("submitted_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// A note on a case.
#[derive(Debug, Clone)]
pub struct CaseNote {
    pub id: String,
    pub author: String,
    pub body: String,
    pub created_at: i64,
}

/// One changed field of one change.
#[derive(Debug, Clone)]
pub struct CaseChange {
    pub version: i64,
    pub field: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub actor: String,
    pub at: i64,
}

/// A report stored at submission.
#[derive(Debug, Clone)]
pub struct StoredReport {
    pub report: String,
    pub txt: Option<String>,
    pub submitted_by: String,
    pub created_at: i64,
}

/// An assessment labelled fraudulent.
#[derive(Debug, Clone)]
pub struct FraudLabel {
    pub session_id: String,
    pub flow: String,
    pub reason: String,
    pub description: Option<String>,
    /// JSON array.
    pub evidence_urls: String,
    pub case_id: String,
    pub reported_by: String,
    pub confirmed_at: Option<i64>,
    pub assessed_at: i64,
    pub created_at: i64,
}

const LABEL_COLUMNS: &str = "session_id, flow, reason, description, evidence_urls, case_id, \
    reported_by, confirmed_at, assessed_at, created_at";

fn label_from_row(r: &AnyRow) -> Result<FraudLabel, StoreError> {
    Ok(FraudLabel {
        session_id: r.try_get("session_id")?,
        flow: r.try_get("flow")?,
        reason: r.try_get("reason")?,
        description: r.try_get("description")?,
        evidence_urls: r.try_get("evidence_urls")?,
        case_id: r.try_get("case_id")?,
        reported_by: r.try_get("reported_by")?,
        confirmed_at: r.try_get("confirmed_at")?,
        assessed_at: r.try_get("assessed_at")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Which cases a listing returns and in what order.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    pub status: Option<String>,
    pub priority: Option<String>,
    pub jurisdiction: Option<String>,
    /// Lowercase text searched in the reference, names, email and
    /// description.
    pub search: Option<String>,
    /// `created_at` bounds, Unix ms (from inclusive, to exclusive).
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Open cases (borrador, en_revision) whose `due_at` is before this.
    pub due_before: Option<i64>,
    /// A column of [`SORT_COLUMNS`].
    pub sort_by: &'static str,
    pub descending: bool,
    pub limit: i64,
    pub offset: i64,
}

/// Columns a listing may sort by.
pub const SORT_COLUMNS: &[&str] = &[
    "created_at",
    "updated_at",
    "due_at",
    "incident_date",
    "priority",
    "status",
    "amount",
    "reference_number",
];

/// Statuses whose filing is still to be done.
const OPEN_STATUSES: &str = "'borrador', 'en_revision'";

/// Counts of a tenant's cases.
#[derive(Debug, Clone, Default)]
pub struct CaseCounts {
    pub total: i64,
    pub by_status: Vec<(String, i64)>,
    pub by_priority: Vec<(String, i64)>,
    pub by_jurisdiction: Vec<(String, i64)>,
    pub overdue: i64,
    pub due_soon: i64,
}

/// A change to write: the case as it becomes (its `version` one above
/// `expected_version`), the fields that changed, and what commits with it.
#[derive(Debug, Clone)]
pub struct CaseWrite<'a> {
    pub case: &'a CaseRecord,
    pub expected_version: i64,
    pub changes: Vec<(&'static str, Option<String>, Option<String>)>,
    pub actor: &'a str,
    pub outbox: Vec<OutboxRow>,
    /// Stored on submission: (report JSON, delimited text).
    pub report: Option<(String, Option<String>)>,
    /// Marks the case's fraud labels confirmed.
    pub confirm_labels: bool,
    pub audit: Option<AuditEvent>,
    /// Assessments to link (the tenant's, checked by the caller).
    pub link: Vec<String>,
}

/// What a fraud report writes, all together.
#[derive(Debug, Clone)]
pub struct FraudReportWrite {
    pub label: FraudLabel,
    pub case: CaseRecord,
    pub entries: Vec<NewBlocklistEntry>,
    pub audit: AuditEvent,
}

/// What came of a fraud report.
#[derive(Debug, Clone)]
pub enum FraudReportOutcome {
    /// Written now: the case and the entries linked to it (new ones and
    /// equal ones that already existed).
    Created {
        case: Box<CaseRecord>,
        entries: Vec<BlocklistEntry>,
    },
    /// The assessment was reported before: nothing was written.
    AlreadyReported(FraudLabel),
}

/// A listing's query with the tenant, its text filters and then its
/// number filters bound, in that order.
fn bind_filters<'q>(
    sql: &'q str,
    tenant_id: &'q str,
    texts: &'q [String],
    numbers: &[i64],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let mut q = sqlx::query(sql).bind(tenant_id);
    for t in texts {
        q = q.bind(t.as_str());
    }
    for n in numbers {
        q = q.bind(*n);
    }
    q
}

async fn insert_outbox(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    tenant_id: &str,
    rows: &[OutboxRow],
    at: i64,
) -> Result<(), StoreError> {
    for row in rows {
        sqlx::query(
            "INSERT INTO outbox (id, tenant_id, event, payload, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&row.id)
        .bind(tenant_id)
        .bind(&row.event)
        .bind(&row.payload)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Binds `c`'s 27 columns, in [`CASE_COLUMNS`] order.
fn bind_case<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    c: &'q CaseRecord,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    q.bind(&c.id)
        .bind(&c.tenant_id)
        .bind(&c.reference_number)
        .bind(&c.status)
        .bind(&c.priority)
        .bind(c.priority_rank)
        .bind(&c.jurisdiction)
        .bind(&c.incident_type)
        .bind(c.incident_date)
        .bind(c.detected_at)
        .bind(c.due_at)
        .bind(c.amount_minor)
        .bind(&c.currency)
        .bind(&c.victim_name)
        .bind(&c.victim_email)
        .bind(&c.description)
        .bind(&c.unusual_reasons)
        .bind(&c.subject)
        .bind(&c.resolution)
        .bind(&c.source)
        .bind(c.version)
        .bind(&c.created_by)
        .bind(&c.reviewed_by)
        .bind(&c.submitted_by)
        .bind(c.submitted_at)
        .bind(c.created_at)
        .bind(c.updated_at)
}

async fn insert_case(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    c: &CaseRecord,
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO cases ({CASE_COLUMNS}) VALUES {}",
        values(Params::Numbered, 1, 27, "")
    );
    bind_case(sqlx::query(&sql), c)
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from_write)?;
    // The first history row: the case came to be, in its first status.
    insert_history(
        tx,
        c,
        &[("status", None, Some(c.status.clone()))],
        &c.created_by,
    )
    .await
}

async fn insert_history(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    c: &CaseRecord,
    changes: &[(&'static str, Option<String>, Option<String>)],
    actor: &str,
) -> Result<(), StoreError> {
    for (field, old, new) in changes {
        sqlx::query(
            "INSERT INTO case_history (case_id, version, field, old_value, new_value, actor, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&c.id)
        .bind(c.version)
        .bind(*field)
        .bind(old.as_deref())
        .bind(new.as_deref())
        .bind(actor)
        .bind(c.updated_at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn link_sessions(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    c: &CaseRecord,
    sessions: &[String],
) -> Result<(), StoreError> {
    for s in sessions {
        sqlx::query(
            "INSERT INTO case_assessments (case_id, session_id, tenant_id) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&c.id)
        .bind(s)
        .bind(&c.tenant_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl Store {
    /// Inserts a case linked to `sessions` (which must be the tenant's
    /// assessments) with its first history row and `outbox` events;
    /// [`StoreError::Duplicate`] if its reference number is taken.
    pub async fn insert_case(
        &self,
        c: &CaseRecord,
        sessions: &[String],
        outbox: &[OutboxRow],
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        insert_case(&mut tx, c).await?;
        link_sessions(&mut tx, c, sessions).await?;
        insert_outbox(&mut tx, &c.tenant_id, outbox, c.created_at).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn case(&self, tenant_id: &str, id: &str) -> Result<Option<CaseRecord>, StoreError> {
        sqlx::query(&format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(case_from_row)
        .transpose()
    }

    /// Which of `sessions` are the tenant's live assessments.
    pub async fn existing_sessions(
        &self,
        tenant_id: &str,
        sessions: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let mut found = Vec::with_capacity(sessions.len());
        for chunk in sessions.chunks(100) {
            let sql = format!(
                "SELECT session_id FROM assessments WHERE tenant_id = $1 AND simulated = 0 \
                 AND session_id IN ({})",
                (2..chunk.len() + 2)
                    .map(|i| format!("${i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut q = sqlx::query(&sql).bind(tenant_id);
            for s in chunk {
                q = q.bind(s);
            }
            for r in q.fetch_all(&self.pool).await? {
                found.push(r.try_get("session_id")?);
            }
        }
        Ok(found)
    }

    /// Writes a change if the case is still at `expected_version`;
    /// `false` (nothing written) when another change came first.
    pub async fn update_case(&self, w: &CaseWrite<'_>) -> Result<bool, StoreError> {
        let c = w.case;
        let mut tx = self.writer.begin().await?;
        // Every column from the new record, if the version read is current.
        let assignments: Vec<String> = CASE_COLUMNS
            .split(',')
            .enumerate()
            .map(|(i, column)| format!("{} = ${}", column.trim(), i + 1))
            .collect();
        let sql = format!(
            "UPDATE cases SET {} WHERE tenant_id = $28 AND id = $29 AND version = $30",
            assignments.join(", ")
        );
        let done = bind_case(sqlx::query(&sql), c)
            .bind(&c.tenant_id)
            .bind(&c.id)
            .bind(w.expected_version)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_history(&mut tx, c, &w.changes, w.actor).await?;
        link_sessions(&mut tx, c, &w.link).await?;
        if let Some((report, txt)) = &w.report {
            sqlx::query(
                "INSERT INTO case_reports (case_id, tenant_id, report, txt, submitted_by, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&c.id)
            .bind(&c.tenant_id)
            .bind(report)
            .bind(txt.as_deref())
            .bind(w.actor)
            .bind(c.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write)?;
        }
        if w.confirm_labels {
            sqlx::query(
                "UPDATE fraud_labels SET confirmed_at = $1 WHERE tenant_id = $2 AND case_id = $3 \
                 AND confirmed_at IS NULL",
            )
            .bind(c.updated_at)
            .bind(&c.tenant_id)
            .bind(&c.id)
            .execute(&mut *tx)
            .await?;
        }
        insert_outbox(&mut tx, &c.tenant_id, &w.outbox, c.updated_at).await?;
        if let Some(audit) = &w.audit {
            append_audit(&mut tx, &c.tenant_id, c.updated_at, audit).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Adds a note; `false` when the tenant has no such case.
    pub async fn add_case_note(
        &self,
        tenant_id: &str,
        case_id: &str,
        note: &CaseNote,
    ) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query("UPDATE cases SET updated_at = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(note.created_at)
            .bind(tenant_id)
            .bind(case_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO case_notes (id, case_id, tenant_id, author, body, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&note.id)
        .bind(case_id)
        .bind(tenant_id)
        .bind(&note.author)
        .bind(&note.body)
        .bind(note.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A case's notes, oldest first (the case must be the tenant's).
    pub async fn case_notes(&self, case_id: &str) -> Result<Vec<CaseNote>, StoreError> {
        sqlx::query(
            "SELECT id, author, body, created_at FROM case_notes WHERE case_id = $1 \
             ORDER BY created_at, id",
        )
        .bind(case_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(CaseNote {
                id: r.try_get("id")?,
                author: r.try_get("author")?,
                body: r.try_get("body")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
    }

    /// A case's history, oldest first.
    pub async fn case_history(&self, case_id: &str) -> Result<Vec<CaseChange>, StoreError> {
        sqlx::query(
            "SELECT version, field, old_value, new_value, actor, at FROM case_history \
             WHERE case_id = $1 ORDER BY version, field",
        )
        .bind(case_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(CaseChange {
                version: r.try_get("version")?,
                field: r.try_get("field")?,
                old_value: r.try_get("old_value")?,
                new_value: r.try_get("new_value")?,
                actor: r.try_get("actor")?,
                at: r.try_get("at")?,
            })
        })
        .collect()
    }

    /// The assessments linked to a case of `tenant_id`, oldest first.
    pub async fn case_assessments(
        &self,
        tenant_id: &str,
        case_id: &str,
    ) -> Result<Vec<StoredAssessment>, StoreError> {
        let columns = ASSESSMENT_COLUMNS
            .split(',')
            .map(|c| format!("a.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        sqlx::query(&format!(
            "SELECT {columns} FROM case_assessments l JOIN assessments a \
             ON a.session_id = l.session_id AND a.tenant_id = l.tenant_id \
             WHERE l.case_id = $1 AND l.tenant_id = $2 ORDER BY a.created_at, a.session_id"
        ))
        .bind(case_id)
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(assessment_from_row)
        .collect()
    }

    /// The blocklist entries linked to a case of `tenant_id`.
    pub async fn case_blocklist_entries(
        &self,
        tenant_id: &str,
        case_id: &str,
    ) -> Result<Vec<BlocklistEntry>, StoreError> {
        let columns = super::blocklists::COLUMNS
            .split(',')
            .map(|c| format!("e.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        sqlx::query(&format!(
            "SELECT {columns} FROM case_blocklist_entries l JOIN blocklist_entries e \
             ON e.id = l.entry_id WHERE l.case_id = $1 AND e.tenant_id = $2 \
             ORDER BY e.list_type, e.value, e.flow_scope"
        ))
        .bind(case_id)
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(entry_from_row)
        .collect()
    }

    /// A page of the tenant's cases and how many match in all.
    pub async fn list_cases(
        &self,
        tenant_id: &str,
        f: &CaseFilter,
    ) -> Result<(Vec<CaseRecord>, i64), StoreError> {
        let mut conditions = vec!["tenant_id = $1".to_owned()];
        let mut texts: Vec<String> = Vec::new();
        let mut numbers: Vec<i64> = Vec::new();
        let mut text = |conditions: &mut Vec<String>, sql: &str, v: String, n: usize| {
            texts.push(v);
            conditions.push(sql.replace('?', &format!("${}", n + texts.len())));
        };
        if let Some(s) = &f.status {
            text(&mut conditions, "status = ?", s.clone(), 1);
        }
        if let Some(p) = &f.priority {
            text(&mut conditions, "priority = ?", p.clone(), 1);
        }
        if let Some(j) = &f.jurisdiction {
            text(&mut conditions, "jurisdiction = ?", j.clone(), 1);
        }
        if let Some(q) = &f.search {
            let escaped = q
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            text(
                &mut conditions,
                "(LOWER(reference_number) LIKE ? ESCAPE '\\' \
                  OR LOWER(COALESCE(victim_name, '')) LIKE ? ESCAPE '\\' \
                  OR LOWER(COALESCE(victim_email, '')) LIKE ? ESCAPE '\\' \
                  OR LOWER(COALESCE(description, '')) LIKE ? ESCAPE '\\')",
                format!("%{escaped}%"),
                1,
            );
        }
        let first_number = 2 + texts.len();
        let mut number = |conditions: &mut Vec<String>, sql: &str, v: i64| {
            numbers.push(v);
            conditions.push(sql.replace('?', &format!("${}", first_number + numbers.len() - 1)));
        };
        if let Some(from) = f.from {
            number(&mut conditions, "created_at >= ?", from);
        }
        if let Some(to) = f.to {
            number(&mut conditions, "created_at < ?", to);
        }
        if let Some(due) = f.due_before {
            number(
                &mut conditions,
                &format!("status IN ({OPEN_STATUSES}) AND due_at < ?"),
                due,
            );
        }
        let where_sql = conditions.join(" AND ");
        let column = match f.sort_by {
            "priority" => "priority_rank",
            "amount" => "amount_minor",
            c if SORT_COLUMNS.contains(&c) => c,
            _ => "created_at",
        };
        let direction = if f.descending { "DESC" } else { "ASC" };
        let nulls = if f.descending {
            "NULLS LAST"
        } else {
            "NULLS FIRST"
        };
        let count_sql = format!("SELECT COUNT(*) AS n FROM cases WHERE {where_sql}");
        let n = 2 + texts.len() + numbers.len();
        let page_sql = format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE {where_sql} \
             ORDER BY {column} {direction} {nulls}, id {direction} LIMIT ${n} OFFSET ${}",
            n + 1
        );
        let total: i64 = bind_filters(&count_sql, tenant_id, &texts, &numbers)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        let rows = bind_filters(&page_sql, tenant_id, &texts, &numbers)
            .bind(f.limit)
            .bind(f.offset)
            .fetch_all(&self.pool)
            .await?;
        let cases = rows.iter().map(case_from_row).collect::<Result<_, _>>()?;
        Ok((cases, total))
    }

    /// Counts of the tenant's cases; `overdue` and `due_soon` count open
    /// cases due before `now` and before `soon`.
    pub async fn case_counts(
        &self,
        tenant_id: &str,
        now: i64,
        soon: i64,
    ) -> Result<CaseCounts, StoreError> {
        let mut counts = CaseCounts::default();
        for (column, out) in [
            ("status", &mut counts.by_status),
            ("priority", &mut counts.by_priority),
            ("jurisdiction", &mut counts.by_jurisdiction),
        ] {
            let rows = sqlx::query(&format!(
                "SELECT {column} AS k, COUNT(*) AS n FROM cases WHERE tenant_id = $1 \
                 GROUP BY {column} ORDER BY {column}"
            ))
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await?;
            for r in rows {
                out.push((r.try_get("k")?, r.try_get("n")?));
            }
        }
        counts.total = counts.by_status.iter().map(|(_, n)| n).sum();
        let row = sqlx::query(&format!(
            "SELECT COALESCE(SUM(CASE WHEN due_at < $2 THEN 1 ELSE 0 END), 0) AS overdue, \
             COALESCE(SUM(CASE WHEN due_at >= $2 AND due_at < $3 THEN 1 ELSE 0 END), 0) AS soon \
             FROM cases WHERE tenant_id = $1 AND status IN ({OPEN_STATUSES})"
        ))
        .bind(tenant_id)
        .bind(now)
        .bind(soon)
        .fetch_one(&self.pool)
        .await?;
        counts.overdue = row.try_get("overdue")?;
        counts.due_soon = row.try_get("soon")?;
        Ok(counts)
    }

    /// The report stored when the case was submitted.
    pub async fn case_report(
        &self,
        tenant_id: &str,
        case_id: &str,
    ) -> Result<Option<StoredReport>, StoreError> {
        sqlx::query(
            "SELECT report, txt, submitted_by, created_at FROM case_reports \
             WHERE tenant_id = $1 AND case_id = $2",
        )
        .bind(tenant_id)
        .bind(case_id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| {
            Ok(StoredReport {
                report: r.try_get("report")?,
                txt: r.try_get("txt")?,
                submitted_by: r.try_get("submitted_by")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()
    }

    /// The tenant's case settings (JSON text), if it stored any.
    pub async fn case_settings(&self, tenant_id: &str) -> Result<Option<String>, StoreError> {
        sqlx::query("SELECT settings FROM case_settings WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get("settings").map_err(StoreError::from))
            .transpose()
    }

    /// Replaces the tenant's case settings and audits it, together.
    pub async fn set_case_settings(
        &self,
        tenant_id: &str,
        settings: &str,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO case_settings (tenant_id, settings, updated_by, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id) DO UPDATE SET \
             settings = excluded.settings, updated_by = excluded.updated_by, \
             updated_at = excluded.updated_at",
        )
        .bind(tenant_id)
        .bind(settings)
        .bind(&audit.actor)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        append_audit(&mut tx, tenant_id, now, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The fraud label of an assessment, if it has one.
    pub async fn fraud_label(
        &self,
        tenant_id: &str,
        session_id: &str,
    ) -> Result<Option<FraudLabel>, StoreError> {
        sqlx::query(&format!(
            "SELECT {LABEL_COLUMNS} FROM fraud_labels WHERE tenant_id = $1 AND session_id = $2"
        ))
        .bind(tenant_id)
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(label_from_row)
        .transpose()
    }

    /// The fraud reports (labels) that opened or feed a case of `tenant_id`.
    pub async fn case_fraud_labels(
        &self,
        tenant_id: &str,
        case_id: &str,
    ) -> Result<Vec<FraudLabel>, StoreError> {
        sqlx::query(&format!(
            "SELECT {LABEL_COLUMNS} FROM fraud_labels WHERE tenant_id = $1 AND case_id = $2 \
             ORDER BY created_at, session_id"
        ))
        .bind(tenant_id)
        .bind(case_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(label_from_row)
        .collect()
    }

    /// The tenant's labels of assessments made at or after `since`.
    pub async fn fraud_labels_since(
        &self,
        tenant_id: &str,
        since: i64,
    ) -> Result<Vec<FraudLabel>, StoreError> {
        sqlx::query(&format!(
            "SELECT {LABEL_COLUMNS} FROM fraud_labels WHERE tenant_id = $1 AND assessed_at >= $2"
        ))
        .bind(tenant_id)
        .bind(since)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(label_from_row)
        .collect()
    }

    /// The `rules` column (JSON) of the tenant's live assessments of
    /// `flow` made at or after `since`, with their session ids, read
    /// `batch` at a time through `each` (rule statistics).
    pub async fn assessment_rules_since(
        &self,
        tenant_id: &str,
        since: i64,
        mut each: impl FnMut(&str, &str),
    ) -> Result<u64, StoreError> {
        const BATCH: i64 = 2_000;
        let mut after: (i64, String) = (since, String::new());
        let mut seen = 0u64;
        loop {
            let rows = sqlx::query(
                "SELECT session_id, rules, created_at FROM assessments WHERE tenant_id = $1 \
                 AND simulated = 0 AND (created_at > $2 OR (created_at = $2 AND session_id > $3)) \
                 ORDER BY created_at, session_id LIMIT $4",
            )
            .bind(tenant_id)
            .bind(after.0)
            .bind(&after.1)
            .bind(BATCH)
            .fetch_all(&self.pool)
            .await?;
            for r in &rows {
                let session: String = r.try_get("session_id")?;
                let rules: String = r.try_get("rules")?;
                each(&session, &rules);
                seen += 1;
                after = (r.try_get("created_at")?, session);
            }
            if (rows.len() as i64) < BATCH {
                return Ok(seen);
            }
        }
    }

    /// The tenant's latest live assessment carrying the bank's transaction
    /// id `payment_id`.
    pub async fn assessment_by_payment_id(
        &self,
        tenant_id: &str,
        payment_id: &str,
    ) -> Result<Option<StoredAssessment>, StoreError> {
        sqlx::query(&format!(
            "SELECT {ASSESSMENT_COLUMNS} FROM assessments WHERE tenant_id = $1 \
             AND payment_id = $2 AND simulated = 0 ORDER BY created_at DESC, session_id DESC \
             LIMIT 1"
        ))
        .bind(tenant_id)
        .bind(payment_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(assessment_from_row)
        .transpose()
    }

    /// Writes a fraud report in one transaction: the label (unless the
    /// assessment has one: then nothing is written), the case linked to the
    /// assessment, the blocklist entries (an equal existing entry is linked
    /// instead of duplicated), the events and the audit entry.
    /// `outbox` makes the events from the entries linked.
    pub async fn report_fraud(
        &self,
        w: &FraudReportWrite,
        outbox: impl FnOnce(&[BlocklistEntry]) -> Vec<OutboxRow>,
    ) -> Result<FraudReportOutcome, StoreError> {
        let tenant_id = &w.case.tenant_id;
        // Its entries are blocklist writes: the tenant's counter first.
        let mut tx = self.blocklist_write(&[tenant_id]).await?;
        let l = &w.label;
        // The label refers to the case: the case goes first. A label that
        // exists (an earlier or concurrent report of the assessment) makes
        // the insert a no-op, and the whole transaction is rolled back.
        insert_case(&mut tx, &w.case).await?;
        let inserted = sqlx::query(&format!(
            "INSERT INTO fraud_labels (tenant_id, {LABEL_COLUMNS}) VALUES {} \
             ON CONFLICT (tenant_id, session_id) DO NOTHING",
            values(Params::Numbered, 1, 11, "")
        ))
        .bind(tenant_id)
        .bind(&l.session_id)
        .bind(&l.flow)
        .bind(&l.reason)
        .bind(&l.description)
        .bind(&l.evidence_urls)
        .bind(&l.case_id)
        .bind(&l.reported_by)
        .bind(l.confirmed_at)
        .bind(l.assessed_at)
        .bind(l.created_at)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from_write)?;
        if inserted.rows_affected() != 1 {
            tx.rollback().await?;
            return self
                .fraud_label(tenant_id, &l.session_id)
                .await?
                .map(FraudReportOutcome::AlreadyReported)
                .ok_or_else(|| StoreError::Corrupt("fraud label vanished".into()));
        }
        link_sessions(&mut tx, &w.case, std::slice::from_ref(&l.session_id)).await?;
        let mut entries = Vec::with_capacity(w.entries.len());
        for e in &w.entries {
            let sql = format!(
                "INSERT INTO blocklist_entries ({}) VALUES {} \
                 ON CONFLICT (tenant_id, list_type, value, flow_scope) DO NOTHING",
                super::blocklists::COLUMNS,
                values(Params::Numbered, 1, 12, "")
            );
            bind_entry(sqlx::query(&sql), e).execute(&mut *tx).await?;
            let row = sqlx::query(&format!(
                "SELECT {} FROM blocklist_entries WHERE tenant_id = $1 AND list_type = $2 \
                 AND value = $3 AND flow_scope = $4",
                super::blocklists::COLUMNS
            ))
            .bind(tenant_id)
            .bind(&e.list_type)
            .bind(&e.value)
            .bind(&e.flow_scope)
            .fetch_one(&mut *tx)
            .await?;
            let entry = entry_from_row(&row)?;
            sqlx::query(
                "INSERT INTO case_blocklist_entries (case_id, entry_id) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&w.case.id)
            .bind(&entry.id)
            .execute(&mut *tx)
            .await?;
            entries.push(entry);
        }
        insert_outbox(&mut tx, tenant_id, &outbox(&entries), w.case.created_at).await?;
        append_audit(&mut tx, tenant_id, w.case.created_at, &w.audit).await?;
        tx.commit().await?;
        // The order a later read of the case's entries has.
        entries.sort_by(|a, b| {
            (&a.list_type, &a.value, &a.flow_scope).cmp(&(&b.list_type, &b.value, &b.flow_scope))
        });
        Ok(FraudReportOutcome::Created {
            case: Box::new(w.case.clone()),
            entries,
        })
    }
}
