//! Blocklists (§5): CRUD with normalization, flow scope, severities and
//! expiry. Reads need `blocklists:read`, writes `blocklists:write`, delete
//! the `admin` role.
use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    routing::{get, patch},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::state::App;
use super::{
    auth::Auth, error::ApiError, extract::Body, extract::Path, extract::Query, extract::parse_json,
};
use crate::{
    blocklists::{self as service, EntryError, EntryFields, Format, ImportError},
    domain::{
        lists::{FLOW_SCOPES, SEVERITIES, is_list_type},
        now_ms, parse_rfc3339_ms, rfc3339_ms,
    },
    store::{BlocklistEntry, BlocklistFilter, BlocklistPatch},
};

/// The largest import body: a million rows of about a hundred bytes.
const IMPORT_LIMIT: usize = 160 << 20;

/// The bulk import, with its own (larger) body limit: merge it outside
/// the JSON routes' limit.
pub fn import_router() -> Router<App> {
    Router::new()
        .route(
            "/api/v1/blocklists/import",
            axum::routing::post(import).layer(axum::extract::DefaultBodyLimit::max(IMPORT_LIMIT)),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            IMPORT_LIMIT,
            super::extract::refuse_declared_oversize,
        ))
}

pub fn router() -> Router<App> {
    Router::new()
        .route(
            "/api/v1/blocklists",
            get(list).post(create).patch(update_compat),
        )
        .route(
            "/api/v1/blocklists/{id}",
            patch(update).get(show).delete(remove),
        )
}

pub(super) fn entry_json(e: &BlocklistEntry) -> Value {
    json!({
        "id": e.id,
        "tenant_id": e.tenant_id,
        "list_type": e.list_type,
        "value": e.value,
        "flow_scope": e.flow_scope,
        "severity": e.severity,
        "reason": e.reason,
        "source": e.source,
        "is_active": e.is_active,
        "expires_at": e.expires_at.map(rfc3339_ms),
        "created_at": rfc3339_ms(e.created_at),
        "updated_at": rfc3339_ms(e.updated_at),
    })
}

fn check_scope(s: &str) -> Result<(), ApiError> {
    if FLOW_SCOPES.contains(&s) {
        Ok(())
    } else {
        Err(ApiError::validation(
            "flow_scope",
            format!("`{s}` is not one of `payin`, `payout`, `all`"),
        ))
    }
}

fn check_severity(s: &str) -> Result<(), ApiError> {
    if SEVERITIES.contains(&s) {
        Ok(())
    } else {
        Err(ApiError::InvalidSeverity(format!(
            "`{s}` is not one of `block`, `flag`, `review`"
        )))
    }
}

fn entry_error(e: EntryError) -> ApiError {
    match e {
        EntryError::InvalidType(m) => ApiError::InvalidType(m),
        EntryError::InvalidSeverity(m) => ApiError::InvalidSeverity(m),
        EntryError::Invalid { field, message } => ApiError::validation(field, message),
    }
}

#[derive(Debug, Default, Deserialize)]
struct ImportQuery {
    format: Option<String>,
    on_duplicate: Option<String>,
}

