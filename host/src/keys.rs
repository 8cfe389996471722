//! API keys as a service: validating a key request and creating the key
//! (shown once, stored only as a hash). The HTTP API, the operator API and
//! the CLI all create keys here.
use serde::Deserialize;

use crate::{
    domain::{
        ids::{api_key_secret, object_id},
        json::nullable,
        keys::{KeyKind, PERMISSIONS, hash_key, role_permissions},
        now_ms,
    },
    store::{NewApiKey, Store, StoreError},
};

/// A key request, from the API or the CLI.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct KeyRequest {
    pub name: Option<String>,
    pub role: Option<String>,
    pub permissions: Option<Vec<String>>,
    /// `secret` (default), `publishable` or `ingest`.
    pub kind: Option<String>,
    /// Absent: the default (100); `null`: unlimited; a number: that limit.
    #[serde(default, deserialize_with = "nullable")]
    pub rate_limit_per_minute: Option<Option<i64>>,
    /// Absent or `null`: unlimited.
    pub rate_limit_per_day: Option<i64>,
}

/// Default `rate_limit_per_minute` of new keys.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: i64 = 100;

/// A freshly created key: the secret is shown here and never again.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CreatedKey {
    pub id: String,
    pub tenant_id: String,
    pub api_key: String,
    pub kind: String,
    pub role: Option<String>,
    pub permissions: Vec<String>,
    pub rate_limit_per_minute: Option<i64>,
    pub rate_limit_per_day: Option<i64>,
}

/// Why a key request is invalid: (field, message).
pub type KeyRequestError = (&'static str, String);

/// Validates and creates a key for `tenant_id` (shared by the API and CLI).
pub async fn create_key(
    store: &Store,
    tenant_id: &str,
    req: KeyRequest,
) -> Result<Result<CreatedKey, KeyRequestError>, StoreError> {
    let kind = req.kind.as_deref().unwrap_or("secret");
    let role = req.role.as_deref();
    let Some(kind) = KeyKind::parse(kind) else {
        return Ok(Err((
            "kind",
            format!("`{kind}` is not one of `secret`, `publishable`, `ingest`"),
        )));
    };
    let permissions = match (role, req.permissions) {
        (Some(r), None) => match role_permissions(r) {
            Some(p) => p,
            None => {
                return Ok(Err((
                    "role",
                    format!(
                        "`{r}` is not one of `admin`, `analyst`, `compliance_officer`, `integration`"
                    ),
                )));
            }
        },
        (None, Some(p)) => {
            if let Some(bad) = p
                .iter()
                .find(|x| *x != "*" && !PERMISSIONS.contains(&x.as_str()))
            {
                return Ok(Err(("permissions", format!("unknown permission `{bad}`"))));
            }
            p
        }
        (Some(_), Some(_)) => {
            return Ok(Err((
                "role",
                "give `role` or `permissions`, not both".into(),
            )));
        }
        (None, None) => return Ok(Err(("role", "is required (or `permissions`)".into()))),
    };
    let per_minute = req
        .rate_limit_per_minute
        .unwrap_or(Some(DEFAULT_RATE_LIMIT_PER_MINUTE));
    if per_minute.is_some_and(|r| r < 1) {
        return Ok(Err((
            "rate_limit_per_minute",
            "must be at least 1 (null for unlimited)".into(),
        )));
    }
    if req.rate_limit_per_day.is_some_and(|r| r < 1) {
        return Ok(Err((
            "rate_limit_per_day",
            "must be at least 1 (null for unlimited)".into(),
        )));
    }
    let secret = api_key_secret(kind.prefix());
    let record = NewApiKey {
        id: object_id("key"),
        tenant_id: tenant_id.to_owned(),
        name: req.name.unwrap_or_else(|| format!("{} key", kind.as_str())),
        kind: kind.as_str().to_owned(),
        role: role.map(str::to_owned),
        permissions: permissions.clone(),
        key_prefix: secret.chars().take(kind.prefix().len() + 4).collect(),
        key_hash: hash_key(&secret),
        rate_limit_per_minute: per_minute,
        rate_limit_per_day: req.rate_limit_per_day,
        created_at: now_ms(),
    };
    store.insert_key(&record).await?;
    Ok(Ok(CreatedKey {
        id: record.id,
        tenant_id: record.tenant_id,
        api_key: secret,
        kind: record.kind,
        role: record.role,
        permissions,
        rate_limit_per_minute: record.rate_limit_per_minute,
        rate_limit_per_day: record.rate_limit_per_day,
    }))
}
