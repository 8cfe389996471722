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

use crate::app::App;

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
        (200, "Object"),
    ),
    op(
        "POST",
        "/api/v1/simulation/payout",
        "assess",
        "Simulate a payout assessment (no side effects), optionally with candidate rule versions",
        Some("assess"),
        Some("SimulationRequest"),
        (200, "AssessResponse"),
    ),
    op(
        "GET",
        "/api/v1/assessments/{session_id}",
        "assess",
        "Explain a stored assessment: every rule that ran, active or shadow",
        Some("rules:read"),
        None,
        (200, "Object"),
    ),
    op(
        "POST",
        "/api/v1/assessments/{session_id}/replay",
        "assess",
        "Re-run a stored assessment and report whether the result is identical",
        Some("rules:read"),
        None,
        (200, "Object"),
    ),
    op(
        "GET",
        "/api/v1/keys",
        "keys",
        "List API keys",
        Some("keys:write"),
        None,
        (200, "Object"),
    ),
    op(
        "POST",
        "/api/v1/keys",
        "keys",
        "Create an API key (the secret is shown once)",
        Some("keys:write"),
        Some("KeyRequest"),
        (201, "Object"),
    ),
    op(
        "DELETE",
        "/api/v1/keys/{id}",
        "keys",
        "Revoke an API key",
        Some("keys:write"),
        None,
        (200, "Object"),
    ),
    op(
        "GET",
        "/api/v1/blocklists",
        "blocklists",
        "List blocklist entries (cursor pagination)",
        Some("blocklists:read"),
        None,
        (200, "Object"),
    ),
    op(
        "POST",
        "/api/v1/blocklists",
        "blocklists",
        "Add a blocklist entry",
        Some("blocklists:write"),
        Some("BlocklistEntryRequest"),
        (201, "Object"),
    ),
    op(
        "PATCH",
        "/api/v1/blocklists",
        "blocklists",
        "Update an entry by id in the body (compatibility form)",
        Some("blocklists:write"),
        Some("Object"),
        (200, "Object"),
    ),
    op(
        "GET",
        "/api/v1/blocklists/{id}",
        "blocklists",
        "Read a blocklist entry",
        Some("blocklists:read"),
        None,
        (200, "Object"),
    ),
    op(
        "PATCH",
        "/api/v1/blocklists/{id}",
        "blocklists",
        "Update a blocklist entry",
        Some("blocklists:write"),
        Some("Object"),
        (200, "Object"),
    ),
    op(
        "DELETE",
        "/api/v1/blocklists/{id}",
        "blocklists",
        "Delete a blocklist entry (admin)",
        Some("*"),
        None,
        (200, "Object"),
    ),
    op(
        "GET",
        "/api/v1/signing-keys",
        "rules",
        "List the tenant's rule signing keys",
        Some("rules:read"),
        None,
        (200, "Object"),
    ),
    op(
        "POST",
        "/api/v1/signing-keys",
        "rules",
        "Register an ed25519 public key for signing rules",
        Some("rules:write"),
        Some("SigningKeyRequest"),
        (201, "Object"),
    ),
    op(
        "GET",
        "/api/v1/signing-keys/{id}",
        "rules",
        "Read a signing key",
        Some("rules:read"),
        None,
        (200, "Object"),
    ),
    op(
        "DELETE",
        "/api/v1/signing-keys/{id}",
        "rules",
        "Revoke a signing key",
        Some("rules:write"),
        None,
        (200, "Object"),
    ),
    op(
        "GET",
        "/api/v1/rules",
        "rules",
        "List built-in and uploaded rules",
        Some("rules:read"),
        None,
        (200, "Object"),
    ),
    op(
        "POST",
        "/api/v1/rules",
        "rules",
        "Upload a signed rule component (multipart: module, signature, key_id, manifest)",
        Some("rules:write"),
        Some("multipart"),
        (201, "Object"),
    ),
    op(
        "GET",
        "/api/v1/rules/{rule_id}/versions",
        "rules",
        "List a rule's uploaded versions",
        Some("rules:read"),
        None,
        (200, "Object"),
    ),
    op(
        "GET",
        "/api/v1/rules/{rule_id}/versions/{version}",
        "rules",
        "Read one version: digest, signer, signals, params schema",
        Some("rules:read"),
        None,
        (200, "Object"),
    ),
    op(
        "POST",
        "/api/v1/rules/{rule_id}/versions/{version}/activate",
        "rules",
        "Run a version: active (it decides; the previous active version retires) or shadow (recorded beside the active one, never counted); also the way to roll back",
        Some("rules:write"),
        Some("ActivateRequest"),
        (200, "Object"),
    ),
    op(
        "POST",
        "/api/v1/rules/{rule_id}/versions/{version}/deactivate",
        "rules",
        "Stop this version (active or shadow); 409 when it does not run",
        Some("rules:write"),
        None,
        (200, "Object"),
    ),
    op(
        "POST",
        "/api/v1/rules/{rule_id}/deactivate",
        "rules",
        "Stop every running version of the rule (active and shadow)",
        Some("rules:write"),
        None,
        (200, "Object"),
    ),
    op(
        "POST",
        "/api/v1/rules/{rule_id}/versions/{version}/backtest",
        "rules",
        "Replay stored assessments with this version in place of the active one, with the params it would run with (read-only)",
        Some("rules:read"),
        Some("BacktestRequest"),
        (200, "Object"),
    ),
    op(
        "GET",
        "/api/v1/pipeline",
        "rules",
        "The tenant's pipeline as it runs",
        Some("rules:read"),
        None,
        (200, "Object"),
    ),
    op(
        "PUT",
        "/api/v1/pipeline",
        "rules",
        "Replace the payout pipeline: order, params, weights, on_error, thresholds",
        Some("settings:write"),
        Some("PipelineRequest"),
        (200, "Object"),
    ),
    op(
        "GET",
        "/api/v1/audit",
        "rules",
        "The tenant's hash-chained audit log",
        Some("rules:read"),
        None,
        (200, "Object"),
    ),
    op(
        "POST",
        "/api/v1/operator/tenants",
        "operator",
        "Create a tenant and its first admin key (operator token)",
        Some("operator token"),
        Some("TenantRequest"),
        (201, "Object"),
    ),
    op(
        "GET",
        "/api/v1/operator/tenants",
        "operator",
        "List tenants (operator token)",
        Some("operator token"),
        None,
        (200, "Object"),
    ),
    op(
        "GET",
        "/api/v1/health",
        "operations",
        "Liveness",
        None,
        None,
        (200, "Object"),
    ),
    op(
        "GET",
        "/api/v1/health/ready",
        "operations",
        "Readiness: database reachable, rules loaded",
        None,
        None,
        (200, "Object"),
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
        (200, "Object"),
    ),
    op(
        "GET",
        "/docs",
        "operations",
        "Interactive API documentation",
        None,
        None,
        (200, "Text"),
    ),
];

