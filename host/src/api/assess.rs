//! `POST /api/v1/assess/payout` (§2), `POST /api/v1/assess` (pay-in, §3)
//! and their catalogs. The handlers authenticate, read the
//! `Idempotency-Key` header and hand the body to the assess service
//! (`assess/`), which does the rest.
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
    flows::{AssessFlow, Payin, Payout, payin::SEGMENTS, payout::CHANNELS},
    pipeline::FieldWarning,
};

pub fn router() -> Router<App> {
    Router::new()
        .route("/api/v1/assess/payout", post(assess::<Payout>).get(catalog))
        .route("/api/v1/assess", post(assess::<Payin>).get(payin_catalog))
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

/// `POST /api/v1/assess/payout` (secret keys) and `POST /api/v1/assess`
/// (pay-in: secret or publishable keys).
async fn assess<F: AssessFlow>(
    State(app): State<App>,
    auth: Auth,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    if F::PUBLISHABLE_KEYS {
        auth.require_allowing_publishable("assess")?;
    } else {
        auth.require("assess")?;
    }
    let answer = app
        .assessor
        .assess::<F>(&auth.record.tenant, &body, idempotency_header(&headers)?)
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

/// The signals the default pipeline of `flow` can raise.
fn signal_catalog(app: &App, flow: &str) -> (Vec<Value>, Value) {
    let pipeline = app.rules.default_pipeline(flow);
    let mut signals = Vec::new();
    for step in &pipeline.steps {
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
    let t = pipeline.thresholds;
    let thresholds = json!({
        "approve": format!("< {}", t.review),
        "review": format!(">= {} and < {}", t.review, t.challenge),
        "challenge": format!(">= {} and < {}", t.challenge, t.decline),
        "decline": format!(">= {}", t.decline),
        "hard_block": "a blocklist hit with severity block forces decline with risk_score 100",
    });
    (signals, thresholds)
}

/// How amounts are sent, for every flow.
fn amount_encoding(app: &App) -> Value {
    json!({
        "field": "amount",
        "types": ["number", "decimal string"],
        "format": "digits with an optional decimal part, as a JSON number or string (2500000, \"25000.00\"); no exponent, sign, spaces or separators",
        "amount_unit": { "values": ["minor", "major"], "default": "minor" },
        "minor": "non-negative integer in the currency's minor units; any decimal point (even .00) is a 400 VALIDATION_ERROR: send minor units as an integer or set amount_unit to major",
        "major": "at most the currency's ISO 4217 exponent of decimals (MXN 2, CLP 0, KWD 3)",
        "max_major": app.config.max_amount_major.to_string(),
        "echo": "the response echoes the amount as {minor, major, currency}",
    })
}

/// Idempotency, for every flow.
fn idempotency_guidance() -> Value {
    json!({
        "header": "Idempotency-Key",
        "body_field": "idempotency_key",
        "ttl_hours": 24,
        "replay": "same key and body returns the stored response with the same session_id",
        "conflict": "same key with a different body returns 409 IDEMPOTENCY_KEY_REUSED",
        "guidance": "send one key per payment attempt (your payment_id works); retry a timeout or a 5xx with the same key and body",
    })
}

/// What to do on each transient answer, for every flow.
fn resilience() -> Value {
    json!({
        "ASSESS_TIMEOUT": "504: the pipeline exceeded its deadline; retry with the same idempotency key",
        "ASSESS_MAINTENANCE": "503: the service is not ready; apply your documented fail-open/closed policy",
        "RATE_LIMITED": "429: honour Retry-After",
        "RATE_LIMIT_STORE_UNAVAILABLE": "503: the shared rate-limit store is down; retry with backoff",
    })
}

/// [`resilience`] plus one flow-specific note.
fn resilience_with(key: &str, note: &str) -> Value {
    let mut r = resilience();
    r[key] = json!(note);
    r
}

/// `GET /api/v1/assess`: the pay-in catalog.
async fn payin_catalog(State(app): State<App>) -> Json<Value> {
    let (signals, thresholds) = signal_catalog(&app, Payin::NAME);
    let segments: serde_json::Map<String, Value> = SEGMENTS
        .iter()
        .map(|s| {
            (
                s.segment.to_owned(),
                json!({
                    "required": s.required,
                    "recommended": s.recommended,
                    "not_applicable": s.not_applicable,
                }),
            )
        })
        .collect();
    Json(json!({
        "version": "2026-12-01",
        "flow": Payin::NAME,
        "endpoint": "POST /api/v1/assess",
        "keys": "secret (clm_sk_) or publishable (clm_pub_) with the assess permission",
        "amount_encoding": amount_encoding(&app),
        "field_requirements_by_segment": segments,
        "fields": {
            "amount": "required", "currency": "required (ISO 4217)",
            "payment_id": "your core or switch reference", "customer_id": "your account or party id",
            "order_id": "merchant order (comercio, psp)", "email": "the payer's e-mail",
            "phone": "E.164, e.g. +525512345678", "session_id": "your own session id",
            "payment_method": "{type, card_bin (6 or 8 digits), card_last4, card_country (ISO 3166-1), card_brand, card_hash}",
            "device": "{ip (IPv4 or IPv6), fingerprint, user_agent, timezone}",
            "billing": "{country (ISO 3166-1), city, postal_code}",
            "metadata": "a JSON object, stored with the assessment",
        },
        "card_data": {
            "accepted": ["payment_method.card_bin", "payment_method.card_last4", "payment_method.card_hash"],
            "refused": "a full card number (12 to 19 digits passing the Luhn check) in any field is a 400 VALIDATION_ERROR naming the field; it is never stored or logged",
            "card_hash": "a keyed hash of the card number that you compute (e.g. HMAC-SHA-256 with a key only your systems hold), so one card is one value across requests without aduana ever seeing the number",
        },
        "velocity": {
            "entities": ["customer", "card (card_hash, else card_bin + card_last4)", "ip", "device", "email"],
            "windows": ["1h", "24h", "7d"],
            "steps": "counted in five-minute steps: a window covers at least its length and at most five minutes more",
            "counted": "every live pay-in assessment (declines included), once per idempotent request; simulations never count",
        },
        "signals": signals,
        "thresholds": thresholds,
        "idempotency": idempotency_guidance(),
        "resilience": resilience(),
        "field_warnings": {
            "raised_for": ["fields your segment should send and did not", "fields that do not apply to your segment", "rules that did not complete"],
        },
    }))
}

/// `GET /api/v1/assess/payout`: what an integrator needs to call it.
async fn catalog(State(app): State<App>) -> Json<Value> {
    let (signals, thresholds) = signal_catalog(&app, Payout::NAME);
    Json(json!({
        "version": "2026-11-01",
        "flow": Payout::NAME,
        "endpoint": "POST /api/v1/assess/payout",
        "amount": amount_encoding(&app),
        "required_fields": ["amount", "currency", "beneficiary (one of country, name, clabe, iban, account_hash, id)"],
        "recommended_fields": ["origin.account_id", "origin.country", "payout.channel"],
        "channel_values": CHANNELS,
        "channel_aliases": { "payout.rail": "payout.channel" },
        "signals": signals,
        "thresholds": thresholds,
        "idempotency": idempotency_guidance(),
        "resilience": resilience_with(
            "account_identifiers",
            "invalid CLABE/IBAN/BIC never cause a 400; they raise payout_invalid_beneficiary_account",
        ),
        "field_warnings": {
            "shape": FieldWarning { field: "origin.country".into(), message: "recommended field is missing".into() },
            "raised_for": ["missing recommended fields", "account identifiers failing their check", "rules that did not complete"],
        },
    }))
}
