//! A tenant's pipeline per flow (§11), as a service: what runs and how it
//! was configured ([`TenantRules::describe_pipeline`]), and replacing a
//! flow's configuration ([`TenantRules::replace_pipelines`]).
//!
//! A replacement is validated whole before anything is stored: rule ids
//! must be built-in or uploaded by this tenant, weights may only name
//! signals the rule declares, params must satisfy the rule's
//! `params_schema` and must be accepted by the rule itself (it is run on
//! the flow's probe transactions). Two shortcuts write into built-in
//! params: the high-risk country lists and the cross-border thresholds per
//! currency.
use std::{collections::BTreeMap, sync::Arc};

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{RegistryError, TenantRules, configured_pipeline, params_schema};
use crate::{
    domain::{country::Country, money::Currency, now_ms, signing::check_params},
    flows::AssessFlow,
    pipeline::{Pipeline, PipelineConfig, StepConfig, Thresholds},
    runtime::{ContextSnapshot, LoadedRule, Outcome, Transaction},
    store::{ActivationRecord, AuditEvent, StoreError, Tenant},
};

/// The built-in rule the high-risk country lists configure.
pub const HIGH_RISK: &str = "high-risk-country";
/// The built-in rule the cross-border thresholds configure.
pub const CROSS_BORDER: &str = "cross-border-amount";

/// A flow's whole configuration, as a tenant sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowRequest {
    pub rules: Vec<StepConfig>,
    #[serde(default)]
    pub thresholds: Option<Thresholds>,
    #[serde(default)]
    pub deadline_ms: Option<u64>,
    #[serde(default)]
    pub high_risk_countries: Option<HighRisk>,
    /// Currency → threshold in major units (decimal string).
    #[serde(default)]
    pub cross_border_thresholds: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HighRisk {
    #[serde(default)]
    pub black_list: Vec<String>,
    #[serde(default)]
    pub grey_list: Vec<String>,
}

/// One flow's replacement, with the transactions its params are tried on.
#[derive(Debug)]
pub struct FlowUpdate {
    flow: &'static str,
    probes: Vec<Transaction>,
    request: FlowRequest,
}

impl FlowUpdate {
    pub fn new<F: AssessFlow>(request: FlowRequest) -> Self {
        Self {
            flow: F::NAME,
            probes: F::probe_transactions(),
            request,
        }
    }
}

/// Why a replacement was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The configuration is not valid: `field` is its JSON path.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("the tenant does not exist")]
    UnknownTenant,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{0}")]
    Internal(String),
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> PipelineError {
    PipelineError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// What runs in one flow of a tenant and how it was configured.
#[derive(Debug)]
pub struct FlowDescription {
    /// The tenant's stored configuration, if it has one.
    pub configured: Option<PipelineConfig>,
    /// The compiled pipeline the next assessment runs.
    pub pipeline: Arc<Pipeline>,
}

/// A tenant's pipelines, its activations and its rules revision.
#[derive(Debug)]
pub struct PipelineDescription {
    pub flows: Vec<(&'static str, FlowDescription)>,
    pub activations: Vec<ActivationRecord>,
    pub revision: i64,
}

/// A rule the tenant may configure: built-in, or uploaded (its active
/// version, else its shadow one, else its newest), with the manifest's
/// params schema.
struct Configurable {
    rule: Arc<LoadedRule>,
    schema: Option<Value>,
}

fn step_params<'a>(
    rules: &'a mut [StepConfig],
    rule_id: &str,
    flow: &str,
    field: &str,
) -> Result<&'a mut Map<String, Value>, PipelineError> {
    rules
        .iter_mut()
        .find(|s| s.rule_id == rule_id)
        .map(|s| &mut s.params)
        .ok_or_else(|| {
            invalid(
                field,
                format!("`{rule_id}` is not in {flow}.rules, so this setting has no effect"),
            )
        })
}

