//! What handlers share to read a request: the JSON body (size, time and
//! content-type checks), path and query extractors that answer with our
//! error body, the early refusal of declared oversize bodies, and the last
//! layer that turns any plain-text error into the error body.
use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request, rejection::BytesRejection},
    http::{HeaderValue, StatusCode, header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{error::ApiError, server};

/// Request bodies above this are refused with 413 `PAYLOAD_TOO_LARGE`.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The raw body of a JSON request, with its problems mapped to our error
/// body: over the size limit 413, not arrived within the body timeout 408,
/// sent as something other than JSON 415. A missing `Content-Type` is read
/// as JSON (see docs/decisions.md).
#[derive(Debug)]
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req.headers().get(header::CONTENT_TYPE).cloned();
        let bytes = match Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(BytesRejection::FailedToBufferBody(e))
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                return Err(ApiError::PayloadTooLarge(Some(BODY_LIMIT)));
            }
            Err(BytesRejection::FailedToBufferBody(e)) if caused_by_body_timeout(&e) => {
                return Err(ApiError::RequestTimeout);
            }
            Err(e) => return Err(ApiError::validation("body", e.body_text())),
        };
        if let Some(ct) = content_type
            && !bytes.iter().all(u8::is_ascii_whitespace)
            && !is_json(&ct)
        {
            return Err(ApiError::UnsupportedMediaType(format!(
                "the body must be JSON, sent as `Content-Type: application/json`; got `{}`",
                String::from_utf8_lossy(ct.as_bytes())
            )));
        }
        Ok(Body(bytes))
    }
}

/// `application/json`, or any `application/…+json`, with parameters.
fn is_json(content_type: &HeaderValue) -> bool {
    let Ok(text) = content_type.to_str() else {
        return false;
    };
    let essence = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn caused_by_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(err) = source {
        if err.is::<server::BodyTimeout>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// A path parameter, refused with our error body (`details.field: path`)
/// rather than axum's plain text (e.g. an id that is not UTF-8).
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e| ApiError::validation("path", e.body_text()))
    }
}

/// A query string, refused with our error body (`details.field: query`).
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e| ApiError::validation("query", e.body_text()))
    }
}

/// Refuses a request whose declared `Content-Length` is over the route's
/// body limit at once, before any of the body is read.
pub(crate) async fn refuse_declared_oversize(
    axum::extract::State(limit): axum::extract::State<usize>,
    req: Request,
    next: Next,
) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return ApiError::PayloadTooLarge(Some(limit)).into_response();
    }
    next.run(req).await
}

/// The safety net of "one error body for everything": an error response
/// that is not JSON (a rejection some extractor or layer wrote as plain
/// text) leaves as `{"error": {"code", "message", "details"}}`, its text
/// kept as the message.
pub(crate) async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(is_json);
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 << 10)
        .await
        .unwrap_or_default();
    let message = String::from_utf8_lossy(&text).trim().to_owned();
    let mut fixed = ApiError::from_status(status, message).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    fixed.headers_mut().extend(parts.headers);
    fixed
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

pub use crate::domain::json::nullable;
