//! Bearer-key authentication and permission checks.
//!
//! Keys are looked up by their SHA-256 (an index lookup that never touches
//! the secret) and the stored hash is compared in constant time. A verified
//! key is cached for at most one second, so a revocation is honoured at once
//! on the node that revoked it (its entry is dropped) and within a second on
//! every other node.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::{FromRef, FromRequestParts},
    http::request::Parts,
};
use subtle::ConstantTimeEq;

use super::{error::ApiError, ratelimit::RateLimits};
use crate::{
    domain::{
        keys::{KeyKind, grants, hash_key},
        now_ms,
    },
    store::{AuthRecord, Store},
};

const CACHE_TTL: Duration = Duration::from_secs(1);
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// Recently verified keys and when each was last recorded as used.
#[derive(Debug, Default)]
pub struct AuthCache {
    verified: Mutex<HashMap<String, (Instant, Arc<AuthRecord>)>>,
    touched: Mutex<HashMap<String, Instant>>,
}

impl AuthCache {
    fn get(&self, hash: &str) -> Option<Arc<AuthRecord>> {
        let map = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        map.get(hash)
            .filter(|(at, _)| at.elapsed() < CACHE_TTL)
            .map(|(_, r)| Arc::clone(r))
    }

    fn put(&self, hash: String, record: Arc<AuthRecord>) {
        let mut map = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
        }
        map.insert(hash, (Instant::now(), record));
    }

    /// Drops the cached keys of `tenant_id`, so this node's next request
    /// re-reads the tenant (used after a change to its rules).
    pub fn forget_tenant(&self, tenant_id: &str) {
        let mut map = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (_, r)| r.tenant.id != tenant_id);
    }

    /// Drops the cached record of key `key_id`: a revocation applies to
    /// this node's very next request (other nodes within the 1 s TTL).
    pub fn forget_key(&self, key_id: &str) {
        let mut map = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (_, r)| r.key.id != key_id);
    }

    fn should_touch(&self, key_id: &str) -> bool {
        let mut map = self.touched.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(key_id) {
            Some(at) if at.elapsed() < TOUCH_EVERY => false,
            _ => {
                map.insert(key_id.to_owned(), Instant::now());
                true
            }
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Auth {
    pub record: Arc<AuthRecord>,
    pub kind: KeyKind,
}

impl Auth {
    pub fn tenant_id(&self) -> &str {
        &self.record.tenant.id
    }

    /// Requires a secret key holding `permission`.
    pub fn require(&self, permission: &str) -> Result<(), ApiError> {
        match self.kind {
            KeyKind::Secret => {}
            KeyKind::Publishable => return Err(ApiError::PublicKeyNotAllowed),
            KeyKind::Ingest => {
                return Err(ApiError::Unauthorized(
                    "ingest keys may only call event ingestion",
                ));
            }
        }
        if grants(&self.record.key.permissions, permission) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(permission.to_owned()))
        }
    }

    /// Requires a secret or publishable key holding `permission`: pay-in
    /// assess, the one endpoint a publishable key may call.
    pub fn require_allowing_publishable(&self, permission: &str) -> Result<(), ApiError> {
        if self.kind == KeyKind::Publishable {
            return if grants(&self.record.key.permissions, permission) {
                Ok(())
            } else {
                Err(ApiError::Forbidden(permission.to_owned()))
            };
        }
        self.require(permission)
    }

    /// Requires a secret key with every permission (the `admin` role).
    pub fn require_admin(&self) -> Result<(), ApiError> {
        self.require("*").map_err(|e| match e {
            ApiError::Forbidden(_) => ApiError::Forbidden("admin".to_owned()),
            other => other,
        })
    }
}

/// Any router state that offers the key store, this node's verified-key
/// cache and the rate limits can authenticate.
impl<S> FromRequestParts<S> for Auth
where
    S: Send + Sync,
    Store: FromRef<S>,
    Arc<AuthCache>: FromRef<S>,
    Arc<RateLimits>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let (store, cache, limits) = (
            Store::from_ref(state),
            Arc::<AuthCache>::from_ref(state),
            Arc::<RateLimits>::from_ref(state),
        );
        if let Some(q) = parts.uri.query() {
            let lower = q.to_ascii_lowercase();
            if lower.contains("api_key=") || lower.contains("clm_sk_") || lower.contains("clm_pub_")
            {
                return Err(ApiError::Unauthorized(
                    "API keys are not accepted in query strings; use the Authorization header",
                ));
            }
        }
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized(
                "missing `Authorization: Bearer <key>` header",
            ))?;
        let presented = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or(ApiError::Unauthorized(
                "the Authorization header must be `Bearer <key>`",
            ))?;
        let kind =
            KeyKind::of_presented(presented).ok_or(ApiError::Unauthorized("invalid API key"))?;
        let hash = hash_key(presented);
        let record = match cache.get(&hash) {
            Some(r) => r,
            None => {
                let found = store
                    .key_by_hash(&hash)
                    .await?
                    .ok_or(ApiError::Unauthorized("invalid API key"))?;
                let equal: bool = found.key_hash.as_bytes().ct_eq(hash.as_bytes()).into();
                if !equal || found.key.kind != kind.as_str() {
                    return Err(ApiError::Unauthorized("invalid API key"));
                }
                let found = Arc::new(found);
                cache.put(hash, Arc::clone(&found));
                found
            }
        };
        if cache.should_touch(&record.key.id) {
            let id = record.key.id.clone();
            tokio::spawn(async move {
                if let Err(e) = store.touch_key(&id, now_ms()).await {
                    tracing::warn!(error = %e, "cannot record key use");
                }
            });
        }
        tracing::Span::current().record("tenant_id", record.tenant.id.as_str());
        limits
            .check(
                &record.key.id,
                record.key.rate_limit_per_minute,
                record.key.rate_limit_per_day,
            )
            .await?;
        Ok(Auth { record, kind })
    }
}
