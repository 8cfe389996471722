//! Webhook endpoints (§6), their delivery log and recovery, and the event
//! feed. Every route needs `webhooks:write`. A signing secret appears in
//! exactly two answers: creation and rotation.
use std::time::Duration;

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    auth::Auth,
    error::ApiError,
    extract::{Body, Path, Query, nullable, parse_json},
    state::App,
};
use crate::{
    domain::{now_ms, parse_rfc3339_ms, rfc3339_ms},
    store::{Attempt, Delivery, FeedEvent, WebhookEndpoint},
    webhooks::{self, EndpointFields, Webhooks},
};

const PERMISSION: &str = "webhooks:write";

pub fn router() -> Router<App> {
    Router::new()
        .route("/api/v1/webhooks", get(list).post(create))
        .route(
            "/api/v1/webhooks/{id}",
            get(show).patch(update).delete(remove),
        )
        .route("/api/v1/webhooks/{id}/rotate-secret", post(rotate))
        .route("/api/v1/webhooks/{id}/deliveries", get(deliveries))
        .route(
            "/api/v1/webhooks/{id}/deliveries/{delivery_id}/retry",
            post(retry),
        )
        .route("/api/v1/webhooks/{id}/recover", post(recover))
        .route("/api/v1/events", get(feed))
}

fn endpoint_json(e: &WebhookEndpoint, now: i64) -> Value {
    let rotation = match e.previous_secret_until {
        Some(until) if until > now => json!({"previous_secret_valid_until": rfc3339_ms(until)}),
        _ => Value::Null,
    };
    json!({
        "id": e.id,
        "url": e.url,
        "description": e.description,
        "events": e.events,
        "is_active": e.is_active,
        "disabled_reason": e.disabled_reason,
        "failure_streak": e.failure_streak,
        "failing_since": e.failing_since.map(rfc3339_ms),
        "secret_rotation": rotation,
        "created_at": rfc3339_ms(e.created_at),
        "updated_at": rfc3339_ms(e.updated_at),
    })
}

fn with_secret(mut v: Value, secret: &str) -> Value {
    if let Value::Object(map) = &mut v {
        map.insert("secret".into(), secret.into());
    }
    v
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointBody {
    url: Option<String>,
    events: Option<Vec<String>>,
    is_active: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
}

impl From<EndpointBody> for EndpointFields {
    fn from(b: EndpointBody) -> Self {
        Self {
            url: b.url,
            events: b.events,
            is_active: b.is_active,
            description: b.description,
        }
    }
}

async fn create(
    State(hooks): State<Webhooks>,
    auth: Auth,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    auth.require(PERMISSION)?;
    let fields: EndpointBody = parse_json(&body)?;
    let now = now_ms();
    let created = hooks
        .create(auth.tenant_id(), &auth.record.key.id, fields.into(), now)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(with_secret(
            endpoint_json(&created.endpoint, now),
            &created.secret,
        )),
    ))
}

async fn list(State(hooks): State<Webhooks>, auth: Auth) -> Result<Json<Value>, ApiError> {
    auth.require(PERMISSION)?;
    let now = now_ms();
    let all = hooks.list(auth.tenant_id()).await?;
    Ok(Json(json!({
        "data": all.iter().map(|e| endpoint_json(e, now)).collect::<Vec<_>>(),
    })))
}

async fn show(
    State(hooks): State<Webhooks>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    auth.require(PERMISSION)?;
    let e = hooks.get(auth.tenant_id(), &id).await?;
    Ok(Json(endpoint_json(&e, now_ms())))
}

async fn update(
    State(hooks): State<Webhooks>,
    auth: Auth,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    auth.require(PERMISSION)?;
    let fields: EndpointBody = parse_json(&body)?;
    let now = now_ms();
    let e = hooks
        .update(
            auth.tenant_id(),
            &auth.record.key.id,
            &id,
            fields.into(),
            now,
        )
        .await?;
    Ok(Json(endpoint_json(&e, now)))
}

async fn remove(
    State(hooks): State<Webhooks>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    auth.require(PERMISSION)?;
    hooks
        .delete(auth.tenant_id(), &auth.record.key.id, &id, now_ms())
        .await?;
    Ok(Json(json!({"id": id, "deleted": true})))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    /// How long the current secret keeps signing (default from config; 0
    /// revokes it now).
    overlap_seconds: Option<u64>,
}

async fn rotate(
    State(hooks): State<Webhooks>,
    auth: Auth,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    auth.require(PERMISSION)?;
    let req: RotateBody = if body.is_empty() {
        RotateBody::default()
    } else {
        parse_json(&body)?
    };
    let now = now_ms();
    let rotated = hooks
        .rotate(
            auth.tenant_id(),
            &auth.record.key.id,
            &id,
            req.overlap_seconds.map(Duration::from_secs),
            now,
        )
        .await?;
    Ok(Json(with_secret(
        endpoint_json(&rotated.endpoint, now),
        &rotated.secret,
    )))
}

