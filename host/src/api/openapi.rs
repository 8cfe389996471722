//! `GET /openapi.json` (OpenAPI 3.1, built with `utoipa`'s typed model) and
//! `GET /docs` (a self-contained page that renders it and can send requests;
//! no CDN, so it works on a bank's closed network).
//!
//! Operations come from one table, [`OPERATIONS`]; a test sends a request
//! to every documented operation and asserts the route exists, so the
//! document cannot list what the server does not serve.
use std::sync::OnceLock;

use axum::{
    Router,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::{Value, json};
use utoipa::openapi::{
    ContentBuilder, HttpMethod, OpenApi, OpenApiBuilder, PathItem, PathsBuilder, Ref, RefOr,
    ResponseBuilder, Schema,
    path::{OperationBuilder, ParameterBuilder, ParameterIn},
    request_body::RequestBodyBuilder,
    security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme},
};

use super::state::App;
use crate::domain::{
    country::Country,
    lists::{FLOW_SCOPES, PAYIN_TYPES, PAYOUT_TYPES, SEVERITIES, SOURCES},
    money::Currency,
};

pub fn router() -> Router<App> {
    Router::new()
        .route("/openapi.json", get(spec))
        .route("/docs", get(docs))
}

/// One documented operation.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    /// `None`: no API key needed.
    pub permission: Option<&'static str>,
    /// Component schema of the JSON body, if any (`multipart` for uploads).
    pub body: Option<&'static str>,
    /// Success status and component schema of its body.
    pub ok: (u16, &'static str),
}

