//! Re-running stored assessments: deterministic replay (the same rule
//! digests, params, weights and policy, on the stored input and context
//! snapshot) and backtest (the same, with one rule's candidate version
//! substituted). Nothing here writes anything.
//!
//! A rule is a pure function of (component, transaction, params, context):
//! no clock, no randomness, no I/O, fuel counted deterministically. So a
//! replay must reproduce the decision, the score, every signal and every
//! rule's fuel exactly; any difference is reported.
use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde::Serialize;

use crate::{
    pipeline::{
        Decision, Mode, Pipeline, RuleRecord, Runnable, SignalDetail, Step, StepConfig, Thresholds,
        Verdict,
    },
    registry::{RegistryError, TenantRules},
    runtime::{ContextSnapshot, Transaction},
    store::{StoredAssessment, Tenant},
};

/// Why a stored assessment cannot be re-run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("stored assessment is not readable: {0}")]
    Stored(String),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("the replay exceeded its deadline")]
    Deadline,
}

/// The parts of an assessment that replay compares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comparable {
    pub decision: String,
    pub risk_score: u32,
    pub blocked_by: Option<String>,
    pub signals: Vec<(String, u32, String)>,
    pub rules: Vec<RuleOutcome>,
}

/// One rule's result, as compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleOutcome {
    pub rule_id: String,
    pub digest: String,
    pub mode: Mode,
    pub outcome: String,
    pub signals: Vec<String>,
    pub fuel_used: u64,
}

impl Comparable {
    fn from_verdict(v: &Verdict) -> Self {
        Self {
            decision: v.decision.as_str().to_owned(),
            risk_score: v.risk_score,
            blocked_by: v.blocked_by.clone(),
            signals: signal_keys(&v.signals),
            rules: v.rules.iter().map(rule_outcome).collect(),
        }
    }
}

fn signal_keys(signals: &[SignalDetail]) -> Vec<(String, u32, String)> {
    signals
        .iter()
        .map(|s| (s.code.clone(), s.weight, s.rule_id.clone()))
        .collect()
}

fn rule_outcome(r: &RuleRecord) -> RuleOutcome {
    RuleOutcome {
        rule_id: r.rule_id.clone(),
        digest: r.digest.clone(),
        mode: r.mode,
        outcome: r.outcome.clone(),
        signals: r.signals.clone(),
        fuel_used: r.fuel_used,
    }
}

/// A stored assessment, decoded for re-running.
pub struct Stored {
    pub session_id: String,
    pub tx: Transaction,
    pub context: Arc<ContextSnapshot>,
    pub records: Vec<RuleRecord>,
    pub thresholds: Thresholds,
    pub original: Comparable,
}

/// Decodes the stored input, context, rule records and result.
pub fn decode(a: &StoredAssessment) -> Result<Stored, ReplayError> {
    let bad = |what: &str, e: serde_json::Error| ReplayError::Stored(format!("{what}: {e}"));
    let tx = crate::flows::stored_transaction(&a.flow, &a.input, a.created_at)
        .ok_or_else(|| ReplayError::Stored(format!("flow `{}` is not known", a.flow)))?
        .map_err(|e| bad("input", e))?;
    let context: ContextSnapshot =
        serde_json::from_str(&a.context).map_err(|e| bad("context", e))?;
    let records: Vec<RuleRecord> = serde_json::from_str(&a.rules).map_err(|e| bad("rules", e))?;
    let thresholds: Thresholds = if a.thresholds.is_empty() {
        Thresholds::default()
    } else {
        serde_json::from_str(&a.thresholds).map_err(|e| bad("thresholds", e))?
    };
    let response: serde_json::Value =
        serde_json::from_str(&a.response).map_err(|e| bad("response", e))?;
    let signals: Vec<SignalDetail> = response
        .get("signal_details")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| bad("response.signal_details", e))?
        .unwrap_or_default();
    let original = Comparable {
        decision: a.decision.clone(),
        risk_score: u32::try_from(a.risk_score).unwrap_or(0),
        blocked_by: response
            .get("blocked_by")
            .and_then(|b| b.as_str())
            .map(str::to_owned),
        signals: signal_keys(&signals),
        rules: records.iter().map(rule_outcome).collect(),
    };
    Ok(Stored {
        session_id: a.session_id.clone(),
        tx,
        context: Arc::new(context),
        records,
        thresholds,
        original,
    })
}

/// What a backtest substitutes: a version of a rule, as the step it would
/// run as if activated now (its own default params with the tenant's
/// accepted overrides, the tenant's weights and `on_error`).
pub struct Candidate {
    pub rule_id: String,
    pub step: Step,
}

impl Candidate {
    /// `version` (counting) under the tenant's configuration of its rule.
    pub fn new(version: &Runnable, config: &StepConfig) -> Self {
        Self {
            rule_id: version.rule.metadata.id.clone(),
            step: version.step(config),
        }
    }

    /// The tenant's uploaded `rule_id@version` as it would run in `flow`
    /// if activated now; `None` when the tenant has no such version.
    pub async fn load(
        rules: &TenantRules,
        tenant: &Tenant,
        flow: &str,
        rule_id: &str,
        version: &str,
    ) -> Result<Option<Self>, RegistryError> {
        let Some(runnable) = rules.candidate(&tenant.id, rule_id, version).await? else {
            return Ok(None);
        };
        let config = crate::registry::step_config(&tenant.settings, flow, rule_id)?;
        Ok(Some(Self::new(&runnable, &config)))
    }
}