/// `POST /api/v1/blocklists/import`: CSV (`text/csv`) or NDJSON
/// (`application/x-ndjson`), or `?format=`; `?on_duplicate=fail` makes a
/// duplicate fail the import (the default reports and skips it).
async fn import(
    State(app): State<App>,
    auth: Auth,
    Query(q): Query<ImportQuery>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    auth.require("blocklists:write")?;
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let format = match (q.format.as_deref(), content_type.as_deref()) {
        (Some("csv"), _) | (None, Some("text/csv")) => Format::Csv,
        (Some("ndjson"), _)
        | (None, Some("application/x-ndjson" | "application/ndjson" | "application/jsonl")) => {
            Format::Ndjson
        }
        (Some(other), _) => {
            return Err(ApiError::validation(
                "format",
                format!("`{other}` is not one of `csv`, `ndjson`"),
            ));
        }
        (None, other) => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "send the rows as `text/csv` or `application/x-ndjson` (or say ?format=csv|ndjson); got `{}`",
                other.unwrap_or("no Content-Type")
            )));
        }
    };
    let fail = match q.on_duplicate.as_deref() {
        None | Some("report") => false,
        Some("fail") => true,
        Some(other) => {
            return Err(ApiError::validation(
                "on_duplicate",
                format!("`{other}` is not one of `report`, `fail`"),
            ));
        }
    };
    let report = service::import(&app.store, auth.tenant_id(), format, body, fail, now_ms())
        .await
        .map_err(|e| match e {
            ImportError::Invalid { errors, count } => ApiError::Detailed {
                status: StatusCode::BAD_REQUEST,
                code: "VALIDATION_ERROR",
                message: format!("{count} rows are not valid; nothing was imported"),
                details: json!({
                    "field": "body",
                    "error_count": count,
                    "errors": errors.iter().map(|r| json!({"line": r.line, "field": r.field, "message": r.message})).collect::<Vec<_>>(),
                }),
            },
            ImportError::Duplicates { duplicates, count } => ApiError::Detailed {
                status: StatusCode::CONFLICT,
                code: "DUPLICATE",
                message: format!("{count} rows repeat existing entries or earlier rows; nothing was imported (on_duplicate=fail)"),
                details: json!({
                    "duplicate_count": count,
                    "duplicates": duplicates_json(&duplicates),
                }),
            },
            ImportError::Empty => ApiError::validation("body", "the import has no rows"),
            ImportError::Store(e) => e.into(),
        })?;
    Ok(Json(json!({
        "format": report.format.as_str(),
        "rows": report.rows,
        "inserted": report.inserted,
        "duplicate_count": report.duplicate_count,
        "duplicates": duplicates_json(&report.duplicates),
    })))
}

fn duplicates_json(duplicates: &[service::Duplicate]) -> Vec<Value> {
    duplicates
        .iter()
        .map(|d| json!({"line": d.line, "list_type": d.list_type, "value": d.value, "flow_scope": d.flow_scope}))
        .collect()
}

fn parse_expiry(s: &str) -> Result<i64, ApiError> {
    parse_rfc3339_ms(s)
        .ok_or_else(|| ApiError::validation("expires_at", format!("`{s}` is not an RFC 3339 time")))
}

async fn create(
    State(app): State<App>,
    auth: Auth,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    auth.require("blocklists:write")?;
    let fields: EntryFields = parse_json(&body)?;
    let entry = service::validate(auth.tenant_id(), fields, now_ms()).map_err(entry_error)?;
    app.store
        .insert_blocklist_entry(&entry)
        .await
        .map_err(|e| match ApiError::from(e) {
            ApiError::Duplicate(_) => ApiError::Duplicate(
                "an entry with this list_type, value and flow_scope already exists".into(),
            ),
            other => other,
        })?;
    Ok((StatusCode::CREATED, Json(entry_json(&entry))))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    list_type: Option<String>,
    flow_scope: Option<String>,
    is_active: Option<String>,
    q: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

fn encode_cursor(e: &BlocklistEntry) -> String {
    format!("{}.{}", e.created_at, e.id)
}

fn decode_cursor(c: &str) -> Result<(i64, String), ApiError> {
    c.split_once('.')
        .and_then(|(at, id)| Some((at.parse().ok()?, id.to_owned())))
        .ok_or_else(|| ApiError::validation("cursor", "is not a cursor returned by this API"))
}

async fn list(
    State(app): State<App>,
    auth: Auth,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    auth.require("blocklists:read")?;
    if let Some(t) = &q.list_type
        && !is_list_type(t)
    {
        return Err(ApiError::InvalidType(format!(
            "`{t}` is not a known list type"
        )));
    }
    if let Some(s) = &q.flow_scope {
        check_scope(s)?;
    }
    let is_active = match q.is_active.as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(ApiError::validation(
                "is_active",
                format!("`{other}` is not `true` or `false`"),
            ));
        }
    };
    let limit = match q.limit.as_deref() {
        None => 50,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if (1..=500).contains(&n) => n,
            _ => {
                return Err(ApiError::validation(
                    "limit",
                    "must be an integer from 1 to 500",
                ));
            }
        },
    };
    let filter = BlocklistFilter {
        list_type: q.list_type,
        flow_scope: q.flow_scope,
        is_active,
        q: q.q.filter(|s| !s.is_empty()),
        limit: limit + 1,
        after: q.cursor.as_deref().map(decode_cursor).transpose()?,
    };
    let mut rows = app.store.list_blocklist(auth.tenant_id(), &filter).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(50));
    let next_cursor = if more {
        rows.last().map(encode_cursor)
    } else {
        None
    };
    Ok(Json(json!({
        "data": rows.iter().map(entry_json).collect::<Vec<_>>(),
        "next_cursor": next_cursor,
        "has_more": more,
    })))
}