/// Component schemas, as JSON Schema (OpenAPI 3.1 dialect).
fn schemas() -> Vec<(&'static str, Value)> {
    let amount = json!({"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"}, {"type": "number"}],
        "description": "minor units by default; with amount_unit=major, at most the currency's ISO 4217 decimals"});
    vec![
        (
            "Error",
            json!({"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message", "details"], "properties": {
            "code": {"type": "string", "enum": ["VALIDATION_ERROR", "INVALID_TYPE", "INVALID_SEVERITY", "UNAUTHORIZED", "FORBIDDEN", "SECRET_KEY_REQUIRED", "PUBLIC_KEY_NOT_ALLOWED", "NOT_FOUND", "METHOD_NOT_ALLOWED", "DUPLICATE", "IDEMPOTENCY_KEY_REUSED", "INVALID_TRANSITION", "PAYLOAD_TOO_LARGE", "RULE_REJECTED", "RATE_LIMITED", "INTERNAL_ERROR", "ASSESS_MAINTENANCE", "RATE_LIMIT_STORE_UNAVAILABLE", "ASSESS_TIMEOUT"]},
            "message": {"type": "string"}, "details": {"type": "object"}}}}}),
        ),
        (
            "AssessPayoutRequest",
            json!({"type": "object", "required": ["amount", "currency", "beneficiary"], "properties": {
            "amount": amount, "amount_unit": {"type": "string", "enum": ["minor", "major"], "default": "minor"},
            "currency": {"type": "string", "description": "ISO 4217"},
            "transaction_type": {"type": "string"},
            "beneficiary": {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "country": {"type": "string", "description": "ISO 3166-1 alpha-2"}, "clabe": {"type": "string"}, "iban": {"type": "string"}, "swift_bic": {"type": "string"}, "account_hash": {"type": "string"}}},
            "origin": {"type": "object", "properties": {"account_id": {"type": "string"}, "country": {"type": "string"}}},
            "payout": {"type": "object", "properties": {"channel": {"type": "string", "enum": ["spei", "wire", "api", "internal"]}, "rail": {"type": "string"}, "initiated_by": {"type": "string"}, "first_to_beneficiary": {"type": "boolean"}}},
            "payment_id": {"type": "string"}, "customer_id": {"type": "string"},
            "idempotency_key": {"type": "string", "maxLength": 255},
            "metadata": {"type": "object"}}}),
        ),
        (
            "SimulationRequest",
            json!({"allOf": [{"$ref": "#/components/schemas/AssessPayoutRequest"}, {"type": "object", "properties": {
            "rule_overrides": {"type": "array", "items": {"type": "object", "required": ["rule_id", "version"], "properties": {"rule_id": {"type": "string"}, "version": {"type": "string"}}}}}}]}),
        ),
        (
            "AssessResponse",
            json!({"type": "object", "properties": {
            "decision": {"type": "string", "enum": ["approve", "review", "challenge", "decline"]},
            "risk_score": {"type": "integer", "minimum": 0, "maximum": 100},
            "flow": {"type": "string"}, "signals": {"type": "array", "items": {"type": "string"}},
            "signal_details": {"type": "array", "items": {"type": "object", "properties": {"code": {"type": "string"}, "weight": {"type": "integer"}, "description": {"type": "string"}, "rule_id": {"type": "string"}, "rule_version": {"type": "string"}}}},
            "blocked_by": {"type": ["string", "null"]}, "session_id": {"type": "string", "pattern": "^ps_[0-9]+_[a-z0-9]{9}$"},
            "field_warnings": {"type": "array", "items": {"type": "object", "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}},
            "latency_ms": {"type": "number"},
            "amount": {"type": "object", "properties": {"minor": {"type": "integer"}, "major": {"type": "string"}, "currency": {"type": "string"}}},
            "payment_id": {"type": ["string", "null"]}, "idempotency_key": {"type": ["string", "null"]},
            "simulated": {"type": "boolean"}}}),
        ),
        (
            "KeyRequest",
            json!({"type": "object", "properties": {"name": {"type": "string"}, "role": {"type": "string", "enum": ["admin", "analyst", "compliance_officer", "integration"]}, "permissions": {"type": "array", "items": {"type": "string"}}, "kind": {"type": "string", "enum": ["secret", "publishable", "ingest"]}, "rate_limit_per_minute": {"type": ["integer", "null"]}, "rate_limit_per_day": {"type": ["integer", "null"]}}}),
        ),
        (
            "BlocklistEntryRequest",
            json!({"type": "object", "required": ["list_type", "value"], "properties": {"list_type": {"type": "string"}, "value": {"type": "string"}, "flow_scope": {"type": "string", "enum": ["payout", "payin", "all"]}, "severity": {"type": "string", "enum": ["block", "flag", "review"]}, "reason": {"type": "string"}, "source": {"type": "string"}, "expires_at": {"type": "string", "format": "date-time"}}}),
        ),
        (
            "SigningKeyRequest",
            json!({"type": "object", "required": ["name", "public_key"], "properties": {"name": {"type": "string"}, "public_key": {"type": "string", "description": "ed25519 public key, base64 of 32 bytes"}}}),
        ),
        (
            "ActivateRequest",
            json!({"type": "object", "properties": {"mode": {"type": "string", "enum": ["active", "shadow"], "default": "active"}}}),
        ),
        (
            "BacktestRequest",
            json!({"type": "object", "properties": {"limit": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1000}, "since": {"type": "string", "format": "date-time"}}}),
        ),
        (
            "PipelineRequest",
            json!({"type": "object", "required": ["payout"], "properties": {"payout": {"type": "object", "required": ["rules"], "properties": {
            "rules": {"type": "array", "items": {"type": "object", "required": ["rule_id"], "properties": {"rule_id": {"type": "string"}, "enabled": {"type": "boolean"}, "params": {"type": "object"}, "weights": {"type": "object", "additionalProperties": {"type": "integer", "maximum": 100}}, "on_error": {"type": "string", "enum": ["ignore", "review", "decline"]}}}},
            "thresholds": {"type": "object", "properties": {"review": {"type": "integer"}, "challenge": {"type": "integer"}, "decline": {"type": "integer"}}},
            "deadline_ms": {"type": "integer", "minimum": 10, "maximum": 10000},
            "high_risk_countries": {"type": "object", "properties": {"black_list": {"type": "array", "items": {"type": "string"}}, "grey_list": {"type": "array", "items": {"type": "string"}}}},
            "cross_border_thresholds": {"type": "object", "additionalProperties": {"type": "string"}}}}}}),
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
            json!({"type": "object", "required": ["name", "organization_type"], "properties": {"name": {"type": "string"}, "organization_type": {"type": "string", "enum": ["banco", "psp", "comercio"]}, "rate_limit_per_minute": {"type": ["integer", "null"]}}}),
        ),
        ("Object", json!({"type": "object"})),
        ("Text", json!({"type": "string"})),
    ]
}

