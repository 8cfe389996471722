//! Liveness and readiness.
use axum::{Json, Router, extract::State, routing::get};
use serde_json::{Value, json};

use super::error::ApiError;
use super::state::App;

pub fn router() -> Router<App> {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/health/ready", get(ready))
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

async fn ready(State(app): State<App>) -> Result<Json<Value>, ApiError> {
    let durability = app.store.durability().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness: database unreachable");
        ApiError::NotReady
    })?;
    if app.rules.builtins.is_empty() {
        return Err(ApiError::NotReady);
    }
    // A Redis outage only stops rate-limited keys (503 per request), so
    // it is reported here without taking the node out of service.
    let rate_limits = if app.rate_limits.healthy().await {
        "ok"
    } else {
        "unavailable"
    };
    Ok(Json(json!({
        "status": "ready",
        "database": "ok",
        "durability": durability,
        "rate_limit_store": { "kind": app.rate_limits.store_name(), "status": rate_limits },
        "rules_loaded": app.rules.builtins.len(),
    })))
}
