//! Report fraud (§8) and what the labels it leaves tell the rules: a
//! report marks the assessment fraudulent, opens a case linked to it, puts
//! the assessment's identifiers on the blocklists and sends `case.created`
//! and `fraud.detected`, all in one transaction; per-rule precision is
//! counted from those labels.
use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    CaseError, CaseSettings, Cases, DAY_MS, JURISDICTIONS, MAX_TEXT, case_event, draft_reasons,
    invalid, one_of, priority_rank, text,
};
use crate::{
    domain::ids,
    events::{Event, FraudEvent},
    flows::stored_case_facts,
    store::{
        AuditEvent, BlocklistEntry, CaseRecord, FraudLabel, FraudReportOutcome, FraudReportWrite,
        StoreError, StoredAssessment,
    },
};

/// Why a transaction is reported (§8).
pub const REASONS: &[&str] = &[
    "chargeback",
    "friendly_fraud",
    "card_testing",
    "account_takeover",
    "identity_theft",
    "app_scam",
    "mule_account",
    "other",
];

const MAX_EVIDENCE: usize = 20;

/// A fraud report as a client sends it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FraudReportFields {
    pub session_id: Option<String>,
    /// aduana's transaction record: the assessment's session id.
    pub transaction_id: Option<String>,
    /// The bank's own transaction id: the assessment's `payment_id`.
    pub external_transaction_id: Option<String>,
    pub reason: Option<String>,
    pub description: Option<String>,
    pub evidence_urls: Option<Vec<String>>,
}

/// The answer to a fraud report.
#[derive(Debug, Clone)]
pub struct FraudReported {
    pub case: CaseRecord,
    pub entries: Vec<BlocklistEntry>,
    /// `false` when the assessment had been reported already (nothing
    /// was written).
    pub created: bool,
}

/// A case's priority from the report's reason and the amount: account
/// takeover, identity theft, APP scams and mule accounts start `alta`,
/// friendly fraud `baja`, the rest `media`; a large amount raises it one
/// step, a very large one two (thresholds per currency, major units).
pub fn priority(reason: &str, amount_minor: Option<i64>, currency: Option<&str>) -> &'static str {
    let base: i64 = match reason {
        "account_takeover" | "identity_theft" | "app_scam" | "mule_account" => 3,
        "friendly_fraud" => 1,
        _ => 2,
    };
    let (large, very_large): (i64, i64) = match currency {
        Some("MXN") => (100_000, 1_000_000),
        Some("USD" | "EUR" | "GBP" | "CHF" | "CAD") => (5_000, 50_000),
        Some("BRL" | "PEN") => (25_000, 250_000),
        Some("CLP") => (5_000_000, 50_000_000),
        Some("COP") => (20_000_000, 200_000_000),
        Some("ARS") => (5_000_000, 50_000_000),
        Some("UYU") => (200_000, 2_000_000),
        _ => (i64::MAX, i64::MAX),
    };
    let exponent = currency
        .and_then(crate::domain::money::Currency::parse)
        .map_or(2, |c| c.exponent());
    let major = amount_minor.unwrap_or(0) / 10i64.pow(u32::from(exponent));
    let bump = if major >= very_large {
        2
    } else if major >= large {
        1
    } else {
        0
    };
    super::PRIORITIES[usize::try_from((base + bump).clamp(1, 4) - 1).unwrap_or(1)]
}

/// The case's incident type for a report's reason.
pub fn incident_type(reason: &str) -> &'static str {
    match reason {
        "account_takeover" => "transferencia_no_autorizada",
        "identity_theft" => "robo_identidad",
        "app_scam" => "ingenieria_social",
        _ => "otro",
    }
}

fn evidence(urls: Option<Vec<String>>) -> Result<Vec<String>, CaseError> {
    let urls = urls.unwrap_or_default();
    if urls.len() > MAX_EVIDENCE {
        return Err(invalid(
            "evidence_urls",
            format!("at most {MAX_EVIDENCE} URLs"),
        ));
    }
    for (i, u) in urls.iter().enumerate() {
        let ok = u.len() <= 2048
            && url::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https"));
        if !ok {
            return Err(invalid(
                format!("evidence_urls[{i}]"),
                "must be an http or https URL of at most 2048 characters",
            ));
        }
    }
    Ok(urls)
}

/// What one rule version did over the window.
#[derive(Debug, Clone, Default)]
pub struct VersionStats {
    pub version: String,
    pub mode: String,
    /// Live assessments it ran on.
    pub assessments: u64,
    /// Of those, how many it fired on (emitted a signal).
    pub fires: u64,
    /// Of its assessments, how many were labelled fraud.
    pub labelled_fraud: u64,
    /// Of its fires, how many were labelled fraud.
    pub fires_labelled_fraud: u64,
    /// Of those, how many were confirmed by a resolved case.
    pub fires_confirmed_fraud: u64,
}