const fn op(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    permission: Option<&'static str>,
    body: Option<&'static str>,
    ok: (u16, &'static str),
) -> Operation {
    Operation {
        method,
        path,
        tag,
        summary,
        permission,
        body,
        ok,
    }
}

/// Every operation the service serves.
pub const OPERATIONS: &[Operation] = &[
    op(
        "POST",
        "/api/v1/assess/payout",
        "assess",
        "Assess a payout before releasing it",
        Some("assess"),
        Some("AssessPayoutRequest"),
        (200, "AssessResponse"),
    ),
    op(
        "GET",
        "/api/v1/assess/payout",
        "assess",
        "Catalog: fields, signals, thresholds, idempotency and resilience notes",
        None,
        None,
        (200, "Catalog"),
    ),
    op(
        "POST",
        "/api/v1/assess",
        "assess",
        "Assess a pay-in (secret or publishable key)",
        Some("assess"),
        Some("AssessPayinRequest"),
        (200, "AssessResponse"),
    ),
    op(
        "GET",
        "/api/v1/assess",
        "assess",
        "Pay-in catalog: amount encoding, field requirements by segment, card data, velocity, signals, idempotency and resilience",
        None,
        None,
        (200, "PayinCatalog"),
    ),
    op(
        "POST",
        "/api/v1/simulation/assess",
        "assess",
        "Simulate a pay-in assessment (no side effects, velocity not counted), optionally with candidate rule versions",
        Some("assess"),
        Some("SimulationPayinRequest"),
        (200, "SimulationResponse"),
    ),
    op(
        "POST",
        "/api/v1/simulation/payout",
        "assess",
        "Simulate a payout assessment (no side effects), optionally with candidate rule versions",
        Some("assess"),
        Some("SimulationRequest"),
        (200, "SimulationResponse"),
    ),
    op(
        "GET",
        "/api/v1/assessments/{session_id}",
        "assess",
        "Explain a stored assessment: every rule that ran, active or shadow",
        Some("rules:read"),
        None,
        (200, "Explanation"),
    ),
    op(
        "POST",
        "/api/v1/assessments/{session_id}/replay",
        "assess",
        "Re-run a stored assessment and report whether the result is identical",
        Some("rules:read"),
        None,
        (200, "ReplayReport"),
    ),
    op(
        "GET",
        "/api/v1/keys",
        "keys",
        "List API keys",
        Some("keys:write"),
        None,
        (200, "KeyList"),
    ),
    op(
        "POST",
        "/api/v1/keys",
        "keys",
        "Create an API key (the secret is shown once)",
        Some("keys:write"),
        Some("KeyRequest"),
        (201, "CreatedKey"),
    ),
    op(
        "DELETE",
        "/api/v1/keys/{id}",
        "keys",
        "Revoke an API key",
        Some("keys:write"),
        None,
        (200, "KeyRevoked"),
    ),
    op(
        "GET",
        "/api/v1/blocklists",
        "blocklists",
        "List blocklist entries (cursor pagination)",
        Some("blocklists:read"),
        None,
        (200, "BlocklistPage"),
    ),
    op(
        "POST",
        "/api/v1/blocklists",
        "blocklists",
        "Add a blocklist entry",
        Some("blocklists:write"),
        Some("BlocklistEntryRequest"),
        (201, "BlocklistEntry"),
    ),
    op(
        "PATCH",
        "/api/v1/blocklists",
        "blocklists",
        "Update an entry by id in the body (compatibility form)",
        Some("blocklists:write"),
        Some("BlocklistPatch"),
        (200, "BlocklistEntry"),
    ),
    op(
        "POST",
        "/api/v1/blocklists/import",
        "blocklists",
        "Bulk import up to 1,000,000 entries, all or nothing: CSV (text/csv) with a header line, or NDJSON (application/x-ndjson); ?on_duplicate=report (default) or fail",
        Some("blocklists:write"),
        Some("csv"),
        (200, "BlocklistImport"),
    ),
    op(
        "GET",
        "/api/v1/blocklists/{id}",
        "blocklists",
        "Read a blocklist entry",
        Some("blocklists:read"),
        None,
        (200, "BlocklistEntry"),
    ),
    op(
        "PATCH",
        "/api/v1/blocklists/{id}",
        "blocklists",
        "Update a blocklist entry",
        Some("blocklists:write"),
        Some("BlocklistPatch"),
        (200, "BlocklistEntry"),
    ),
    op(
        "DELETE",
        "/api/v1/blocklists/{id}",
        "blocklists",
        "Delete a blocklist entry (admin)",
        Some("*"),
        None,
        (200, "Deleted"),
    ),
    op(
        "GET",
        "/api/v1/signing-keys",
        "rules",
        "List the tenant's rule signing keys",
        Some("rules:read"),
        None,
        (200, "SigningKeyList"),
    ),
    op(
        "POST",
        "/api/v1/signing-keys",
        "rules",
        "Register an ed25519 public key for signing rules",
        Some("rules:write"),
        Some("SigningKeyRequest"),
        (201, "SigningKey"),
    ),
    op(
        "GET",
        "/api/v1/signing-keys/{id}",
        "rules",
        "Read a signing key",
        Some("rules:read"),
        None,
        (200, "SigningKey"),
    ),
    op(
        "DELETE",
        "/api/v1/signing-keys/{id}",
        "rules",
        "Revoke a signing key",
        Some("rules:write"),
        None,
        (200, "SigningKey"),
    ),
    op(
        "GET",
        "/api/v1/rules",
        "rules",
        "List built-in and uploaded rules",
        Some("rules:read"),
        None,
        (200, "RuleList"),
    ),
    op(
        "POST",
        "/api/v1/rules",
        "rules",
        "Upload a signed rule component (multipart: module, signature, key_id, manifest)",
        Some("rules:write"),
        Some("multipart"),
        (201, "RuleVersion"),
    ),
    op(
        "GET",
        "/api/v1/rules/{rule_id}/versions",
        "rules",
        "List a rule's uploaded versions",
        Some("rules:read"),
        None,
        (200, "RuleVersions"),
    ),
    op(
        "GET",
        "/api/v1/rules/{rule_id}/versions/{version}",
        "rules",
        "Read one version: digest, signer, signals, params schema",
        Some("rules:read"),
        None,
        (200, "RuleVersion"),
    ),
    op(
        "POST",
        "/api/v1/rules/{rule_id}/versions/{version}/activate",
        "rules",
        "Run a version: active (it decides; the previous active version retires) or shadow (recorded beside the active one, never counted); also the way to roll back",
        Some("rules:write"),
        Some("ActivateRequest"),
        (200, "Activation"),
    ),
    op(
        "POST",
        "/api/v1/rules/{rule_id}/versions/{version}/deactivate",
        "rules",
        "Stop this version (active or shadow); 409 when it does not run",
        Some("rules:write"),
        None,
        (200, "Deactivation"),
    ),
    op(
        "POST",
        "/api/v1/rules/{rule_id}/deactivate",
        "rules",
        "Stop every running version of the rule (active and shadow)",
        Some("rules:write"),
        None,
        (200, "Deactivation"),
    ),
    op(
        "POST",
        "/api/v1/rules/{rule_id}/versions/{version}/backtest",
        "rules",
        "Replay stored assessments with this version in place of the active one, with the params it would run with (read-only)",
        Some("rules:read"),
        Some("BacktestRequest"),
        (200, "Backtest"),
    ),
    op(
        "GET",
        "/api/v1/pipeline",
        "rules",
        "The tenant's pipeline as it runs",
        Some("rules:read"),
        None,
        (200, "Pipeline"),
    ),
    op(
        "PUT",
        "/api/v1/pipeline",
        "rules",
        "Replace the pipeline of each flow named (payout, payin): order, params, weights, on_error, thresholds",
        Some("settings:write"),
        Some("PipelineRequest"),
        (200, "Pipeline"),
    ),
    op(
        "GET",
        "/api/v1/audit",
        "rules",
        "The tenant's hash-chained audit log",
        Some("rules:read"),
        None,
        (200, "AuditPage"),
    ),
    op(
        "POST",
        "/api/v1/operator/tenants",
        "operator",
        "Create a tenant and its first admin key (operator token)",
        Some("operator token"),
        Some("TenantRequest"),
        (201, "TenantCreated"),
    ),
    op(
        "GET",
        "/api/v1/operator/tenants",
        "operator",
        "List tenants (operator token)",
        Some("operator token"),
        None,
        (200, "TenantList"),
    ),
    op(
        "GET",
        "/api/v1/health",
        "operations",
        "Liveness",
        None,
        None,
        (200, "Health"),
    ),
    op(
        "GET",
        "/api/v1/health/ready",
        "operations",
        "Readiness: database reachable, rules loaded",
        None,
        None,
        (200, "Ready"),
    ),
    op(
        "GET",
        "/metrics",
        "operations",
        "Prometheus metrics",
        None,
        None,
        (200, "Text"),
    ),
    op(
        "GET",
        "/openapi.json",
        "operations",
        "This document",
        None,
        None,
        (200, "OpenApiDocument"),
    ),
    op(
        "GET",
        "/docs",
        "operations",
        "Interactive API documentation",
        None,
        None,
        (200, "Html"),
    ),
    op(
        "POST",
        "/api/v1/webhooks",
        "webhooks",
        "Create a webhook endpoint; the signing secret is in this answer only",
        Some("webhooks:write"),
        Some("WebhookRequest"),
        (201, "WebhookCreated"),
    ),
    op(
        "GET",
        "/api/v1/webhooks",
        "webhooks",
        "List the tenant's webhook endpoints",
        Some("webhooks:write"),
        None,
        (200, "WebhookList"),
    ),
    op(
        "GET",
        "/api/v1/webhooks/{id}",
        "webhooks",
        "Read a webhook endpoint",
        Some("webhooks:write"),
        None,
        (200, "Webhook"),
    ),
    op(
        "PATCH",
        "/api/v1/webhooks/{id}",
        "webhooks",
        "Change a webhook endpoint's URL, events, description or is_active (true also clears a disable)",
        Some("webhooks:write"),
        Some("WebhookPatch"),
        (200, "Webhook"),
    ),
    op(
        "DELETE",
        "/api/v1/webhooks/{id}",
        "webhooks",
        "Delete a webhook endpoint with its delivery log",
        Some("webhooks:write"),
        None,
        (200, "Deleted"),
    ),
    op(
        "POST",
        "/api/v1/webhooks/{id}/rotate-secret",
        "webhooks",
        "Issue a new signing secret; the old one keeps signing beside it for overlap_seconds (default 86,400; 0 revokes it now)",
        Some("webhooks:write"),
        Some("WebhookRotate"),
        (200, "WebhookCreated"),
    ),
    op(
        "GET",
        "/api/v1/webhooks/{id}/deliveries",
        "webhooks",
        "The endpoint's deliveries, newest first, each with its attempts",
        Some("webhooks:write"),
        None,
        (200, "DeliveryPage"),
    ),
    op(
        "POST",
        "/api/v1/webhooks/{id}/deliveries/{delivery_id}/retry",
        "webhooks",
        "Send a delivery again now, whatever its state",
        Some("webhooks:write"),
        None,
        (202, "Delivery"),
    ),
    op(
        "POST",
        "/api/v1/webhooks/{id}/recover",
        "webhooks",
        "Send the endpoint every event it subscribes to since a time again",
        Some("webhooks:write"),
        Some("WebhookRecover"),
        (202, "WebhookRecovered"),
    ),
    op(
        "GET",
        "/api/v1/events",
        "webhooks",
        "The tenant's events in sequence order (kept 30 days), to catch up and prove none is missing",
        Some("webhooks:write"),
        None,
        (200, "EventFeed"),
    ),
    op(
        "POST",
        "/api/v1/cases",
        "cases",
        "Open a case (expediente) in `borrador`; reasons are drafted from the linked assessments' signals unless given",
        Some("cases:write"),
        Some("CaseRequest"),
        (201, "Case"),
    ),
    op(
        "GET",
        "/api/v1/cases",
        "cases",
        "List the tenant's cases with filters, sorting and paging",
        Some("cases:read"),
        None,
        (200, "CaseList"),
    ),
    op(
        "GET",
        "/api/v1/cases/stats",
        "cases",
        "Counts of the tenant's cases by status, priority and jurisdiction, overdue and due soon",
        Some("cases:read"),
        None,
        (200, "CaseStats"),
    ),
    op(
        "GET",
        "/api/v1/cases/{id}",
        "cases",
        "A case with its notes, linked assessments, blocklist entries and full history",
        Some("cases:read"),
        None,
        (200, "Case"),
    ),
    op(
        "PATCH",
        "/api/v1/cases/{id}",
        "cases",
        "Change a case's fields or status (borrador → en_revision → enviado (by submit) → resuelto; archivado from borrador, en_revision, resuelto)",
        Some("cases:write"),
        Some("CasePatch"),
        (200, "Case"),
    ),
    op(
        "POST",
        "/api/v1/cases/{id}/notes",
        "cases",
        "Add a note to a case",
        Some("cases:write"),
        Some("CaseNoteRequest"),
        (201, "CaseNote"),
    ),
    op(
        "POST",
        "/api/v1/cases/{id}/submit",
        "cases",
        "Submit the case's regulatory report: en_revision → enviado, the report stored immutably",
        Some("cases:write"),
        None,
        (200, "CaseReport"),
    ),
    op(
        "GET",
        "/api/v1/cases/{id}/report",
        "cases",
        "The submitted report as JSON, or with `format=txt` the MX unusual-operation report's delimited record",
        Some("cases:read"),
        None,
        (200, "CaseReport"),
    ),
    op(
        "GET",
        "/api/v1/settings/cases",
        "cases",
        "The tenant's case settings (four eyes, filing periods, reporting entity)",
        Some("cases:read"),
        None,
        (200, "CaseSettings"),
    ),
    op(
        "PUT",
        "/api/v1/settings/cases",
        "cases",
        "Replace the tenant's case settings",
        Some("settings:write"),
        Some("CaseSettingsRequest"),
        (200, "CaseSettings"),
    ),
    op(
        "POST",
        "/api/v1/report-fraud",
        "cases",
        "Report an assessment as fraud: label, case, blocklist entries and events in one transaction (201; 200 when it was reported before)",
        Some("fraud:report"),
        Some("FraudReportRequest"),
        (201, "FraudReport"),
    ),
    op(
        "GET",
        "/api/v1/rules/{rule_id}/stats",
        "rules",
        "Per rule version: assessments, fires, and how many of each were labelled fraud (precision, recall)",
        Some("rules:read"),
        None,
        (200, "RuleStats"),
    ),
];

/// Component schemas, as JSON Schema (OpenAPI 3.1 dialect). Request
/// bodies the server parses strictly say `additionalProperties: false`;
/// the assess body ignores unknown fields (the contract says so). Response
/// schemas list every field the server always sends as `required`.
fn schemas() -> Vec<(&'static str, Value)> {
    let currencies = Currency::codes();
    let list_types = [PAYOUT_TYPES, PAYIN_TYPES].concat();
    let with_required = |a: &[&'static str], b: &[&'static str]| [a, b].concat();
    let countries = Country::codes();
    let currency = json!({"type": "string", "enum": currencies, "description": "ISO 4217 code with a minor unit"});
    let country = json!({"type": "string", "enum": countries, "description": "ISO 3166-1 alpha-2"});
    let nullable_country = json!({"anyOf": [country, {"type": "null"}]});
    let text = json!({"type": ["string", "null"]});
    let time = json!({"type": "string", "format": "date-time"});
    let nullable_time = json!({"type": ["string", "null"], "format": "date-time"});
    // Digits with an optional decimal part; whole minor units unless
    // `amount_unit` is `major`.
    let amount_minor = json!({"anyOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": "^[0-9]+$"}
    ]});
    let amount_major = json!({"anyOf": [
        {"type": "integer", "minimum": 0},
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"}
    ]});
    let signal_detail = json!({"type": "object", "required": ["code", "weight", "description", "rule_id", "rule_version"], "properties": {
        "code": {"type": "string"}, "weight": {"type": "integer", "minimum": 0}, "description": {"type": "string"},
        "rule_id": {"type": "string"}, "rule_version": {"type": "string"}}});
    let field_warning = json!({"type": "object", "required": ["field", "message"], "properties": {"field": {"type": "string"}, "message": {"type": "string"}}});
    let echo_amount = json!({"type": "object", "required": ["minor", "major", "currency"], "properties": {"minor": {"type": "integer", "minimum": 0}, "major": {"type": "string"}, "currency": {"type": "string"}}});
    let decision = json!({"type": "string", "enum": ["approve", "review", "challenge", "decline"]});
    let mode = json!({"type": "string", "enum": ["active", "shadow"]});
    let on_error = json!({"type": "string", "enum": ["ignore", "review", "decline"]});
    let rule_record = json!({"type": "object", "required": ["rule_id", "rule_version", "digest", "mode", "outcome", "signals", "fuel_used", "duration_us", "peak_memory_bytes"], "properties": {
        "rule_id": {"type": "string"}, "rule_version": {"type": "string"}, "digest": {"type": "string"}, "mode": mode,
        "outcome": {"type": "string", "enum": ["ok", "rule_error", "errored"]}, "reason": text,
        "signals": {"type": "array", "items": {"type": "string"}}, "signal_details": {"type": "array", "items": signal_detail},
        "fuel_used": {"type": "integer"}, "duration_us": {"type": "integer"}, "peak_memory_bytes": {"type": "integer"},
        "params": {}, "weights": {"type": "object"}, "on_error": on_error}});
    let assess_common = json!({
        "decision": decision, "risk_score": {"type": "integer", "minimum": 0, "maximum": 100},
        "flow": {"type": "string", "enum": ["payout", "payin"]}, "signals": {"type": "array", "items": {"type": "string"}},
        "signal_details": {"type": "array", "items": signal_detail},
        "blocked_by": text, "session_id": {"type": "string", "pattern": "^p[si]_[0-9]+_[a-z0-9]{9}$", "description": "ps_ for payouts, pi_ for pay-ins"},
        "field_warnings": {"type": "array", "items": field_warning},
        "latency_ms": {"type": "number", "minimum": 0}, "amount": echo_amount, "payment_id": text});
    let assess_required = [
        "decision",
        "risk_score",
        "flow",
        "signals",
        "signal_details",
        "blocked_by",
        "session_id",
        "field_warnings",
        "latency_ms",
        "amount",
        "payment_id",
    ];
    let mut assess_response = assess_common.clone();
    assess_response["idempotency_key"] = text.clone();
    let mut simulation_response = assess_common;
    simulation_response["simulated"] = json!({"const": true});
    simulation_response["rule_overrides"] = json!({"type": "array", "items": {"type": "object", "required": ["rule_id", "version"], "properties": {"rule_id": {"type": "string"}, "version": {"type": "string"}}}});
    simulation_response["rules"] = json!({"type": "array", "items": rule_record});
    let assess_request_properties = json!({
        "amount_unit": {"type": "string", "enum": ["minor", "major"], "default": "minor"},
        "currency": currency,
        "transaction_type": {"type": ["string", "null"]},
        "beneficiary": {"type": "object", "properties": {"id": text, "name": text, "country": nullable_country, "clabe": text, "iban": text, "swift_bic": text, "account_hash": text},
            "description": "at least one of id, name, country, clabe, iban, account_hash"},
        "origin": {"type": ["object", "null"], "properties": {"account_id": text, "country": nullable_country}},
        "payout": {"type": ["object", "null"], "properties": {"channel": {"type": ["string", "null"], "enum": ["spei", "wire", "api", "internal", null]}, "rail": {"type": ["string", "null"], "enum": ["spei", "wire", "api", "internal", null]}, "initiated_by": text, "first_to_beneficiary": {"type": ["boolean", "null"]}}},
        "payment_id": text, "customer_id": text,
        "idempotency_key": {"type": ["string", "null"], "maxLength": 255},
        "metadata": {"type": ["object", "null"]}});
    let rule_overrides = json!({"type": "array", "items": {"type": "object", "required": ["rule_id", "version"], "properties": {"rule_id": {"type": "string"}, "version": {"type": "string"}}}});
    let mut with_overrides = assess_request_properties.clone();
    with_overrides["rule_overrides"] = rule_overrides.clone();
    let payin_request_properties = json!({
        "amount_unit": {"type": "string", "enum": ["minor", "major"], "default": "minor"},
        "currency": currency,
        "transaction_type": text, "payment_id": text, "customer_id": text, "order_id": text,
        "email": {"type": ["string", "null"], "format": "email"},
        "phone": {"type": ["string", "null"], "pattern": "^\\+[1-9][0-9 ().-]{7,20}$", "description": "E.164"},
        "session_id": text,
        "payment_method": {"type": ["object", "null"], "properties": {
            "type": text,
            "card_bin": {"type": ["string", "null"], "pattern": "^([0-9]{6}|[0-9]{8})$"},
            "card_last4": {"type": ["string", "null"], "pattern": "^[0-9]{4}$"},
            "card_country": nullable_country, "card_brand": text,
            "card_hash": {"type": ["string", "null"], "description": "a keyed hash of the card number you compute"}}},
        "device": {"type": ["object", "null"], "properties": {"ip": {"type": ["string", "null"], "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}, {"type": "null"}]}, "fingerprint": text, "user_agent": text, "timezone": text}},
        "billing": {"type": ["object", "null"], "properties": {"country": nullable_country, "city": text, "postal_code": text}},
        "idempotency_key": {"type": ["string", "null"], "maxLength": 255},
        "metadata": {"type": ["object", "null"]}});
    let mut payin_with_overrides = payin_request_properties.clone();
    payin_with_overrides["rule_overrides"] = rule_overrides;
    let payin_request = |properties: Value| {
        json!({"type": "object", "required": ["amount", "currency"], "properties": properties,
            "if": {"required": ["amount_unit"], "properties": {"amount_unit": {"const": "major"}}},
            "then": {"properties": {"amount": amount_major}},
            "else": {"properties": {"amount": amount_minor}},
            "description": "Unknown fields are ignored. A full card number (12 to 19 digits passing the Luhn check) anywhere in the body is refused with 400 VALIDATION_ERROR and never stored."})
    };
    // `amount` depends on `amount_unit`.
    let assess_request = |properties: Value| {
        json!({"type": "object", "required": ["amount", "currency", "beneficiary"], "properties": properties,
            "if": {"required": ["amount_unit"], "properties": {"amount_unit": {"const": "major"}}},
            "then": {"properties": {"amount": amount_major}},
            "else": {"properties": {"amount": amount_minor}},
            "description": "Unknown fields are ignored. `amount`: digits with an optional decimal part (no exponent, sign, spaces or separators); with amount_unit minor (the default) a whole number, with major at most the currency's ISO 4217 decimals."})
    };
    let key = json!({"type": "object", "required": ["id", "name", "kind", "role", "permissions", "key_prefix", "rate_limit_per_minute", "rate_limit_per_day", "created_at", "last_used_at", "revoked_at", "is_active"], "properties": {
        "id": {"type": "string"}, "name": text, "kind": {"type": "string", "enum": ["secret", "publishable", "ingest"]}, "role": text,
        "permissions": {"type": "array", "items": {"type": "string"}}, "key_prefix": {"type": "string"},
        "rate_limit_per_minute": {"type": ["integer", "null"]}, "rate_limit_per_day": {"type": ["integer", "null"]},
        "created_at": time, "last_used_at": nullable_time, "revoked_at": nullable_time, "is_active": {"type": "boolean"}}});
    let webhook_events = crate::webhooks::EVENTS;
    let webhook = json!({"type": "object", "required": ["id", "url", "description", "events", "is_active", "disabled_reason", "failure_streak", "failing_since", "secret_rotation", "created_at", "updated_at"], "properties": {
        "id": {"type": "string", "pattern": "^wh_"}, "url": {"type": "string"}, "description": text,
        "events": {"type": "array", "items": {"type": "string", "enum": webhook_events}},
        "is_active": {"type": "boolean"}, "disabled_reason": text, "failure_streak": {"type": "integer", "minimum": 0},
        "failing_since": nullable_time,
        "secret_rotation": {"type": ["object", "null"], "required": ["previous_secret_valid_until"], "properties": {"previous_secret_valid_until": time}},
        "created_at": time, "updated_at": time}});
    let mut webhook_created = webhook.clone();
    webhook_created["properties"]["secret"] = json!({"type": "string", "pattern": "^whsec_[A-Za-z0-9+/]{43}=$", "description": "shown once"});
    webhook_created["required"] =
        json!(["id", "url", "events", "is_active", "secret", "created_at"]);
    let attempt = json!({"type": "object", "required": ["attempt", "at", "status_code", "duration_ms", "error", "response_body_head"], "properties": {
        "attempt": {"type": "integer", "minimum": 1}, "at": time, "status_code": {"type": ["integer", "null"]},
        "duration_ms": {"type": "integer", "minimum": 0}, "error": text, "response_body_head": text}});
    let delivery = json!({"type": "object", "required": ["id", "webhook_id", "event_id", "event", "status", "attempts", "next_attempt_at", "last_attempt_at", "last_status_code", "last_error", "created_at"], "properties": {
        "id": {"type": "string"}, "webhook_id": {"type": "string"}, "event_id": {"type": "string", "pattern": "^evt_"},
        "event": {"type": "string"}, "status": {"type": "string", "enum": ["pending", "paused", "delivered", "failed"]},
        "attempts": {"type": "integer", "minimum": 0}, "next_attempt_at": nullable_time, "last_attempt_at": nullable_time,
        "last_status_code": {"type": ["integer", "null"]}, "last_error": text, "created_at": time,
        "attempt_log": {"type": "array", "items": attempt}}});
    let event_body = json!({"type": "object", "required": ["id", "event", "timestamp", "data", "sequence", "previous_id"], "properties": {
        "id": {"type": "string", "pattern": "^evt_"}, "event": {"type": "string"}, "timestamp": time, "data": {"type": "object"},
        "sequence": {"type": "integer", "minimum": 1}, "previous_id": text}});
    let entry = json!({"type": "object", "required": ["id", "tenant_id", "list_type", "value", "flow_scope", "severity", "reason", "source", "is_active", "expires_at", "created_at", "updated_at"], "properties": {
        "id": {"type": "string"}, "tenant_id": {"type": "string"}, "list_type": {"type": "string"}, "value": {"type": "string"},
        "flow_scope": {"type": "string", "enum": FLOW_SCOPES}, "severity": {"type": "string", "enum": SEVERITIES}, "reason": text,
        "source": {"type": "string", "enum": SOURCES}, "is_active": {"type": "boolean"}, "expires_at": nullable_time,
        "created_at": time, "updated_at": time}});
    let signing_key = json!({"type": "object", "required": ["id", "name", "public_key", "algorithm", "status", "created_by", "created_at", "revoked_at"], "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "public_key": {"type": "string"}, "algorithm": {"const": "ed25519"},
        "status": {"type": "string", "enum": ["active", "revoked"]}, "created_by": {"type": "string"}, "created_at": time, "revoked_at": nullable_time}});
    let stored_version = json!({"type": "object", "required": ["rule_id", "version", "digest", "signer", "uploaded_by", "size_bytes", "status", "manifest", "created_at"], "properties": {
        "rule_id": {"type": "string"}, "version": {"type": "string"}, "digest": {"type": "string"}, "signer": {"type": "string"},
        "uploaded_by": {"type": "string"}, "size_bytes": {"type": "integer"}, "status": {"type": "string", "enum": ["active", "shadow", "inactive"]},
        "manifest": {"type": "object"}, "created_at": time}});
    let version_view = json!({"type": "object", "required": ["rule_id", "version", "digest", "signer", "uploaded_by", "size_bytes", "status", "description", "flows", "signals", "params_schema", "default_params", "created_at"], "properties": {
        "rule_id": {"type": "string"}, "version": {"type": "string"}, "digest": {"type": "string"}, "signer": {"type": "string"},
        "uploaded_by": {"type": "string"}, "size_bytes": {"type": "integer"}, "status": {"type": "string", "enum": ["active", "shadow", "inactive"]},
        "description": {"type": "string"}, "flows": {"type": "array", "items": {"type": "string"}}, "signals": {"type": "array"},
        "params_schema": {}, "default_params": {"type": "object"}, "created_at": time}});
    let running = json!({"type": "object", "required": ["active", "shadow"], "properties": {"active": text, "shadow": text}});
    let comparable = json!({"type": "object", "required": ["decision", "risk_score", "blocked_by", "signals", "rules"], "properties": {
        "decision": {"type": "string"}, "risk_score": {"type": "integer"}, "blocked_by": text,
        "signals": {"type": "array", "items": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}, {"type": "string"}], "minItems": 3, "maxItems": 3}},
        "rules": {"type": "array", "items": {"type": "object", "required": ["rule_id", "digest", "mode", "outcome", "signals", "fuel_used"]}}}});
    let step_config = json!({"type": "object", "required": ["rule_id"], "additionalProperties": false, "properties": {
        "rule_id": {"type": "string"}, "enabled": {"type": "boolean", "default": true}, "params": {"type": "object"},
        "weights": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 100}}, "on_error": on_error}});
    let thresholds = json!({"type": "object", "additionalProperties": false, "properties": {
        "review": {"type": "integer", "minimum": 0, "maximum": 100}, "challenge": {"type": "integer", "minimum": 0, "maximum": 100}, "decline": {"type": "integer", "minimum": 0, "maximum": 100}},
        "description": "review <= challenge <= decline <= 100"});
    let pipeline_step = json!({"type": "object", "required": ["rule_id", "source", "version", "digest", "mode", "enabled", "params", "param_overrides", "ignored_param_overrides", "weights", "on_error", "signals"], "properties": {
        "rule_id": {"type": "string"}, "source": {"type": "string", "enum": ["builtin", "tenant"]}, "version": {"type": "string"}, "digest": {"type": "string"},
        "mode": mode, "enabled": {"type": "boolean"}, "params": {}, "param_overrides": {"type": "object"},
        "ignored_param_overrides": {"type": "array", "items": {"type": "string"}}, "weights": {"type": "object"}, "on_error": on_error, "signals": {"type": "array"}}});
    let flow_request = json!({"type": "object", "required": ["rules"], "additionalProperties": false, "properties": {
        "rules": {"type": "array", "items": step_config},
        "thresholds": thresholds,
        "deadline_ms": {"type": "integer", "minimum": 10, "maximum": 10000},
        "high_risk_countries": {"type": "object", "additionalProperties": false, "properties": {"black_list": {"type": "array", "items": country}, "grey_list": {"type": "array", "items": country}}},
        "cross_border_thresholds": {"type": "object", "propertyNames": {"enum": currencies}, "additionalProperties": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"}}}});
    let flow_view = json!({"type": "object", "required": ["rules", "disabled_rules", "thresholds", "deadline_ms", "high_risk_countries", "cross_border_thresholds", "customized"], "properties": {
        "rules": {"type": "array", "items": pipeline_step}, "disabled_rules": {"type": "array"}, "thresholds": {"type": "object"},
        "deadline_ms": {"type": "integer"}, "high_risk_countries": {"type": "object"}, "cross_border_thresholds": {}, "customized": {"type": "boolean"}}});
    let error_codes = [
        "VALIDATION_ERROR",
        "INVALID_TYPE",
        "INVALID_SEVERITY",
        "BAD_REQUEST",
        "UNAUTHORIZED",
        "FORBIDDEN",
        "SECRET_KEY_REQUIRED",
        "PUBLIC_KEY_NOT_ALLOWED",
        "NOT_FOUND",
        "METHOD_NOT_ALLOWED",
        "REQUEST_TIMEOUT",
        "DUPLICATE",
        "CONFLICT",
        "IDEMPOTENCY_KEY_REUSED",
        "INVALID_TRANSITION",
        "ALREADY_SUBMITTED",
        "PAYLOAD_TOO_LARGE",
        "URI_TOO_LONG",
        "UNSUPPORTED_MEDIA_TYPE",
        "HEADERS_TOO_LARGE",
        "RULE_REJECTED",
        "RATE_LIMITED",
        "INTERNAL_ERROR",
        "NOT_IMPLEMENTED",
        "HTTP_VERSION_NOT_SUPPORTED",
        "ASSESS_MAINTENANCE",
        "SERVER_BUSY",
        "RATE_LIMIT_STORE_UNAVAILABLE",
        "ASSESS_TIMEOUT",
        "FOUR_EYES_REQUIRED",
    ];
    let mut out = vec![
        (
            "Error",
            json!({"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message", "details"], "properties": {
            "code": {"type": "string", "enum": error_codes}, "message": {"type": "string"}, "details": {"type": "object"}}}}}),
        ),
        (
            "AssessPayoutRequest",
            assess_request(assess_request_properties),
        ),
        ("SimulationRequest", assess_request(with_overrides)),
        (
            "AssessPayinRequest",
            payin_request(payin_request_properties),
        ),
        (
            "SimulationPayinRequest",
            payin_request(payin_with_overrides),
        ),
        (
            "AssessResponse",
            json!({"type": "object", "required": with_required(&assess_required, &["idempotency_key"]), "properties": assess_response}),
        ),
        (
            "SimulationResponse",
            json!({"type": "object", "required": with_required(&assess_required, &["simulated", "rule_overrides", "rules"]), "properties": simulation_response}),
        ),
        (
            "Catalog",
            json!({"type": "object", "required": ["version", "flow", "endpoint", "amount", "required_fields", "recommended_fields", "channel_values", "signals", "thresholds", "idempotency", "resilience", "field_warnings"]}),
        ),
        (
            "PayinCatalog",
            json!({"type": "object", "required": ["version", "flow", "endpoint", "keys", "amount_encoding", "field_requirements_by_segment", "fields", "card_data", "velocity", "signals", "thresholds", "idempotency", "resilience", "field_warnings"], "properties": {
            "field_requirements_by_segment": {"type": "object", "required": ["comercio", "psp", "banco"], "additionalProperties": {"type": "object", "required": ["required", "recommended", "not_applicable"]}}}}),
        ),
        (
            "Explanation",
            json!({"type": "object", "required": ["session_id", "flow", "decision", "risk_score", "created_at", "thresholds", "rules", "input", "context", "response"], "properties": {
            "session_id": {"type": "string"}, "flow": {"type": "string"}, "decision": decision, "risk_score": {"type": "integer"}, "created_at": time,
            "thresholds": {}, "rules": {"type": "array", "items": {"type": "object", "required": ["rule_id", "version", "digest", "mode", "outcome", "reason", "signals", "counted", "fuel_used", "duration_us", "peak_memory_bytes", "params", "weights", "on_error"],
                "properties": {"mode": mode, "counted": {"type": "boolean"}, "signals": {"type": "array", "items": signal_detail}}}},
            "input": {"type": "object"}, "context": {"type": "object"}, "response": {"type": "object"}}}),
        ),
        (
            "ReplayReport",
            json!({"type": "object", "required": ["session_id", "identical", "differences", "original", "replayed"], "properties": {
            "session_id": {"type": "string"}, "identical": {"type": "boolean"}, "differences": {"type": "array", "items": {"type": "string"}},
            "original": comparable, "replayed": comparable}}),
        ),
        (
            "KeyRequest",
            json!({"type": "object", "properties": {"name": {"type": "string"}, "role": {"type": "string", "enum": ["admin", "analyst", "compliance_officer", "integration"]}, "permissions": {"type": "array", "items": {"type": "string"}}, "kind": {"type": "string", "enum": ["secret", "publishable", "ingest"]}, "rate_limit_per_minute": {"type": ["integer", "null"], "minimum": 1}, "rate_limit_per_day": {"type": ["integer", "null"], "minimum": 1}},
            "description": "role or permissions; unknown fields are ignored"}),
        ),
        ("Key", key.clone()),
        (
            "KeyList",
            json!({"type": "object", "required": ["data"], "properties": {"data": {"type": "array", "items": key}}}),
        ),
        (
            "CreatedKey",
            json!({"type": "object", "required": ["id", "tenant_id", "api_key", "kind", "role", "permissions", "rate_limit_per_minute", "rate_limit_per_day"], "properties": {
            "id": {"type": "string"}, "tenant_id": {"type": "string"}, "api_key": {"type": "string", "description": "shown once"},
            "kind": {"type": "string"}, "role": text, "permissions": {"type": "array", "items": {"type": "string"}},
            "rate_limit_per_minute": {"type": ["integer", "null"]}, "rate_limit_per_day": {"type": ["integer", "null"]}}}),
        ),
        (
            "KeyRevoked",
            json!({"type": "object", "required": ["id", "revoked"], "properties": {"id": {"type": "string"}, "revoked": {"const": true}}}),
        ),
        (
            "BlocklistEntryRequest",
            json!({"type": "object", "required": ["list_type", "value"], "properties": {"list_type": {"type": "string", "enum": list_types}, "value": {"type": "string"}, "flow_scope": {"type": "string", "enum": FLOW_SCOPES}, "severity": {"type": "string", "enum": SEVERITIES}, "reason": text, "source": {"type": "string", "enum": SOURCES}, "expires_at": nullable_time},
            "description": "unknown fields are ignored"}),
        ),
        (
            "BlocklistImportCsv",
            json!({"type": "string", "description": "a header line with list_type, value and any of flow_scope, severity, reason, source, expires_at; then one entry per line. The same rows as NDJSON (application/x-ndjson, one JSON object per line) are accepted too."}),
        ),
        (
            "BlocklistImport",
            json!({"type": "object", "required": ["format", "rows", "inserted", "duplicate_count", "duplicates"], "properties": {
            "format": {"type": "string", "enum": ["csv", "ndjson"]}, "rows": {"type": "integer"}, "inserted": {"type": "integer"},
            "duplicate_count": {"type": "integer"},
            "duplicates": {"type": "array", "items": {"type": "object", "required": ["line", "list_type", "value", "flow_scope"]}}}}),
        ),
        (
            "BlocklistPatch",
            json!({"type": "object", "properties": {"id": {"type": "string", "description": "only in the compatibility form (PATCH /api/v1/blocklists)"}, "severity": {"type": "string", "enum": SEVERITIES}, "flow_scope": {"type": "string", "enum": FLOW_SCOPES}, "reason": text, "is_active": {"type": "boolean"}, "expires_at": nullable_time}}),
        ),
        ("BlocklistEntry", entry.clone()),
        (
            "BlocklistPage",
            json!({"type": "object", "required": ["data", "next_cursor", "has_more"], "properties": {"data": {"type": "array", "items": entry}, "next_cursor": text, "has_more": {"type": "boolean"}}}),
        ),
        (
            "Deleted",
            json!({"type": "object", "required": ["id", "deleted"], "properties": {"id": {"type": "string"}, "deleted": {"const": true}}}),
        ),
        (
            "SigningKeyRequest",
            json!({"type": "object", "required": ["name", "public_key"], "additionalProperties": false, "properties": {"name": {"type": "string"}, "public_key": {"type": "string", "description": "ed25519 public key, base64 of 32 bytes"}}}),
        ),
        ("SigningKey", signing_key.clone()),
        (
            "SigningKeyList",
            json!({"type": "object", "required": ["data"], "properties": {"data": {"type": "array", "items": signing_key}}}),
        ),
        (
            "RuleList",
            json!({"type": "object", "required": ["data"], "properties": {"data": {"type": "array", "items": {"type": "object", "required": ["rule_id", "source", "active_version", "mode", "versions"], "properties": {
            "rule_id": {"type": "string"}, "source": {"type": "string", "enum": ["builtin", "tenant"]}, "active_version": text, "shadow_version": text,
            "mode": {"type": "string", "enum": ["active", "shadow", "inactive"]}, "versions": {"type": "array", "items": {"type": "string"}}}}}}}),
        ),
        (
            "RuleVersions",
            json!({"type": "object", "required": ["rule_id", "active_version", "shadow_version", "data"], "properties": {"rule_id": {"type": "string"}, "active_version": text, "shadow_version": text, "data": {"type": "array", "items": stored_version}}}),
        ),
        ("RuleVersion", version_view),
        (
            "ActivateRequest",
            json!({"type": "object", "additionalProperties": false, "properties": {"mode": {"type": "string", "enum": ["active", "shadow"], "default": "active"}}}),
        ),
        (
            "Activation",
            json!({"type": "object", "required": ["rule_id", "version", "digest", "mode", "status", "activated_at", "previous", "moved_from", "running"], "properties": {
            "rule_id": {"type": "string"}, "version": {"type": "string"}, "digest": {"type": "string"}, "mode": mode, "status": mode, "activated_at": time,
            "previous": {"type": ["object", "null"], "properties": {"version": {"type": "string"}, "mode": mode}}, "moved_from": {"anyOf": [mode, {"type": "null"}]}, "running": running}}),
        ),
        (
            "Deactivation",
            json!({"type": "object", "required": ["rule_id", "version", "previous_mode", "status", "stopped", "deactivated_at"], "properties": {
            "rule_id": {"type": "string"}, "version": {"type": "string"}, "previous_mode": mode, "status": {"const": "inactive"},
            "stopped": {"type": "array", "items": {"type": "object", "required": ["version", "mode"]}}, "deactivated_at": time}}),
        ),
        (
            "BacktestRequest",
            json!({"type": "object", "additionalProperties": false, "properties": {"limit": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1000}, "since": {"type": "string", "format": "date-time"}, "flow": {"type": "string", "enum": ["payout", "payin"], "default": "payout"}}}),
        ),
        (
            "Backtest",
            json!({"type": "object", "required": ["rule_id", "version", "digest", "params", "ignored_param_overrides", "since", "limit", "evaluated", "changed", "errors", "matrix", "sample_changed_session_ids", "duration_ms"], "properties": {
            "rule_id": {"type": "string"}, "version": {"type": "string"}, "flow": {"type": "string"}, "digest": {"type": "string"}, "params": {},
            "ignored_param_overrides": {"type": "array", "items": {"type": "string"}}, "since": text, "limit": {"type": "integer"},
            "evaluated": {"type": "integer"}, "changed": {"type": "integer"}, "errors": {"type": "integer"},
            "matrix": {"type": "object", "additionalProperties": {"type": "object", "additionalProperties": {"type": "integer"}}},
            "sample_changed_session_ids": {"type": "array", "items": {"type": "string"}}, "duration_ms": {"type": "integer"}}}),
        ),
        (
            "PipelineRequest",
            json!({"type": "object", "minProperties": 1, "additionalProperties": false, "properties": {"payout": flow_request.clone(), "payin": flow_request},
            "description": "each flow named is replaced; the others keep their configuration"}),
        ),
        (
            "Pipeline",
            json!({"type": "object", "required": ["payout", "payin", "activations", "revision"], "properties": {
            "payout": flow_view.clone(), "payin": flow_view,
            "activations": {"type": "array", "items": {"type": "object", "required": ["rule_id", "version", "mode", "digest"]}},
            "revision": {"type": "integer"}}}),
        ),
        (
            "AuditPage",
            json!({"type": "object", "required": ["data", "has_more", "next_after"], "properties": {"data": {"type": "array", "items": {"type": "object", "required": ["seq", "at", "actor", "action", "subject", "details", "prev_hash", "hash"], "properties": {
            "seq": {"type": "integer"}, "at": time, "actor": {"type": "string"}, "action": {"type": "string"}, "subject": {"type": "string"}, "details": {},
            "prev_hash": {"type": "string"}, "hash": {"type": "string"}}}}, "has_more": {"type": "boolean"}, "next_after": {"type": ["integer", "null"]}}}),
        ),
        (
            "RuleUpload",
            json!({"type": "object", "required": ["module", "signature", "key_id", "manifest"], "properties": {
            "module": {"type": "string", "format": "binary", "description": "the component bytes"},
            "signature": {"type": "string", "description": "ed25519 over the module's SHA-256: 64 bytes, raw or base64"},
            "key_id": {"type": "string"},
            "manifest": {"type": "string", "description": "JSON {rule_id, version, description, flows, params_schema, default_params}"}}}),
        ),
        (
            "TenantRequest",
            json!({"type": "object", "required": ["name", "organization_type"], "additionalProperties": false, "properties": {"name": {"type": "string"}, "organization_type": {"type": "string", "enum": ["banco", "psp", "comercio"]}, "rate_limit_per_minute": {"type": ["integer", "null"], "minimum": 1}}}),
        ),
        (
            "TenantCreated",
            json!({"type": "object", "required": ["tenant_id", "name", "organization_type", "created_at", "api_key", "api_key_id"], "properties": {
            "tenant_id": {"type": "string"}, "name": {"type": "string"}, "organization_type": {"type": "string"}, "created_at": time,
            "api_key": {"type": "string", "description": "shown once"}, "api_key_id": {"type": "string"}}}),
        ),
        (
            "TenantList",
            json!({"type": "object", "required": ["data"], "properties": {"data": {"type": "array", "items": {"type": "object", "required": ["tenant_id", "name", "organization_type", "created_at"]}}}}),
        ),
        (
            "Health",
            json!({"type": "object", "required": ["status", "version"], "properties": {"status": {"const": "ok"}, "version": {"type": "string"}}}),
        ),
        (
            "Ready",
            json!({"type": "object", "required": ["status", "database", "durability", "rate_limit_store", "rules_loaded"], "properties": {
            "status": {"const": "ready"}, "database": {"type": "string"}, "durability": {"type": "string"},
            "rate_limit_store": {"type": "object", "required": ["kind", "status"]}, "rules_loaded": {"type": "integer"}}}),
        ),
        (
            "OpenApiDocument",
            json!({"type": "object", "required": ["openapi", "info", "paths"]}),
        ),
        (
            "WebhookRequest",
            json!({"type": "object", "required": ["url"], "additionalProperties": false, "properties": {
            "url": {"type": "string", "description": "https, resolving to public addresses only"},
            "events": {"type": "array", "items": {"type": "string", "enum": webhook_events}, "description": "empty or absent: every event"},
            "is_active": {"type": "boolean", "default": true}, "description": {"type": ["string", "null"], "maxLength": 500}}}),
        ),
        (
            "WebhookPatch",
            json!({"type": "object", "additionalProperties": false, "properties": {
            "url": {"type": "string"}, "events": {"type": "array", "items": {"type": "string", "enum": webhook_events}},
            "is_active": {"type": "boolean"}, "description": {"type": ["string", "null"], "maxLength": 500}}}),
        ),
        (
            "WebhookRotate",
            json!({"type": "object", "additionalProperties": false, "properties": {"overlap_seconds": {"type": "integer", "minimum": 0, "maximum": 604_800}}}),
        ),
        ("Webhook", webhook.clone()),
        ("WebhookCreated", webhook_created),
        (
            "WebhookList",
            json!({"type": "object", "required": ["data"], "properties": {"data": {"type": "array", "items": webhook}}}),
        ),
        ("Delivery", delivery.clone()),
        (
            "DeliveryPage",
            json!({"type": "object", "required": ["data", "limit", "offset"], "properties": {"data": {"type": "array", "items": delivery}, "limit": {"type": "integer"}, "offset": {"type": "integer"}}}),
        ),
        (
            "WebhookRecover",
            json!({"type": "object", "required": ["since"], "additionalProperties": false, "properties": {"since": time}}),
        ),
        (
            "WebhookRecovered",
            json!({"type": "object", "required": ["webhook_id", "since", "queued"], "properties": {"webhook_id": {"type": "string"}, "since": time, "queued": {"type": "integer"}}}),
        ),
        (
            "EventFeed",
            json!({"type": "object", "required": ["data", "has_more", "last_id"], "properties": {"data": {"type": "array", "items": event_body}, "has_more": {"type": "boolean"}, "last_id": text}}),
        ),
        ("Text", json!({"type": "string"})),
    ];
    out.extend(case_schemas(
        &currency,
        &time,
        &nullable_time,
        &text,
        &echo_amount,
    ));
    out
}

