//! Tenant rules: signing keys, uploaded versions, activations and pipeline
//! settings. Every change commits together with its audit entry and, when
//! it changes what runs, a bump of the tenant's `rules_revision`.
use sqlx::{Row, any::AnyRow};

use super::{
    OutboxRow, Store, StoreError,
    audit::{self, AuditEvent},
};

/// A tenant's ed25519 public key for signing rule modules.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SigningKeyRecord {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// Base64 of the 32 key bytes.
    pub public_key: String,
    pub created_by: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// An accepted upload (without the module bytes).
#[derive(Debug, Clone)]
pub struct RuleVersionRecord {
    pub tenant_id: String,
    pub rule_id: String,
    pub version: String,
    pub digest: String,
    pub size_bytes: i64,
    /// Manifest JSON text.
    pub manifest: String,
    pub signer_key_id: String,
    /// Base64 signature.
    pub signature: String,
    pub uploaded_by: String,
    pub created_at: i64,
}

/// The version of a rule that runs for a tenant, and how.
#[derive(Debug, Clone)]
pub struct ActivationRecord {
    pub rule_id: String,
    pub version: String,
    /// `active` or `shadow`.
    pub mode: String,
    pub digest: String,
    /// The version's manifest JSON text.
    pub manifest: String,
    pub activated_by: String,
    pub activated_at: i64,
}

/// An activation to make: `version` of `rule_id` runs for the tenant in
/// `mode` (`active` or `shadow`) from `now`.
#[derive(Debug, Clone, Copy)]
pub struct Activation<'a> {
    pub tenant_id: &'a str,
    pub rule_id: &'a str,
    pub version: &'a str,
    pub mode: &'a str,
    pub now: i64,
}

/// What an activation changed: the version it retired from the mode, the
/// mode the activated version left, and every (version, mode) of the rule
/// that runs afterwards (active first).
#[derive(Debug, Clone)]
pub struct ActivationChange {
    pub replaced: Option<String>,
    pub moved_from: Option<String>,
    pub running: Vec<(String, String)>,
}