#[derive(Deserialize)]
struct RuleRun {
    rule_id: String,
    rule_version: String,
    #[serde(default)]
    mode: Value,
    #[serde(default)]
    signals: Vec<String>,
}

impl Cases {
    /// Finds the tenant's live assessment a report names.
    async fn reported_assessment(
        &self,
        tenant_id: &str,
        f: &FraudReportFields,
    ) -> Result<StoredAssessment, CaseError> {
        let store = self.store();
        let by_session = f.session_id.as_deref().or(f.transaction_id.as_deref());
        let found = match (by_session, f.external_transaction_id.as_deref()) {
            (Some(s), _) => {
                let live = store.existing_sessions(tenant_id, &[s.to_owned()]).await?;
                if live.is_empty() {
                    None
                } else {
                    store.assessment(tenant_id, s).await?
                }
            }
            (None, Some(p)) => store.assessment_by_payment_id(tenant_id, p).await?,
            (None, None) => {
                return Err(invalid(
                    "session_id",
                    "name the assessment: session_id, transaction_id or external_transaction_id",
                ));
            }
        };
        found.ok_or(CaseError::AssessmentNotFound)
    }

    /// The answer of an assessment reported before.
    async fn earlier_report(
        &self,
        tenant_id: &str,
        label: &FraudLabel,
    ) -> Result<FraudReported, CaseError> {
        let case = self.get(tenant_id, &label.case_id).await?;
        let entries = self
            .store()
            .case_blocklist_entries(tenant_id, &case.id)
            .await?;
        Ok(FraudReported {
            case,
            entries,
            created: false,
        })
    }

