//! Typed domain events (`transaction.created`, `transaction.blocked`,
//! `rule.activated`, …): what changed, as a receiver of the webhook gets
//! it. Each is written to the outbox in the same transaction as the change
//! it records (`store::OutboxRow`), so an event exists exactly when its
//! change committed; the delivery worker reads the outbox.
use serde_json::{Value, json};

use crate::{
    domain::{ids, rfc3339_ms},
    store::OutboxRow,
};

/// A transaction decided by a live assessment.
#[derive(Debug, Clone)]
pub struct TransactionEvent {
    pub session_id: String,
    pub flow: &'static str,
    pub decision: &'static str,
    pub risk_score: u32,
    pub signals: Vec<String>,
    pub blocked_by: Option<String>,
    /// `{minor, major, currency}`.
    pub amount: Value,
    pub payment_id: Option<String>,
}

/// A rule version that started to run (active or in shadow).
#[derive(Debug, Clone)]
pub struct RuleActivatedEvent {
    pub rule_id: String,
    pub version: String,
    pub digest: String,
    pub mode: &'static str,
    /// The version that held this mode until now.
    pub replaced: Option<String>,
    pub activated_by: String,
}

/// A case that was opened or changed.
#[derive(Debug, Clone)]
pub struct CaseEvent {
    pub case_id: String,
    pub reference_number: String,
    pub status: String,
    pub priority: String,
    pub jurisdiction: String,
    pub due_at: i64,
    /// `manual` or `fraud_report`.
    pub source: String,
    pub session_ids: Vec<String>,
    /// `case.updated`: `{field: {"from", "to"}}` of the fields changed.
    pub changes: Value,
    pub version: i64,
    pub actor: String,
}

/// An assessment reported as fraud.
#[derive(Debug, Clone)]
pub struct FraudEvent {
    pub session_id: String,
    pub flow: String,
    pub reason: String,
    pub case_id: String,
    pub reference_number: String,
    pub blocklist_entry_ids: Vec<String>,
    pub reported_by: String,
}

/// A case resolved as confirmed fraud.
#[derive(Debug, Clone)]
pub struct FraudConfirmedEvent {
    pub case_id: String,
    pub reference_number: String,
    pub session_ids: Vec<String>,
    pub confirmed_by: String,
}

/// A domain event.
#[derive(Debug, Clone)]
pub enum Event {
    TransactionCreated(TransactionEvent),
    TransactionBlocked(TransactionEvent),
    RuleActivated(RuleActivatedEvent),
    CaseCreated(CaseEvent),
    CaseUpdated(CaseEvent),
    FraudDetected(FraudEvent),
    FraudConfirmed(FraudConfirmedEvent),
}

impl Event {
    /// A decided transaction's event: `transaction.blocked` on decline,
    /// `transaction.created` otherwise.
    pub fn transaction(t: TransactionEvent) -> Self {
        if t.decision == "decline" {
            Self::TransactionBlocked(t)
        } else {
            Self::TransactionCreated(t)
        }
    }

    /// The event's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Self::TransactionCreated(_) => "transaction.created",
            Self::TransactionBlocked(_) => "transaction.blocked",
            Self::RuleActivated(_) => "rule.activated",
            Self::CaseCreated(_) => "case.created",
            Self::CaseUpdated(_) => "case.updated",
            Self::FraudDetected(_) => "fraud.detected",
            Self::FraudConfirmed(_) => "fraud.confirmed",
        }
    }

    fn data(&self) -> Value {
        match self {
            Self::TransactionCreated(t) | Self::TransactionBlocked(t) => json!({
                "session_id": t.session_id,
                "flow": t.flow,
                "decision": t.decision,
                "risk_score": t.risk_score,
                "signals": t.signals,
                "blocked_by": t.blocked_by,
                "amount": t.amount,
                "payment_id": t.payment_id,
            }),
            Self::RuleActivated(r) => json!({
                "rule_id": r.rule_id,
                "version": r.version,
                "digest": r.digest,
                "mode": r.mode,
                "replaced": r.replaced,
                "activated_by": r.activated_by,
            }),
            Self::CaseCreated(c) | Self::CaseUpdated(c) => {
                let mut data = json!({
                    "case_id": c.case_id,
                    "reference_number": c.reference_number,
                    "status": c.status,
                    "priority": c.priority,
                    "jurisdiction": c.jurisdiction,
                    "due_at": rfc3339_ms(c.due_at),
                    "source": c.source,
                    "session_ids": c.session_ids,
                    "version": c.version,
                    "actor": c.actor,
                });
                if matches!(self, Self::CaseUpdated(_)) {
                    data["changes"] = c.changes.clone();
                }
                data
            }
            Self::FraudDetected(f) => json!({
                "session_id": f.session_id,
                "flow": f.flow,
                "reason": f.reason,
                "case_id": f.case_id,
                "reference_number": f.reference_number,
                "blocklist_entry_ids": f.blocklist_entry_ids,
                "reported_by": f.reported_by,
            }),
            Self::FraudConfirmed(f) => json!({
                "case_id": f.case_id,
                "reference_number": f.reference_number,
                "session_ids": f.session_ids,
                "confirmed_by": f.confirmed_by,
            }),
        }
    }

    /// The outbox row of this event at `at_ms`: a new event id and the
    /// body `{"id", "event", "timestamp", "data"}` (the id stays the same
    /// across delivery attempts).
    pub fn outbox_row(&self, at_ms: i64) -> OutboxRow {
        let id = ids::ordered_object_id("evt");
        let payload = json!({
            "id": id,
            "event": self.name(),
            "timestamp": rfc3339_ms(at_ms),
            "data": self.data(),
        })
        .to_string();
        OutboxRow {
            id,
            event: self.name().to_owned(),
            payload,
        }
    }
}
