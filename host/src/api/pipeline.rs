//! `GET/PUT /api/v1/pipeline` (§11): per flow, the ordered rules with their
//! params, weight overrides and `on_error`; thresholds; and two shortcuts
//! into built-in rule params: the high-risk country lists and the
//! cross-border thresholds per currency.
//!
//! Reading needs `rules:read`; writing needs `settings:write`. A PUT
//! replaces the flow's whole configuration and is validated before
//! anything is stored: rule ids must be built-in or uploaded by this tenant,
//! weights may only name signals the rule declares, params must satisfy the
//! rule's `params_schema` and must be accepted by the rule itself (it is
//! run once on a probe transaction).
use std::{collections::BTreeMap, sync::Arc};

use axum::{Json, Router, extract::State, routing::get};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::state::App;
use super::{auth::Auth, error::ApiError, extract::Body, extract::parse_json};
use crate::{
    domain::{country::Country, money::Currency, now_ms, signing::check_params},
    flows::{AssessFlow, Payout, payout::PayoutInput},
    pipeline::{PipelineConfig, StepConfig, Thresholds},
    registry,
    runtime::{ContextSnapshot, LoadedRule, Outcome},
    store::AuditEvent,
};

pub fn router() -> Router<App> {
    Router::new().route("/api/v1/pipeline", get(show).put(replace))
}

const HIGH_RISK: &str = "high-risk-country";
const CROSS_BORDER: &str = "cross-border-amount";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutRequest {
    payout: FlowRequest,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowRequest {
    rules: Vec<StepConfig>,
    #[serde(default)]
    thresholds: Option<Thresholds>,
    #[serde(default)]
    deadline_ms: Option<u64>,
    #[serde(default)]
    high_risk_countries: Option<HighRisk>,
    /// Currency → threshold in major units (decimal string).
    #[serde(default)]
    cross_border_thresholds: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HighRisk {
    #[serde(default)]
    black_list: Vec<String>,
    #[serde(default)]
    grey_list: Vec<String>,
}

/// A rule the tenant may configure: built-in, or uploaded (its active
/// version, else its shadow one, else its newest), with the manifest's
/// params schema.
struct Configurable {
    rule: Arc<LoadedRule>,
    schema: Option<Value>,
}

async fn configurable(
    app: &App,
    tenant_id: &str,
    rule_id: &str,
) -> Result<Option<Configurable>, ApiError> {
    if let Some(rule) = app.rules.builtins.get(rule_id) {
        return Ok(Some(Configurable {
            rule: Arc::clone(rule),
            schema: None,
        }));
    }
    let versions = app.store.rule_versions(tenant_id, Some(rule_id)).await?;
    // The version that counts, else the one in shadow, else the newest.
    let running = app
        .store
        .activations(tenant_id)
        .await?
        .into_iter()
        .filter(|a| a.rule_id == rule_id)
        .min_by_key(|a| a.mode != "active");
    let chosen = match &running {
        Some(a) => versions.iter().find(|v| v.version == a.version),
        None => versions.last(),
    };
    let Some(v) = chosen else {
        return Ok(None);
    };
    let rule = app
        .rules
        .load_rule(tenant_id, &v.digest)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(Some(Configurable {
        rule,
        schema: registry::params_schema(&v.manifest),
    }))
}

/// Transactions every rule can judge, to try params on: a domestic and a
/// cross-border payout, so rules that stop early on one still read their
/// params on the other.
fn probe_transactions() -> Vec<crate::runtime::Transaction> {
    let mut cross = probe_transaction();
    cross.beneficiary.country = Some("US".into());
    vec![probe_transaction(), cross]
}

fn probe_transaction() -> crate::runtime::Transaction {
    let input = PayoutInput {
        money: None,
        amount_minor: 100_000,
        currency: "MXN".into(),
        transaction_type: None,
        beneficiary: crate::flows::payout::BeneficiaryInput {
            country: Some("MX".into()),
            name: Some("Probe".into()),
            ..Default::default()
        },
        origin: crate::flows::payout::OriginInput {
            account_id: Some("probe".into()),
            country: Some("MX".into()),
        },
        payout: Default::default(),
        payment_id: None,
        customer_id: None,
        idempotency_key: None,
        metadata: None,
    };
    input.to_transaction(2, 0)
}

async fn show(State(app): State<App>, auth: Auth) -> Result<Json<Value>, ApiError> {
    auth.require("rules:read")?;
    let tenant = &auth.record.tenant;
    let tenant = app
        .store
        .tenant(&tenant.id)
        .await?
        .ok_or(ApiError::NotFound("tenant"))?;
    let configured = registry::configured_pipeline(&tenant.settings, Payout::NAME)
        .map_err(|e| ApiError::Internal(e.into()))?;
    let pipeline = app
        .rules
        .tenant_pipeline(&tenant, Payout::NAME)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let activations = app.store.activations(&tenant.id).await?;
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
    Ok(Json(json!({
        "payout": {
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
        },
        "activations": activations.iter().map(|a| json!({
            "rule_id": a.rule_id, "version": a.version, "mode": a.mode, "digest": a.digest,
        })).collect::<Vec<_>>(),
        "revision": tenant.rules_revision,
    })))
}

fn step_param<'a>(
    rules: &'a mut [StepConfig],
    rule_id: &str,
    field: &str,
) -> Result<&'a mut Map<String, Value>, ApiError> {
    rules
        .iter_mut()
        .find(|s| s.rule_id == rule_id)
        .map(|s| &mut s.params)
        .ok_or_else(|| {
            ApiError::validation(
                field,
                format!("`{rule_id}` is not in payout.rules, so this setting has no effect"),
            )
        })
}