    /// Reports an assessment as fraud (§8) by `actor`; reporting it again
    /// answers the first report's case and entries and writes nothing.
    pub async fn report_fraud(
        &self,
        tenant_id: &str,
        actor: &str,
        f: FraudReportFields,
        now: i64,
    ) -> Result<FraudReported, CaseError> {
        let reason = f
            .reason
            .clone()
            .ok_or_else(|| invalid("reason", "is required"))?;
        one_of("reason", &reason, REASONS)?;
        let description = text("description", f.description.clone(), MAX_TEXT)?;
        let evidence_urls = evidence(f.evidence_urls.clone())?;
        let assessment = self.reported_assessment(tenant_id, &f).await?;
        if let Some(label) = self
            .store()
            .fraud_label(tenant_id, &assessment.session_id)
            .await?
        {
            return self.earlier_report(tenant_id, &label).await;
        }
        let settings: CaseSettings = self.settings(tenant_id).await?;
        let (identifiers, facts) = stored_case_facts(&assessment.flow, &assessment.input)
            .ok_or_else(|| {
                StoreError::Corrupt(format!("assessment of unknown flow `{}`", assessment.flow))
            })?
            .map_err(|e| StoreError::Corrupt(format!("stored assessment input: {e}")))?;
        let response: Value = serde_json::from_str(&assessment.response).unwrap_or(Value::Null);
        let amount_minor = response["amount"]["minor"].as_i64();
        let currency = response["amount"]["currency"].as_str().map(str::to_owned);
        let jurisdiction = facts
            .country
            .as_deref()
            .filter(|c| JURISDICTIONS.contains(c))
            .unwrap_or(settings.default_jurisdiction())
            .to_owned();
        let priority = priority(&reason, amount_minor, currency.as_deref());
        let mut reasons = format!("- Reportada como fraude: {reason}");
        if let Some(drafted) = draft_reasons(std::slice::from_ref(&assessment)) {
            reasons.push('\n');
            reasons.push_str(&drafted);
        }
        let subject = facts
            .account
            .as_ref()
            .map(|a| json!({"account": a}).to_string());
        for _ in 0..5 {
            let case = CaseRecord {
                id: ids::object_id("case"),
                tenant_id: tenant_id.to_owned(),
                reference_number: ids::case_reference(),
                status: "borrador".into(),
                priority: priority.to_owned(),
                priority_rank: priority_rank(priority),
                due_at: now + i64::from(settings.due_days(&jurisdiction)) * DAY_MS,
                jurisdiction: jurisdiction.clone(),
                incident_type: incident_type(&reason).to_owned(),
                incident_date: Some(
                    assessment.created_at - assessment.created_at.rem_euclid(DAY_MS),
                ),
                detected_at: now,
                amount_minor,
                currency: currency.clone(),
                victim_name: None,
                victim_email: None,
                description: description.clone(),
                unusual_reasons: Some(reasons.clone()),
                subject: subject.clone(),
                resolution: None,
                source: "fraud_report".into(),
                version: 1,
                created_by: actor.to_owned(),
                reviewed_by: None,
                submitted_by: None,
                submitted_at: None,
                created_at: now,
                updated_at: now,
            };
            let entries: Vec<BlocklistEntry> = identifiers
                .iter()
                .map(|(list_type, value, severity)| BlocklistEntry {
                    id: ids::object_id("bl"),
                    tenant_id: tenant_id.to_owned(),
                    list_type: (*list_type).to_owned(),
                    value: value.clone(),
                    flow_scope: assessment.flow.clone(),
                    severity: (*severity).to_owned(),
                    reason: Some(format!("fraud report {} ({reason})", case.reference_number)),
                    source: "fraud_report".into(),
                    is_active: true,
                    expires_at: None,
                    created_at: now,
                    updated_at: now,
                })
                .collect();
            let write = FraudReportWrite {
                label: FraudLabel {
                    session_id: assessment.session_id.clone(),
                    flow: assessment.flow.clone(),
                    reason: reason.clone(),
                    description: description.clone(),
                    evidence_urls: serde_json::to_string(&evidence_urls).unwrap_or_default(),
                    case_id: case.id.clone(),
                    reported_by: actor.to_owned(),
                    confirmed_at: None,
                    assessed_at: assessment.created_at,
                    created_at: now,
                },
                entries,
                audit: AuditEvent {
                    actor: actor.to_owned(),
                    action: "fraud.reported".into(),
                    subject: assessment.session_id.clone(),
                    details: json!({"reason": reason, "case_id": case.id,
                                    "reference_number": case.reference_number}),
                },
                case,
            };
            let sessions = vec![assessment.session_id.clone()];
            let outcome = self
                .store()
                .report_fraud(&write, |linked| {
                    vec![
                        Event::CaseCreated(case_event(&write.case, &sessions, Value::Null, actor))
                            .outbox_row(now),
                        Event::FraudDetected(FraudEvent {
                            session_id: assessment.session_id.clone(),
                            flow: assessment.flow.clone(),
                            reason: reason.clone(),
                            case_id: write.case.id.clone(),
                            reference_number: write.case.reference_number.clone(),
                            blocklist_entry_ids: linked.iter().map(|e| e.id.clone()).collect(),
                            reported_by: actor.to_owned(),
                        })
                        .outbox_row(now),
                    ]
                })
                .await;
            match outcome {
                Ok(FraudReportOutcome::Created { case, entries }) => {
                    return Ok(FraudReported {
                        case: *case,
                        entries,
                        created: true,
                    });
                }
                Ok(FraudReportOutcome::AlreadyReported(label)) => {
                    return self.earlier_report(tenant_id, &label).await;
                }
                // A reference number already taken: try another.
                Err(StoreError::Duplicate) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CaseError::Contended)
    }

    /// Per version of `rule_id`, over the tenant's live assessments made in
    /// the last `days` days: runs, fires, and how many of each were
    /// labelled fraud (the precision a risk team tunes with).
    pub async fn rule_stats(
        &self,
        tenant_id: &str,
        rule_id: &str,
        days: i64,
        now: i64,
    ) -> Result<Vec<VersionStats>, CaseError> {
        let since = now - days * DAY_MS;
        let labels = self.store().fraud_labels_since(tenant_id, since).await?;
        let labelled: HashSet<&str> = labels.iter().map(|l| l.session_id.as_str()).collect();
        let confirmed: HashSet<&str> = labels
            .iter()
            .filter(|l| l.confirmed_at.is_some())
            .map(|l| l.session_id.as_str())
            .collect();
        let mut by_version: BTreeMap<(String, String), VersionStats> = BTreeMap::new();
        self.store()
            .assessment_rules_since(tenant_id, since, |session, rules| {
                let Ok(runs) = serde_json::from_str::<Vec<RuleRun>>(rules) else {
                    return;
                };
                for run in runs.into_iter().filter(|r| r.rule_id == rule_id) {
                    let mode = run.mode.as_str().unwrap_or("active").to_owned();
                    let s = by_version
                        .entry((run.rule_version.clone(), mode.clone()))
                        .or_insert_with(|| VersionStats {
                            version: run.rule_version.clone(),
                            mode,
                            ..VersionStats::default()
                        });
                    let fired = !run.signals.is_empty();
                    let fraud = labelled.contains(session);
                    s.assessments += 1;
                    s.fires += u64::from(fired);
                    s.labelled_fraud += u64::from(fraud);
                    s.fires_labelled_fraud += u64::from(fired && fraud);
                    s.fires_confirmed_fraud += u64::from(fired && confirmed.contains(session));
                }
            })
            .await?;
        Ok(by_version.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_follows_reason_and_amount() {
        assert_eq!(
            priority("friendly_fraud", Some(10_000), Some("MXN")),
            "baja"
        );
        assert_eq!(priority("chargeback", Some(10_000), Some("MXN")), "media");
        assert_eq!(
            priority("account_takeover", Some(10_000), Some("MXN")),
            "alta"
        );
        // 150,000.00 MXN: one step up.
        assert_eq!(
            priority("chargeback", Some(15_000_000), Some("MXN")),
            "alta"
        );
        // 2,000,000.00 MXN: two steps, capped at urgente.
        assert_eq!(
            priority("mule_account", Some(200_000_000), Some("MXN")),
            "urgente"
        );
        assert_eq!(priority("other", None, None), "media");
    }
}
