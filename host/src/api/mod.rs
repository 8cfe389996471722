//! The HTTP API (contract: `API.md`). A `router()` per resource, one
//! [`ApiError`], and the extractors they share.
pub mod assess;
pub mod assessments;
pub mod audit;
pub mod auth;
pub mod blocklists;
pub mod cases;
mod error;
pub mod extract;
pub mod health;
pub mod keys;
pub mod metrics;
pub mod openapi;
pub mod operator;
pub mod pipeline;
pub mod ratelimit;
pub mod rules;
pub mod server;
pub mod signing_keys;
pub mod simulation;
mod state;
pub mod webhooks;

use axum::{
    Router,
    extract::Request,
    http::{HeaderName, HeaderValue},
};
use tower_http::{
    request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    trace::TraceLayer,
};

pub use error::ApiError;
pub use extract::{BODY_LIMIT, Body, Path, Query, nullable, parse_json};
pub use state::App;

use crate::domain::ids::object_id;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Clone, Copy, Debug, Default)]
struct MakeId;

impl MakeRequestId for MakeId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&object_id("req"))
            .ok()
            .map(RequestId::new)
    }
}

/// The whole API.
pub fn router(app: App) -> Router {
    let trace = TraceLayer::new_for_http().make_span_with(|req: &Request| {
        let request_id = req
            .headers()
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        tracing::info_span!(
            "request",
            method = %req.method(),
            path = %req.uri().path(),
            request_id = %request_id,
            tenant_id = tracing::field::Empty,
            session_id = tracing::field::Empty,
        )
    });
    Router::new()
        .merge(assess::router())
        .merge(blocklists::router())
        .merge(keys::router())
        .merge(health::router())
        .merge(signing_keys::router())
        .merge(pipeline::router())
        .merge(simulation::router())
        .merge(assessments::router())
        .merge(audit::router())
        .merge(metrics::router())
        .merge(openapi::router())
        .merge(operator::router())
        .merge(webhooks::router())
        .merge(cases::router())
        .route_layer(axum::middleware::from_fn_with_state(
            BODY_LIMIT,
            extract::refuse_declared_oversize,
        ))
        // Uploads and imports declare their own (larger) limit per route.
        .merge(rules::router(app.config.rule_max_bytes))
        .merge(blocklists::import_router())
        .route_layer(axum::middleware::from_fn(metrics::track))
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::map_response(extract::json_errors))
        .layer(trace)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeId))
        .with_state(app)
}
