//! Cases (expedientes, API.md §7): what a bank's fraud and compliance
//! officers open, investigate and file with the regulator. The status
//! machine ([`transition_allowed`]), validation of every field, the filing
//! deadline (`due_at`), four eyes, and the regulatory report ([`report`]).
//! Fraud reports (§8) open cases too ([`fraud`]).
pub mod fraud;
pub mod report;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json, value::RawValue};

use crate::{
    domain::{
        ids,
        json::nullable,
        money::{AmountUnit, Currency, Money, default_max_major},
        parse_rfc3339_ms,
    },
    events::{CaseEvent, Event, FraudConfirmedEvent},
    store::{
        AuditEvent, BlocklistEntry, CaseChange, CaseCounts, CaseFilter, CaseNote, CaseRecord,
        CaseWrite, FraudLabel, Store, StoreError, StoredAssessment, StoredReport,
    },
};

pub const STATUSES: &[&str] = &[
    "borrador",
    "en_revision",
    "enviado",
    "resuelto",
    "archivado",
];
pub const PRIORITIES: &[&str] = &["baja", "media", "alta", "urgente"];
pub const JURISDICTIONS: &[&str] = &["MX", "CL", "BR", "PE", "CO", "UY", "AR"];
pub const INCIDENT_TYPES: &[&str] = &[
    "phishing",
    "ingenieria_social",
    "transferencia_no_autorizada",
    "robo_identidad",
    "fraude_interno",
    "otro",
];
/// How a resolved case ended (ours; `fraude_confirmado` confirms the fraud
/// labels of its assessments and sends `fraud.confirmed`).
pub const RESOLUTIONS: &[&str] = &["fraude_confirmado", "sin_fraude", "no_concluyente"];

/// Default filing period: the MX unusual-operation report is due 60
/// calendar days after detection; other jurisdictions default the same
/// until a tenant configures theirs.
pub const DEFAULT_DUE_DAYS: u32 = 60;
/// "Due soon": open cases due within this many days.
pub const DUE_SOON_DAYS: i64 = 7;
const DAY_MS: i64 = 86_400_000;

/// Longest free texts.
const MAX_NAME: usize = 200;
const MAX_TEXT: usize = 10_000;
const MAX_NOTE: usize = 10_000;
const MAX_SESSIONS: usize = 100;

/// Errors of the cases service.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("{message}")]
    Invalid { field: String, message: String },
    #[error("case not found")]
    NotFound,
    #[error("assessment not found")]
    AssessmentNotFound,
    #[error("no report: the case has not been submitted")]
    NoReport,
    #[error("{0}")]
    InvalidTransition(String),
    #[error("the case's report was already submitted")]
    AlreadySubmitted,
    #[error("{0}")]
    FourEyes(String),
    #[error("the case kept changing under this request; try again")]
    Contended,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> CaseError {
    CaseError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Whether the status machine allows `from` → `to` (§7). `enviado` is
/// reached only by submitting the report.
pub fn transition_allowed(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("borrador", "en_revision")
            | ("en_revision", "enviado")
            | ("enviado", "resuelto")
            | ("borrador" | "en_revision" | "resuelto", "archivado")
    )
}

pub fn priority_rank(p: &str) -> i64 {
    PRIORITIES
        .iter()
        .position(|x| *x == p)
        .map_or(0, |i| i as i64 + 1)
}

/// The person a report is about.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// `fisica` or `moral`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person_type: Option<String>,
    /// ISO country of nationality.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nationality: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paternal_surname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maternal_surname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rfc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curp: Option<String>,
    /// `YYYY-MM-DD` (birth or incorporation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// The account the operation touched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// A case's fields as a client sends them (create and PATCH). Fields a
/// PATCH may clear are `Option<Option<_>>` (`null` clears).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFields {
    #[serde(default, deserialize_with = "nullable")]
    pub incident_date: Option<Option<String>>,
    pub incident_type: Option<String>,
    /// Major units, a JSON number or a decimal string (`null` clears).
    pub amount: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "nullable")]
    pub currency: Option<Option<String>>,
    pub jurisdiction: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub victim_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub victim_email: Option<Option<String>>,
    pub priority: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<String>>,
    /// Create: the assessments to link; PATCH: more to link.
    pub session_ids: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub unusual_reasons: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub subject: Option<Option<Subject>>,
    /// PATCH only.
    pub status: Option<String>,
    /// PATCH only.
    #[serde(default, deserialize_with = "nullable")]
    pub resolution: Option<Option<String>>,
    /// Create only: when the operation was detected (default: now).
    pub detection_date: Option<String>,
}

/// The reporting entity printed on a report.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReportingEntity {
    #[serde(default)]
    pub name: Option<String>,
    /// The entity's key with its supervisor (e.g. its CASFIM key).
    #[serde(default)]
    pub entity_code: Option<String>,
    /// The supervisor's key.
    #[serde(default)]
    pub supervisor_code: Option<String>,
    /// Locality key and postal code of the reporting branch.
    #[serde(default)]
    pub locality: Option<String>,
    #[serde(default)]
    pub postal_code: Option<String>,
}