/// The schemas of cases, fraud reports and rule statistics.
fn case_schemas(
    currency: &Value,
    time: &Value,
    nullable_time: &Value,
    text: &Value,
    echo_amount: &Value,
) -> Vec<(&'static str, Value)> {
    use crate::cases::{
        INCIDENT_TYPES, JURISDICTIONS, PRIORITIES, RESOLUTIONS, STATUSES, fraud::REASONS,
    };
    let nullable_amount = json!({"anyOf": [echo_amount, {"type": "null"}]});
    let major_amount = json!({"anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"}
    ]});
    let day = json!({"type": "string", "description": "YYYY-MM-DD or an RFC 3339 time"});
    let subject = json!({"type": "object", "additionalProperties": false, "properties": {
        "person_type": {"type": "string", "enum": ["fisica", "moral"]}, "nationality": {"type": "string"},
        "legal_name": {"type": "string"}, "first_name": {"type": "string"}, "paternal_surname": {"type": "string"},
        "maternal_surname": {"type": "string"}, "rfc": {"type": "string"}, "curp": {"type": "string"},
        "birth_date": {"type": "string"}, "address": {"type": "string"}, "phone": {"type": "string"}, "account": {"type": "string"}}});
    let fields = |extra: Value| {
        let mut p = json!({
            "incident_date": {"type": ["string", "null"], "description": "YYYY-MM-DD"},
            "incident_type": {"type": "string", "enum": INCIDENT_TYPES},
            "amount": {"anyOf": [major_amount, {"type": "null"}], "description": "major units; needs currency"},
            "currency": {"anyOf": [currency, {"type": "null"}]},
            "jurisdiction": {"type": "string", "enum": JURISDICTIONS},
            "victim_name": {"type": ["string", "null"], "maxLength": 200},
            "victim_email": {"type": ["string", "null"], "maxLength": 254},
            "priority": {"type": "string", "enum": PRIORITIES},
            "description": {"type": ["string", "null"], "maxLength": 10000},
            "session_ids": {"type": "array", "maxItems": 100, "items": {"type": "string"}},
            "unusual_reasons": {"type": ["string", "null"], "maxLength": 10000},
            "subject": {"anyOf": [subject, {"type": "null"}]},
        });
        if let (Value::Object(p), Value::Object(e)) = (&mut p, extra) {
            p.extend(e);
        }
        p
    };
    let case_props = json!({
        "id": {"type": "string"}, "reference_number": {"type": "string", "pattern": "^CLM-[A-Z0-9]{6}$"},
        "status": {"type": "string", "enum": STATUSES}, "priority": {"type": "string", "enum": PRIORITIES},
        "jurisdiction": {"type": "string", "enum": JURISDICTIONS}, "incident_type": {"type": "string", "enum": INCIDENT_TYPES},
        "incident_date": {"type": ["string", "null"], "format": "date"}, "detected_at": time, "due_at": time,
        "overdue": {"type": "boolean"}, "amount": nullable_amount, "currency": text,
        "victim_name": text, "victim_email": text, "description": text, "unusual_reasons": text,
        "subject": {"type": ["object", "null"]}, "resolution": {"anyOf": [{"type": "string", "enum": RESOLUTIONS}, {"type": "null"}]},
        "source": {"type": "string", "enum": ["manual", "fraud_report"]}, "version": {"type": "integer", "minimum": 1},
        "created_by": {"type": "string"}, "reviewed_by": text, "submitted_by": text, "submitted_at": nullable_time,
        "created_at": time, "updated_at": time,
    });
    let case_required: Vec<&str> = case_props
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let case_summary =
        json!({"type": "object", "required": case_required.clone(), "properties": case_props});
    let note = json!({"type": "object", "required": ["id", "author", "body", "created_at"], "properties": {
        "id": {"type": "string"}, "author": {"type": "string"}, "body": {"type": "string"}, "created_at": time}});
    let change = json!({"type": "object", "required": ["version", "field", "from", "to", "actor", "at"], "properties": {
        "version": {"type": "integer"}, "field": {"type": "string"}, "from": text, "to": text, "actor": {"type": "string"}, "at": time}});
    let linked = json!({"type": "object", "required": ["session_id", "flow", "decision", "risk_score", "signals", "signal_details", "blocked_by", "amount", "created_at"], "properties": {
        "session_id": {"type": "string"}, "flow": {"type": "string"}, "decision": {"type": "string"}, "risk_score": {"type": "integer"},
        "signals": {"type": "array", "items": {"type": "string"}}, "signal_details": {"type": "array"}, "blocked_by": text,
        "amount": {}, "created_at": time}});
    let mut detail = case_summary.clone();
    let mut detail_required = case_required.clone();
    detail_required.extend([
        "notes",
        "history",
        "assessments",
        "blocklist_entries",
        "fraud_reports",
    ]);
    detail["required"] = json!(detail_required);
    detail["properties"]["notes"] = json!({"type": "array", "items": note});
    detail["properties"]["history"] = json!({"type": "array", "items": change});
    detail["properties"]["assessments"] = json!({"type": "array", "items": linked});
    detail["properties"]["blocklist_entries"] =
        json!({"type": "array", "items": {"$ref": "#/components/schemas/BlocklistEntry"}});
    let by = |all: &[&str]| {
        let props: serde_json::Map<String, Value> = all
            .iter()
            .map(|k| ((*k).to_owned(), json!({"type": "integer", "minimum": 0})))
            .collect();
        json!({"type": "object", "required": all, "properties": props})
    };
    let entity = json!({"type": "object", "additionalProperties": false, "properties": {
        "name": text, "entity_code": text, "supervisor_code": text, "locality": text, "postal_code": text}});
    let version_stats = json!({"type": "object", "required": ["version", "mode", "assessments", "fires", "labelled_fraud", "fires_labelled_fraud", "fires_confirmed_fraud", "precision", "recall"], "properties": {
        "version": {"type": "string"}, "mode": {"type": "string"}, "assessments": {"type": "integer"}, "fires": {"type": "integer"},
        "labelled_fraud": {"type": "integer"}, "fires_labelled_fraud": {"type": "integer"}, "fires_confirmed_fraud": {"type": "integer"},
        "precision": {"type": ["number", "null"]}, "recall": {"type": ["number", "null"]}}});
    vec![
        (
            "CaseRequest",
            json!({"type": "object", "required": ["incident_type"], "additionalProperties": false,
                   "properties": fields(json!({"detection_date": day}))}),
        ),
        (
            "CasePatch",
            json!({"type": "object", "additionalProperties": false, "properties": fields(json!({
                "status": {"type": "string", "enum": STATUSES},
                "resolution": {"anyOf": [{"type": "string", "enum": RESOLUTIONS}, {"type": "null"}]},
            }))}),
        ),
        ("Case", detail),
        (
            "CaseList",
            json!({"type": "object", "required": ["data", "total", "limit", "offset"], "properties": {
                "data": {"type": "array", "items": case_summary}, "total": {"type": "integer"},
                "limit": {"type": "integer"}, "offset": {"type": "integer"}}}),
        ),
        (
            "CaseStats",
            json!({"type": "object", "required": ["total", "by_status", "by_priority", "by_jurisdiction", "overdue", "due_soon", "due_soon_days"], "properties": {
                "total": {"type": "integer"}, "by_status": by(STATUSES), "by_priority": by(PRIORITIES),
                "by_jurisdiction": by(JURISDICTIONS), "overdue": {"type": "integer"}, "due_soon": {"type": "integer"},
                "due_soon_days": {"type": "integer"}}}),
        ),
        (
            "CaseNoteRequest",
            json!({"type": "object", "required": ["body"], "additionalProperties": false, "properties": {"body": {"type": "string", "minLength": 1, "maxLength": 10000}}}),
        ),
        ("CaseNote", note),
        (
            "CaseReport",
            json!({"type": "object", "required": ["case", "report"], "properties": {"case": case_summary, "report": {"type": "object", "required": ["format", "reference_number", "jurisdiction", "operation", "unusual_reasons", "submitted_at", "submitted_by"]}}}),
        ),
        (
            "CaseSettingsRequest",
            json!({"type": "object", "additionalProperties": false, "properties": {
                "four_eyes": {"type": "boolean"},
                "due_days": {"type": "object", "propertyNames": {"enum": JURISDICTIONS}, "additionalProperties": {"type": "integer", "minimum": 1, "maximum": 365}},
                "default_jurisdiction": {"anyOf": [{"type": "string", "enum": JURISDICTIONS}, {"type": "null"}]},
                "reporting_entity": entity}}),
        ),
        (
            "CaseSettings",
            json!({"type": "object", "required": ["four_eyes", "due_days", "default_jurisdiction", "reporting_entity"], "properties": {
                "four_eyes": {"type": "boolean"}, "due_days": {"type": "object"},
                "default_jurisdiction": {"type": "string", "enum": JURISDICTIONS}, "reporting_entity": {"type": "object"}}}),
        ),
        (
            "FraudReportRequest",
            json!({"type": "object", "required": ["reason"], "additionalProperties": false, "properties": {
                "session_id": {"type": "string"}, "transaction_id": {"type": "string", "description": "alias of session_id"},
                "external_transaction_id": {"type": "string", "description": "the assessment's payment_id"},
                "reason": {"type": "string", "enum": REASONS}, "description": {"type": "string", "maxLength": 10000},
                "evidence_urls": {"type": "array", "maxItems": 20, "items": {"type": "string", "format": "uri"}}}}),
        ),
        (
            "FraudReport",
            json!({"type": "object", "required": ["case_id", "reference_number", "blocklist_entries"], "properties": {
                "case_id": {"type": "string"}, "reference_number": {"type": "string", "pattern": "^CLM-[A-Z0-9]{6}$"},
                "blocklist_entries": {"type": "array", "items": {"$ref": "#/components/schemas/BlocklistEntry"}}}}),
        ),
        (
            "RuleStats",
            json!({"type": "object", "required": ["rule_id", "days", "since", "versions"], "properties": {
                "rule_id": {"type": "string"}, "days": {"type": "integer"}, "since": time,
                "versions": {"type": "array", "items": version_stats}}}),
        ),
    ]
}

