//! The assess pipeline: builds the rule input and context snapshot, runs the
//! tenant's ordered rules through the runtime, scores, decides and explains.
//!
//! Pure domain logic: no axum and no SQL here. The API layer fetches the
//! context from the store, calls [`Pipeline::run`], and commits the result.
pub mod breaker;
pub mod config;
pub mod fixture;
pub mod payout;

use std::{sync::Arc, time::Instant};

use serde::Serialize;

use crate::runtime::{self, ContextSnapshot, LoadedRule, Outcome, Runtime, Transaction};
pub use config::{OnError, PipelineConfig, StepConfig, Thresholds};

/// A warning about the input, returned in `field_warnings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FieldWarning {
    pub field: String,
    pub message: String,
}

/// The four decisions, in increasing severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Review,
    Challenge,
    Decline,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Review => "review",
            Decision::Challenge => "challenge",
            Decision::Decline => "decline",
        }
    }
}

/// A fired signal, attributed to its rule.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SignalDetail {
    pub code: String,
    pub weight: u32,
    pub description: String,
    pub rule_id: String,
    pub rule_version: String,
}

/// How a step's result is used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Its signals count toward the decision.
    #[default]
    Active,
    /// It runs on live traffic and is recorded, but never changes the
    /// decision.
    Shadow,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Active => "active",
            Mode::Shadow => "shadow",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Mode::Active),
            "shadow" => Some(Mode::Shadow),
            _ => None,
        }
    }
}

/// What one rule did, as stored with the assessment: enough to explain it
/// and to replay it (digest, effective params, weights, error policy).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RuleRecord {
    pub rule_id: String,
    pub rule_version: String,
    pub digest: String,
    pub mode: Mode,
    /// `ok`, `rule_error` or `errored`.
    pub outcome: String,
    pub reason: Option<String>,
    /// Codes of the signals it emitted (for a shadow rule: would have).
    pub signals: Vec<String>,
    /// The signals with their effective weights.
    #[serde(default)]
    pub signal_details: Vec<SignalDetail>,
    pub fuel_used: u64,
    pub duration_us: u64,
    pub peak_memory_bytes: u64,
    /// Effective params (defaults merged with the tenant's overrides).
    /// Shared with the step (and every record it produced) rather than
    /// copied per assessment.
    #[serde(default)]
    pub params: Arc<serde_json::Value>,
    #[serde(default)]
    pub weights: Arc<std::collections::BTreeMap<String, u32>>,
    #[serde(default)]
    pub on_error: OnError,
}

/// The pipeline's verdict.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub decision: Decision,
    pub risk_score: u32,
    pub signals: Vec<SignalDetail>,
    pub blocked_by: Option<String>,
    pub field_warnings: Vec<FieldWarning>,
    pub rules: Vec<RuleRecord>,
}

/// The pipeline ran past its deadline.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the pipeline exceeded its deadline")]
pub struct DeadlineExceeded;

/// A compiled step: the loaded rule with its effective params.
#[derive(Debug, Clone)]
pub struct Step {
    pub rule: Arc<LoadedRule>,
    /// Defaults merged with overrides, as JSON text (serialized once).
    pub params_json: String,
    /// The same params as a value, recorded with every assessment.
    pub params: Arc<serde_json::Value>,
    pub weights: Arc<std::collections::BTreeMap<String, u32>>,
    pub on_error: OnError,
    pub mode: Mode,
    /// Quarantine state of this step on this node.
    pub breaker: Arc<breaker::Breaker>,
}

impl Step {
    /// A step running `rule` with its default params overridden (top-level
    /// keys) by `overrides`; params are merged and serialized once, here.
    pub fn new(
        rule: Arc<LoadedRule>,
        overrides: &serde_json::Map<String, serde_json::Value>,
        weights: std::collections::BTreeMap<String, u32>,
        on_error: OnError,
        mode: Mode,
    ) -> Self {
        let mut params = rule.metadata.default_params.clone();
        params.extend(overrides.clone());
        let params = serde_json::Value::Object(params);
        Self {
            params_json: params.to_string(),
            params: Arc::new(params),
            rule,
            weights: Arc::new(weights),
            on_error,
            mode,
            breaker: Arc::default(),
        }
    }
}

/// A tenant's compiled pipeline for one flow.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub steps: Vec<Step>,
    pub thresholds: Thresholds,
    pub deadline: std::time::Duration,
}

impl Pipeline {
    /// Runs every step on `tx`, each in a fresh instance, then scores and
    /// decides.
    pub fn run(
        &self,
        runtime: &Runtime,
        tx: &Transaction,
        context: &Arc<ContextSnapshot>,
        field_warnings: Vec<FieldWarning>,
    ) -> Result<Verdict, DeadlineExceeded> {
        self.run_within(runtime, tx, context, field_warnings, self.deadline)
    }

