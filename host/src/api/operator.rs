//! The operator API (§1): tenants are created by the operator, with the
//! CLI or here. Guarded by the operator token from `ADUANA_OPERATOR_TOKEN`
//! (`Authorization: Bearer <token>`, compared in constant time); without a
//! configured token the operator API is off (403; a request without any
//! token is 401 either way).
//!
//! `POST /api/v1/operator/tenants {name, organization_type,
//! rate_limit_per_minute?}` → 201 with the tenant and its first admin key
//! (shown once); `GET /api/v1/operator/tenants`.
use axum::{
    Json, Router,
    extract::{FromRequestParts, State},
    http::{StatusCode, request::Parts},
    routing::get,
};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::state::App;
use super::{error::ApiError, extract::Body, extract::parse_json};
use crate::{
    domain::{ids::object_id, now_ms, rfc3339_ms},
    keys::{KeyRequest, create_key},
    store::{AuditEvent, Tenant},
};

pub fn router() -> Router<App> {
    Router::new().route("/api/v1/operator/tenants", get(list).post(create))
}

/// A caller holding the operator token.
#[derive(Debug)]
pub struct Operator;

impl FromRequestParts<App> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        // No credentials is 401 whether or not the API is on.
        let presented = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(ApiError::Unauthorized("missing operator token"))?;
        let Some(token) = app.config.operator_token.as_deref() else {
            return Err(ApiError::Forbidden(
                "operator API disabled (set ADUANA_OPERATOR_TOKEN)".to_owned(),
            ));
        };
        let equal: bool = presented.as_bytes().ct_eq(token.as_bytes()).into();
        if !equal {
            return Err(ApiError::Unauthorized("invalid operator token"));
        }
        Ok(Operator)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    name: String,
    organization_type: String,
    /// Of the first admin key: absent = default (100), `null` = unlimited.
    #[serde(default, deserialize_with = "super::extract::nullable")]
    rate_limit_per_minute: Option<Option<i64>>,
}

async fn create(
    State(app): State<App>,
    _op: Operator,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: CreateTenant = parse_json(&body)?;
    let name = req.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::validation("name", "must be 1 to 200 characters"));
    }
    if !["banco", "psp", "comercio"].contains(&req.organization_type.as_str()) {
        return Err(ApiError::validation(
            "organization_type",
            format!(
                "`{}` is not one of banco, psp, comercio",
                req.organization_type
            ),
        ));
    }
    let tenant = Tenant {
        id: object_id("ten"),
        name: name.to_owned(),
        organization_type: req.organization_type,
        settings: "{}".to_owned(),
        rules_revision: 0,
        created_at: now_ms(),
    };
    app.store.create_tenant(&tenant).await?;
    let key = create_key(
        &app.store,
        &tenant.id,
        KeyRequest {
            name: Some("admin (created by the operator API)".into()),
            role: Some("admin".into()),
            rate_limit_per_minute: req.rate_limit_per_minute,
            ..KeyRequest::default()
        },
    )
    .await?
    .map_err(|(field, msg)| ApiError::validation(field, msg))?;
    app.store
        .append_audit(
            &tenant.id,
            tenant.created_at,
            &AuditEvent {
                actor: "operator".into(),
                action: "tenant.created".into(),
                subject: tenant.id.clone(),
                details: json!({ "name": tenant.name, "admin_key_id": key.id }),
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "tenant_id": tenant.id,
            "name": tenant.name,
            "organization_type": tenant.organization_type,
            "created_at": rfc3339_ms(tenant.created_at),
            "api_key": key.api_key,
            "api_key_id": key.id,
        })),
    ))
}

async fn list(State(app): State<App>, _op: Operator) -> Result<Json<Value>, ApiError> {
    let tenants = app.store.tenants().await?;
    Ok(Json(json!({
        "data": tenants.iter().map(|t| json!({
            "tenant_id": t.id,
            "name": t.name,
            "organization_type": t.organization_type,
            "created_at": rfc3339_ms(t.created_at),
        })).collect::<Vec<_>>()
    })))
}
