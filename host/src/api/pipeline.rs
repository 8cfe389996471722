//! `GET/PUT /api/v1/pipeline` (§11): per flow, the ordered rules with their
//! params, weight overrides and `on_error`; thresholds; the high-risk
//! country lists and the cross-border thresholds per currency.
//!
//! Reading needs `rules:read`; writing needs `settings:write`. A PUT
//! replaces the configuration of each flow it names (`payout`, `payin`)
//! and keeps the others; the tenant-rules
//! service ([`crate::registry::configure`]) validates it whole before
//! anything is stored. The answer is what now runs.
use axum::{Json, Router, extract::State, routing::get};
use serde::Deserialize;
use serde_json::{Value, json};

use super::state::App;
use super::{auth::Auth, error::ApiError, extract::Body, extract::parse_json};
use crate::{
    flows::{NAMES, Payin, Payout},
    registry::configure::{
        CROSS_BORDER, FlowDescription, FlowRequest, FlowUpdate, HIGH_RISK, PipelineError,
    },
};

pub fn router() -> Router<App> {
    Router::new().route("/api/v1/pipeline", get(show).put(replace))
}

/// A replacement: the flows it names are replaced, the others kept.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutRequest {
    #[serde(default)]
    payout: Option<FlowRequest>,
    #[serde(default)]
    payin: Option<FlowRequest>,
}

fn pipeline_error(e: PipelineError) -> ApiError {
    match e {
        PipelineError::Invalid { field, message } => ApiError::validation(&field, message),
        PipelineError::UnknownTenant => ApiError::NotFound("tenant"),
        PipelineError::Store(e) => e.into(),
        other => ApiError::Internal(other.into()),
    }
}

fn flow_view(app: &App, flow: &FlowDescription) -> Value {
    let (configured, pipeline) = (&flow.configured, &flow.pipeline);
    let steps: Vec<Value> = pipeline
        .steps
        .iter()
        .map(|s| {
            let id = &s.rule.metadata.id;
            let configured_step = configured
                .as_ref()
                .and_then(|c| c.rules.iter().find(|r| &r.rule_id == id));
            json!({
                "rule_id": id,
                "source": if app.rules.builtins.contains_key(id) { "builtin" } else { "tenant" },
                "version": s.rule.metadata.version,
                "digest": s.rule.digest,
                "mode": s.mode.as_str(),
                "enabled": true,
                "params": s.params,
                "param_overrides": configured_step.map(|c| Value::Object(c.params.clone())).unwrap_or(json!({})),
                "ignored_param_overrides": s.ignored_overrides,
                "weights": s.weights,
                "on_error": s.on_error,
                "signals": s.rule.metadata.signals,
            })
        })
        .collect();
    // Disabled steps are configured but do not run.
    let disabled: Vec<Value> = configured
        .as_ref()
        .map(|c| {
            c.rules
                .iter()
                .filter(|r| !r.enabled)
                .map(|r| json!({ "rule_id": r.rule_id, "enabled": false }))
                .collect()
        })
        .unwrap_or_default();
    let param = |rule: &str, key: &str| {
        pipeline
            .steps
            .iter()
            .find(|s| s.rule.metadata.id == rule)
            .and_then(|s| s.params.get(key).cloned())
    };
    json!({
        "rules": steps,
        "disabled_rules": disabled,
        "thresholds": pipeline.thresholds,
        "deadline_ms": pipeline.deadline.as_millis() as u64,
        "high_risk_countries": {
            "black_list": param(HIGH_RISK, "black_list"),
            "grey_list": param(HIGH_RISK, "grey_list"),
        },
        "cross_border_thresholds": param(CROSS_BORDER, "thresholds"),
        "customized": configured.is_some(),
    })
}

async fn show(State(app): State<App>, auth: Auth) -> Result<Json<Value>, ApiError> {
    auth.require("rules:read")?;
    let tenant = app
        .store
        .tenant(auth.tenant_id())
        .await?
        .ok_or(ApiError::NotFound("tenant"))?;
    let described = app
        .rules
        .describe_pipeline(&tenant, NAMES)
        .await
        .map_err(pipeline_error)?;
    let mut body = serde_json::Map::new();
    for (flow, description) in &described.flows {
        body.insert((*flow).to_owned(), flow_view(&app, description));
    }
    body.insert(
        "activations".into(),
        described
            .activations
            .iter()
            .map(|a| {
                json!({
                    "rule_id": a.rule_id, "version": a.version, "mode": a.mode, "digest": a.digest,
                })
            })
            .collect(),
    );
    body.insert("revision".into(), json!(described.revision));
    Ok(Json(Value::Object(body)))
}

async fn replace(
    State(app): State<App>,
    auth: Auth,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    auth.require("settings:write")?;
    let req: PutRequest = parse_json(&body)?;
    let mut updates = Vec::new();
    if let Some(payout) = req.payout {
        updates.push(FlowUpdate::new::<Payout>(payout));
    }
    if let Some(payin) = req.payin {
        updates.push(FlowUpdate::new::<Payin>(payin));
    }
    if updates.is_empty() {
        return Err(ApiError::validation(
            "body",
            format!("name at least one flow to replace: {}", NAMES.join(", ")),
        ));
    }
    app.rules
        .replace_pipelines(auth.tenant_id(), &auth.record.key.id, updates)
        .await
        .map_err(pipeline_error)?;
    app.auth_cache.forget_tenant(auth.tenant_id());
    show(State(app), auth).await
}
