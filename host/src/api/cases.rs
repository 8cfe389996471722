//! Cases (§7), their settings, report fraud (§8) and per-rule label
//! statistics. Reading needs `cases:read`, changing `cases:write`, the
//! settings `settings:write`, a fraud report `fraud:report`, rule
//! statistics `rules:read`.
use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    auth::Auth,
    error::ApiError,
    extract::{Body, Path, Query, parse_json},
    state::App,
};
use crate::{
    cases::{
        CaseDetail, CaseFields, CaseSettings, Cases, JURISDICTIONS, ListQuery, PRIORITIES,
        STATUSES,
        fraud::{FraudReportFields, FraudReported, VersionStats},
        major,
    },
    domain::{now_ms, rfc3339_ms},
    store::{BlocklistEntry, CaseChange, CaseNote, CaseRecord, FraudLabel, StoredAssessment},
};

pub fn router() -> Router<App> {
    Router::new()
        .route("/api/v1/cases", get(list).post(create))
        .route("/api/v1/cases/stats", get(stats))
        .route("/api/v1/cases/{id}", get(show).patch(update))
        .route("/api/v1/cases/{id}/notes", post(add_note))
        .route("/api/v1/cases/{id}/submit", post(submit))
        .route("/api/v1/cases/{id}/report", get(report))
        .route("/api/v1/settings/cases", get(settings).put(put_settings))
        .route("/api/v1/report-fraud", post(report_fraud))
        .route("/api/v1/rules/{rule_id}/stats", get(rule_stats))
}

fn amount_json(minor: Option<i64>, currency: Option<&str>) -> Value {
    match (minor, currency) {
        (Some(m), Some(c)) => json!({"minor": m, "major": major(m, c), "currency": c}),
        _ => Value::Null,
    }
}

fn case_json(c: &CaseRecord, now: i64) -> Value {
    let open = matches!(c.status.as_str(), "borrador" | "en_revision");
    let subject: Value = c
        .subject
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    json!({
        "id": c.id,
        "reference_number": c.reference_number,
        "status": c.status,
        "priority": c.priority,
        "jurisdiction": c.jurisdiction,
        "incident_type": c.incident_type,
        "incident_date": c.incident_date.map(|d| rfc3339_ms(d)[..10].to_owned()),
        "detected_at": rfc3339_ms(c.detected_at),
        "due_at": rfc3339_ms(c.due_at),
        "overdue": open && c.due_at < now,
        "amount": amount_json(c.amount_minor, c.currency.as_deref()),
        "currency": c.currency,
        "victim_name": c.victim_name,
        "victim_email": c.victim_email,
        "description": c.description,
        "unusual_reasons": c.unusual_reasons,
        "subject": subject,
        "resolution": c.resolution,
        "source": c.source,
        "version": c.version,
        "created_by": c.created_by,
        "reviewed_by": c.reviewed_by,
        "submitted_by": c.submitted_by,
        "submitted_at": c.submitted_at.map(rfc3339_ms),
        "created_at": rfc3339_ms(c.created_at),
        "updated_at": rfc3339_ms(c.updated_at),
    })
}

fn note_json(n: &CaseNote) -> Value {
    json!({"id": n.id, "author": n.author, "body": n.body, "created_at": rfc3339_ms(n.created_at)})
}

fn change_json(h: &CaseChange) -> Value {
    json!({
        "version": h.version,
        "field": h.field,
        "from": h.old_value,
        "to": h.new_value,
        "actor": h.actor,
        "at": rfc3339_ms(h.at),
    })
}

fn linked_json(a: &StoredAssessment) -> Value {
    let response: Value = serde_json::from_str(&a.response).unwrap_or(Value::Null);
    json!({
        "session_id": a.session_id,
        "flow": a.flow,
        "decision": a.decision,
        "risk_score": a.risk_score,
        "signals": response.get("signals").cloned().unwrap_or_else(|| json!([])),
        "signal_details": response.get("signal_details").cloned().unwrap_or_else(|| json!([])),
        "blocked_by": response.get("blocked_by").cloned().unwrap_or(Value::Null),
        "amount": response.get("amount").cloned().unwrap_or(Value::Null),
        "created_at": rfc3339_ms(a.created_at),
    })
}

