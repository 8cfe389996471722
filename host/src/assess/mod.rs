//! THE assess use case, once for every flow ([`AssessFlow`]): parse →
//! idempotency → context → pipeline → commit → response; and simulation,
//! which runs the same steps and writes nothing. Handlers only extract the
//! request and map the answer; the CLI and tests call the same service.
//!
//! Order of work for a live assessment: parse and validate → idempotency
//! check → prefetch the context (list hits, counterparty history) → run
//! the tenant's pipeline for the flow (admitted by the tenant's gate) →
//! commit assessment + history + idempotency record + outbox row in one
//! transaction (group commit) → answer.
pub mod gates;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use rust_decimal::Decimal;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    domain::now_ms,
    events::{Event, TransactionEvent},
    flows::AssessFlow,
    pipeline::{Decision, FieldWarning, Pipeline, Verdict},
    registry::{RegistryError, TenantRules},
    replay::Candidate,
    runtime::{ContextSnapshot, HistoryRecord, ListHitRecord, Transaction, VelocityRecord},
    store::{AssessmentWrite, CommitOutcome, Store, StoreError, Tenant, VelocityQuery},
};
use gates::TenantGates;

/// Why an assessment was not made.
#[derive(Debug, thiserror::Error)]
pub enum AssessError {
    /// The request is invalid: `field` is the JSON path.
    #[error("{message}")]
    Invalid { field: String, message: String },
    #[error("this idempotency key was used with a different request body")]
    IdempotencyKeyReused,
    #[error("the pipeline exceeded its deadline")]
    Timeout,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Rules(#[from] RegistryError),
    #[error("{0}")]
    Internal(String),
}

impl AssessError {
    fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

impl From<crate::flows::Invalid> for AssessError {
    fn from(e: crate::flows::Invalid) -> Self {
        Self::Invalid {
            field: e.field,
            message: e.message,
        }
    }
}

/// A live assessment's answer: the response body, and whether it is the
/// stored answer of an earlier request with the same idempotency key.
#[derive(Debug)]
pub struct Answer {
    pub body: String,
    pub replayed: bool,
}

/// The assess service.
#[derive(Debug)]
pub struct Assessor {
    store: Store,
    rules: Arc<TenantRules>,
    gates: TenantGates,
    max_amount_major: Decimal,
}

impl Assessor {
    pub fn new(store: Store, rules: Arc<TenantRules>, max_amount_major: Decimal) -> Self {
        Self {
            store,
            rules,
            gates: TenantGates::default(),
            max_amount_major,
        }
    }

