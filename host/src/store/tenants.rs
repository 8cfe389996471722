//! Tenants.
use sqlx::Row;

use super::{Store, StoreError};

/// An organization using aduana.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub organization_type: String,
    /// Settings as stored (JSON object text).
    pub settings: String,
    /// Bumped by every rule activation, deactivation and pipeline change.
    pub rules_revision: i64,
    pub created_at: i64,
}

fn tenant_from_row(r: &sqlx::any::AnyRow) -> Result<Tenant, StoreError> {
    Ok(Tenant {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        organization_type: r.try_get("organization_type")?,
        settings: r.try_get("settings")?,
        rules_revision: r.try_get("rules_revision")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Store {
    pub async fn create_tenant(&self, t: &Tenant) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tenants (id, name, organization_type, settings, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.organization_type)
        .bind(&t.settings)
        .bind(t.created_at)
        .execute(&self.writer)
        .await
        .map_err(StoreError::from_write)?;
        Ok(())
    }

    pub async fn tenant(&self, id: &str) -> Result<Option<Tenant>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, organization_type, settings, rules_revision, created_at \
             FROM tenants WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    /// Every tenant, oldest first (operator API).
    pub async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, organization_type, settings, rules_revision, created_at \
             FROM tenants ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(tenant_from_row).collect()
    }

    /// Replaces a tenant's settings (JSON object text).
    pub async fn set_tenant_settings(&self, id: &str, settings: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE tenants SET settings = $1 WHERE id = $2")
            .bind(settings)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
