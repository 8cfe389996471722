//! `POST /api/v1/assess/payout` (§2) and its catalog.
//!
//! Order of work: authenticate → parse and validate → idempotency check →
//! prefetch the context (list hits, beneficiary history) → run the tenant's
//! pipeline → commit assessment + history + idempotency record + outbox row
//! in one transaction → answer.
use std::{sync::Arc, time::Instant};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::state::App;
use super::{auth::Auth, error::ApiError, extract::Body};
use crate::{
    domain::{ids, now_ms, rfc3339_ms},
    pipeline::{
        Decision, FieldWarning,
        payout::{self, CHANNELS, PayoutInput},
    },
    runtime::{ContextSnapshot, HistoryRecord, ListHitRecord},
    store::{AssessmentWrite, CommitOutcome},
};

pub fn router() -> Router<App> {
    Router::new().route("/api/v1/assess/payout", post(assess_payout).get(catalog))
}

const IDEMPOTENCY_SCOPE: &str = "assess_payout";

fn json_response(status: StatusCode, body: String, replayed: bool) -> Response {
    let mut resp = (status, body).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    resp
}

/// A stable hash of the request: the JSON with keys sorted, the amount
/// replaced by its exact value in minor units, and the idempotency key left
/// out, so re-serializing the same request does not count as a different
/// body.
fn request_hash(body: &[u8], input: &PayoutInput) -> String {
    let canonical = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut obj)) => {
            obj.insert(
                "amount".into(),
                Value::String(format!("{} {}", input.amount_minor, input.currency)),
            );
            obj.remove("amount_unit");
            obj.remove("idempotency_key");
            Value::Object(obj).to_string()
        }
        _ => String::from_utf8_lossy(body).into_owned(),
    };
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// Reads what the rules may ask about: the tenant's list hits for the
/// transaction's identifiers and the origin → beneficiary history.
pub(crate) async fn prefetch_context(
    app: &App,
    tenant_id: &str,
    input: &PayoutInput,
    now: i64,
) -> Result<Arc<ContextSnapshot>, ApiError> {
    let origin_key = input.origin_key();
    let beneficiary_key = input.beneficiary_key();
    let identifiers = input.list_identifiers();
    let (matches, history) = app
        .store
        .assess_context(
            tenant_id,
            "payout",
            &identifiers,
            beneficiary_key.as_deref().map(|b| (origin_key.as_str(), b)),
            now,
        )
        .await?;
    let mut list_hits: Vec<ListHitRecord> = matches
        .into_iter()
        .map(|m| ListHitRecord {
            list_type: m.list_type,
            value: m.value,
            entry_id: m.entry_id,
            severity: m.severity,
        })
        .collect();
    // Most severe first, so a lookup sees `block` before `flag`/`review`.
    let rank = |s: &str| match s {
        "block" => 0,
        "flag" => 1,
        _ => 2,
    };
    list_hits.sort_by(|a, b| {
        rank(&a.severity)
            .cmp(&rank(&b.severity))
            .then(a.entry_id.cmp(&b.entry_id))
    });
    let history = history.map_or_else(HistoryRecord::default, |h| HistoryRecord {
        prior_transfers: u32::try_from(h.transfers).unwrap_or(u32::MAX),
        first_at_ms: Some(h.first_at),
        last_at_ms: Some(h.last_at),
    });
    Ok(Arc::new(ContextSnapshot { list_hits, history }))
}

/// Runs `pipeline` on a blocking worker once the tenant's gate admits it;
/// waiting counts toward the pipeline's deadline (504 past it).
pub(crate) async fn run_pipeline(
    app: &App,
    tenant_id: &str,
    pipeline: Arc<crate::pipeline::Pipeline>,
    tx: crate::runtime::Transaction,
    context: Arc<ContextSnapshot>,
    warnings: Vec<FieldWarning>,
) -> Result<crate::pipeline::Verdict, ApiError> {
    let started = Instant::now();
    let _permit = app
        .gates
        .enter(tenant_id, pipeline.deadline)
        .await
        .ok_or(ApiError::AssessTimeout)?;
    let left = pipeline
        .deadline
        .checked_sub(started.elapsed())
        .ok_or(ApiError::AssessTimeout)?;
    let rt = Arc::clone(&app.runtime);
    tokio::task::spawn_blocking(move || pipeline.run_within(&rt, &tx, &context, warnings, left))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("pipeline worker: {e}")))?
        .map_err(|_| ApiError::AssessTimeout)
}

