//! The API's one error type: every failure leaves as
//! `{"error": {"code", "message", "details"}}` with the documented status.
use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use crate::store::StoreError;

/// An error answered to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    Validation { field: String, message: String },
    /// A 400 `VALIDATION_ERROR` or 409 `DUPLICATE` whose details list
    /// several problems (a bulk import's rows).
    #[error("{message}")]
    Detailed {
        status: StatusCode,
        code: &'static str,
        message: String,
        details: Value,
    },
    #[error("{0}")]
    InvalidType(String),
    #[error("{0}")]
    InvalidSeverity(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("publishable keys may only call pay-in assess")]
    PublicKeyNotAllowed,
    #[error("this endpoint needs a secret key")]
    SecretKeyRequired,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    #[error("{0}")]
    Duplicate(String),
    #[error("rule rejected: {reason}")]
    RuleRejected { reason: String, check: &'static str },
    #[error("{0}")]
    InvalidTransition(String),
    #[error("this case's report was already submitted; a submitted report never changes")]
    AlreadySubmitted,
    /// Four eyes refused a submission.
    #[error("{0}")]
    FourEyes(String),
    #[error("this idempotency key was used with a different request body")]
    IdempotencyKeyReused,
    /// The body is over this endpoint's limit (bytes, when the layer that
    /// refused it said).
    #[error("request body is larger than this endpoint accepts")]
    PayloadTooLarge(Option<usize>),
    #[error("the request body did not arrive within the body timeout")]
    RequestTimeout,
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// An error some layer below the handlers answered with a bare status.
    #[error("{message}")]
    Status { status: StatusCode, message: String },
    #[error("rate limit of {limit} requests exceeded; retry after {retry_after_secs} s")]
    RateLimited { limit: i64, retry_after_secs: u64 },
    #[error("the assess pipeline exceeded its deadline; retry with the same idempotency key")]
    AssessTimeout,
    #[error("service not ready")]
    NotReady,
    #[error("the shared rate-limit store is unavailable; retry shortly")]
    RateLimitStoreUnavailable,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        Self::Validation {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// The error for a bare `status` (with `message`, or the status's
    /// reason when empty).
    pub fn from_status(status: StatusCode, message: String) -> Self {
        let message = if message.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("error")
                .to_ascii_lowercase()
        } else {
            message
        };
        match status {
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
                Self::validation("request", message)
            }
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge(None),
            StatusCode::REQUEST_TIMEOUT => Self::RequestTimeout,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType(message),
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            _ => Self::Status { status, message },
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, Value) {
        match self {
            Self::Validation { field, .. } => (
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                json!({ "field": field }),
            ),
            Self::Detailed {
                status,
                code,
                details,
                ..
            } => (*status, *code, details.clone()),
            Self::InvalidType(_) => (
                StatusCode::BAD_REQUEST,
                "INVALID_TYPE",
                json!({"field": "list_type"}),
            ),
            Self::InvalidSeverity(_) => (
                StatusCode::BAD_REQUEST,
                "INVALID_SEVERITY",
                json!({"field": "severity"}),
            ),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED", json!({})),
            Self::Forbidden(p) => (StatusCode::FORBIDDEN, "FORBIDDEN", json!({ "required": p })),
            Self::PublicKeyNotAllowed => {
                (StatusCode::FORBIDDEN, "PUBLIC_KEY_NOT_ALLOWED", json!({}))
            }
            Self::SecretKeyRequired => (StatusCode::FORBIDDEN, "SECRET_KEY_REQUIRED", json!({})),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND", json!({})),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                json!({}),
            ),
            Self::Duplicate(_) => (StatusCode::CONFLICT, "DUPLICATE", json!({})),
            Self::RuleRejected { reason, check } => (
                StatusCode::BAD_REQUEST,
                "RULE_REJECTED",
                json!({ "check": check, "reason": reason }),
            ),
            Self::InvalidTransition(_) => (StatusCode::CONFLICT, "INVALID_TRANSITION", json!({})),
            Self::AlreadySubmitted => (StatusCode::CONFLICT, "ALREADY_SUBMITTED", json!({})),
            Self::FourEyes(_) => (
                StatusCode::CONFLICT,
                "FOUR_EYES_REQUIRED",
                json!({"setting": "four_eyes"}),
            ),
            Self::IdempotencyKeyReused => {
                (StatusCode::CONFLICT, "IDEMPOTENCY_KEY_REUSED", json!({}))
            }
            Self::PayloadTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                json!({"limit_bytes": limit}),
            ),
            Self::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "REQUEST_TIMEOUT", json!({})),
            Self::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                json!({ "expected": "application/json" }),
            ),
            Self::Status { status, .. } => (*status, status_code_name(*status), json!({})),
            Self::RateLimited {
                limit,
                retry_after_secs,
            } => (
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                json!({ "limit": limit, "retry_after_seconds": retry_after_secs }),
            ),
            Self::AssessTimeout => (StatusCode::GATEWAY_TIMEOUT, "ASSESS_TIMEOUT", json!({})),
            Self::NotReady => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ASSESS_MAINTENANCE",
                json!({}),
            ),
            Self::RateLimitStoreUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "RATE_LIMIT_STORE_UNAVAILABLE",
                json!({}),
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                json!({}),
            ),
        }
    }
}

