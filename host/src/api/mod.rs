//! The HTTP API (contract: `API.md`). A `router()` per resource, one
//! [`ApiError`], and the extractors they share.
pub mod assess;
pub mod assessments;
pub mod audit;
pub mod auth;
pub mod blocklists;
mod error;
pub mod gates;
pub mod health;
pub mod keys;
pub mod metrics;
pub mod openapi;
pub mod operator;
pub mod pipeline;
pub mod ratelimit;
pub mod rules;
pub mod signing_keys;
pub mod simulation;

use axum::{
    Router,
    body::Bytes,
    extract::{FromRequest, Request, rejection::BytesRejection},
    http::{HeaderName, HeaderValue, StatusCode},
};
use tower_http::{
    request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    trace::TraceLayer,
};

pub use error::ApiError;

use crate::{app::App, domain::ids::object_id};

/// Request bodies above this are refused with 413 `PAYLOAD_TOO_LARGE`.
pub const BODY_LIMIT: usize = 64 * 1024;

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
        .merge(rules::router(app.config.rule_max_bytes))
        .merge(signing_keys::router())
        .merge(pipeline::router())
        .merge(simulation::router())
        .merge(assessments::router())
        .merge(audit::router())
        .merge(metrics::router())
        .merge(openapi::router())
        .merge(operator::router())
        .route_layer(axum::middleware::from_fn(metrics::track))
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(trace)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeId))
        .with_state(app)
}

/// The raw request body, with the size limit mapped to our error body.
#[derive(Debug)]
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(Body(b)),
            Err(BytesRejection::FailedToBufferBody(e))
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::PayloadTooLarge)
            }
            Err(e) => Err(ApiError::validation("body", e.body_text())),
        }
    }
}

/// Parses a JSON body into `T`, reporting the failing path in
/// `details.field`.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body".to_owned() } else { path };
        ApiError::validation(&field, e.inner().to_string())
    })
}

/// For `Option<Option<T>>` fields: absent → `None`, `null` → `Some(None)`,
/// a value → `Some(Some(v))` (use with `#[serde(default)]`).
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}