/// A tenant's case settings (`GET/PUT /api/v1/settings/cases`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CaseSettings {
    /// The key that submits a report must differ from the one that moved
    /// the case to `en_revision`.
    #[serde(default)]
    pub four_eyes: bool,
    /// Filing period per jurisdiction, in calendar days from detection.
    #[serde(default)]
    pub due_days: BTreeMap<String, u32>,
    /// The jurisdiction of a case opened by a fraud report when the
    /// operation's country is not one of §7's (default `MX`).
    #[serde(default)]
    pub default_jurisdiction: Option<String>,
    #[serde(default)]
    pub reporting_entity: ReportingEntity,
}

impl CaseSettings {
    pub fn due_days(&self, jurisdiction: &str) -> u32 {
        self.due_days
            .get(jurisdiction)
            .copied()
            .unwrap_or(DEFAULT_DUE_DAYS)
    }

    pub fn default_jurisdiction(&self) -> &str {
        self.default_jurisdiction.as_deref().unwrap_or("MX")
    }

    /// The settings as answered: every jurisdiction's period spelled out.
    pub fn effective(&self) -> Value {
        let due: BTreeMap<&str, u32> = JURISDICTIONS
            .iter()
            .map(|j| (*j, self.due_days(j)))
            .collect();
        json!({
            "four_eyes": self.four_eyes,
            "due_days": due,
            "default_jurisdiction": self.default_jurisdiction(),
            "reporting_entity": self.reporting_entity,
        })
    }

    fn validate(&self) -> Result<(), CaseError> {
        for (j, days) in &self.due_days {
            if !JURISDICTIONS.contains(&j.as_str()) {
                return Err(invalid(
                    "due_days",
                    format!(
                        "`{j}` is not a jurisdiction; one of {}",
                        JURISDICTIONS.join(", ")
                    ),
                ));
            }
            if !(1..=365).contains(days) {
                return Err(invalid(format!("due_days.{j}"), "must be 1 to 365 days"));
            }
        }
        if let Some(j) = &self.default_jurisdiction {
            one_of("default_jurisdiction", j, JURISDICTIONS)?;
        }
        let e = &self.reporting_entity;
        for (field, v) in [
            ("reporting_entity.name", &e.name),
            ("reporting_entity.entity_code", &e.entity_code),
            ("reporting_entity.supervisor_code", &e.supervisor_code),
            ("reporting_entity.locality", &e.locality),
            ("reporting_entity.postal_code", &e.postal_code),
        ] {
            text(field, v.clone(), MAX_NAME)?;
        }
        Ok(())
    }
}

fn one_of(field: &str, v: &str, allowed: &[&str]) -> Result<(), CaseError> {
    if allowed.contains(&v) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("`{v}` is not allowed; one of {}", allowed.join(", ")),
        ))
    }
}

/// A free text: at most `max` characters, no control characters but
/// newlines and tabs; blank means none.
fn text(field: &str, v: Option<String>, max: usize) -> Result<Option<String>, CaseError> {
    match v {
        Some(v) if v.chars().count() > max => {
            Err(invalid(field, format!("may be at most {max} characters")))
        }
        Some(v) if v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') => {
            Err(invalid(field, "may not contain control characters"))
        }
        Some(v) if v.trim().is_empty() => Ok(None),
        other => Ok(other.map(|v| v.trim().to_owned())),
    }
}

fn email(field: &str, v: Option<String>) -> Result<Option<String>, CaseError> {
    let v = text(field, v, 254)?;
    if let Some(e) = &v {
        let ok = e.split_once('@').is_some_and(|(local, host)| {
            !local.is_empty() && host.contains('.') && !host.contains('@') && !e.contains(' ')
        });
        if !ok {
            return Err(invalid(field, "is not an email address"));
        }
    }
    Ok(v.map(|e| e.to_lowercase()))
}

/// A date (`YYYY-MM-DD`, or an RFC 3339 time) as Unix ms of its UTC
/// midnight, not in the future.
pub fn parse_day(field: &str, v: &str, now: i64) -> Result<i64, CaseError> {
    let day = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .or_else(|| {
            parse_rfc3339_ms(v)
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.date_naive())
        })
        .ok_or_else(|| invalid(field, "must be a date (YYYY-MM-DD) or an RFC 3339 time"))?;
    let ms = day
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
        .ok_or_else(|| invalid(field, "is not a valid date"))?;
    if ms > now {
        return Err(invalid(field, "may not be in the future"));
    }
    if day.year_ce().1 < 1900 {
        return Err(invalid(field, "is before 1900"));
    }
    Ok(ms)
}

use chrono::Datelike;

