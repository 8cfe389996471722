//! A tenant's pipeline configuration and its compilation against the
//! loaded rules.
use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};

use super::{Decision, Mode, Pipeline, Step};
use crate::{domain::signing::accepted_params, runtime::LoadedRule};

/// What a rule that does not complete means for the decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Skip the rule and add a field warning (default).
    #[default]
    Ignore,
    /// At least `review`.
    Review,
    /// `decline`.
    Decline,
}

/// Score thresholds: approve < review ≤ … < challenge ≤ … < decline ≤ ….
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    pub review: u32,
    pub challenge: u32,
    pub decline: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            review: 30,
            challenge: 60,
            decline: 80,
        }
    }
}

impl Thresholds {
    pub fn decide(&self, score: u32) -> Decision {
        if score >= self.decline {
            Decision::Decline
        } else if score >= self.challenge {
            Decision::Challenge
        } else if score >= self.review {
            Decision::Review
        } else {
            Decision::Approve
        }
    }

    pub fn is_ordered(&self) -> bool {
        self.review <= self.challenge && self.challenge <= self.decline && self.decline <= 100
    }
}

/// One configured step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    pub rule_id: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Overrides merged over the rule's default params (top-level keys).
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Signal code → weight, replacing the rule's weight.
    #[serde(default)]
    pub weights: BTreeMap<String, u32>,
    #[serde(default)]
    pub on_error: OnError,
}

impl StepConfig {
    /// A step running `rule_id` with its defaults.
    pub fn new(rule_id: &str) -> Self {
        Self {
            rule_id: rule_id.to_owned(),
            enabled: true,
            params: serde_json::Map::new(),
            weights: BTreeMap::new(),
            on_error: OnError::Ignore,
        }
    }
}

fn yes() -> bool {
    true
}

/// A tenant's payout pipeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    pub rules: Vec<StepConfig>,
    pub thresholds: Thresholds,
    pub deadline_ms: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            thresholds: Thresholds::default(),
            deadline_ms: 800,
        }
    }
}

/// A loaded version of a rule and how it runs: what steps are compiled
/// from. A tenant rule may run one version active and another in shadow.
#[derive(Debug, Clone)]
pub struct Runnable {
    pub rule: Arc<LoadedRule>,
    pub mode: Mode,
    /// The version's `params_schema` (tenant rules may declare one).
    pub params_schema: Option<Arc<serde_json::Value>>,
}

impl Runnable {
    /// A version without a params schema that counts (built-in rules).
    pub fn active(rule: &Arc<LoadedRule>) -> Self {
        Self {
            rule: Arc::clone(rule),
            mode: Mode::Active,
            params_schema: None,
        }
    }

    /// The step this version runs as under the tenant's `config`: its own
    /// default params with those of the tenant's overrides its params
    /// schema accepts, the tenant's weights and `on_error`. Live assess,
    /// simulation and backtest all build a version's step here, so they
    /// judge it with the same params.
    pub fn step(&self, config: &StepConfig) -> Step {
        let (params, ignored) = accepted_params(
            &self.rule.metadata.default_params,
            &config.params,
            self.params_schema.as_deref(),
        );
        let mut step = Step::with_params(
            Arc::clone(&self.rule),
            params,
            config.weights.clone(),
            config.on_error,
            self.mode,
        );
        step.ignored_overrides = ignored;
        step
    }
}

/// Why a configuration cannot be compiled.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown rule `{0}`")]
    UnknownRule(String),
    #[error("thresholds must satisfy review <= challenge <= decline <= 100")]
    Thresholds,
}

impl PipelineConfig {
    /// The default pipeline: every built-in rule, in order, with defaults.
    pub fn with_rules(ids: &[&str]) -> Self {
        Self {
            rules: ids.iter().map(|id| StepConfig::new(id)).collect(),
            ..Self::default()
        }
    }

    /// Resolves rule ids with `lookup` (the versions of the rule that run,
    /// and how) and serializes effective params once. A rule with an active
    /// and a shadow version becomes two steps.
    pub fn compile<I: IntoIterator<Item = Runnable>>(
        &self,
        lookup: impl Fn(&str) -> I,
    ) -> Result<Pipeline, ConfigError> {
        if !self.thresholds.is_ordered() {
            return Err(ConfigError::Thresholds);
        }
        let mut steps = Vec::new();
        for s in self.rules.iter().filter(|s| s.enabled) {
            let before = steps.len();
            steps.extend(lookup(&s.rule_id).into_iter().map(|r| r.step(s)));
            if steps.len() == before {
                return Err(ConfigError::UnknownRule(s.rule_id.clone()));
            }
        }
        Ok(Pipeline {
            steps,
            thresholds: self.thresholds,
            deadline: Duration::from_millis(self.deadline_ms),
        })
    }
}