    /// Assesses a request of flow `F` for `tenant` and commits it.
    /// `idempotency_header` wins over the body's `idempotency_key`.
    pub async fn assess<F: AssessFlow>(
        &self,
        tenant: &Tenant,
        body: &[u8],
        idempotency_header: Option<String>,
    ) -> Result<Answer, AssessError> {
        let started = Instant::now();
        let (input, mut warnings) = F::parse(body, self.max_amount_major)?;
        warnings.extend(F::segment_warnings(&input, &tenant.organization_type));
        let idem_key = idempotency_header.or_else(|| F::idempotency_key(&input).map(str::to_owned));
        let hash = request_hash::<F>(body, &input);
        let now = now_ms();
        if let Some(key) = &idem_key
            && let Some(rec) = self
                .store
                .idempotency_record(&tenant.id, F::IDEMPOTENCY_SCOPE, key, now)
                .await?
        {
            if rec.request_hash != hash {
                return Err(AssessError::IdempotencyKeyReused);
            }
            tracing::Span::current().record("session_id", rec.session_id.as_str());
            return Ok(Answer {
                body: rec.response,
                replayed: true,
            });
        }

        let session_id = F::session_id(now);
        tracing::Span::current().record("session_id", session_id.as_str());
        let velocity = velocity_hashes::<F>(&input);
        let context = self
            .context::<F>(&tenant.id, &input, &velocity, now)
            .await?;
        let tx = F::to_transaction(&input, now);
        let pipeline = self.rules.tenant_pipeline(tenant, F::NAME).await?;
        let verdict = self
            .run(
                &tenant.id,
                Arc::clone(&pipeline),
                tx,
                Arc::clone(&context),
                warnings,
            )
            .await?;

        let amount = echo_amount::<F>(&input);
        let latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
        let response = json!({
            "decision": verdict.decision.as_str(),
            "risk_score": verdict.risk_score,
            "flow": F::NAME,
            "signals": verdict.signals.iter().map(|s| s.code.as_str()).collect::<Vec<_>>(),
            "signal_details": verdict.signals,
            "blocked_by": verdict.blocked_by,
            "session_id": session_id,
            "field_warnings": verdict.field_warnings,
            "latency_ms": latency_ms,
            "amount": amount,
            "payment_id": F::payment_id(&input),
            "idempotency_key": idem_key,
        })
        .to_string();

        metrics::counter!("aduana_assessments_total", "flow" => F::NAME, "decision" => verdict.decision.as_str()).increment(1);
        let event = Event::transaction(TransactionEvent {
            session_id: session_id.clone(),
            flow: F::NAME,
            decision: verdict.decision.as_str(),
            risk_score: verdict.risk_score,
            signals: verdict.signals.iter().map(|s| s.code.clone()).collect(),
            blocked_by: verdict.blocked_by.clone(),
            amount,
            payment_id: F::payment_id(&input).map(str::to_owned),
        });
        let encode = |e: serde_json::Error| AssessError::Internal(e.to_string());
        let write = AssessmentWrite {
            session_id: session_id.clone(),
            tenant_id: tenant.id.clone(),
            flow: F::NAME.to_owned(),
            decision: verdict.decision.as_str().to_owned(),
            risk_score: i64::from(verdict.risk_score),
            payment_id: F::payment_id(&input).map(str::to_owned),
            input: serde_json::to_string(&input).map_err(encode)?,
            context: serde_json::to_string(&*context).map_err(encode)?,
            rules: serde_json::to_string(&verdict.rules).map_err(encode)?,
            thresholds: serde_json::to_string(&pipeline.thresholds).map_err(encode)?,
            response: response.clone(),
            created_at: now,
            idempotency: idem_key
                .clone()
                .map(|k| (F::IDEMPOTENCY_SCOPE.to_owned(), k, hash.clone())),
            history: match (F::history_key(&input), verdict.decision) {
                (Some(pair), d) if d != Decision::Decline => Some(pair),
                _ => None,
            },
            // Every live attempt counts, declined ones included: repeated
            // declines are what velocity is there to see.
            velocity,
            outbox: Some(event.outbox_row(now)),
        };
        match self.store.commit_assessment(write).await? {
            CommitOutcome::Committed => Ok(Answer {
                body: response,
                replayed: false,
            }),
            CommitOutcome::Replayed(rec) => {
                if rec.request_hash != hash {
                    return Err(AssessError::IdempotencyKeyReused);
                }
                Ok(Answer {
                    body: rec.response,
                    replayed: true,
                })
            }
        }
    }