async fn assess_payout(
    State(app): State<App>,
    auth: Auth,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    auth.require("assess")?;
    let tenant_id = auth.tenant_id().to_owned();
    let (input, warnings) = payout::parse(&body, app.config.max_amount_major)
        .map_err(|e| ApiError::validation(&e.field, e.message))?;

    let header_key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map(|s| s.trim().to_owned())
                .map_err(|_| ApiError::validation("Idempotency-Key", "must be visible ASCII"))
        })
        .transpose()?
        .filter(|k| !k.is_empty());
    if header_key.as_ref().is_some_and(|k| k.len() > 255) {
        return Err(ApiError::validation(
            "Idempotency-Key",
            "is longer than 255 characters",
        ));
    }
    let idem_key = header_key.or_else(|| input.idempotency_key.clone());
    let hash = request_hash(&body, &input);
    let now = now_ms();
    if let Some(key) = &idem_key
        && let Some(rec) = app
            .store
            .idempotency_record(&tenant_id, IDEMPOTENCY_SCOPE, key, now)
            .await?
    {
        if rec.request_hash != hash {
            return Err(ApiError::IdempotencyKeyReused);
        }
        tracing::Span::current().record("session_id", rec.session_id.as_str());
        return Ok(json_response(StatusCode::OK, rec.response, true));
    }

    let session_id = ids::payout_session_id(now);
    tracing::Span::current().record("session_id", session_id.as_str());
    let context = prefetch_context(&app, &tenant_id, &input, now).await?;

    let exponent = input.money.as_ref().map_or(2, |m| m.currency.exponent());
    let tx = input.to_transaction(exponent, now);
    let pipeline = app
        .rules
        .tenant_pipeline(&auth.record.tenant)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let verdict = run_pipeline(
        &app,
        &tenant_id,
        Arc::clone(&pipeline),
        tx,
        context.clone(),
        warnings,
    )
    .await?;

    let major = input
        .money
        .as_ref()
        .map(|m| m.major_string())
        .unwrap_or_default();
    let latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
    let response = json!({
        "decision": verdict.decision.as_str(),
        "risk_score": verdict.risk_score,
        "flow": "payout",
        "signals": verdict.signals.iter().map(|s| s.code.as_str()).collect::<Vec<_>>(),
        "signal_details": verdict.signals,
        "blocked_by": verdict.blocked_by,
        "session_id": session_id,
        "field_warnings": verdict.field_warnings,
        "latency_ms": latency_ms,
        "amount": { "minor": input.amount_minor, "major": major, "currency": input.currency },
        "payment_id": input.payment_id,
        "idempotency_key": idem_key,
    })
    .to_string();

    metrics::counter!("aduana_assessments_total", "flow" => "payout", "decision" => verdict.decision.as_str()).increment(1);
    let event = if verdict.decision == Decision::Decline {
        "transaction.blocked"
    } else {
        "transaction.created"
    };
    let event_id = ids::object_id("evt");
    let outbox_payload = json!({
        "id": event_id,
        "event": event,
        "timestamp": rfc3339_ms(now),
        "data": {
            "session_id": session_id,
            "flow": "payout",
            "decision": verdict.decision.as_str(),
            "risk_score": verdict.risk_score,
            "signals": verdict.signals.iter().map(|s| s.code.as_str()).collect::<Vec<_>>(),
            "blocked_by": verdict.blocked_by,
            "amount": { "minor": input.amount_minor, "major": major, "currency": input.currency },
            "payment_id": input.payment_id,
        }
    })
    .to_string();
    let write = AssessmentWrite {
        session_id: session_id.clone(),
        tenant_id: tenant_id.clone(),
        flow: "payout".to_owned(),
        decision: verdict.decision.as_str().to_owned(),
        risk_score: i64::from(verdict.risk_score),
        payment_id: input.payment_id.clone(),
        input: serde_json::to_string(&input).map_err(|e| ApiError::Internal(e.into()))?,
        context: serde_json::to_string(&*context).map_err(|e| ApiError::Internal(e.into()))?,
        rules: serde_json::to_string(&verdict.rules).map_err(|e| ApiError::Internal(e.into()))?,
        thresholds: serde_json::to_string(&pipeline.thresholds)
            .map_err(|e| ApiError::Internal(e.into()))?,
        response: response.clone(),
        created_at: now,
        idempotency: idem_key
            .clone()
            .map(|k| (IDEMPOTENCY_SCOPE.to_owned(), k, hash.clone())),
        history: match (input.beneficiary_key(), verdict.decision) {
            (Some(b), d) if d != Decision::Decline => Some((input.origin_key(), b)),
            _ => None,
        },
        outbox: Some((event_id, event.to_owned(), outbox_payload)),
    };
    match app.store.commit_assessment(write).await? {
        CommitOutcome::Committed => Ok(json_response(StatusCode::OK, response, false)),
        CommitOutcome::Replayed(rec) => {
            if rec.request_hash != hash {
                return Err(ApiError::IdempotencyKeyReused);
            }
            Ok(json_response(StatusCode::OK, rec.response, true))
        }
    }
}