fn subject(v: Option<Subject>, now: i64) -> Result<Option<String>, CaseError> {
    let Some(mut s) = v else { return Ok(None) };
    if let Some(t) = &s.person_type {
        one_of("subject.person_type", t, &["fisica", "moral"])?;
    }
    if let Some(n) = &s.nationality {
        s.nationality = Some(
            crate::domain::country::Country::parse(n)
                .ok_or_else(|| {
                    invalid(
                        "subject.nationality",
                        "is not an ISO 3166-1 alpha-2 country",
                    )
                })?
                .into_string(),
        );
    }
    for (field, v, max) in [
        ("subject.legal_name", &mut s.legal_name, MAX_NAME),
        ("subject.first_name", &mut s.first_name, MAX_NAME),
        (
            "subject.paternal_surname",
            &mut s.paternal_surname,
            MAX_NAME,
        ),
        (
            "subject.maternal_surname",
            &mut s.maternal_surname,
            MAX_NAME,
        ),
        ("subject.address", &mut s.address, 500),
        ("subject.phone", &mut s.phone, 40),
        ("subject.account", &mut s.account, 64),
    ] {
        *v = text(field, v.take(), max)?;
    }
    if let Some(rfc) = &s.rfc {
        let rfc = rfc.trim().to_uppercase();
        if !(12..=13).contains(&rfc.len())
            || !rfc.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'&')
        {
            return Err(invalid(
                "subject.rfc",
                "an RFC is 12 (moral) or 13 (física) letters and digits",
            ));
        }
        s.rfc = Some(rfc);
    }
    if let Some(curp) = &s.curp {
        let curp = curp.trim().to_uppercase();
        if curp.len() != 18 || !curp.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(invalid("subject.curp", "a CURP is 18 letters and digits"));
        }
        s.curp = Some(curp);
    }
    if let Some(d) = &s.birth_date {
        parse_day("subject.birth_date", d, now)?;
    }
    if s == Subject::default() {
        return Ok(None);
    }
    Ok(Some(serde_json::to_string(&s).unwrap_or_default()))
}

/// (minor, currency) of a case amount in major units.
fn amount(raw: &RawValue, currency: Option<&str>) -> Result<Option<(i64, String)>, CaseError> {
    if raw.get().trim() == "null" {
        return Ok(None);
    }
    let code = currency.ok_or_else(|| invalid("currency", "is required with amount"))?;
    let currency = Currency::parse(code)
        .ok_or_else(|| invalid("currency", format!("`{code}` is not an ISO 4217 currency")))?;
    let money = Money::parse(raw.get(), AmountUnit::Major, currency, default_max_major())
        .map_err(|e| invalid("amount", e.to_string()))?;
    let minor = i64::try_from(money.minor).map_err(|_| invalid("amount", "is too large"))?;
    Ok(Some((minor, money.currency.code().to_owned())))
}

/// The amount of a case in major units, e.g. `"25000.00"`.
pub fn major(minor: i64, currency: &str) -> String {
    let exponent = Currency::parse(currency).map_or(2, |c| c.exponent());
    let mut d = rust_decimal::Decimal::from(minor);
    let _ = d.set_scale(u32::from(exponent));
    d.to_string()
}