    /// Runs a request of flow `F` through the tenant's pipeline, with each
    /// of the body's `rule_overrides` (`{rule_id, version}`) judged in place
    /// of its rule, and writes nothing: no assessment, history, idempotency
    /// or outbox row.
    pub async fn simulate<F: AssessFlow>(
        &self,
        tenant: &Tenant,
        body: &[u8],
    ) -> Result<Value, AssessError> {
        #[derive(serde::Deserialize)]
        struct RuleOverride {
            rule_id: String,
            version: String,
        }
        #[derive(serde::Deserialize)]
        struct Probe {
            #[serde(default)]
            rule_overrides: Vec<RuleOverride>,
        }
        let started = Instant::now();
        let (input, mut warnings) = F::parse(body, self.max_amount_major)?;
        warnings.extend(F::segment_warnings(&input, &tenant.organization_type));
        let probe: Probe = serde_json::from_slice(body)
            .map_err(|e| AssessError::invalid("rule_overrides", e.to_string()))?;
        let overrides: Vec<(String, String)> = probe
            .rule_overrides
            .into_iter()
            .map(|o| (o.rule_id, o.version))
            .collect();
        let mut candidates = Vec::with_capacity(overrides.len());
        for (i, (rule_id, version)) in overrides.iter().enumerate() {
            let candidate = Candidate::load(&self.rules, tenant, F::NAME, rule_id, version)
                .await?
                .ok_or_else(|| {
                    AssessError::invalid(
                        &format!("rule_overrides[{i}]"),
                        format!("this tenant has no rule {rule_id}@{version}"),
                    )
                })?;
            candidates.push(candidate);
        }
        let now = now_ms();
        let velocity = velocity_hashes::<F>(&input);
        let context = self
            .context::<F>(&tenant.id, &input, &velocity, now)
            .await?;
        let tx = F::to_transaction(&input, now);
        let pipeline = self.rules.tenant_pipeline(tenant, F::NAME).await?;
        let pipeline = Arc::new(with_candidates(&pipeline, &candidates));
        let verdict = self
            .run(&tenant.id, pipeline, tx, context, warnings)
            .await?;
        Ok(json!({
            "simulated": true,
            "decision": verdict.decision.as_str(),
            "risk_score": verdict.risk_score,
            "flow": F::NAME,
            "signals": verdict.signals.iter().map(|s| s.code.as_str()).collect::<Vec<_>>(),
            "signal_details": verdict.signals,
            "blocked_by": verdict.blocked_by,
            "session_id": F::session_id(now),
            "field_warnings": verdict.field_warnings,
            "latency_ms": (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0,
            "amount": echo_amount::<F>(&input),
            "payment_id": F::payment_id(&input),
            "rule_overrides": overrides.iter().map(|(rule_id, version)| json!({"rule_id": rule_id, "version": version})).collect::<Vec<_>>(),
            "rules": verdict.rules,
        }))
    }

    /// Reads what the rules may ask about: the tenant's list hits for the
    /// input's identifiers and the origin → counterparty history.
    async fn context<F: AssessFlow>(
        &self,
        tenant_id: &str,
        input: &F::Input,
        keys: &[(&'static str, String)],
        now: i64,
    ) -> Result<Arc<ContextSnapshot>, AssessError> {
        let identifiers = F::list_identifiers(input);
        let history_key = F::history_key(input);
        let read = self
            .store
            .assess_context(
                tenant_id,
                F::NAME,
                &identifiers,
                history_key.as_ref().map(|(o, b)| (o.as_str(), b.as_str())),
                &VelocityQuery {
                    keys,
                    windows_ms: VELOCITY_WINDOWS.map(|(_, ms)| ms),
                },
                now,
            )
            .await?;
        let mut list_hits: Vec<ListHitRecord> = read
            .matches
            .into_iter()
            .map(|m| ListHitRecord {
                list_type: m.list_type,
                value: m.value,
                entry_id: m.entry_id,
                severity: m.severity,
            })
            .collect();
        // Most severe first, so a lookup sees `block` before `flag`/`review`.
        let rank = |s: &str| match s {
            "block" => 0,
            "flag" => 1,
            _ => 2,
        };
        list_hits.sort_by(|a, b| {
            rank(&a.severity)
                .cmp(&rank(&b.severity))
                .then(a.entry_id.cmp(&b.entry_id))
        });
        let history = read
            .history
            .map_or_else(HistoryRecord::default, |h| HistoryRecord {
                prior_transfers: u32::try_from(h.transfers).unwrap_or(u32::MAX),
                first_at_ms: Some(h.first_at),
                last_at_ms: Some(h.last_at),
            });
        let mut velocity = Vec::with_capacity(keys.len() * VELOCITY_WINDOWS.len());
        for (entity, hash) in keys {
            let found = read
                .velocity
                .iter()
                .find(|(e, h, _)| e == entity && h == hash)
                .map_or([0; 3], |(_, _, c)| *c);
            for ((window, _), count) in VELOCITY_WINDOWS.iter().zip(found) {
                velocity.push(VelocityRecord {
                    entity: (*entity).to_owned(),
                    window: (*window).to_owned(),
                    count: u32::try_from(count).unwrap_or(u32::MAX),
                });
            }
        }
        Ok(Arc::new(ContextSnapshot {
            list_hits,
            history,
            velocity,
        }))
    }

    /// Runs `pipeline` on a blocking worker once the tenant's gate admits
    /// it; waiting counts toward the pipeline's deadline.
    async fn run(
        &self,
        tenant_id: &str,
        pipeline: Arc<Pipeline>,
        tx: Transaction,
        context: Arc<ContextSnapshot>,
        warnings: Vec<FieldWarning>,
    ) -> Result<Verdict, AssessError> {
        let started = Instant::now();
        let _permit = self
            .gates
            .enter(tenant_id, pipeline.deadline)
            .await
            .ok_or(AssessError::Timeout)?;
        let left = pipeline
            .deadline
            .checked_sub(started.elapsed())
            .ok_or(AssessError::Timeout)?;
        let rt = Arc::clone(self.rules.runtime());
        tokio::task::spawn_blocking(move || pipeline.run_within(&rt, &tx, &context, warnings, left))
            .await
            .map_err(|e| AssessError::Internal(format!("pipeline worker: {e}")))?
            .map_err(|_| AssessError::Timeout)
    }
}

/// The velocity windows: name and length, shortest first. Counted in
/// five-minute steps (see [`crate::store::velocity_step`]).
pub const VELOCITY_WINDOWS: [(&str, i64); 3] =
    [("1h", 3_600_000), ("24h", 86_400_000), ("7d", 604_800_000)];

/// How often velocity counters past the longest window are deleted.
const VELOCITY_PRUNE_EVERY: Duration = Duration::from_secs(300);

/// At most this many counters go in one pruning transaction.
const VELOCITY_PRUNE_BATCH: i64 = 5_000;

/// The velocity pruner (a supervised task): every five minutes, until
/// `stop`, deletes the counters no window can count any more, in bounded
/// batches. Counting never depends on it (every read is bounded by its
/// window); it keeps the table to about a week of steps.
pub async fn prune_velocity_until(store: Store, mut stop: crate::tasks::Stop) {
    let (_, longest) = VELOCITY_WINDOWS[VELOCITY_WINDOWS.len() - 1];
    let mut tick = tokio::time::interval(VELOCITY_PRUNE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.requested() => return,
        }
        let before = crate::store::velocity_step(now_ms()) - longest;
        let mut pruned = 0;
        loop {
            match store.prune_velocity(before, VELOCITY_PRUNE_BATCH).await {
                Ok(n) => {
                    pruned += n;
                    if n < VELOCITY_PRUNE_BATCH.unsigned_abs() || stop.is_requested() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "pruning velocity counters failed; next turn retries");
                    break;
                }
            }
        }
        if pruned > 0 {
            tracing::info!(
                counters = pruned,
                "pruned velocity counters past the longest window"
            );
        }
    }
}

/// The input's velocity entities, each value replaced by the first 16
/// bytes (hex) of the SHA-256 of `entity:value` (the velocity table holds
/// no e-mail, IP or card key in clear).
fn velocity_hashes<F: AssessFlow>(input: &F::Input) -> Vec<(&'static str, String)> {
    F::velocity_keys(input)
        .into_iter()
        .map(|(entity, value)| {
            let digest = Sha256::digest(format!("{entity}:{value}").as_bytes());
            (entity, hex::encode(&digest[..16]))
        })
        .collect()
}

/// `{minor, major, currency}` as the answer echoes it.
fn echo_amount<F: AssessFlow>(input: &F::Input) -> Value {
    let (minor, currency) = F::minor_and_currency(input);
    let mut major = Decimal::from(minor);
    // Cannot fail: the exponent of an ISO currency is at most 4.
    let _ = major.set_scale(u32::from(F::exponent(input)));
    json!({ "minor": minor, "major": major.to_string(), "currency": currency })
}

/// A stable hash of the request: the JSON with keys sorted, the amount
/// replaced by its exact value in minor units, and the idempotency key left
/// out, so re-serializing the same request does not count as a different
/// body.
fn request_hash<F: AssessFlow>(body: &[u8], input: &F::Input) -> String {
    let (minor, currency) = F::minor_and_currency(input);
    let canonical = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut obj)) => {
            obj.insert(
                "amount".into(),
                Value::String(format!("{minor} {currency}")),
            );
            obj.remove("amount_unit");
            obj.remove("idempotency_key");
            Value::Object(obj).to_string()
        }
        _ => String::from_utf8_lossy(body).into_owned(),
    };
    hex::encode(Sha256::digest(canonical.as_bytes()))
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