fn entry_json(e: &BlocklistEntry) -> Value {
    super::blocklists::entry_json(e)
}

fn label_json(l: &FraudLabel) -> Value {
    let evidence: Value = serde_json::from_str(&l.evidence_urls).unwrap_or_else(|_| json!([]));
    json!({
        "session_id": l.session_id,
        "flow": l.flow,
        "reason": l.reason,
        "description": l.description,
        "evidence_urls": evidence,
        "reported_by": l.reported_by,
        "reported_at": rfc3339_ms(l.created_at),
        "confirmed_at": l.confirmed_at.map(rfc3339_ms),
    })
}

fn detail_json(d: &CaseDetail, now: i64) -> Value {
    let mut v = case_json(&d.case, now);
    if let Value::Object(map) = &mut v {
        map.insert("notes".into(), d.notes.iter().map(note_json).collect());
        map.insert(
            "history".into(),
            d.history.iter().map(change_json).collect(),
        );
        map.insert(
            "assessments".into(),
            d.assessments.iter().map(linked_json).collect(),
        );
        map.insert(
            "blocklist_entries".into(),
            d.blocklist_entries.iter().map(entry_json).collect(),
        );
        map.insert(
            "fraud_reports".into(),
            d.fraud_reports.iter().map(label_json).collect(),
        );
    }
    v
}

async fn create(
    State(cases): State<Cases>,
    auth: Auth,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    auth.require("cases:write")?;
    let fields: CaseFields = parse_json(&body)?;
    let now = now_ms();
    let created = cases
        .create(auth.tenant_id(), &auth.record.key.id, fields, now)
        .await?;
    let detail = cases.detail(auth.tenant_id(), &created.id).await?;
    Ok((StatusCode::CREATED, Json(detail_json(&detail, now))))
}

async fn list(
    State(cases): State<Cases>,
    auth: Auth,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    auth.require("cases:read")?;
    let now = now_ms();
    let (page, total, filter) = cases.list(auth.tenant_id(), q, now).await?;
    Ok(Json(json!({
        "data": page.iter().map(|c| case_json(c, now)).collect::<Vec<_>>(),
        "total": total,
        "limit": filter.limit,
        "offset": filter.offset,
    })))
}