/// The request with its shortcuts written into the built-in params, and
/// its thresholds and deadline checked.
fn to_config(flow: &str, req: FlowRequest) -> Result<PipelineConfig, PipelineError> {
    let mut rules = req.rules;
    if let Some(hr) = req.high_risk_countries {
        let mut lists = Vec::new();
        for (name, list) in [("black_list", hr.black_list), ("grey_list", hr.grey_list)] {
            let mut codes = Vec::new();
            for (i, c) in list.iter().enumerate() {
                let country = Country::parse(c).ok_or_else(|| {
                    invalid(
                        format!("{flow}.high_risk_countries.{name}[{i}]"),
                        format!("`{c}` is not an ISO 3166-1 alpha-2 code"),
                    )
                })?;
                codes.push(Value::String(country.into_string()));
            }
            lists.push((name, codes));
        }
        let field = format!("{flow}.high_risk_countries");
        let params = step_params(&mut rules, HIGH_RISK, flow, &field)?;
        for (name, codes) in lists {
            params.insert(name.into(), Value::Array(codes));
        }
    }
    if let Some(thresholds) = req.cross_border_thresholds {
        let mut map = Map::new();
        for (code, amount) in thresholds {
            let field = format!("{flow}.cross_border_thresholds.{code}");
            let currency = Currency::parse(&code)
                .ok_or_else(|| invalid(&field, format!("`{code}` is not an ISO 4217 currency")))?;
            let value: Decimal = amount
                .trim()
                .parse()
                .map_err(|_| invalid(&field, format!("`{amount}` is not a decimal amount")))?;
            if value <= Decimal::ZERO || value.scale() > u32::from(currency.exponent()) {
                return Err(invalid(
                    &field,
                    format!(
                        "must be positive with at most {} decimals",
                        currency.exponent()
                    ),
                ));
            }
            map.insert(currency.code().to_owned(), Value::String(value.to_string()));
        }
        let field = format!("{flow}.cross_border_thresholds");
        let params = step_params(&mut rules, CROSS_BORDER, flow, &field)?;
        params.insert("thresholds".into(), Value::Object(map));
    }
    let config = PipelineConfig {
        rules,
        thresholds: req.thresholds.unwrap_or_default(),
        deadline_ms: req.deadline_ms.unwrap_or(800),
    };
    if !config.thresholds.is_ordered() {
        return Err(invalid(
            format!("{flow}.thresholds"),
            "must satisfy review <= challenge <= decline <= 100",
        ));
    }
    if !(10..=10_000).contains(&config.deadline_ms) {
        return Err(invalid(
            format!("{flow}.deadline_ms"),
            "must be between 10 and 10000",
        ));
    }
    Ok(config)
}