fn status_text(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        400 => "Invalid request (`VALIDATION_ERROR`, `RULE_REJECTED`, …)",
        401 => "Missing or invalid API key",
        403 => "The key lacks the permission",
        404 => "Not found (or another tenant's)",
        409 => "Conflict",
        413 => "Body too large",
        429 => "Rate limited (see Retry-After)",
        503 => {
            "Unavailable (`ASSESS_MAINTENANCE`, or `RATE_LIMIT_STORE_UNAVAILABLE` for a rate-limited key while the shared store is down)"
        }
        504 => "Pipeline deadline exceeded",
        _ => "",
    }
}

/// Builds the document.
pub fn document() -> OpenApi {
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
            let (content_type, schema) = if body == "multipart" {
                ("multipart/form-data", "RuleUpload")
            } else {
                ("application/json", body)
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
        let ok_type = if o.ok.1 == "Text" {
            "text/plain"
        } else {
            "application/json"
        };
        b = b.response(
            o.ok.0.to_string(),
            ResponseBuilder::new()
                .description(status_text(o.ok.0))
                .content(
                    ok_type,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(o.ok.1)))
                        .build(),
                ),
        );
        let mut errors: Vec<u16> = vec![400];
        if let Some(p) = o.permission {
            errors.extend([401, 403]);
            if p != "operator token" {
                // Keys are rate limited; the shared limit store may be down.
                errors.extend([429, 503]);
            }
            if o.path.contains('{') {
                errors.push(404);
            }
            b = b
                .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
                .description(Some(if p == "operator token" {
                    "Needs the operator token (`ADUANA_OPERATOR_TOKEN`).".to_owned()
                } else {
                    format!("Needs a secret key with `{p}`.")
                }));
        }
        if o.path == "/api/v1/assess/payout" && o.method == "POST" {
            errors.extend([409, 413, 504]);
        }
        for code in errors {
            b = b.response(
                code.to_string(),
                ResponseBuilder::new()
                    .description(status_text(code))
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Error")))
                            .build(),
                    ),
            );
        }
        paths = paths.path(o.path, PathItem::new(method, b.build()));
    }
    let mut components = utoipa::openapi::ComponentsBuilder::new().security_scheme(
        "bearer",
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    for (name, schema) in schemas() {
        match serde_json::from_value::<Schema>(schema) {
            Ok(s) => components = components.schema(name, s),
            Err(e) => tracing::error!(schema = name, error = %e, "invalid OpenAPI schema"),
        }
    }
    OpenApiBuilder::new()
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
        .components(Some(components.build()))
        .build()
}

fn document_json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| document().to_json().unwrap_or_else(|_| "{}".to_owned()))
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
        for (name, schema) in super::schemas() {
            if let Err(e) = serde_json::from_value::<super::Schema>(schema) {
                panic!("schema {name}: {e}");
            }
        }
    }

    #[test]
    fn every_schema_reference_resolves() {
        let doc = serde_json::to_value(super::document()).unwrap_or_default();
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