fn signing_key_from_row(r: &AnyRow) -> Result<SigningKeyRecord, StoreError> {
    Ok(SigningKeyRecord {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        name: r.try_get("name")?,
        public_key: r.try_get("public_key")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

const VERSION_COLUMNS: &str = "tenant_id, rule_id, version, digest, size_bytes, manifest, \
    signer_key_id, signature, uploaded_by, created_at";

fn version_from_row(r: &AnyRow) -> Result<RuleVersionRecord, StoreError> {
    Ok(RuleVersionRecord {
        tenant_id: r.try_get("tenant_id")?,
        rule_id: r.try_get("rule_id")?,
        version: r.try_get("version")?,
        digest: r.try_get("digest")?,
        size_bytes: r.try_get("size_bytes")?,
        manifest: r.try_get("manifest")?,
        signer_key_id: r.try_get("signer_key_id")?,
        signature: r.try_get("signature")?,
        uploaded_by: r.try_get("uploaded_by")?,
        created_at: r.try_get("created_at")?,
    })
}

fn activation_from_row(r: &AnyRow) -> Result<ActivationRecord, StoreError> {
    Ok(ActivationRecord {
        rule_id: r.try_get("rule_id")?,
        version: r.try_get("version")?,
        mode: r.try_get("mode")?,
        digest: r.try_get("digest")?,
        manifest: r.try_get("manifest")?,
        activated_by: r.try_get("activated_by")?,
        activated_at: r.try_get("activated_at")?,
    })
}

impl Store {
    /// Registers a signing key (409 on a key the tenant already has).
    pub async fn create_signing_key(
        &self,
        key: &SigningKeyRecord,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO signing_keys (id, tenant_id, name, public_key, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.id)
        .bind(&key.tenant_id)
        .bind(&key.name)
        .bind(&key.public_key)
        .bind(&key.created_by)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from_write)?;
        audit::append(&mut tx, &key.tenant_id, key.created_at, event).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn signing_keys(&self, tenant_id: &str) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, name, public_key, created_by, created_at, revoked_at \
             FROM signing_keys WHERE tenant_id = $1 ORDER BY created_at, id",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(signing_key_from_row).collect()
    }

    /// The tenant's key `id` (revoked or not); another tenant's key is `None`.
    pub async fn signing_key(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<SigningKeyRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, tenant_id, name, public_key, created_by, created_at, revoked_at \
             FROM signing_keys WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(signing_key_from_row).transpose()
    }

    /// Revokes a key; `false` when the tenant has no such unrevoked key.
    pub async fn revoke_signing_key(
        &self,
        tenant_id: &str,
        id: &str,
        now: i64,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE signing_keys SET revoked_at = $1 \
             WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(tenant_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        audit::append(&mut tx, tenant_id, now, event).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Stores an accepted upload with its module bytes (409 when the tenant
    /// already has this rule version).
    pub async fn insert_rule_version(
        &self,
        v: &RuleVersionRecord,
        module: &[u8],
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO rule_versions (tenant_id, rule_id, version, digest, size_bytes, manifest, \
             signer_key_id, signature, uploaded_by, module, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&v.tenant_id)
        .bind(&v.rule_id)
        .bind(&v.version)
        .bind(&v.digest)
        .bind(v.size_bytes)
        .bind(&v.manifest)
        .bind(&v.signer_key_id)
        .bind(&v.signature)
        .bind(&v.uploaded_by)
        .bind(module.to_vec())
        .bind(v.created_at)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from_write)?;
        audit::append(&mut tx, &v.tenant_id, v.created_at, event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The tenant's uploaded versions, of one rule or of all, oldest first.
    pub async fn rule_versions(
        &self,
        tenant_id: &str,
        rule_id: Option<&str>,
    ) -> Result<Vec<RuleVersionRecord>, StoreError> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM rule_versions \
             WHERE tenant_id = $1 AND ($2 = '' OR rule_id = $2) ORDER BY rule_id, created_at, version"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant_id)
            .bind(rule_id.unwrap_or(""))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(version_from_row).collect()
    }

    pub async fn rule_version(
        &self,
        tenant_id: &str,
        rule_id: &str,
        version: &str,
    ) -> Result<Option<RuleVersionRecord>, StoreError> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM rule_versions \
             WHERE tenant_id = $1 AND rule_id = $2 AND version = $3"
        );
        let row = sqlx::query(&sql)
            .bind(tenant_id)
            .bind(rule_id)
            .bind(version)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(version_from_row).transpose()
    }

    /// The module bytes of a version the tenant uploaded with `digest`.
    pub async fn rule_module(
        &self,
        tenant_id: &str,
        digest: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let row =
            sqlx::query("SELECT module FROM rule_versions WHERE tenant_id = $1 AND digest = $2")
                .bind(tenant_id)
                .bind(digest)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.try_get("module")).transpose()?)
    }

    /// The tenant's running rule versions with their digests (a rule may
    /// have one active and one shadow version).
    pub async fn activations(&self, tenant_id: &str) -> Result<Vec<ActivationRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.rule_id, a.version, a.mode, v.digest, v.manifest, a.activated_by, \
             a.activated_at FROM rule_activations a JOIN rule_versions v \
             ON v.tenant_id = a.tenant_id AND v.rule_id = a.rule_id AND v.version = a.version \
             WHERE a.tenant_id = $1 ORDER BY a.activated_at, a.rule_id, a.mode",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(activation_from_row).collect()
    }

    /// Every tenant's running rules as (tenant, digest), for warming caches
    /// at start-up.
    pub async fn all_active_digests(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.tenant_id, v.digest FROM rule_activations a JOIN rule_versions v \
             ON v.tenant_id = a.tenant_id AND v.rule_id = a.rule_id AND v.version = a.version \
             ORDER BY a.tenant_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("tenant_id")?, r.try_get("digest")?)))
            .collect()
    }

    /// Activations made at or after `since` (Unix ms) as (tenant, digest),
    /// for nodes loading newly activated rules ahead of their first use.
    pub async fn activated_since(&self, since: i64) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.tenant_id, v.digest FROM rule_activations a JOIN rule_versions v \
             ON v.tenant_id = a.tenant_id AND v.rule_id = a.rule_id AND v.version = a.version \
             WHERE a.activated_at >= $1",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("tenant_id")?, r.try_get("digest")?)))
            .collect()
    }

    /// Runs `version` of its rule in `mode`, in one transaction with the
    /// revision bump, the audit entry and the outbox row `outbox` builds
    /// from what changed. A rule has at most one version
    /// in each mode: the version that held `mode` is retired, and `version`
    /// leaves the other mode if it held it (promoting a shadow version to
    /// active retires the old active one atomically).
    pub async fn activate_rule(
        &self,
        activation: &Activation<'_>,
        event: &AuditEvent,
        outbox: impl FnOnce(&ActivationChange) -> OutboxRow,
    ) -> Result<ActivationChange, StoreError> {
        let Activation {
            tenant_id,
            rule_id,
            version,
            mode,
            now,
        } = *activation;
        let mut tx = self.writer.begin().await?;
        bump_revision(&mut tx, tenant_id).await?;
        let before = running(&mut tx, tenant_id, rule_id).await?;
        let replaced = before
            .iter()
            .find(|(v, m)| m == mode && v != version)
            .map(|(v, _)| v.clone());
        let moved_from = before
            .iter()
            .find(|(v, m)| v == version && m != mode)
            .map(|(_, m)| m.clone());
        // The version's other place (if any) and this mode's holder go;
        // then the version takes the mode.
        sqlx::query(
            "DELETE FROM rule_activations WHERE tenant_id = $1 AND rule_id = $2 \
             AND (version = $3 OR mode = $4)",
        )
        .bind(tenant_id)
        .bind(rule_id)
        .bind(version)
        .bind(mode)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO rule_activations (tenant_id, rule_id, version, mode, activated_by, activated_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(tenant_id)
        .bind(rule_id)
        .bind(version)
        .bind(mode)
        .bind(&event.actor)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let mut event = event.clone();
        if let Some(obj) = event.details.as_object_mut() {
            obj.insert("replaced".into(), replaced.clone().into());
            obj.insert("moved_from".into(), moved_from.clone().into());
        }
        audit::append(&mut tx, tenant_id, now, &event).await?;
        let change = ActivationChange {
            replaced,
            moved_from,
            running: running(&mut tx, tenant_id, rule_id).await?,
        };
        let row = outbox(&change);
        sqlx::query(
            "INSERT INTO outbox (id, tenant_id, event, payload, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&row.id)
        .bind(tenant_id)
        .bind(&row.event)
        .bind(&row.payload)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(change)
    }

    /// Stops a rule, or only its `version`, from running; the (version,
    /// mode) pairs that stopped (empty when nothing matched).
    pub async fn deactivate_rule(
        &self,
        tenant_id: &str,
        rule_id: &str,
        version: Option<&str>,
        now: i64,
        event: &AuditEvent,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut tx = self.writer.begin().await?;
        let stopped: Vec<(String, String)> = running(&mut tx, tenant_id, rule_id)
            .await?
            .into_iter()
            .filter(|(v, _)| version.is_none_or(|want| want == v))
            .collect();
        if stopped.is_empty() {
            return Ok(stopped);
        }
        bump_revision(&mut tx, tenant_id).await?;
        sqlx::query(
            "DELETE FROM rule_activations WHERE tenant_id = $1 AND rule_id = $2 \
             AND ($3 = '' OR version = $3)",
        )
        .bind(tenant_id)
        .bind(rule_id)
        .bind(version.unwrap_or(""))
        .execute(&mut *tx)
        .await?;
        let mut event = event.clone();
        if let Some(obj) = event.details.as_object_mut() {
            // The first stopped pair keeps the fields earlier entries had.
            if let Some((v, m)) = stopped.first() {
                obj.insert("version".into(), v.clone().into());
                obj.insert("mode".into(), m.clone().into());
            }
            obj.insert(
                "stopped".into(),
                stopped
                    .iter()
                    .map(|(v, m)| serde_json::json!({"version": v, "mode": m}))
                    .collect::<Vec<_>>()
                    .into(),
            );
        }
        audit::append(&mut tx, tenant_id, now, &event).await?;
        tx.commit().await?;
        Ok(stopped)
    }

    /// Replaces the tenant's settings as a pipeline change: revision bump
    /// and audit entries (one per flow changed) in the same transaction.
    pub async fn update_pipeline_settings(
        &self,
        tenant_id: &str,
        settings: &str,
        now: i64,
        events: &[AuditEvent],
    ) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE tenants SET settings = $1, rules_revision = rules_revision + 1 WHERE id = $2",
        )
        .bind(settings)
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        for event in events {
            audit::append(&mut tx, tenant_id, now, event).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

/// The (version, mode) pairs of `rule_id` that run for the tenant (active
/// first), read inside `tx`.
async fn running(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    tenant_id: &str,
    rule_id: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    let rows = sqlx::query(
        "SELECT version, mode FROM rule_activations WHERE tenant_id = $1 AND rule_id = $2 \
         ORDER BY mode",
    )
    .bind(tenant_id)
    .bind(rule_id)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("version")?, r.try_get("mode")?)))
        .collect()
}

async fn bump_revision(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    tenant_id: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE tenants SET rules_revision = rules_revision + 1 WHERE id = $1")
        .bind(tenant_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