    /// Like [`Pipeline::run`], with what is left of the deadline after
    /// admission.
    pub fn run_within(
        &self,
        runtime: &Runtime,
        tx: &Transaction,
        context: &Arc<ContextSnapshot>,
        mut field_warnings: Vec<FieldWarning>,
        deadline: std::time::Duration,
    ) -> Result<Verdict, DeadlineExceeded> {
        let start = Instant::now();
        let mut signals = Vec::new();
        let mut blocked_by = None;
        let mut floor = Decision::Approve;
        let mut rules = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            if start.elapsed() > deadline {
                return Err(DeadlineExceeded);
            }
            let meta = &step.rule.metadata;
            let run = match step.breaker.open_reason() {
                Some(reason) => runtime::RuleRun {
                    outcome: Outcome::Errored(reason),
                    fuel_used: 0,
                    duration: std::time::Duration::ZERO,
                    peak_memory: 0,
                },
                None => {
                    let run = runtime.evaluate(&step.rule, tx, &step.params_json, context);
                    step.breaker.record(match &run.outcome {
                        Outcome::Errored(reason) => Some(reason.as_str()),
                        _ => None,
                    });
                    run
                }
            };
            let span = tracing::debug_span!(
                "rule",
                rule_id = %meta.id,
                rule_version = %meta.version,
                fuel = run.fuel_used,
                duration_us = run.duration.as_micros() as u64,
            );
            let _entered = span.enter();
            let mut record = RuleRecord {
                rule_id: meta.id.clone(),
                rule_version: meta.version.clone(),
                digest: step.rule.digest.clone(),
                mode: step.mode,
                outcome: "ok".to_owned(),
                reason: None,
                signals: Vec::new(),
                signal_details: Vec::new(),
                fuel_used: run.fuel_used,
                duration_us: u64::try_from(run.duration.as_micros()).unwrap_or(u64::MAX),
                peak_memory_bytes: run.peak_memory as u64,
                params: Arc::clone(&step.params),
                weights: Arc::clone(&step.weights),
                on_error: step.on_error,
            };
            let shadow = step.mode == Mode::Shadow;
            let outcome_label = match &run.outcome {
                Outcome::Ok(_) => "ok",
                Outcome::RuleError(_) => "rule_error",
                Outcome::Errored(_) => "errored",
            };
            metrics::counter!("aduana_rule_runs_total", "outcome" => outcome_label, "mode" => step.mode.as_str()).increment(1);
            metrics::histogram!("aduana_rule_duration_seconds").record(run.duration.as_secs_f64());
            metrics::counter!("aduana_rule_fuel_total").increment(run.fuel_used);
            let outcome_name = match &run.outcome {
                Outcome::Ok(_) => "ok",
                Outcome::RuleError(_) => "rule_error",
                Outcome::Errored(_) => "errored",
            };
            match run.outcome {
                Outcome::Ok(evaluation) => {
                    for s in evaluation.signals {
                        let weight = step.weights.get(&s.code).copied().unwrap_or(s.weight);
                        let detail = SignalDetail {
                            code: s.code,
                            weight,
                            description: s.description,
                            rule_id: meta.id.clone(),
                            rule_version: meta.version.clone(),
                        };
                        record.signals.push(detail.code.clone());
                        record.signal_details.push(detail.clone());
                        if shadow {
                            continue;
                        }
                        if blocked_by.is_none() {
                            blocked_by = s.hard_block.clone();
                        }
                        signals.push(detail);
                    }
                    if shadow {
                        rules.push(record);
                        continue;
                    }
                    field_warnings.extend(evaluation.warnings.into_iter().map(|w| FieldWarning {
                        field: w.field,
                        message: w.message,
                    }));
                }
                Outcome::RuleError(reason) | Outcome::Errored(reason) => {
                    tracing::warn!(reason = %reason, shadow, "rule did not complete");
                    record.outcome = outcome_name.to_owned();
                    if shadow {
                        record.reason = Some(reason);
                        rules.push(record);
                        continue;
                    }
                    let action = match step.on_error {
                        OnError::Ignore => "ignored",
                        OnError::Review => {
                            floor = floor.max(Decision::Review);
                            "decision raised to review"
                        }
                        OnError::Decline => {
                            floor = Decision::Decline;
                            if blocked_by.is_none() {
                                blocked_by = Some(format!("rule_error:{}", meta.id));
                            }
                            "decision set to decline"
                        }
                    };
                    field_warnings.push(FieldWarning {
                        field: format!("rules.{}", meta.id),
                        message: format!("rule did not complete ({reason}); {action}"),
                    });
                    record.reason = Some(reason);
                }
            }
            rules.push(record);
        }
        if start.elapsed() > deadline {
            return Err(DeadlineExceeded);
        }
        let (decision, risk_score) = if blocked_by.is_some() {
            (Decision::Decline, 100)
        } else {
            let sum: u32 = signals
                .iter()
                .map(|s| s.weight)
                .fold(0, u32::saturating_add);
            let score = sum.min(100);
            (self.thresholds.decide(score).max(floor), score)
        };
        Ok(Verdict {
            decision,
            risk_score,
            signals,
            blocked_by,
            field_warnings,
            rules,
        })
    }
}

/// Re-exported for callers building transactions.
pub use runtime::{Amount, Beneficiary, Channel, Flow, Origin, PayoutDetails};