/// `GET /api/v1/assess/payout`: what an integrator needs to call it.
async fn catalog(State(app): State<App>) -> Json<Value> {
    let mut signals = Vec::new();
    for step in &app.rules.default_pipeline.steps {
        for s in &step.rule.metadata.signals {
            signals.push(json!({
                "code": s.code,
                "default_weight": s.default_weight,
                "description": s.description,
                "rule_id": step.rule.metadata.id,
                "rule_version": step.rule.metadata.version,
            }));
        }
    }
    let t = app.rules.default_pipeline.thresholds;
    Json(json!({
        "version": "2026-11-01",
        "flow": "payout",
        "endpoint": "POST /api/v1/assess/payout",
        "amount": {
            "field": "amount",
            "types": ["number", "decimal string"],
            "format": "digits with an optional decimal part, as a JSON number or string (2500000, \"25000.00\"); no exponent, sign, spaces or separators",
            "amount_unit": { "values": ["minor", "major"], "default": "minor" },
            "minor": "non-negative integer in the currency's minor units; any decimal point (even .00) is a 400 VALIDATION_ERROR: send minor units as an integer or set amount_unit to major",
            "major": "at most the currency's ISO 4217 exponent of decimals (MXN 2, CLP 0, KWD 3)",
            "max_major": app.config.max_amount_major.to_string(),
            "echo": "the response echoes the amount as {minor, major, currency}",
        },
        "required_fields": ["amount", "currency", "beneficiary (one of country, name, clabe, iban, account_hash, id)"],
        "recommended_fields": ["origin.account_id", "origin.country", "payout.channel"],
        "channel_values": CHANNELS,
        "channel_aliases": { "payout.rail": "payout.channel" },
        "signals": signals,
        "thresholds": {
            "approve": format!("< {}", t.review),
            "review": format!(">= {} and < {}", t.review, t.challenge),
            "challenge": format!(">= {} and < {}", t.challenge, t.decline),
            "decline": format!(">= {}", t.decline),
            "hard_block": "a blocklist hit with severity block forces decline with risk_score 100",
        },
        "idempotency": {
            "header": "Idempotency-Key",
            "body_field": "idempotency_key",
            "ttl_hours": 24,
            "replay": "same key and body returns the stored response with the same session_id",
            "conflict": "same key with a different body returns 409 IDEMPOTENCY_KEY_REUSED",
        },
        "resilience": {
            "ASSESS_TIMEOUT": "504: the pipeline exceeded its deadline; retry with the same idempotency key",
            "ASSESS_MAINTENANCE": "503: the service is not ready; apply your documented fail-open/closed policy",
            "RATE_LIMITED": "429: honour Retry-After",
            "account_identifiers": "invalid CLABE/IBAN/BIC never cause a 400; they raise payout_invalid_beneficiary_account",
        },
        "field_warnings": {
            "shape": FieldWarning { field: "origin.country".into(), message: "recommended field is missing".into() },
            "raised_for": ["missing recommended fields", "account identifiers failing their check", "rules that did not complete"],
        },
    }))
}
