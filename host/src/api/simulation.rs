//! Read-only evaluation (§4): `POST /api/v1/simulation/payout` and
//! `POST /api/v1/simulation/assess` (pay-in), optionally with candidate rule
//! versions, and
//! `POST /api/v1/rules/{rule_id}/versions/{version}/backtest`.
//!
//! Neither writes anything: no assessment, history, idempotency or outbox
//! row. Simulation reads the same context a live assessment would.
use axum::{Json, Router, extract::State, routing::post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::state::App;
use super::{auth::Auth, error::ApiError, extract::Body, extract::Path, extract::parse_json};
use crate::{
    domain::parse_rfc3339_ms,
    flows::{AssessFlow, Payin, Payout},
    replay::{self, Candidate},
};

pub fn router() -> Router<App> {
    Router::new()
        .route("/api/v1/simulation/payout", post(simulate::<Payout>))
        .route("/api/v1/simulation/assess", post(simulate::<Payin>))
        .route(
            "/api/v1/rules/{rule_id}/versions/{version}/backtest",
            post(backtest),
        )
}

/// `POST /api/v1/simulation/payout` and `POST /api/v1/simulation/assess`
/// (secret keys only: simulation shows the tenant's rules at work).
async fn simulate<F: AssessFlow>(
    State(app): State<App>,
    auth: Auth,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    auth.require("assess")?;
    Ok(Json(
        app.assessor
            .simulate::<F>(&auth.record.tenant, &body)
            .await?,
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BacktestRequest {
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    since: Option<String>,
    /// The flow whose assessments are re-run (`payout` by default).
    #[serde(default)]
    flow: Option<String>,
}

/// Most assessments one backtest re-runs.
const MAX_BACKTEST: i64 = 10_000;

async fn backtest(
    State(app): State<App>,
    auth: Auth,
    Path((rule_id, version)): Path<(String, String)>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    auth.require("rules:read")?;
    let req: BacktestRequest = if body.iter().all(u8::is_ascii_whitespace) {
        BacktestRequest::default()
    } else {
        parse_json(&body)?
    };
    let limit = req.limit.unwrap_or(1000);
    if !(1..=MAX_BACKTEST).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            format!("must be between 1 and {MAX_BACKTEST}"),
        ));
    }
    let since = match &req.since {
        None => 0,
        Some(s) => parse_rfc3339_ms(s)
            .ok_or_else(|| ApiError::validation("since", "must be an RFC 3339 time"))?,
    };
    let flow = match req.flow.as_deref() {
        None => Payout::NAME,
        Some(f) => crate::flows::NAMES
            .iter()
            .copied()
            .find(|n| *n == f)
            .ok_or_else(|| {
                ApiError::validation(
                    "flow",
                    format!("must be one of {}", crate::flows::NAMES.join(", ")),
                )
            })?,
    };
    let tenant_id = auth.tenant_id();
    let candidate = Candidate::load(&app.rules, &auth.record.tenant, flow, &rule_id, &version)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .ok_or(ApiError::NotFound("rule version"))?;
    let started = std::time::Instant::now();
    let assessments = app
        .store
        .recent_assessments(tenant_id, flow, since, limit)
        .await?;
    let report = replay::backtest(&app.rules, tenant_id, &assessments, &candidate).await;
    Ok(Json(json!({
        "rule_id": rule_id,
        "version": version,
        "flow": flow,
        "digest": candidate.step.rule.digest,
        "params": candidate.step.params,
        "ignored_param_overrides": candidate.step.ignored_overrides,
        "since": req.since,
        "limit": limit,
        "evaluated": report.evaluated,
        "changed": report.changed,
        "errors": report.errors,
        "matrix": report.matrix,
        "sample_changed_session_ids": report.sample_changed_session_ids,
        "duration_ms": started.elapsed().as_millis() as u64,
    })))
}
