//! Stored assessments: `GET /api/v1/assessments/{session_id}` explains one
//! (every rule that ran, active or shadow, with version, digest, outcome,
//! signals, fuel and duration); `POST …/replay` re-runs it and reports
//! whether the result is identical. Both need `rules:read`.
use axum::{
    Json, Router,
    extract::State,
    routing::{get, post},
};
use serde_json::{Value, json};

use super::state::App;
use super::{auth::Auth, error::ApiError, extract::Path};
use crate::{domain::rfc3339_ms, pipeline::RuleRecord, replay};

pub fn router() -> Router<App> {
    Router::new()
        .route("/api/v1/assessments/{session_id}", get(explain))
        .route("/api/v1/assessments/{session_id}/replay", post(replay_one))
}

async fn explain(
    State(app): State<App>,
    auth: Auth,
    Path(session_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    auth.require("rules:read")?;
    let a = app
        .store
        .assessment(auth.tenant_id(), &session_id)
        .await?
        .ok_or(ApiError::NotFound("assessment"))?;
    let parse = |t: &str| serde_json::from_str::<Value>(t).unwrap_or(Value::Null);
    let rules: Vec<RuleRecord> = serde_json::from_str(&a.rules).unwrap_or_default();
    let explained: Vec<Value> = rules
        .iter()
        .map(|r| {
            json!({
                "rule_id": r.rule_id,
                "version": r.rule_version,
                "digest": r.digest,
                "mode": r.mode,
                "outcome": r.outcome,
                "reason": r.reason,
                "signals": r.signal_details,
                "counted": r.mode == crate::pipeline::Mode::Active,
                "fuel_used": r.fuel_used,
                "duration_us": r.duration_us,
                "peak_memory_bytes": r.peak_memory_bytes,
                "params": r.params,
                "weights": r.weights,
                "on_error": r.on_error,
            })
        })
        .collect();
    Ok(Json(json!({
        "session_id": a.session_id,
        "flow": a.flow,
        "decision": a.decision,
        "risk_score": a.risk_score,
        "created_at": rfc3339_ms(a.created_at),
        "thresholds": parse(&a.thresholds),
        "rules": explained,
        "input": parse(&a.input),
        "context": parse(&a.context),
        "response": parse(&a.response),
    })))
}

async fn replay_one(
    State(app): State<App>,
    auth: Auth,
    Path(session_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    auth.require("rules:read")?;
    let a = app
        .store
        .assessment(auth.tenant_id(), &session_id)
        .await?
        .ok_or(ApiError::NotFound("assessment"))?;
    let report = replay::replay(&app.rules, &a)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(Json(
        serde_json::to_value(report).map_err(|e| ApiError::Internal(e.into()))?,
    ))
}
