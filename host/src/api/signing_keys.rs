//! `POST/GET /api/v1/signing-keys`, `DELETE /api/v1/signing-keys/{id}` (§11):
//! the ed25519 public keys whose signatures a tenant's rule uploads need.
//! Reading needs `rules:read`, changing needs `rules:write`.
use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    routing::{delete, get},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::state::App;
use super::{auth::Auth, error::ApiError, extract::Body, extract::Path, extract::parse_json};
use crate::{
    domain::{ids::object_id, now_ms, rfc3339_ms, signing::parse_public_key},
    store::{AuditEvent, SigningKeyRecord, StoreError},
};

pub fn router() -> Router<App> {
    Router::new()
        .route("/api/v1/signing-keys", get(list).post(create))
        .route("/api/v1/signing-keys/{id}", delete(revoke).get(show))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    name: String,
    /// ed25519, base64 of the 32 key bytes.
    public_key: String,
}

fn view(k: &SigningKeyRecord) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "public_key": k.public_key,
        "algorithm": "ed25519",
        "status": if k.revoked_at.is_some() { "revoked" } else { "active" },
        "created_by": k.created_by,
        "created_at": rfc3339_ms(k.created_at),
        "revoked_at": k.revoked_at.map(rfc3339_ms),
    })
}

async fn create(
    State(app): State<App>,
    auth: Auth,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    auth.require("rules:write")?;
    let req: CreateRequest = parse_json(&body)?;
    let name = req.name.trim();
    if name.is_empty() || name.len() > 128 {
        return Err(ApiError::validation("name", "must be 1 to 128 characters"));
    }
    let key =
        parse_public_key(&req.public_key).map_err(|e| ApiError::validation("public_key", e))?;
    let record = SigningKeyRecord {
        id: object_id("sgk"),
        tenant_id: auth.tenant_id().to_owned(),
        name: name.to_owned(),
        public_key: crate::domain::signing::b64(key.as_bytes()),
        created_by: auth.record.key.id.clone(),
        created_at: now_ms(),
        revoked_at: None,
    };
    let event = AuditEvent {
        actor: auth.record.key.id.clone(),
        action: "signing_key.created".into(),
        subject: record.id.clone(),
        details: json!({ "name": record.name, "public_key": record.public_key }),
    };
    match app.store.create_signing_key(&record, &event).await {
        Ok(()) => Ok((StatusCode::CREATED, Json(view(&record)))),
        Err(StoreError::Duplicate) => Err(ApiError::Duplicate(
            "this public key is already registered".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

async fn list(State(app): State<App>, auth: Auth) -> Result<Json<Value>, ApiError> {
    auth.require("rules:read")?;
    let keys = app.store.signing_keys(auth.tenant_id()).await?;
    Ok(Json(
        json!({ "data": keys.iter().map(view).collect::<Vec<_>>() }),
    ))
}

async fn show(
    State(app): State<App>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    auth.require("rules:read")?;
    let key = app
        .store
        .signing_key(auth.tenant_id(), &id)
        .await?
        .ok_or(ApiError::NotFound("signing key"))?;
    Ok(Json(view(&key)))
}

async fn revoke(
    State(app): State<App>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    auth.require("rules:write")?;
    let now = now_ms();
    let event = AuditEvent {
        actor: auth.record.key.id.clone(),
        action: "signing_key.revoked".into(),
        subject: id.clone(),
        details: json!({}),
    };
    if !app
        .store
        .revoke_signing_key(auth.tenant_id(), &id, now, &event)
        .await?
    {
        return Err(ApiError::NotFound("signing key"));
    }
    let key = app
        .store
        .signing_key(auth.tenant_id(), &id)
        .await?
        .ok_or(ApiError::NotFound("signing key"))?;
    Ok(Json(view(&key)))
}