fn status_text(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        400 => "Invalid request (`VALIDATION_ERROR`, `RULE_REJECTED`, …)",
        401 => "Missing or invalid API key",
        403 => "The key lacks the permission",
        404 => "Not found (or another tenant's)",
        409 => "Conflict",
        408 => "The body did not arrive within the body timeout",
        413 => "Body too large (refused from Content-Length before it is read)",
        415 => "The body is not JSON (`Content-Type: application/json`)",
        429 => "Rate limited (see Retry-After)",
        503 => {
            "Unavailable (`ASSESS_MAINTENANCE`, or `RATE_LIMIT_STORE_UNAVAILABLE` for a rate-limited key while the shared store is down)"
        }
        504 => "Pipeline deadline exceeded",
        _ => "",
    }
}

/// The error statuses an operation can answer: the ones that follow from
/// how it is called, then `default` (any other error, e.g. 408 or 431
/// from the connection layer, still carries the error body).
fn error_statuses(o: &Operation) -> Vec<&'static str> {
    let mut codes = vec!["400"];
    if let Some(p) = o.permission {
        codes.extend(["401", "403"]);
        if p != "operator token" {
            // Keys are rate limited; the shared limit store may be down.
            codes.extend(["429", "503"]);
        }
        if o.path.contains('{') {
            codes.push("404");
        }
    }
    if o.body.is_some() {
        codes.extend(["408", "413", "415"]);
    }
    let conflicts = matches!(
        (o.method, o.path),
        ("POST", "/api/v1/assess/payout")
            | ("POST", "/api/v1/assess")
            | ("POST", "/api/v1/keys")
            | ("POST", "/api/v1/blocklists")
            | ("POST", "/api/v1/blocklists/import")
            | ("POST", "/api/v1/signing-keys")
            | ("POST", "/api/v1/rules")
            | (
                "POST",
                "/api/v1/rules/{rule_id}/versions/{version}/activate"
            )
            | (
                "POST",
                "/api/v1/rules/{rule_id}/versions/{version}/deactivate"
            )
            | ("PATCH", "/api/v1/cases/{id}")
            | ("POST", "/api/v1/cases/{id}/submit")
            | ("POST", "/api/v1/cases")
            | ("POST", "/api/v1/report-fraud")
    );
    if conflicts {
        codes.push("409");
    }
    if matches!(
        o.path,
        "/api/v1/assess/payout"
            | "/api/v1/simulation/payout"
            | "/api/v1/assess"
            | "/api/v1/simulation/assess"
    ) && o.method == "POST"
    {
        codes.push("504");
    }
    codes.push("default");
    codes
}