fn attempt_json(a: &Attempt) -> Value {
    json!({
        "attempt": a.attempt,
        "at": rfc3339_ms(a.at_ms),
        "status_code": a.status_code,
        "duration_ms": a.duration_ms,
        "error": a.error,
        "response_body_head": a.response_head,
    })
}

fn delivery_json(d: &Delivery, attempts: Option<&[Attempt]>) -> Value {
    let mut v = json!({
        "id": d.id,
        "webhook_id": d.endpoint_id,
        "event_id": d.event_id,
        "event": d.event,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": (d.status == "pending").then(|| d.next_attempt_at.map(rfc3339_ms)).flatten(),
        "last_attempt_at": d.last_attempt_at.map(rfc3339_ms),
        "last_status_code": d.last_status,
        "last_error": d.last_error,
        "created_at": rfc3339_ms(d.created_at),
    });
    if let (Some(attempts), Value::Object(map)) = (attempts, &mut v) {
        map.insert(
            "attempt_log".into(),
            attempts.iter().map(attempt_json).collect(),
        );
    }
    v
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    status: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

fn bounded(name: &str, raw: Option<&str>, default: i64, max: i64) -> Result<i64, ApiError> {
    match raw {
        None => Ok(default),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (0..=max).contains(&n) && (name == "offset" || n > 0) => Ok(n),
            _ => Err(ApiError::validation(
                name,
                if name == "offset" {
                    format!("must be an integer from 0 to {max}")
                } else {
                    format!("must be an integer from 1 to {max}")
                },
            )),
        },
    }
}

async fn deliveries(
    State(hooks): State<Webhooks>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    auth.require(PERMISSION)?;
    let limit = bounded("limit", q.limit.as_deref(), 50, 200)?;
    let offset = bounded("offset", q.offset.as_deref(), 0, 1_000_000)?;
    let page = hooks
        .deliveries(auth.tenant_id(), &id, q.status.as_deref(), limit, offset)
        .await?;
    Ok(Json(json!({
        "data": page.iter().map(|(d, a)| delivery_json(d, Some(a))).collect::<Vec<_>>(),
        "limit": limit,
        "offset": offset,
    })))
}

async fn retry(
    State(hooks): State<Webhooks>,
    auth: Auth,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    auth.require(PERMISSION)?;
    let d = hooks
        .retry(auth.tenant_id(), &id, &delivery_id, now_ms())
        .await?;
    Ok((StatusCode::ACCEPTED, Json(delivery_json(&d, None))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecoverBody {
    since: String,
}

async fn recover(
    State(hooks): State<Webhooks>,
    auth: Auth,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    auth.require(PERMISSION)?;
    let req: RecoverBody = parse_json(&body)?;
    let since = parse_rfc3339_ms(&req.since).ok_or_else(|| {
        ApiError::validation("since", format!("`{}` is not an RFC 3339 time", req.since))
    })?;
    let queued = hooks
        .recover(auth.tenant_id(), &id, since, now_ms())
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"webhook_id": id, "since": rfc3339_ms(since), "queued": queued})),
    ))
}

#[derive(Debug, Deserialize)]
struct FeedQuery {
    after: Option<String>,
    #[serde(rename = "type")]
    event: Option<String>,
    limit: Option<String>,
}

fn feed_json(e: &FeedEvent) -> Value {
    serde_json::from_str(&webhooks::body(e)).unwrap_or(Value::Null)
}

/// `GET /api/v1/events?after=<evt id>&type=&limit=`: the tenant's events in
/// sequence order; page on with the last id.
async fn feed(
    State(hooks): State<Webhooks>,
    auth: Auth,
    Query(q): Query<FeedQuery>,
) -> Result<Json<Value>, ApiError> {
    auth.require(PERMISSION)?;
    let limit = bounded("limit", q.limit.as_deref(), 100, 1000)?;
    let mut events = hooks
        .feed(
            auth.tenant_id(),
            q.after.as_deref().filter(|a| !a.is_empty()),
            q.event.as_deref().filter(|e| !e.is_empty()),
            limit + 1,
        )
        .await?;
    let more = events.len() as i64 > limit;
    events.truncate(usize::try_from(limit).unwrap_or(100));
    Ok(Json(json!({
        "data": events.iter().map(feed_json).collect::<Vec<_>>(),
        "has_more": more,
        "last_id": events.last().map(|e| e.id.clone()),
    })))
}