async fn show(
    State(app): State<App>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    auth.require("blocklists:read")?;
    let e = app
        .store
        .blocklist_entry(auth.tenant_id(), &id)
        .await?
        .ok_or(ApiError::NotFound("blocklist entry"))?;
    Ok(Json(entry_json(&e)))
}

#[derive(Debug, Deserialize)]
struct PatchEntry {
    id: Option<String>,
    severity: Option<String>,
    flow_scope: Option<String>,
    #[serde(default, deserialize_with = "super::extract::nullable")]
    reason: Option<Option<String>>,
    is_active: Option<bool>,
    #[serde(default, deserialize_with = "super::extract::nullable")]
    expires_at: Option<Option<String>>,
}

async fn apply_patch(
    app: &App,
    auth: &Auth,
    id: &str,
    req: PatchEntry,
) -> Result<Json<Value>, ApiError> {
    auth.require("blocklists:write")?;
    if let Some(s) = &req.severity {
        check_severity(s)?;
    }
    if let Some(s) = &req.flow_scope {
        check_scope(s)?;
    }
    let expires_at = match req.expires_at {
        None => None,
        Some(None) => Some(None),
        Some(Some(s)) => Some(Some(parse_expiry(&s)?)),
    };
    let patch = BlocklistPatch {
        severity: req.severity,
        flow_scope: req.flow_scope,
        reason: req.reason,
        is_active: req.is_active,
        expires_at,
    };
    let e = app
        .store
        .update_blocklist_entry(auth.tenant_id(), id, &patch, now_ms())
        .await
        .map_err(|e| match ApiError::from(e) {
            ApiError::Duplicate(_) => ApiError::Duplicate(
                "an entry with this list_type, value and flow_scope already exists".into(),
            ),
            other => other,
        })?
        .ok_or(ApiError::NotFound("blocklist entry"))?;
    Ok(Json(entry_json(&e)))
}

async fn update(
    State(app): State<App>,
    auth: Auth,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let req: PatchEntry = parse_json(&body)?;
    apply_patch(&app, &auth, &id, req).await
}

/// `PATCH /api/v1/blocklists` with `id` in the body (compatibility form).
async fn update_compat(
    State(app): State<App>,
    auth: Auth,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let req: PatchEntry = parse_json(&body)?;
    let id = req
        .id
        .clone()
        .ok_or_else(|| ApiError::validation("id", "is required"))?;
    apply_patch(&app, &auth, &id, req).await
}

async fn remove(
    State(app): State<App>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    auth.require_admin()?;
    if !app
        .store
        .delete_blocklist_entry(auth.tenant_id(), &id)
        .await?
    {
        return Err(ApiError::NotFound("blocklist entry"));
    }
    Ok(Json(json!({ "id": id, "deleted": true })))
}