/// The query parameters of the operations that take any.
fn query_parameters(o: &Operation) -> &'static [(&'static str, &'static str)] {
    match (o.method, o.path) {
        ("GET", "/api/v1/blocklists") => &[
            ("list_type", "only this list type"),
            ("flow_scope", "`payin`, `payout` or `all`"),
            ("is_active", "`true` or `false`"),
            ("q", "values containing this text"),
            ("limit", "1 to 500 (default 50)"),
            ("cursor", "`next_cursor` of the previous page"),
        ],
        ("POST", "/api/v1/blocklists/import") => &[
            ("format", "`csv` or `ndjson` (default: from Content-Type)"),
            (
                "on_duplicate",
                "`report` (default: listed and skipped) or `fail` (409, nothing imported)",
            ),
        ],
        ("GET", "/api/v1/webhooks/{id}/deliveries") => &[
            (
                "status",
                "`pending`, `paused` (its endpoint is disabled), `delivered` or `failed`",
            ),
            ("limit", "1 to 200 (default 50)"),
            ("offset", "deliveries to skip (default 0)"),
        ],
        ("GET", "/api/v1/events") => &[
            ("after", "an event id: the events after it"),
            ("type", "only this event"),
            ("limit", "1 to 1000 (default 100)"),
        ],
        ("GET", "/api/v1/cases") => &[
            (
                "status",
                "`borrador`, `en_revision`, `enviado`, `resuelto` or `archivado`",
            ),
            ("priority", "`baja`, `media`, `alta` or `urgente`"),
            ("jurisdiction", "`MX`, `CL`, `BR`, `PE`, `CO`, `UY` or `AR`"),
            (
                "search",
                "text in the reference, victim name or email, or description",
            ),
            ("from_date", "opened on or after this day (YYYY-MM-DD)"),
            ("to_date", "opened on or before this day (YYYY-MM-DD)"),
            (
                "due",
                "`overdue` or `due_soon` (open cases due within 7 days)",
            ),
            ("limit", "1 to 200 (default 50)"),
            ("offset", "cases to skip (default 0)"),
            (
                "sort_by",
                "`created_at` (default), `updated_at`, `due_at`, `incident_date`, `priority`, `status`, `amount` or `reference_number`",
            ),
            ("sort_order", "`desc` (default) or `asc`"),
        ],
        ("GET", "/api/v1/cases/{id}/report") => &[(
            "format",
            "`json` (default) or `txt` (MX: the unusual-operation report's delimited record)",
        )],
        ("GET", "/api/v1/rules/{rule_id}/stats") => {
            &[("days", "the window, 1 to 365 days back (default 30)")]
        }
        ("GET", "/api/v1/audit") => &[
            ("after", "a `seq`: entries after it"),
            ("limit", "1 to 500 (default 100)"),
            ("action", "only this action, e.g. `rule.activated`"),
        ],
        _ => &[],
    }
}

