//! `POST/GET /api/v1/keys`, `DELETE /api/v1/keys/{id}` (permission `keys:write`).
use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    routing::{delete, get},
};
use serde_json::{Value, json};

use super::state::App;
use super::{auth::Auth, error::ApiError, extract::Body, extract::Path, extract::parse_json};
use crate::{
    domain::{now_ms, rfc3339_ms},
    keys::{KeyRequest, create_key},
    store::ApiKeyRecord,
};

pub fn router() -> Router<App> {
    Router::new()
        .route("/api/v1/keys", get(list).post(create))
        .route("/api/v1/keys/{id}", delete(revoke))
}

fn key_json(k: &ApiKeyRecord) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "kind": k.kind,
        "role": k.role,
        "permissions": k.permissions,
        "key_prefix": k.key_prefix,
        "rate_limit_per_minute": k.rate_limit_per_minute,
        "rate_limit_per_day": k.rate_limit_per_day,
        "created_at": rfc3339_ms(k.created_at),
        "last_used_at": k.last_used_at.map(rfc3339_ms),
        "revoked_at": k.revoked_at.map(rfc3339_ms),
        "is_active": k.revoked_at.is_none(),
    })
}

async fn create(
    State(app): State<App>,
    auth: Auth,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    auth.require("keys:write")?;
    let req: KeyRequest = parse_json(&body)?;
    let created = create_key(&app.store, auth.tenant_id(), req)
        .await?
        .map_err(|(field, message)| ApiError::validation(field, message))?;
    Ok((StatusCode::CREATED, Json(json!(created))))
}

async fn list(State(app): State<App>, auth: Auth) -> Result<Json<Value>, ApiError> {
    auth.require("keys:write")?;
    let keys = app.store.list_keys(auth.tenant_id()).await?;
    Ok(Json(
        json!({ "data": keys.iter().map(key_json).collect::<Vec<_>>() }),
    ))
}

async fn revoke(
    State(app): State<App>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    auth.require("keys:write")?;
    if !app
        .store
        .revoke_key(auth.tenant_id(), &id, now_ms())
        .await?
    {
        return Err(ApiError::NotFound("key"));
    }
    app.auth_cache.forget_key(&id);
    Ok(Json(json!({ "id": id, "revoked": true })))
}
