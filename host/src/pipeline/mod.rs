//! The assess pipeline: builds the rule input and context snapshot, runs the
//! tenant's ordered rules through the runtime, scores, decides and explains.
//!
//! Pure domain logic: no axum and no SQL here. The API layer fetches the
//! context from the store, calls [`Pipeline::run`], and commits the result.
pub mod breaker;
pub mod config;
pub mod fixture;

use std::{sync::Arc, time::Instant};

use serde::Serialize;

use crate::runtime::{self, ContextSnapshot, LoadedRule, Outcome, Runtime, Transaction};
pub use config::{OnError, PipelineConfig, Runnable, StepConfig, Thresholds};

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
    /// The tenant's param overrides this version's schema refused (left
    /// out of `params`).
    pub ignored_overrides: Vec<String>,
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
        Self::with_params(rule, params, weights, on_error, mode)
    }

    /// The same step with a breaker of its own: replay, backtest and
    /// simulation always run the rule, whatever live traffic did to it.
    pub fn fresh(&self) -> Self {
        Self {
            breaker: Arc::default(),
            ..self.clone()
        }
    }

    /// A step running `rule` with exactly `params` (serialized once, here).
    pub fn with_params(
        rule: Arc<LoadedRule>,
        params: serde_json::Map<String, serde_json::Value>,
        weights: std::collections::BTreeMap<String, u32>,
        on_error: OnError,
        mode: Mode,
    ) -> Self {
        let params = serde_json::Value::Object(params);
        Self {
            params_json: params.to_string(),
            params: Arc::new(params),
            rule,
            weights: Arc::new(weights),
            on_error,
            mode,
            ignored_overrides: Vec::new(),
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
    ///
    /// Active steps run first, in order, and decide; the deadline counts
    /// only them. Shadow steps run afterwards, each under the usual per-rule
    /// budgets and breaker: whatever a shadow version does (errors, fuel,
    /// time) is recorded and never changes the decision or the deadline.
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
        for step in self.steps.iter().filter(|s| s.mode == Mode::Active) {
            if start.elapsed() > deadline {
                return Err(DeadlineExceeded);
            }
            let (mut record, outcome) = step.run(runtime, tx, context);
            let meta = &step.rule.metadata;
            match outcome {
                Outcome::Ok(evaluation) => {
                    for s in evaluation.signals {
                        if blocked_by.is_none() {
                            blocked_by = s.hard_block.clone();
                        }
                        let detail = step.signal(s.code, s.weight, s.description);
                        record.signal_details.push(detail);
                    }
                    signals.extend(record.signal_details.iter().cloned());
                    field_warnings.extend(evaluation.warnings.into_iter().map(|w| FieldWarning {
                        field: w.field,
                        message: w.message,
                    }));
                }
                Outcome::RuleError(reason) | Outcome::Errored(reason) => {
                    tracing::warn!(reason = %reason, rule_id = %meta.id, "rule did not complete");
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
        // Decided: shadow versions only add to the record.
        for step in self.steps.iter().filter(|s| s.mode == Mode::Shadow) {
            let (mut record, outcome) = step.run(runtime, tx, context);
            match outcome {
                Outcome::Ok(evaluation) => {
                    record.signal_details = evaluation
                        .signals
                        .into_iter()
                        .map(|s| step.signal(s.code, s.weight, s.description))
                        .collect();
                }
                Outcome::RuleError(reason) | Outcome::Errored(reason) => {
                    tracing::debug!(reason = %reason, rule_id = %step.rule.metadata.id, "shadow rule did not complete");
                    record.reason = Some(reason);
                }
            }
            rules.push(record);
        }
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

impl Step {
    /// Evaluates the step (unless its breaker is open) and starts its
    /// record: outcome label, signal codes, fuel, time and memory.
    fn run(
        &self,
        runtime: &Runtime,
        tx: &Transaction,
        context: &Arc<ContextSnapshot>,
    ) -> (RuleRecord, Outcome) {
        let meta = &self.rule.metadata;
        let run = match self.breaker.open_reason() {
            Some(reason) => runtime::RuleRun {
                outcome: Outcome::Errored(reason),
                fuel_used: 0,
                duration: std::time::Duration::ZERO,
                peak_memory: 0,
            },
            None => {
                let run = runtime.evaluate(&self.rule, tx, &self.params_json, context);
                self.breaker.record(match &run.outcome {
                    Outcome::Errored(reason) => Some(reason.as_str()),
                    _ => None,
                });
                run
            }
        };
        let _entered = tracing::debug_span!(
            "rule",
            rule_id = %meta.id,
            rule_version = %meta.version,
            mode = self.mode.as_str(),
            fuel = run.fuel_used,
            duration_us = run.duration.as_micros() as u64,
        )
        .entered();
        let outcome = match &run.outcome {
            Outcome::Ok(_) => "ok",
            Outcome::RuleError(_) => "rule_error",
            Outcome::Errored(_) => "errored",
        };
        metrics::counter!("aduana_rule_runs_total", "outcome" => outcome, "mode" => self.mode.as_str()).increment(1);
        metrics::histogram!("aduana_rule_duration_seconds").record(run.duration.as_secs_f64());
        metrics::counter!("aduana_rule_fuel_total").increment(run.fuel_used);
        let signals = match &run.outcome {
            Outcome::Ok(e) => e.signals.iter().map(|s| s.code.clone()).collect(),
            _ => Vec::new(),
        };
        let record = RuleRecord {
            rule_id: meta.id.clone(),
            rule_version: meta.version.clone(),
            digest: self.rule.digest.clone(),
            mode: self.mode,
            outcome: outcome.to_owned(),
            reason: None,
            signals,
            signal_details: Vec::new(),
            fuel_used: run.fuel_used,
            duration_us: u64::try_from(run.duration.as_micros()).unwrap_or(u64::MAX),
            peak_memory_bytes: run.peak_memory as u64,
            params: Arc::clone(&self.params),
            weights: Arc::clone(&self.weights),
            on_error: self.on_error,
        };
        (record, run.outcome)
    }

    /// A signal this step fired, with the tenant's weight for it.
    fn signal(&self, code: String, weight: u32, description: String) -> SignalDetail {
        let meta = &self.rule.metadata;
        SignalDetail {
            weight: self.weights.get(&code).copied().unwrap_or(weight),
            code,
            description,
            rule_id: meta.id.clone(),
            rule_version: meta.version.clone(),
        }
    }
}

/// Re-exported for callers building transactions.
pub use runtime::{Amount, Beneficiary, Channel, Flow, Origin, PayoutDetails};