fn status_text_for(code: &str) -> &'static str {
    code.parse()
        .map_or("Any other error (same body)", status_text)
}

fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Error")))
                .build(),
        )
        .build()
}

/// Builds the document: operations with `utoipa`'s typed model, component
/// schemas as plain JSON Schema 2020-12 (the dialect of OpenAPI 3.1; the
/// typed model cannot hold `if`/`then`, `const` or `prefixItems`).
pub fn document() -> Value {
    let mut paths = PathsBuilder::new();
    for o in OPERATIONS {
        let method = match o.method {
            "GET" => HttpMethod::Get,
            "POST" => HttpMethod::Post,
            "PUT" => HttpMethod::Put,
            "PATCH" => HttpMethod::Patch,
            _ => HttpMethod::Delete,
        };
        let mut b = OperationBuilder::new()
            .tag(o.tag)
            .summary(Some(o.summary))
            .operation_id(Some(format!(
                "{}_{}",
                o.method.to_ascii_lowercase(),
                o.path
                    .trim_start_matches('/')
                    .replace(['/', '{', '}', '.', '-'], "_")
            )));
        for segment in o.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                b = b.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(utoipa::openapi::Required::True)
                        .schema(Some(RefOr::T(Schema::Object(
                            utoipa::openapi::ObjectBuilder::new()
                                .schema_type(utoipa::openapi::schema::Type::String)
                                .build(),
                        )))),
                );
            }
        }
        if let Some(body) = o.body {
            let (content_type, schema) = match body {
                "multipart" => ("multipart/form-data", "RuleUpload"),
                "csv" => ("text/csv", "BlocklistImportCsv"),
                _ => ("application/json", body),
            };
            b = b.request_body(Some(
                RequestBodyBuilder::new()
                    .content(
                        content_type,
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name(schema)))
                            .build(),
                    )
                    .required(Some(utoipa::openapi::Required::True))
                    .build(),
            ));
        }
        // Text and HTML pages are declared with their own media types.
        let (ok_type, ok_schema) = match o.ok.1 {
            "Text" => ("text/plain", "Text"),
            "Html" => ("text/html", "Text"),
            schema => ("application/json", schema),
        };
        let mut ok = ResponseBuilder::new()
            .description(status_text(o.ok.0))
            .content(
                ok_type,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(ok_schema)))
                    .build(),
            );
        // A report is also served as its delimited text record.
        if o.path == "/api/v1/cases/{id}/report" {
            ok = ok.content(
                "text/plain",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Text")))
                    .build(),
            );
        }
        b = b.response(o.ok.0.to_string(), ok);
        // Reporting an assessment again answers the first report with 200.
        if o.path == "/api/v1/report-fraud" {
            b = b.response(
                "200",
                ResponseBuilder::new()
                    .description("Reported before: the first report's answer, nothing written")
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name(ok_schema)))
                            .build(),
                    ),
            );
        }
        for code in error_statuses(o) {
            b = b.response(code, error_response(status_text_for(code)));
        }
        for &(name, description) in query_parameters(o) {
            b = b.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Query)
                    .description(Some(description))
                    .required(utoipa::openapi::Required::False)
                    .schema(Some(RefOr::T(Schema::Object(
                        utoipa::openapi::ObjectBuilder::new()
                            .schema_type(utoipa::openapi::schema::Type::String)
                            .build(),
                    )))),
            );
        }
        if let Some(p) = o.permission {
            b = b
                .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
                .description(Some(if p == "operator token" {
                    "Needs the operator token (`ADUANA_OPERATOR_TOKEN`).".to_owned()
                } else {
                    format!("Needs a secret key with `{p}`.")
                }));
        }
        paths = paths.path(o.path, PathItem::new(method, b.build()));
    }
    let components = utoipa::openapi::ComponentsBuilder::new()
        .security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        )
        .build();
    let typed: OpenApi = OpenApiBuilder::new()
        .info(
            utoipa::openapi::InfoBuilder::new()
                .title("aduana")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Fraud assess API for banks. Authentication: `Authorization: Bearer <key>`. \
                     Errors are always `{\"error\": {\"code\", \"message\", \"details\"}}`.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components))
        .build();
    let mut doc = serde_json::to_value(typed).unwrap_or_else(|_| json!({}));
    doc["components"]["schemas"] = Value::Object(
        schemas()
            .into_iter()
            .map(|(name, schema)| (name.to_owned(), schema))
            .collect(),
    );
    doc
}

fn document_json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| document().to_string())
}

async fn spec() -> Response {
    let mut resp = document_json().to_owned().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

async fn docs() -> Response {
    let mut resp = DOCS_HTML.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

const DOCS_HTML: &str = include_str!("docs.html");

#[cfg(test)]
mod tests {
    #[test]
    fn every_schema_is_valid() {
        let doc = super::document();
        for (name, _) in super::schemas() {
            let root = serde_json::json!({
                "$ref": format!("#/components/schemas/{name}"),
                "components": doc["components"],
            });
            if let Err(e) = jsonschema::draft202012::new(&root) {
                panic!("schema {name}: {e}");
            }
        }
    }

    #[test]
    fn every_schema_reference_resolves() {
        let doc = super::document();
        let text = doc.to_string();
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(
                doc["components"]["schemas"][&name].is_object(),
                "unresolved reference to {name}"
            );
        }
    }
}