async fn stats(State(cases): State<Cases>, auth: Auth) -> Result<Json<Value>, ApiError> {
    auth.require("cases:read")?;
    let c = cases.stats(auth.tenant_id(), now_ms()).await?;
    // Every value of each enum is listed, zero or not.
    let spread = |all: &[&str], counts: &[(String, i64)]| -> Value {
        all.iter()
            .map(|k| {
                let n = counts.iter().find(|(v, _)| v == k).map_or(0, |(_, n)| *n);
                ((*k).to_owned(), Value::from(n))
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    Ok(Json(json!({
        "total": c.total,
        "by_status": spread(STATUSES, &c.by_status),
        "by_priority": spread(PRIORITIES, &c.by_priority),
        "by_jurisdiction": spread(JURISDICTIONS, &c.by_jurisdiction),
        "overdue": c.overdue,
        "due_soon": c.due_soon,
        "due_soon_days": crate::cases::DUE_SOON_DAYS,
    })))
}

async fn show(
    State(cases): State<Cases>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    auth.require("cases:read")?;
    let detail = cases.detail(auth.tenant_id(), &id).await?;
    Ok(Json(detail_json(&detail, now_ms())))
}

async fn update(
    State(cases): State<Cases>,
    auth: Auth,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    auth.require("cases:write")?;
    let fields: CaseFields = parse_json(&body)?;
    let now = now_ms();
    cases
        .update(auth.tenant_id(), &id, &auth.record.key.id, fields, now)
        .await?;
    let detail = cases.detail(auth.tenant_id(), &id).await?;
    Ok(Json(detail_json(&detail, now)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    body: Option<String>,
}

async fn add_note(
    State(cases): State<Cases>,
    auth: Auth,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    auth.require("cases:write")?;
    let note: NoteBody = parse_json(&body)?;
    let created = cases
        .add_note(
            auth.tenant_id(),
            &id,
            &auth.record.key.id,
            note.body,
            now_ms(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(note_json(&created))))
}

fn report_json(case: &CaseRecord, report: &str, now: i64) -> Value {
    let doc: Value = serde_json::from_str(report).unwrap_or(Value::Null);
    json!({"case": case_json(case, now), "report": doc})
}

async fn submit(
    State(cases): State<Cases>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    auth.require("cases:write")?;
    let now = now_ms();
    let (case, report) = cases
        .submit(auth.tenant_id(), &id, &auth.record.key.id, now)
        .await?;
    Ok(Json(report_json(&case, &report.report, now)))
}

#[derive(Debug, Deserialize)]
struct ReportQuery {
    format: Option<String>,
}

async fn report(
    State(cases): State<Cases>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    auth.require("cases:read")?;
    let stored = cases.report(auth.tenant_id(), &id).await?;
    match q.format.as_deref() {
        None | Some("json") => {
            let case = cases.get(auth.tenant_id(), &id).await?;
            Ok(Json(report_json(&case, &stored.report, now_ms())).into_response())
        }
        Some("txt") => {
            let txt = stored.txt.ok_or_else(|| {
                ApiError::validation(
                    "format",
                    "the delimited file layout exists for MX reports only; other jurisdictions \
                     have the JSON report",
                )
            })?;
            Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], txt).into_response())
        }
        Some(other) => Err(ApiError::validation(
            "format",
            format!("`{other}` is not json or txt"),
        )),
    }
}

async fn settings(State(cases): State<Cases>, auth: Auth) -> Result<Json<Value>, ApiError> {
    auth.require("cases:read")?;
    Ok(Json(cases.settings(auth.tenant_id()).await?.effective()))
}

async fn put_settings(
    State(cases): State<Cases>,
    auth: Auth,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    auth.require("settings:write")?;
    let settings: CaseSettings = parse_json(&body)?;
    let saved = cases
        .set_settings(auth.tenant_id(), &auth.record.key.id, settings, now_ms())
        .await?;
    Ok(Json(saved.effective()))
}

fn reported_json(r: &FraudReported) -> Value {
    json!({
        "case_id": r.case.id,
        "reference_number": r.case.reference_number,
        "blocklist_entries": r.entries.iter().map(entry_json).collect::<Vec<_>>(),
    })
}

async fn report_fraud(
    State(cases): State<Cases>,
    auth: Auth,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    auth.require("fraud:report")?;
    let fields: FraudReportFields = parse_json(&body)?;
    let reported = cases
        .report_fraud(auth.tenant_id(), &auth.record.key.id, fields, now_ms())
        .await?;
    let status = if reported.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(reported_json(&reported))))
}

#[derive(Debug, Deserialize)]
struct StatsQuery {
    days: Option<String>,
}

fn version_json(s: &VersionStats) -> Value {
    let ratio = |a: u64, b: u64| {
        if b == 0 {
            Value::Null
        } else {
            json!((a as f64 / b as f64 * 10_000.0).round() / 10_000.0)
        }
    };
    json!({
        "version": s.version,
        "mode": s.mode,
        "assessments": s.assessments,
        "fires": s.fires,
        "labelled_fraud": s.labelled_fraud,
        "fires_labelled_fraud": s.fires_labelled_fraud,
        "fires_confirmed_fraud": s.fires_confirmed_fraud,
        "precision": ratio(s.fires_labelled_fraud, s.fires),
        "recall": ratio(s.fires_labelled_fraud, s.labelled_fraud),
    })
}

async fn rule_stats(
    State(cases): State<Cases>,
    auth: Auth,
    Path(rule_id): Path<String>,
    Query(q): Query<StatsQuery>,
) -> Result<Json<Value>, ApiError> {
    auth.require("rules:read")?;
    let days = match q.days.as_deref() {
        None => 30,
        Some(d) => match d.parse::<i64>() {
            Ok(n) if (1..=365).contains(&n) => n,
            _ => {
                return Err(ApiError::validation(
                    "days",
                    "must be a whole number from 1 to 365",
                ));
            }
        },
    };
    let now = now_ms();
    let versions = cases
        .rule_stats(auth.tenant_id(), &rule_id, days, now)
        .await?;
    Ok(Json(json!({
        "rule_id": rule_id,
        "days": days,
        "since": rfc3339_ms(now - days * 86_400_000),
        "versions": versions.iter().map(version_json).collect::<Vec<_>>(),
    })))
}
