//! Read-only evaluation (§4): `POST /api/v1/simulation/payout` (optionally
//! with candidate rule versions) and
//! `POST /api/v1/rules/{rule_id}/versions/{version}/backtest`.
//!
//! Neither writes anything: no assessment, history, idempotency or outbox
//! row. Simulation reads the same context a live assessment would.
use std::sync::Arc;

use axum::{Json, Router, extract::State, routing::post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::state::App;
use super::{
    assess::prefetch_context, auth::Auth, error::ApiError, extract::Body, extract::Path,
    extract::parse_json,
};
use crate::{
    domain::{ids, now_ms, parse_rfc3339_ms},
    pipeline::{Pipeline, payout},
    registry,
    replay::{self, Candidate},
    store::Tenant,
};

pub fn router() -> Router<App> {
    Router::new()
        .route("/api/v1/simulation/payout", post(simulate_payout))
        .route(
            "/api/v1/rules/{rule_id}/versions/{version}/backtest",
            post(backtest),
        )
}

#[derive(Debug, Deserialize)]
struct RuleOverride {
    rule_id: String,
    version: String,
}

#[derive(Debug, Default, Deserialize)]
struct OverridesProbe {
    #[serde(default)]
    rule_overrides: Vec<RuleOverride>,
}

/// The tenant's uploaded `rule_id@version` as it would run if activated
/// now: its own default params with the tenant's accepted overrides, the
/// tenant's weights and `on_error` for that rule.
async fn candidate(
    app: &App,
    tenant: &Tenant,
    rule_id: &str,
    version: &str,
) -> Result<Option<Candidate>, ApiError> {
    let internal = |e: registry::RegistryError| ApiError::Internal(e.into());
    let Some(runnable) = app
        .rules
        .candidate(&tenant.id, rule_id, version)
        .await
        .map_err(internal)?
    else {
        return Ok(None);
    };
    let config = registry::step_config(&tenant.settings, rule_id).map_err(internal)?;
    Ok(Some(Candidate::new(&runnable, &config)))
}

/// `pipeline` with each candidate in place of its rule's steps (active and
/// shadow), or appended when the pipeline does not run the rule.
fn with_candidates(pipeline: &Pipeline, candidates: &[Candidate]) -> Pipeline {
    let mut p = pipeline.clone();
    for c in candidates {
        let at = p
            .steps
            .iter()
            .position(|s| s.rule.metadata.id == c.rule_id)
            .unwrap_or(p.steps.len());
        p.steps.retain(|s| s.rule.metadata.id != c.rule_id);
        p.steps.insert(at.min(p.steps.len()), c.step.fresh());
    }
    p
}

async fn simulate_payout(
    State(app): State<App>,
    auth: Auth,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    auth.require("assess")?;
    let started = std::time::Instant::now();
    let tenant_id = auth.tenant_id().to_owned();
    let (input, warnings) = payout::parse(&body, app.config.max_amount_major)
        .map_err(|e| ApiError::validation(&e.field, e.message))?;
    let probe: OverridesProbe = serde_json::from_slice(&body)
        .map_err(|e| ApiError::validation("rule_overrides", e.to_string()))?;
    let mut candidates = Vec::new();
    for (i, o) in probe.rule_overrides.iter().enumerate() {
        let c = candidate(&app, &auth.record.tenant, &o.rule_id, &o.version)
            .await?
            .ok_or_else(|| {
                ApiError::validation(
                    &format!("rule_overrides[{i}]"),
                    format!("this tenant has no rule {}@{}", o.rule_id, o.version),
                )
            })?;
        candidates.push(c);
    }
    let now = now_ms();
    let context = prefetch_context(&app, &tenant_id, &input, now).await?;
    let exponent = input.money.as_ref().map_or(2, |m| m.currency.exponent());
    let tx = input.to_transaction(exponent, now);
    let pipeline = app
        .rules
        .tenant_pipeline(&auth.record.tenant)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let pipeline = Arc::new(with_candidates(&pipeline, &candidates));
    let verdict =
        super::assess::run_pipeline(&app, &tenant_id, pipeline, tx, context, warnings).await?;
    let major = input
        .money
        .as_ref()
        .map(|m| m.major_string())
        .unwrap_or_default();
    Ok(Json(json!({
        "simulated": true,
        "decision": verdict.decision.as_str(),
        "risk_score": verdict.risk_score,
        "flow": "payout",
        "signals": verdict.signals.iter().map(|s| s.code.as_str()).collect::<Vec<_>>(),
        "signal_details": verdict.signals,
        "blocked_by": verdict.blocked_by,
        "session_id": ids::payout_session_id(now),
        "field_warnings": verdict.field_warnings,
        "latency_ms": (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0,
        "amount": { "minor": input.amount_minor, "major": major, "currency": input.currency },
        "payment_id": input.payment_id,
        "rule_overrides": probe.rule_overrides.iter().map(|o| json!({"rule_id": o.rule_id, "version": o.version})).collect::<Vec<_>>(),
        "rules": verdict.rules,
    })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BacktestRequest {
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    since: Option<String>,
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
    let tenant_id = auth.tenant_id();
    let candidate = candidate(&app, &auth.record.tenant, &rule_id, &version)
        .await?
        .ok_or(ApiError::NotFound("rule version"))?;
    let started = std::time::Instant::now();
    let assessments = app
        .store
        .recent_assessments(tenant_id, "payout", since, limit)
        .await?;
    let report = replay::backtest(&app.rules, tenant_id, &assessments, &candidate).await;
    Ok(Json(json!({
        "rule_id": rule_id,
        "version": version,
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