/// A linked assessment's signals as report reasons: one line per signal.
pub fn draft_reasons(assessments: &[StoredAssessment]) -> Option<String> {
    let mut lines: Vec<String> = Vec::new();
    for a in assessments {
        let response: Value = serde_json::from_str(&a.response).unwrap_or(Value::Null);
        let details = response["signal_details"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for d in details {
            let line = format!(
                "- {} ({}, regla {} {}; sesión {}, decisión {})",
                d["description"].as_str().unwrap_or_default(),
                d["code"].as_str().unwrap_or_default(),
                d["rule_id"].as_str().unwrap_or_default(),
                d["rule_version"].as_str().unwrap_or_default(),
                a.session_id,
                a.decision,
            );
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
        if let Some(by) = response["blocked_by"].as_str() {
            let line = format!("- Bloqueo: {by} (sesión {})", a.session_id);
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
    }
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// A case with everything `GET /api/v1/cases/{id}` shows.
#[derive(Debug, Clone)]
pub struct CaseDetail {
    pub case: CaseRecord,
    pub notes: Vec<CaseNote>,
    pub history: Vec<CaseChange>,
    pub assessments: Vec<StoredAssessment>,
    pub blocklist_entries: Vec<BlocklistEntry>,
    /// The fraud reports behind the case (reason, evidence, who reported).
    pub fraud_reports: Vec<FraudLabel>,
}

/// What a listing asks for, as sent.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListQuery {
    pub status: Option<String>,
    pub priority: Option<String>,
    pub jurisdiction: Option<String>,
    pub search: Option<String>,
    pub from_date: Option<String>,
    pub to_date: Option<String>,
    /// `overdue` or `due_soon` (ours).
    pub due: Option<String>,
    pub limit: Option<String>,
    pub offset: Option<String>,
    pub sort_by: Option<String>,
    pub sort_order: Option<String>,
}

/// The cases service.
#[derive(Debug, Clone)]
pub struct Cases {
    store: Store,
}

impl Cases {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The tenant's case settings (defaults when it stored none).
    pub async fn settings(&self, tenant_id: &str) -> Result<CaseSettings, CaseError> {
        Ok(match self.store.case_settings(tenant_id).await? {
            Some(s) => serde_json::from_str(&s)
                .map_err(|e| StoreError::Corrupt(format!("case settings: {e}")))?,
            None => CaseSettings::default(),
        })
    }

    /// Replaces the tenant's case settings (audited as
    /// `case_settings.updated`).
    pub async fn set_settings(
        &self,
        tenant_id: &str,
        actor: &str,
        settings: CaseSettings,
        now: i64,
    ) -> Result<CaseSettings, CaseError> {
        settings.validate()?;
        let text = serde_json::to_string(&settings).unwrap_or_default();
        let audit = AuditEvent {
            actor: actor.to_owned(),
            action: "case_settings.updated".into(),
            subject: "cases".into(),
            details: settings.effective(),
        };
        self.store
            .set_case_settings(tenant_id, &text, now, &audit)
            .await?;
        Ok(settings)
    }

    async fn check_sessions(
        &self,
        tenant_id: &str,
        sessions: Vec<String>,
    ) -> Result<Vec<String>, CaseError> {
        if sessions.len() > MAX_SESSIONS {
            return Err(invalid(
                "session_ids",
                format!("at most {MAX_SESSIONS} assessments per request"),
            ));
        }
        let mut unique: Vec<String> = Vec::with_capacity(sessions.len());
        for s in sessions {
            if s.is_empty() || s.len() > 64 {
                return Err(invalid("session_ids", "a session id is 1 to 64 characters"));
            }
            if !unique.contains(&s) {
                unique.push(s);
            }
        }
        let found = self.store.existing_sessions(tenant_id, &unique).await?;
        if let Some(missing) = unique.iter().find(|s| !found.contains(s)) {
            return Err(invalid(
                "session_ids",
                format!("`{missing}` is not an assessment of this tenant"),
            ));
        }
        Ok(unique)
    }

    /// Opens a case (`borrador`) by `actor` (a key id); its reasons are
    /// drafted from the linked assessments' signals unless given.
    pub async fn create(
        &self,
        tenant_id: &str,
        actor: &str,
        f: CaseFields,
        now: i64,
    ) -> Result<CaseRecord, CaseError> {
        if f.status.is_some() {
            return Err(invalid(
                "status",
                "a case opens as `borrador`; change it with PATCH",
            ));
        }
        if f.resolution.is_some() {
            return Err(invalid("resolution", "is set when the case is resolved"));
        }
        let settings = self.settings(tenant_id).await?;
        let incident_type = f
            .incident_type
            .ok_or_else(|| invalid("incident_type", "is required"))?;
        one_of("incident_type", &incident_type, INCIDENT_TYPES)?;
        let jurisdiction = f
            .jurisdiction
            .unwrap_or_else(|| settings.default_jurisdiction().to_owned());
        one_of("jurisdiction", &jurisdiction, JURISDICTIONS)?;
        let priority = f.priority.unwrap_or_else(|| "media".to_owned());
        one_of("priority", &priority, PRIORITIES)?;
        let currency = f.currency.flatten();
        let money = match &f.amount {
            Some(raw) => amount(raw, currency.as_deref())?,
            None if currency.is_some() => {
                return Err(invalid("amount", "is required with currency"));
            }
            None => None,
        };
        let incident_date = f
            .incident_date
            .flatten()
            .map(|d| parse_day("incident_date", &d, now))
            .transpose()?;
        let detected_at = match &f.detection_date {
            Some(d) => parse_day("detection_date", d, now)?,
            None => now,
        };
        let sessions = self
            .check_sessions(tenant_id, f.session_ids.unwrap_or_default())
            .await?;
        let mut unusual_reasons = text("unusual_reasons", f.unusual_reasons.flatten(), MAX_TEXT)?;
        if unusual_reasons.is_none() && !sessions.is_empty() {
            let mut linked = Vec::with_capacity(sessions.len());
            for s in &sessions {
                if let Some(a) = self.store.assessment(tenant_id, s).await? {
                    linked.push(a);
                }
            }
            unusual_reasons = draft_reasons(&linked);
        }
        let mut case = CaseRecord {
            id: ids::object_id("case"),
            tenant_id: tenant_id.to_owned(),
            reference_number: ids::case_reference(),
            status: "borrador".into(),
            priority_rank: priority_rank(&priority),
            priority,
            due_at: detected_at + i64::from(settings.due_days(&jurisdiction)) * DAY_MS,
            jurisdiction,
            incident_type,
            incident_date,
            detected_at,
            amount_minor: money.as_ref().map(|m| m.0),
            currency: money.map(|m| m.1),
            victim_name: text("victim_name", f.victim_name.flatten(), MAX_NAME)?,
            victim_email: email("victim_email", f.victim_email.flatten())?,
            description: text("description", f.description.flatten(), MAX_TEXT)?,
            unusual_reasons,
            subject: subject(f.subject.flatten(), now)?,
            resolution: None,
            source: "manual".into(),
            version: 1,
            created_by: actor.to_owned(),
            reviewed_by: None,
            submitted_by: None,
            submitted_at: None,
            created_at: now,
            updated_at: now,
        };
        // A reference number is 36^6 ≈ 2.2e9 values: a collision is rare,
        // and retried with a new one.
        for _ in 0..5 {
            let event = Event::CaseCreated(case_event(&case, &sessions, Value::Null, actor));
            match self
                .store
                .insert_case(&case, &sessions, &[event.outbox_row(now)])
                .await
            {
                Ok(()) => return Ok(case),
                Err(StoreError::Duplicate) => case.reference_number = ids::case_reference(),
                Err(e) => return Err(e.into()),
            }
        }
        Err(CaseError::Contended)
    }

    pub async fn get(&self, tenant_id: &str, id: &str) -> Result<CaseRecord, CaseError> {
        self.store
            .case(tenant_id, id)
            .await?
            .ok_or(CaseError::NotFound)
    }

    pub async fn detail(&self, tenant_id: &str, id: &str) -> Result<CaseDetail, CaseError> {
        let case = self.get(tenant_id, id).await?;
        Ok(CaseDetail {
            notes: self.store.case_notes(&case.id).await?,
            history: self.store.case_history(&case.id).await?,
            assessments: self.store.case_assessments(tenant_id, &case.id).await?,
            blocklist_entries: self
                .store
                .case_blocklist_entries(tenant_id, &case.id)
                .await?,
            fraud_reports: self.store.case_fraud_labels(tenant_id, &case.id).await?,
            case,
        })
    }

    /// A page of the tenant's cases, the total matching, and the filter
    /// used (its limit and offset).
    pub async fn list(
        &self,
        tenant_id: &str,
        q: ListQuery,
        now: i64,
    ) -> Result<(Vec<CaseRecord>, i64, CaseFilter), CaseError> {
        let number = |field: &str, v: Option<String>, default: i64, max: i64| {
            v.map_or(Ok(default), |v| match v.parse::<i64>() {
                Ok(n) if (0..=max).contains(&n) => Ok(n),
                _ => Err(invalid(
                    field,
                    format!("must be a whole number from 0 to {max}"),
                )),
            })
        };
        let limit = number("limit", q.limit, 50, 200)?.max(1);
        let offset = number("offset", q.offset, 0, 1_000_000)?;
        if let Some(s) = &q.status {
            one_of("status", s, STATUSES)?;
        }
        if let Some(p) = &q.priority {
            one_of("priority", p, PRIORITIES)?;
        }
        if let Some(j) = &q.jurisdiction {
            one_of("jurisdiction", j, JURISDICTIONS)?;
        }
        let sort_by = match q.sort_by.as_deref() {
            None => "created_at",
            Some(s) => crate::store::CASE_SORT_COLUMNS
                .iter()
                .copied()
                .find(|c| *c == s)
                .ok_or_else(|| {
                    invalid(
                        "sort_by",
                        format!(
                            "`{s}` is not sortable; one of {}",
                            crate::store::CASE_SORT_COLUMNS.join(", ")
                        ),
                    )
                })?,
        };
        let descending = match q.sort_order.as_deref() {
            None | Some("desc") => true,
            Some("asc") => false,
            Some(o) => return Err(invalid("sort_order", format!("`{o}` is not asc or desc"))),
        };
        // Dates are whole days: `to_date` includes its day.
        let far = i64::MAX / 4;
        let from = q
            .from_date
            .map(|d| parse_day("from_date", &d, far))
            .transpose()?;
        let to = q
            .to_date
            .map(|d| parse_day("to_date", &d, far).map(|ms| ms + DAY_MS))
            .transpose()?;
        let due_before = match q.due.as_deref() {
            None => None,
            Some("overdue") => Some(now),
            Some("due_soon") => Some(now + DUE_SOON_DAYS * DAY_MS),
            Some(o) => return Err(invalid("due", format!("`{o}` is not overdue or due_soon"))),
        };
        let search = text("search", q.search, 200)?.map(|s| s.to_lowercase());
        let filter = CaseFilter {
            status: q.status,
            priority: q.priority,
            jurisdiction: q.jurisdiction,
            search,
            from,
            to,
            due_before,
            sort_by,
            descending,
            limit,
            offset,
        };
        let (cases, total) = self.store.list_cases(tenant_id, &filter).await?;
        Ok((cases, total, filter))
    }

    pub async fn stats(&self, tenant_id: &str, now: i64) -> Result<CaseCounts, CaseError> {
        Ok(self
            .store
            .case_counts(tenant_id, now, now + DUE_SOON_DAYS * DAY_MS)
            .await?)
    }

    pub async fn add_note(
        &self,
        tenant_id: &str,
        case_id: &str,
        actor: &str,
        body: Option<String>,
        now: i64,
    ) -> Result<CaseNote, CaseError> {
        let body = text("body", body, MAX_NOTE)?.ok_or_else(|| invalid("body", "is required"))?;
        let note = CaseNote {
            id: ids::object_id("note"),
            author: actor.to_owned(),
            body,
            created_at: now,
        };
        if self.store.add_case_note(tenant_id, case_id, &note).await? {
            Ok(note)
        } else {
            Err(CaseError::NotFound)
        }
    }

    /// Applies a PATCH by `actor`. A change is written only on the version
    /// it was computed from; when another change lands first it is
    /// recomputed on the new state (so a status move is judged against the
    /// status it would really leave).
    pub async fn update(
        &self,
        tenant_id: &str,
        id: &str,
        actor: &str,
        f: CaseFields,
        now: i64,
    ) -> Result<CaseRecord, CaseError> {
        if f.detection_date.is_some() {
            return Err(invalid("detection_date", "is fixed when the case opens"));
        }
        let settings = self.settings(tenant_id).await?;
        let link = match &f.session_ids {
            Some(s) => self.check_sessions(tenant_id, s.clone()).await?,
            None => Vec::new(),
        };
        for _ in 0..8 {
            let current = self.get(tenant_id, id).await?;
            let (next, changes) = apply(&current, &f, &link, &settings, actor, now)?;
            if changes.is_empty() {
                return Ok(current);
            }
            let mut outbox = Vec::with_capacity(2);
            let changed: serde_json::Map<String, Value> = changes
                .iter()
                .map(|(field, old, new)| ((*field).to_owned(), json!({"from": old, "to": new})))
                .collect();
            let sessions_now = self.linked_sessions(tenant_id, &next.id, &link).await?;
            outbox.push(
                Event::CaseUpdated(case_event(
                    &next,
                    &sessions_now,
                    Value::Object(changed),
                    actor,
                ))
                .outbox_row(now),
            );
            let confirm = next.resolution.as_deref() == Some("fraude_confirmado")
                && current.resolution.as_deref() != Some("fraude_confirmado");
            if confirm {
                outbox.push(
                    Event::FraudConfirmed(FraudConfirmedEvent {
                        case_id: next.id.clone(),
                        reference_number: next.reference_number.clone(),
                        session_ids: sessions_now.clone(),
                        confirmed_by: actor.to_owned(),
                    })
                    .outbox_row(now),
                );
            }
            let write = CaseWrite {
                case: &next,
                expected_version: current.version,
                changes,
                actor,
                outbox,
                report: None,
                confirm_labels: confirm,
                audit: None,
                link: link.clone(),
            };
            if self.store.update_case(&write).await? {
                return Ok(next);
            }
        }
        Err(CaseError::Contended)
    }

    /// The sessions linked to a case, plus `adding`.
    async fn linked_sessions(
        &self,
        tenant_id: &str,
        case_id: &str,
        adding: &[String],
    ) -> Result<Vec<String>, CaseError> {
        let mut s: Vec<String> = self
            .store
            .case_assessments(tenant_id, case_id)
            .await?
            .into_iter()
            .map(|a| a.session_id)
            .collect();
        for a in adding {
            if !s.contains(a) {
                s.push(a.clone());
            }
        }
        Ok(s)
    }

    /// Submits the case's report: `en_revision` → `enviado`, with the
    /// report stored immutably (and audited as `case.submitted`).
    pub async fn submit(
        &self,
        tenant_id: &str,
        id: &str,
        actor: &str,
        now: i64,
    ) -> Result<(CaseRecord, StoredReport), CaseError> {
        let settings = self.settings(tenant_id).await?;
        for _ in 0..8 {
            let current = self.get(tenant_id, id).await?;
            if current.submitted_at.is_some() {
                return Err(CaseError::AlreadySubmitted);
            }
            if current.status != "en_revision" {
                return Err(CaseError::InvalidTransition(format!(
                    "a case is submitted from `en_revision`; this one is `{}`",
                    current.status
                )));
            }
            if settings.four_eyes && current.reviewed_by.as_deref() == Some(actor) {
                return Err(CaseError::FourEyes(
                    "four eyes: the key that moved this case to `en_revision` may not submit \
                     its report; another key must"
                        .into(),
                ));
            }
            let mut next = current.clone();
            next.status = "enviado".into();
            next.version += 1;
            next.submitted_by = Some(actor.to_owned());
            next.submitted_at = Some(now);
            next.updated_at = now;
            let detail = CaseDetail {
                assessments: self.store.case_assessments(tenant_id, id).await?,
                notes: Vec::new(),
                history: Vec::new(),
                blocklist_entries: Vec::new(),
                fraud_reports: Vec::new(),
                case: next.clone(),
            };
            let doc = report::build(&detail, &settings, actor, now);
            let txt = report::mx_roi_txt(&doc);
            let report_json = doc.to_string();
            let sessions: Vec<String> = detail
                .assessments
                .iter()
                .map(|a| a.session_id.clone())
                .collect();
            let changes = vec![(
                "status",
                Some(current.status.clone()),
                Some(next.status.clone()),
            )];
            let event = Event::CaseUpdated(case_event(
                &next,
                &sessions,
                json!({"status": {"from": current.status, "to": next.status}}),
                actor,
            ));
            let write = CaseWrite {
                case: &next,
                expected_version: current.version,
                changes,
                actor,
                outbox: vec![event.outbox_row(now)],
                report: Some((report_json.clone(), txt.clone())),
                confirm_labels: false,
                audit: Some(AuditEvent {
                    actor: actor.to_owned(),
                    action: "case.submitted".into(),
                    subject: next.reference_number.clone(),
                    details: json!({"case_id": next.id, "jurisdiction": next.jurisdiction}),
                }),
                link: Vec::new(),
            };
            match self.store.update_case(&write).await {
                Ok(true) => {
                    return Ok((
                        next,
                        StoredReport {
                            report: report_json,
                            txt,
                            submitted_by: actor.to_owned(),
                            created_at: now,
                        },
                    ));
                }
                Ok(false) => continue,
                Err(StoreError::Duplicate) => return Err(CaseError::AlreadySubmitted),
                Err(e) => return Err(e.into()),
            }
        }
        Err(CaseError::Contended)
    }

    pub async fn report(&self, tenant_id: &str, id: &str) -> Result<StoredReport, CaseError> {
        let case = self.get(tenant_id, id).await?;
        self.store
            .case_report(tenant_id, &case.id)
            .await?
            .ok_or(CaseError::NoReport)
    }
}

/// The event of a case.
pub fn case_event(c: &CaseRecord, sessions: &[String], changes: Value, actor: &str) -> CaseEvent {
    CaseEvent {
        case_id: c.id.clone(),
        reference_number: c.reference_number.clone(),
        status: c.status.clone(),
        priority: c.priority.clone(),
        jurisdiction: c.jurisdiction.clone(),
        due_at: c.due_at,
        source: c.source.clone(),
        session_ids: sessions.to_vec(),
        changes,
        version: c.version,
        actor: actor.to_owned(),
    }
}

type Changes = Vec<(&'static str, Option<String>, Option<String>)>;

/// The case `current` becomes under PATCH `f`, and what changed.
fn apply(
    current: &CaseRecord,
    f: &CaseFields,
    link: &[String],
    settings: &CaseSettings,
    actor: &str,
    now: i64,
) -> Result<(CaseRecord, Changes), CaseError> {
    let mut next = current.clone();
    let mut changes: Changes = Vec::new();
    let set =
        |changes: &mut Changes, field: &'static str, old: &Option<String>, new: &Option<String>| {
            if old != new {
                changes.push((field, old.clone(), new.clone()));
            }
        };
    let frozen = current.submitted_at.is_some() || current.status == "archivado";
    // Fields the report is made of.
    let touches_report = f.incident_date.is_some()
        || f.incident_type.is_some()
        || f.amount.is_some()
        || f.currency.is_some()
        || f.jurisdiction.is_some()
        || f.victim_name.is_some()
        || f.victim_email.is_some()
        || f.description.is_some()
        || f.unusual_reasons.is_some()
        || f.subject.is_some()
        || !link.is_empty();
    if touches_report && frozen {
        return Err(if current.status == "archivado" {
            CaseError::InvalidTransition("an archived case is read-only".into())
        } else {
            CaseError::AlreadySubmitted
        });
    }
    if let Some(p) = &f.priority {
        one_of("priority", p, PRIORITIES)?;
        if current.status == "archivado" {
            return Err(CaseError::InvalidTransition(
                "an archived case is read-only".into(),
            ));
        }
        next.priority = p.clone();
        next.priority_rank = priority_rank(p);
        set(
            &mut changes,
            "priority",
            &Some(current.priority.clone()),
            &Some(p.clone()),
        );
    }
    if let Some(t) = &f.incident_type {
        one_of("incident_type", t, INCIDENT_TYPES)?;
        next.incident_type = t.clone();
        set(
            &mut changes,
            "incident_type",
            &Some(current.incident_type.clone()),
            &Some(t.clone()),
        );
    }
    if let Some(j) = &f.jurisdiction {
        one_of("jurisdiction", j, JURISDICTIONS)?;
        next.jurisdiction = j.clone();
        next.due_at = current.detected_at + i64::from(settings.due_days(j)) * DAY_MS;
        set(
            &mut changes,
            "jurisdiction",
            &Some(current.jurisdiction.clone()),
            &Some(j.clone()),
        );
    }
    if let Some(d) = &f.incident_date {
        next.incident_date = d
            .as_ref()
            .map(|d| parse_day("incident_date", d, now))
            .transpose()?;
        let show = |v: Option<i64>| v.map(crate::domain::rfc3339_ms);
        set(
            &mut changes,
            "incident_date",
            &show(current.incident_date),
            &show(next.incident_date),
        );
    }
    if f.amount.is_some() || f.currency.is_some() {
        let currency = match &f.currency {
            Some(c) => c.clone(),
            None => current.currency.clone(),
        };
        let money = match &f.amount {
            Some(raw) => amount(raw, currency.as_deref())?,
            None => match (current.amount_minor, currency) {
                (Some(minor), Some(c)) => {
                    let parsed = Currency::parse(&c).ok_or_else(|| {
                        invalid("currency", format!("`{c}` is not an ISO 4217 currency"))
                    })?;
                    // The stored minor amount, read in the new currency's
                    // minor units, would change its value: ask again.
                    let old = Currency::parse(current.currency.as_deref().unwrap_or_default());
                    if old.map(|o| o.exponent()) != Some(parsed.exponent()) {
                        return Err(invalid(
                            "amount",
                            "is required when the currency changes its decimals",
                        ));
                    }
                    Some((minor, parsed.code().to_owned()))
                }
                (None, Some(_)) => return Err(invalid("amount", "is required with currency")),
                (_, None) => None,
            },
        };
        let show = |m: Option<i64>, c: &Option<String>| {
            m.zip(c.as_ref())
                .map(|(m, c)| format!("{} {c}", major(m, c)))
        };
        let old = show(current.amount_minor, &current.currency);
        next.amount_minor = money.as_ref().map(|m| m.0);
        next.currency = money.map(|m| m.1);
        let new = show(next.amount_minor, &next.currency);
        set(&mut changes, "amount", &old, &new);
    }
    if let Some(v) = &f.victim_name {
        next.victim_name = text("victim_name", v.clone(), MAX_NAME)?;
        set(
            &mut changes,
            "victim_name",
            &current.victim_name,
            &next.victim_name,
        );
    }
    if let Some(v) = &f.victim_email {
        next.victim_email = email("victim_email", v.clone())?;
        set(
            &mut changes,
            "victim_email",
            &current.victim_email,
            &next.victim_email,
        );
    }
    if let Some(v) = &f.description {
        next.description = text("description", v.clone(), MAX_TEXT)?;
        set(
            &mut changes,
            "description",
            &current.description,
            &next.description,
        );
    }
    if let Some(v) = &f.unusual_reasons {
        next.unusual_reasons = text("unusual_reasons", v.clone(), MAX_TEXT)?;
        set(
            &mut changes,
            "unusual_reasons",
            &current.unusual_reasons,
            &next.unusual_reasons,
        );
    }
    if let Some(v) = &f.subject {
        next.subject = subject(v.clone(), now)?;
        set(&mut changes, "subject", &current.subject, &next.subject);
    }
    if !link.is_empty() {
        changes.push(("session_ids", None, Some(link.join(","))));
    }
    if let Some(r) = &f.resolution {
        if let Some(r) = r {
            one_of("resolution", r, RESOLUTIONS)?;
        }
        let resolving = f.status.as_deref() == Some("resuelto") || current.status == "resuelto";
        if r.is_some() && !resolving {
            return Err(invalid(
                "resolution",
                "is set on a `resuelto` case (or with status `resuelto`)",
            ));
        }
        next.resolution = r.clone();
        set(
            &mut changes,
            "resolution",
            &current.resolution,
            &next.resolution,
        );
    }
    if let Some(s) = &f.status {
        one_of("status", s, STATUSES)?;
        if s == "enviado" && current.status == "en_revision" {
            return Err(CaseError::InvalidTransition(
                "a case reaches `enviado` by submitting its report: POST /api/v1/cases/{id}/submit"
                    .into(),
            ));
        }
        if s != &current.status {
            if !transition_allowed(&current.status, s) {
                return Err(CaseError::InvalidTransition(format!(
                    "`{}` → `{s}` is not a transition; from `{}` a case may go to {}",
                    current.status,
                    current.status,
                    next_statuses(&current.status)
                )));
            }
            if s == "en_revision" {
                next.reviewed_by = Some(actor.to_owned());
            }
            next.status = s.clone();
            set(
                &mut changes,
                "status",
                &Some(current.status.clone()),
                &Some(s.clone()),
            );
        } else {
            // Asking for the status the case has is not a move.
            return Err(CaseError::InvalidTransition(format!(
                "the case is already `{s}`"
            )));
        }
    }
    if !changes.is_empty() {
        next.version = current.version + 1;
        next.updated_at = now;
    }
    Ok((next, changes))
}

fn next_statuses(from: &str) -> String {
    let to: Vec<String> = STATUSES
        .iter()
        .filter(|t| transition_allowed(from, t))
        .map(|t| {
            if *t == "enviado" {
                "`enviado` (by POST …/submit)".to_owned()
            } else {
                format!("`{t}`")
            }
        })
        .collect();
    if to.is_empty() {
        "nowhere (it is final)".to_owned()
    } else {
        to.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_machine_is_exactly_the_contracts() {
        let allowed: Vec<(&str, &str)> = STATUSES
            .iter()
            .flat_map(|f| STATUSES.iter().map(move |t| (*f, *t)))
            .filter(|(f, t)| transition_allowed(f, t))
            .collect();
        assert_eq!(
            allowed,
            vec![
                ("borrador", "en_revision"),
                ("borrador", "archivado"),
                ("en_revision", "enviado"),
                ("en_revision", "archivado"),
                ("enviado", "resuelto"),
                ("resuelto", "archivado"),
            ]
        );
    }

    #[test]
    fn reference_numbers_have_the_documented_shape() {
        for _ in 0..100 {
            let r = ids::case_reference();
            assert!(ids::is_case_reference(&r), "{r}");
        }
    }

    #[test]
    fn days_are_utc_midnights_and_not_in_the_future() {
        let now = 1_765_000_000_000;
        assert_eq!(
            parse_day("d", "2025-01-02", now).ok(),
            Some(1_735_776_000_000)
        );
        assert!(parse_day("d", "2999-01-01", now).is_err());
        assert!(parse_day("d", "02/01/2025", now).is_err());
    }
}