/// Rebuilds the pipeline a stored assessment ran. With a candidate, the
/// candidate's step takes the place of its rule's active record (or is
/// appended when the assessment did not run that rule), and shadow
/// records are left out: they never changed a decision.
pub async fn stored_pipeline(
    rules: &TenantRules,
    tenant_id: &str,
    s: &Stored,
    candidate: Option<&Candidate>,
) -> Result<Pipeline, ReplayError> {
    let mut steps = Vec::with_capacity(s.records.len() + 1);
    let mut substituted = false;
    for r in &s.records {
        if let Some(c) = candidate {
            if r.mode == Mode::Shadow {
                continue;
            }
            if c.rule_id == r.rule_id {
                steps.push(c.step.fresh());
                substituted = true;
                continue;
            }
        }
        // Keys the stored version did not know keep the new defaults.
        let stored = r.params.as_object().cloned().unwrap_or_default();
        steps.push(Step::new(
            rules.by_digest(tenant_id, &r.digest).await?,
            &stored,
            (*r.weights).clone(),
            r.on_error,
            r.mode,
        ));
    }
    if let Some(c) = candidate
        && !substituted
    {
        steps.push(c.step.fresh());
    }
    Ok(Pipeline {
        steps,
        thresholds: s.thresholds,
        deadline: Duration::from_secs(30),
    })
}

/// A replay's report.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub session_id: String,
    pub identical: bool,
    pub differences: Vec<String>,
    pub original: Comparable,
    pub replayed: Comparable,
}

/// Re-runs `a` and compares.
pub async fn replay(
    rules: &TenantRules,
    a: &StoredAssessment,
) -> Result<ReplayReport, ReplayError> {
    let s = decode(a)?;
    let pipeline = stored_pipeline(rules, &a.tenant_id, &s, None).await?;
    let verdict = run_blocking(rules, pipeline, &s).await?;
    let replayed = Comparable::from_verdict(&verdict);
    let differences = differences(&s.original, &replayed);
    Ok(ReplayReport {
        session_id: s.session_id,
        identical: differences.is_empty(),
        differences,
        original: s.original,
        replayed,
    })
}

/// Runs a pipeline on a blocking worker (rules are CPU work).
pub async fn run_blocking(
    rules: &TenantRules,
    pipeline: Pipeline,
    s: &Stored,
) -> Result<Verdict, ReplayError> {
    let (rt, tx, ctx) = (
        Arc::clone(rules.runtime()),
        s.tx.clone(),
        Arc::clone(&s.context),
    );
    tokio::task::spawn_blocking(move || pipeline.run(&rt, &tx, &ctx, Vec::new()))
        .await
        .map_err(|e| ReplayError::Stored(format!("worker: {e}")))?
        .map_err(|_| ReplayError::Deadline)
}

fn differences(a: &Comparable, b: &Comparable) -> Vec<String> {
    let mut out = Vec::new();
    if a.decision != b.decision {
        out.push(format!("decision: {} → {}", a.decision, b.decision));
    }
    if a.risk_score != b.risk_score {
        out.push(format!("risk_score: {} → {}", a.risk_score, b.risk_score));
    }
    if a.blocked_by != b.blocked_by {
        out.push(format!(
            "blocked_by: {:?} → {:?}",
            a.blocked_by, b.blocked_by
        ));
    }
    if a.signals != b.signals {
        out.push(format!("signals: {:?} → {:?}", a.signals, b.signals));
    }
    if a.rules.len() != b.rules.len() {
        out.push(format!("rules run: {} → {}", a.rules.len(), b.rules.len()));
    }
    for (x, y) in a.rules.iter().zip(&b.rules) {
        if x != y {
            out.push(format!(
                "rule {}: {} {:?} fuel {} → {} {:?} fuel {}",
                x.rule_id, x.outcome, x.signals, x.fuel_used, y.outcome, y.signals, y.fuel_used
            ));
        }
    }
    out
}

/// A backtest's report: how decisions would change.
#[derive(Debug, Clone, Serialize)]
pub struct BacktestReport {
    pub evaluated: u64,
    pub changed: u64,
    pub errors: u64,
    /// from → to → count, for every pair seen (changed or not).
    pub matrix: BTreeMap<String, BTreeMap<String, u64>>,
    pub sample_changed_session_ids: Vec<String>,
}

/// Re-runs each assessment with `candidate` substituted.
pub async fn backtest(
    rules: &TenantRules,
    tenant_id: &str,
    assessments: &[StoredAssessment],
    candidate: &Candidate,
) -> BacktestReport {
    let mut report = BacktestReport {
        evaluated: 0,
        changed: 0,
        errors: 0,
        matrix: BTreeMap::new(),
        sample_changed_session_ids: Vec::new(),
    };
    for a in assessments {
        let outcome = async {
            let s = decode(a)?;
            let pipeline = stored_pipeline(rules, tenant_id, &s, Some(candidate)).await?;
            let verdict = run_blocking(rules, pipeline, &s).await?;
            Ok::<(String, Decision), ReplayError>((s.original.decision, verdict.decision))
        }
        .await;
        match outcome {
            Ok((from, to)) => {
                report.evaluated += 1;
                *report
                    .matrix
                    .entry(from.clone())
                    .or_default()
                    .entry(to.as_str().to_owned())
                    .or_default() += 1;
                if from != to.as_str() {
                    report.changed += 1;
                    if report.sample_changed_session_ids.len() < 20 {
                        report.sample_changed_session_ids.push(a.session_id.clone());
                    }
                }
            }
            Err(e) => {
                report.errors += 1;
                tracing::warn!(session_id = %a.session_id, error = %e, "backtest could not re-run an assessment");
            }
        }
    }
    report
}
