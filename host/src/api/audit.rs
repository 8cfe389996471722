//! `GET /api/v1/audit` (§11): the tenant's append-only, hash-chained log of
//! signer changes, uploads (accepted and rejected), activations,
//! deactivations and pipeline changes. Needs `rules:read`.
//!
//! Query: `after` (a `seq`, for paging), `limit` (1–500, default 100),
//! `action` (e.g. `rule.activated`).
use axum::{Json, Router, extract::State, routing::get};
use serde::Deserialize;
use serde_json::{Value, json};

use super::state::App;
use super::{auth::Auth, error::ApiError, extract::Query};
use crate::domain::rfc3339_ms;

pub fn router() -> Router<App> {
    Router::new().route("/api/v1/audit", get(list))
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    after: Option<i64>,
    limit: Option<i64>,
    action: Option<String>,
}

async fn list(
    State(app): State<App>,
    auth: Auth,
    query: Result<Query<AuditQuery>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    auth.require("rules:read")?;
    let Query(q) = query?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::validation("limit", "must be between 1 and 500"));
    }
    let entries = app
        .store
        .audit_log(
            auth.tenant_id(),
            q.after.unwrap_or(0),
            limit + 1,
            q.action.as_deref(),
        )
        .await?;
    let has_more = entries.len() as i64 > limit;
    let data: Vec<Value> = entries
        .iter()
        .take(limit as usize)
        .map(|e| {
            json!({
                "seq": e.seq,
                "at": rfc3339_ms(e.at),
                "actor": e.actor,
                "action": e.action,
                "subject": e.subject,
                "details": e.details,
                "prev_hash": e.prev_hash,
                "hash": e.hash,
            })
        })
        .collect();
    let next = if has_more {
        data.last().and_then(|e| e.get("seq")).cloned()
    } else {
        None
    };
    Ok(Json(
        json!({ "data": data, "has_more": has_more, "next_after": next }),
    ))
}