impl TenantRules {
    /// What runs in each of `flows` for `tenant`, as configured.
    pub async fn describe_pipeline(
        &self,
        tenant: &Tenant,
        flows: &[&'static str],
    ) -> Result<PipelineDescription, PipelineError> {
        let mut described = Vec::with_capacity(flows.len());
        for &flow in flows {
            let configured = configured_pipeline(&tenant.settings, flow)?;
            let pipeline = self.tenant_pipeline(tenant, flow).await?;
            described.push((
                flow,
                FlowDescription {
                    configured,
                    pipeline,
                },
            ));
        }
        Ok(PipelineDescription {
            flows: described,
            activations: self.store.activations(&tenant.id).await?,
            revision: tenant.rules_revision,
        })
    }

    async fn configurable(
        &self,
        tenant_id: &str,
        rule_id: &str,
    ) -> Result<Option<Configurable>, PipelineError> {
        if let Some(rule) = self.builtins.get(rule_id) {
            return Ok(Some(Configurable {
                rule: Arc::clone(rule),
                schema: None,
            }));
        }
        let versions = self.store.rule_versions(tenant_id, Some(rule_id)).await?;
        // The version that counts, else the one in shadow, else the newest.
        let running = self
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
        let rule = self.load_rule(tenant_id, &v.digest).await?;
        Ok(Some(Configurable {
            rule,
            schema: params_schema(&v.manifest),
        }))
    }

    /// Checks every step of `config` against the rule it names.
    async fn validate(
        &self,
        tenant_id: &str,
        flow: &str,
        probes: &[Transaction],
        config: &PipelineConfig,
    ) -> Result<(), PipelineError> {
        let ctx = Arc::new(ContextSnapshot::default());
        for (i, step) in config.rules.iter().enumerate() {
            let field = |f: &str| format!("{flow}.rules[{i}].{f}");
            if config.rules[..i].iter().any(|s| s.rule_id == step.rule_id) {
                return Err(invalid(
                    field("rule_id"),
                    format!("`{}` appears twice", step.rule_id),
                ));
            }
            let Some(c) = self.configurable(tenant_id, &step.rule_id).await? else {
                return Err(invalid(
                    field("rule_id"),
                    format!(
                        "`{}` is neither a built-in rule nor one this tenant uploaded",
                        step.rule_id
                    ),
                ));
            };
            let meta = &c.rule.metadata;
            if !meta.flows.contains(&flow) {
                return Err(invalid(
                    field("rule_id"),
                    format!(
                        "`{}` judges {} transactions, not {flow}",
                        step.rule_id,
                        meta.flows.join(" and ")
                    ),
                ));
            }
            for (code, weight) in &step.weights {
                if !meta.signals.iter().any(|s| &s.code == code) {
                    return Err(invalid(
                        field("weights"),
                        format!("`{}` does not emit `{code}`", step.rule_id),
                    ));
                }
                if *weight > 100 {
                    return Err(invalid(field("weights"), "weights are at most 100"));
                }
            }
            let mut params = meta.default_params.clone();
            params.extend(step.params.clone());
            let params = Value::Object(params);
            if let Some(schema) = &c.schema
                && let Err(e) = check_params(schema, &params)
            {
                return Err(invalid(
                    field("params"),
                    format!("do not satisfy the rule's params_schema {e}"),
                ));
            }
            let params_text = params.to_string();
            for tx in probes {
                let run = self.runtime.evaluate(&c.rule, tx, &params_text, &ctx);
                if let Outcome::RuleError(reason) = &run.outcome
                    && reason.starts_with("invalid params")
                {
                    return Err(invalid(
                        field("params"),
                        format!("rejected by `{}`: {reason}", step.rule_id),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Replaces the configuration of each flow in `updates` (the others
    /// keep theirs), after validating all of them; audited as done by
    /// `actor`.
    pub async fn replace_pipelines(
        &self,
        tenant_id: &str,
        actor: &str,
        updates: Vec<FlowUpdate>,
    ) -> Result<(), PipelineError> {
        let mut configs = Vec::with_capacity(updates.len());
        for update in updates {
            let config = to_config(update.flow, update.request)?;
            self.validate(tenant_id, update.flow, &update.probes, &config)
                .await?;
            configs.push((update.flow, config));
        }
        let tenant = self
            .store
            .tenant(tenant_id)
            .await?
            .ok_or(PipelineError::UnknownTenant)?;
        let mut settings: Value =
            serde_json::from_str(&tenant.settings).unwrap_or_else(|_| json!({}));
        if !settings.is_object() {
            settings = json!({});
        }
        if !settings.get("pipeline").is_some_and(Value::is_object) {
            settings["pipeline"] = json!({});
        }
        let mut events = Vec::with_capacity(configs.len());
        for (flow, config) in configs {
            let after = serde_json::to_value(&config)
                .map_err(|e| PipelineError::Internal(e.to_string()))?;
            let before = settings["pipeline"].get(flow).cloned();
            settings["pipeline"][flow] = after.clone();
            let event = AuditEvent {
                actor: actor.to_owned(),
                action: "pipeline.updated".into(),
                subject: flow.to_owned(),
                details: json!({
                    "before_sha256": before.map(|b| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b.to_string()))),
                    "after": after,
                }),
            };
            events.push(event);
        }
        let stored = self
            .store
            .update_pipeline_settings(tenant_id, &settings.to_string(), now_ms(), &events)
            .await?;
        if !stored {
            return Err(PipelineError::UnknownTenant);
        }
        Ok(())
    }
}