/// A stable code for a status no variant names.
fn status_code_name(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
        StatusCode::FORBIDDEN => "FORBIDDEN",
        StatusCode::CONFLICT => "CONFLICT",
        StatusCode::TOO_MANY_REQUESTS => "RATE_LIMITED",
        StatusCode::SERVICE_UNAVAILABLE => "ASSESS_MAINTENANCE",
        StatusCode::GATEWAY_TIMEOUT => "ASSESS_TIMEOUT",
        s if s.is_server_error() => "INTERNAL_ERROR",
        _ => "BAD_REQUEST",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(e) = &self {
            tracing::error!(error = format!("{e:#}"), "internal error");
        }
        let (status, code, details) = self.parts();
        let body = json!({
            "error": { "code": code, "message": self.to_string(), "details": details }
        });
        let mut response = (status, Json(body)).into_response();
        if let Self::RateLimited {
            limit,
            retry_after_secs,
        } = &self
        {
            let reset =
                crate::domain::now_ms() / 1000 + i64::try_from(*retry_after_secs).unwrap_or(0);
            let headers = response.headers_mut();
            for (name, value) in [
                ("retry-after", retry_after_secs.to_string()),
                ("x-ratelimit-limit", limit.to_string()),
                ("x-ratelimit-remaining", "0".to_owned()),
                ("x-ratelimit-reset", reset.to_string()),
            ] {
                if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
                    headers.insert(name, v);
                }
            }
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Duplicate => Self::Duplicate("an identical record already exists".into()),
            // Shutting down, or no connection to write with: nothing was
            // acknowledged, so the integrator's documented fail-open/closed
            // policy and a retry with the same idempotency key apply, as for
            // any 503.
            StoreError::CommitWorkerGone | StoreError::Unavailable(_) => Self::NotReady,
            other => Self::Internal(other.into()),
        }
    }
}

impl From<crate::assess::AssessError> for ApiError {
    fn from(e: crate::assess::AssessError) -> Self {
        use crate::assess::AssessError as E;
        match e {
            E::Invalid { field, message } => Self::Validation { field, message },
            E::IdempotencyKeyReused => Self::IdempotencyKeyReused,
            E::Timeout => Self::AssessTimeout,
            E::Store(e) => e.into(),
            E::Rules(e) => Self::Internal(e.into()),
            E::Internal(e) => Self::Internal(anyhow::anyhow!(e)),
        }
    }
}

impl From<crate::webhooks::WebhookError> for ApiError {
    fn from(e: crate::webhooks::WebhookError) -> Self {
        use crate::webhooks::WebhookError as E;
        match e {
            E::Invalid { field, message } => Self::validation(field, message),
            E::NotFound => Self::NotFound("webhook endpoint"),
            E::DeliveryNotFound => Self::NotFound("delivery"),
            E::EventNotFound => Self::NotFound("event"),
            E::TooMany => Self::validation("url", e.to_string()),
            E::Store(s) => s.into(),
            E::Secrets(s) => Self::Internal(s.into()),
        }
    }
}

impl From<crate::cases::CaseError> for ApiError {
    fn from(e: crate::cases::CaseError) -> Self {
        use crate::cases::CaseError as E;
        match e {
            E::Invalid { field, message } => Self::Validation { field, message },
            E::NotFound => Self::NotFound("case"),
            E::AssessmentNotFound => Self::NotFound("assessment"),
            E::NoReport => Self::NotFound("report"),
            E::InvalidTransition(m) => Self::InvalidTransition(m),
            E::AlreadySubmitted => Self::AlreadySubmitted,
            E::FourEyes(m) => Self::FourEyes(m),
            E::Contended => Self::Status {
                status: StatusCode::CONFLICT,
                message: e.to_string(),
            },
            E::Store(s) => s.into(),
        }
    }
}