async fn replace(
    State(app): State<App>,
    auth: Auth,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    auth.require("settings:write")?;
    let tenant_id = auth.tenant_id().to_owned();
    let req: PutRequest = parse_json(&body)?;
    let flow = req.payout;
    let mut rules = flow.rules;
    // Shortcuts into built-in params.
    if let Some(hr) = flow.high_risk_countries {
        let mut lists = Vec::new();
        for (name, list) in [("black_list", hr.black_list), ("grey_list", hr.grey_list)] {
            let mut codes = Vec::new();
            for (i, c) in list.iter().enumerate() {
                let field = format!("payout.high_risk_countries.{name}[{i}]");
                let country = Country::parse(c).ok_or_else(|| {
                    ApiError::validation(&field, format!("`{c}` is not an ISO 3166-1 alpha-2 code"))
                })?;
                codes.push(Value::String(country.into_string()));
            }
            lists.push((name, codes));
        }
        let params = step_param(&mut rules, HIGH_RISK, "payout.high_risk_countries")?;
        for (name, codes) in lists {
            params.insert(name.into(), Value::Array(codes));
        }
    }
    if let Some(thresholds) = flow.cross_border_thresholds {
        let mut map = Map::new();
        for (code, amount) in thresholds {
            let field = format!("payout.cross_border_thresholds.{code}");
            let currency = Currency::parse(&code).ok_or_else(|| {
                ApiError::validation(&field, format!("`{code}` is not an ISO 4217 currency"))
            })?;
            let value: Decimal = amount.trim().parse().map_err(|_| {
                ApiError::validation(&field, format!("`{amount}` is not a decimal amount"))
            })?;
            if value <= Decimal::ZERO || value.scale() > u32::from(currency.exponent()) {
                return Err(ApiError::validation(
                    &field,
                    format!(
                        "must be positive with at most {} decimals",
                        currency.exponent()
                    ),
                ));
            }
            map.insert(currency.code().to_owned(), Value::String(value.to_string()));
        }
        let params = step_param(&mut rules, CROSS_BORDER, "payout.cross_border_thresholds")?;
        params.insert("thresholds".into(), Value::Object(map));
    }
    let config = PipelineConfig {
        rules,
        thresholds: flow.thresholds.unwrap_or_default(),
        deadline_ms: flow.deadline_ms.unwrap_or(800),
    };
    if !config.thresholds.is_ordered() {
        return Err(ApiError::validation(
            "payout.thresholds",
            "must satisfy review <= challenge <= decline <= 100",
        ));
    }
    if !(10..=10_000).contains(&config.deadline_ms) {
        return Err(ApiError::validation(
            "payout.deadline_ms",
            "must be between 10 and 10000",
        ));
    }
    let probes = probe_transactions();
    let ctx = Arc::new(ContextSnapshot::default());
    for (i, step) in config.rules.iter().enumerate() {
        let field = |f: &str| format!("payout.rules[{i}].{f}");
        if config.rules[..i].iter().any(|s| s.rule_id == step.rule_id) {
            return Err(ApiError::validation(
                &field("rule_id"),
                format!("`{}` appears twice", step.rule_id),
            ));
        }
        let Some(c) = configurable(&app, &tenant_id, &step.rule_id).await? else {
            return Err(ApiError::validation(
                &field("rule_id"),
                format!(
                    "`{}` is neither a built-in rule nor one this tenant uploaded",
                    step.rule_id
                ),
            ));
        };
        let meta = &c.rule.metadata;
        for (code, weight) in &step.weights {
            if !meta.signals.iter().any(|s| &s.code == code) {
                return Err(ApiError::validation(
                    &field("weights"),
                    format!("`{}` does not emit `{code}`", step.rule_id),
                ));
            }
            if *weight > 100 {
                return Err(ApiError::validation(
                    &field("weights"),
                    "weights are at most 100",
                ));
            }
        }
        let mut params = meta.default_params.clone();
        params.extend(step.params.clone());
        let params = Value::Object(params);
        if let Some(schema) = &c.schema
            && let Err(e) = check_params(schema, &params)
        {
            return Err(ApiError::validation(
                &field("params"),
                format!("do not satisfy the rule's params_schema {e}"),
            ));
        }
        for tx in &probes {
            let run = app.runtime.evaluate(&c.rule, tx, &params.to_string(), &ctx);
            if let Outcome::RuleError(reason) = &run.outcome
                && reason.starts_with("invalid params")
            {
                return Err(ApiError::validation(
                    &field("params"),
                    format!("rejected by `{}`: {reason}", step.rule_id),
                ));
            }
        }
    }
    let tenant = app
        .store
        .tenant(&tenant_id)
        .await?
        .ok_or(ApiError::NotFound("tenant"))?;
    let mut settings: Value = serde_json::from_str(&tenant.settings).unwrap_or_else(|_| json!({}));
    if !settings.is_object() {
        settings = json!({});
    }
    let config_value = serde_json::to_value(&config).map_err(|e| ApiError::Internal(e.into()))?;
    let before = settings
        .get("pipeline")
        .and_then(|p| p.get("payout"))
        .cloned();
    settings["pipeline"] = json!({ "payout": config_value.clone() });
    let event = AuditEvent {
        actor: auth.record.key.id.clone(),
        action: "pipeline.updated".into(),
        subject: "payout".into(),
        details: json!({
            "before_sha256": before.map(|b| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b.to_string()))),
            "after": config_value,
        }),
    };
    app.store
        .update_pipeline_settings(&tenant_id, &settings.to_string(), now_ms(), &event)
        .await?;
    app.auth_cache.forget_tenant(&tenant_id);
    // The answer is what now runs.
    show(State(app), auth).await
}
