//! API keys, stored only as hashes.
use sqlx::{Row, any::AnyRow};

use super::{Store, StoreError, Tenant};

/// A key to insert (the secret itself is never stored).
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub kind: String,
    pub role: Option<String>,
    pub permissions: Vec<String>,
    pub key_prefix: String,
    pub key_hash: String,
    pub rate_limit_per_minute: Option<i64>,
    pub rate_limit_per_day: Option<i64>,
    pub created_at: i64,
}

/// A stored key as listed to its tenant.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiKeyRecord {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub kind: String,
    pub role: Option<String>,
    pub permissions: Vec<String>,
    pub key_prefix: String,
    pub rate_limit_per_minute: Option<i64>,
    pub rate_limit_per_day: Option<i64>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// What authentication needs: the key, its hash and its tenant.
#[derive(Debug, Clone)]
pub struct AuthRecord {
    pub key: ApiKeyRecord,
    pub key_hash: String,
    pub tenant: Tenant,
}

/// The active key with a given hash (`$1`), joined with its tenant.
pub(super) fn key_by_hash_sql() -> String {
    format!(
        "SELECT {KEY_COLUMNS}, k.key_hash, t.name AS t_name, t.organization_type, \
         t.settings, t.rules_revision, t.created_at AS t_created_at \
         FROM api_keys k JOIN tenants t ON t.id = k.tenant_id \
         WHERE k.key_hash = $1 AND k.revoked_at IS NULL"
    )
}

const KEY_COLUMNS: &str = "k.id, k.tenant_id, k.name, k.kind, k.role, k.permissions, \
    k.key_prefix, k.rate_limit_per_minute, k.rate_limit_per_day, k.created_at, k.last_used_at, k.revoked_at";

fn key_from_row(r: &AnyRow) -> Result<ApiKeyRecord, StoreError> {
    let permissions: String = r.try_get("permissions")?;
    Ok(ApiKeyRecord {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        name: r.try_get("name")?,
        kind: r.try_get("kind")?,
        role: r.try_get("role")?,
        permissions: serde_json::from_str(&permissions)
            .map_err(|e| StoreError::Corrupt(format!("key permissions: {e}")))?,
        key_prefix: r.try_get("key_prefix")?,
        rate_limit_per_minute: r.try_get("rate_limit_per_minute")?,
        rate_limit_per_day: r.try_get("rate_limit_per_day")?,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

impl Store {
    pub async fn insert_key(&self, k: &NewApiKey) -> Result<(), StoreError> {
        let permissions = serde_json::to_string(&k.permissions)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, name, kind, role, permissions, key_prefix, \
             key_hash, rate_limit_per_minute, rate_limit_per_day, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&k.id)
        .bind(&k.tenant_id)
        .bind(&k.name)
        .bind(&k.kind)
        .bind(&k.role)
        .bind(permissions)
        .bind(&k.key_prefix)
        .bind(&k.key_hash)
        .bind(k.rate_limit_per_minute)
        .bind(k.rate_limit_per_day)
        .bind(k.created_at)
        .execute(&self.writer)
        .await
        .map_err(StoreError::from_write)?;
        Ok(())
    }

    /// The active (unrevoked) key with this hash, with its tenant.
    pub async fn key_by_hash(&self, key_hash: &str) -> Result<Option<AuthRecord>, StoreError> {
        let Some(r) = sqlx::query(&key_by_hash_sql())
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let key = key_from_row(&r)?;
        let tenant = Tenant {
            id: key.tenant_id.clone(),
            name: r.try_get("t_name")?,
            organization_type: r.try_get("organization_type")?,
            settings: r.try_get("settings")?,
            rules_revision: r.try_get("rules_revision")?,
            created_at: r.try_get("t_created_at")?,
        };
        Ok(Some(AuthRecord {
            key,
            key_hash: r.try_get("key_hash")?,
            tenant,
        }))
    }

    pub async fn list_keys(&self, tenant_id: &str) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.tenant_id = $1 ORDER BY k.created_at, k.id"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    /// Revokes a key of `tenant_id`; `false` if there is no such active key.
    pub async fn revoke_key(
        &self,
        tenant_id: &str,
        id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(tenant_id)
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records use of a key (callers throttle this).
    pub async fn touch_key(&self, id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}
