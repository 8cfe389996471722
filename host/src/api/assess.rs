//! `POST /api/v1/assess/payout` (§2) and its catalog. The handler
//! authenticates, reads the `Idempotency-Key` header and hands the body to
//! the assess service (`assess/`), which does the rest.
use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};

use super::state::App;
use super::{auth::Auth, error::ApiError, extract::Body};
use crate::{
    flows::{AssessFlow, Payout, payout::CHANNELS},
    pipeline::FieldWarning,
};

pub fn router() -> Router<App> {
    Router::new().route("/api/v1/assess/payout", post(assess_payout).get(catalog))
}

fn json_response(body: String, replayed: bool) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
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

/// `POST /api/v1/assess/payout`.
async fn assess_payout(
    State(app): State<App>,
    auth: Auth,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    auth.require("assess")?;
    let answer = app
        .assessor
        .assess::<Payout>(&auth.record.tenant, &body, idempotency_header(&headers)?)
        .await?;
    Ok(json_response(answer.body, answer.replayed))
}

/// The `Idempotency-Key` header: visible ASCII, at most 255 characters;
/// blank counts as absent.
fn idempotency_header(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map(|s| s.trim().to_owned())
                .map_err(|_| ApiError::validation("Idempotency-Key", "must be visible ASCII"))
        })
        .transpose()?
        .filter(|k| !k.is_empty());
    if key.as_ref().is_some_and(|k| k.len() > 255) {
        return Err(ApiError::validation(
            "Idempotency-Key",
            "is longer than 255 characters",
        ));
    }
    Ok(key)
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
        "flow": Payout::NAME,
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
