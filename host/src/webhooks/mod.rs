//! Outbound webhooks (API.md §6): a tenant's endpoints, their signing
//! secrets (sealed at rest, see [`crate::secrets`]), the event feed, and the
//! delivery worker ([`delivery`]) that sends the outbox's events at least
//! once, signed two ways ([`signing`]), only to public addresses
//! ([`target`]).
pub mod delivery;
pub mod signing;
pub mod target;

use std::{sync::Arc, time::Duration};

use serde_json::Value;

use crate::{
    config::WebhookConfig,
    domain::ids,
    secrets::{Sealer, SecretsError},
    store::{
        Attempt, AuditEvent, Delivery, FeedEvent, Store, StoreError, WebhookEndpoint, WebhookPatch,
    },
};

/// The audit entry of a change to endpoint `id` by `actor` (never a
/// secret).
fn audit(actor: &str, action: &str, id: &str, details: Value) -> AuditEvent {
    AuditEvent {
        actor: actor.to_owned(),
        action: action.to_owned(),
        subject: id.to_owned(),
        details,
    }
}

/// Every event an endpoint may subscribe to.
pub const EVENTS: &[&str] = &[
    "transaction.created",
    "transaction.blocked",
    "rule.activated",
    "case.created",
    "case.updated",
    "fraud.detected",
    "fraud.confirmed",
];

/// Endpoints a tenant may have.
pub const MAX_ENDPOINTS: usize = 50;

/// Longest description.
pub const MAX_DESCRIPTION: usize = 500;

/// Longest overlap a rotation may ask for.
pub const MAX_OVERLAP: Duration = Duration::from_secs(7 * 24 * 3600);

/// Errors of the webhooks service.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("webhook endpoint not found")]
    NotFound,
    #[error("delivery not found")]
    DeliveryNotFound,
    #[error("event not found")]
    EventNotFound,
    #[error("a tenant may have at most {MAX_ENDPOINTS} webhook endpoints")]
    TooMany,
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &'static str, message: impl Into<String>) -> WebhookError {
    WebhookError::Invalid {
        field,
        message: message.into(),
    }
}

/// What a caller asks an endpoint to be.
#[derive(Debug, Clone, Default)]
pub struct EndpointFields {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub is_active: Option<bool>,
    pub description: Option<Option<String>>,
}

/// An endpoint with, right after creation or rotation, its new secret.
#[derive(Debug, Clone)]
pub struct Created {
    pub endpoint: WebhookEndpoint,
    pub secret: String,
}

/// The webhooks service.
#[derive(Debug, Clone)]
pub struct Webhooks {
    store: Store,
    sealer: Arc<Sealer>,
    config: Arc<WebhookConfig>,
}

/// The body of `event` as delivered and listed: the stored body with the
/// tenant's `sequence` and `previous_id` added. The same bytes on every
/// retry.
pub fn body(event: &FeedEvent) -> String {
    let mut v: Value = serde_json::from_str(&event.payload).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        map.insert("sequence".into(), event.sequence.into());
        map.insert(
            "previous_id".into(),
            event.previous_id.clone().map_or(Value::Null, Value::from),
        );
    }
    v.to_string()
}

impl Webhooks {
    pub fn new(store: Store, sealer: Arc<Sealer>, config: Arc<WebhookConfig>) -> Self {
        Self {
            store,
            sealer,
            config,
        }
    }

    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// This service with `store` (the delivery worker's own reader).
    #[must_use]
    pub fn with_store(mut self, store: Store) -> Self {
        self.store = store;
        self
    }

    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    async fn check_url(&self, raw: &str) -> Result<String, WebhookError> {
        target::check_target(raw, self.config.allow_private)
            .await
            .map(|u| u.to_string())
            .map_err(|e| invalid("url", e.to_string()))
    }

    fn check_events(events: &[String]) -> Result<Vec<String>, WebhookError> {
        let mut out: Vec<String> = Vec::with_capacity(events.len());
        for e in events {
            if !EVENTS.contains(&e.as_str()) {
                return Err(invalid(
                    "events",
                    format!("`{e}` is not an event; events are {}", EVENTS.join(", ")),
                ));
            }
            if !out.contains(e) {
                out.push(e.clone());
            }
        }
        Ok(out)
    }

    fn check_description(d: Option<String>) -> Result<Option<String>, WebhookError> {
        match d {
            Some(d) if d.chars().count() > MAX_DESCRIPTION => Err(invalid(
                "description",
                format!("may be at most {MAX_DESCRIPTION} characters"),
            )),
            Some(d) if d.chars().any(|c| c.is_control() && c != '\n' && c != '\t') => {
                Err(invalid("description", "may not contain control characters"))
            }
            other => Ok(other.filter(|d| !d.trim().is_empty())),
        }
    }

    /// Creates an endpoint with a fresh secret (returned once); audited
    /// as `webhook.created` by `actor` (a key id).
    pub async fn create(
        &self,
        tenant_id: &str,
        actor: &str,
        fields: EndpointFields,
        now: i64,
    ) -> Result<Created, WebhookError> {
        let raw = fields.url.ok_or_else(|| invalid("url", "is required"))?;
        let url = self.check_url(&raw).await?;
        let events = Self::check_events(&fields.events.unwrap_or_default())?;
        let description = Self::check_description(fields.description.flatten())?;
        if self.store.webhook_endpoints(tenant_id).await?.len() >= MAX_ENDPOINTS {
            return Err(WebhookError::TooMany);
        }
        let id = ids::object_id("wh");
        let secret = signing::new_secret();
        let endpoint = WebhookEndpoint {
            secret: self.sealer.seal(&secret, &id),
            id,
            tenant_id: tenant_id.to_owned(),
            url,
            description,
            events,
            is_active: fields.is_active.unwrap_or(true),
            previous_secret: None,
            previous_secret_until: None,
            disabled_reason: None,
            failure_streak: 0,
            failing_since: None,
            created_at: now,
            updated_at: now,
        };
        let entry = audit(
            actor,
            "webhook.created",
            &endpoint.id,
            serde_json::json!({"url": endpoint.url, "events": endpoint.events, "is_active": endpoint.is_active}),
        );
        self.store
            .insert_webhook_endpoint(&endpoint, &entry)
            .await?;
        Ok(Created { endpoint, secret })
    }

    pub async fn list(&self, tenant_id: &str) -> Result<Vec<WebhookEndpoint>, WebhookError> {
        Ok(self.store.webhook_endpoints(tenant_id).await?)
    }

    pub async fn get(&self, tenant_id: &str, id: &str) -> Result<WebhookEndpoint, WebhookError> {
        self.store
            .webhook_endpoint(tenant_id, id)
            .await?
            .ok_or(WebhookError::NotFound)
    }

    /// Changes an endpoint; audited as `webhook.updated` with the new
    /// values of the fields given.
    pub async fn update(
        &self,
        tenant_id: &str,
        actor: &str,
        id: &str,
        fields: EndpointFields,
        now: i64,
    ) -> Result<WebhookEndpoint, WebhookError> {
        let url = match fields.url {
            Some(raw) => Some(self.check_url(&raw).await?),
            None => None,
        };
        let events = fields
            .events
            .as_deref()
            .map(Self::check_events)
            .transpose()?;
        let description = match fields.description {
            Some(d) => Some(Self::check_description(d)?),
            None => None,
        };
        let mut changed = serde_json::Map::new();
        if let Some(u) = &url {
            changed.insert("url".into(), u.clone().into());
        }
        if let Some(e) = &events {
            changed.insert("events".into(), e.clone().into());
        }
        if let Some(d) = &description {
            changed.insert("description".into(), d.clone().into());
        }
        if let Some(a) = fields.is_active {
            changed.insert("is_active".into(), a.into());
        }
        let patch = WebhookPatch {
            url,
            description,
            events,
            is_active: fields.is_active,
        };
        let entry = audit(actor, "webhook.updated", id, Value::Object(changed));
        self.store
            .update_webhook_endpoint(tenant_id, id, &patch, now, &entry)
            .await?
            .ok_or(WebhookError::NotFound)
    }

    /// Deletes an endpoint and its delivery log; audited as
    /// `webhook.deleted`.
    pub async fn delete(
        &self,
        tenant_id: &str,
        actor: &str,
        id: &str,
        now: i64,
    ) -> Result<(), WebhookError> {
        let entry = audit(actor, "webhook.deleted", id, Value::Null);
        if self
            .store
            .delete_webhook_endpoint(tenant_id, id, now, &entry)
            .await?
        {
            Ok(())
        } else {
            Err(WebhookError::NotFound)
        }
    }

    /// A new secret; the current one keeps signing for `overlap` (the
    /// configured default when `None`; zero revokes it now). Audited as
    /// `webhook.secret_rotated` with the overlap.
    pub async fn rotate(
        &self,
        tenant_id: &str,
        actor: &str,
        id: &str,
        overlap: Option<Duration>,
        now: i64,
    ) -> Result<Created, WebhookError> {
        let current = self.get(tenant_id, id).await?;
        let overlap = overlap.unwrap_or(self.config.rotation_overlap);
        if overlap > MAX_OVERLAP {
            return Err(invalid(
                "overlap_seconds",
                format!("may be at most {} seconds", MAX_OVERLAP.as_secs()),
            ));
        }
        let secret = signing::new_secret();
        let sealed = self.sealer.seal(&secret, id);
        let (previous, until) = if overlap.is_zero() {
            (None, None)
        } else {
            let ms = i64::try_from(overlap.as_millis()).unwrap_or(i64::MAX);
            (Some(current.secret.as_str()), Some(now.saturating_add(ms)))
        };
        let entry = audit(
            actor,
            "webhook.secret_rotated",
            id,
            serde_json::json!({"overlap_seconds": overlap.as_secs()}),
        );
        let endpoint = self
            .store
            .rotate_webhook_secret(tenant_id, id, &sealed, previous, until, now, &entry)
            .await?
            .ok_or(WebhookError::NotFound)?;
        Ok(Created { endpoint, secret })
    }

    /// The secrets that sign a delivery at `now`: the current one, then
    /// the previous one while it is valid.
    pub fn signing_secrets(
        &self,
        e: &WebhookEndpoint,
        now: i64,
    ) -> Result<Vec<String>, WebhookError> {
        let mut out = vec![self.sealer.open(&e.secret, &e.id)?];
        if let (Some(prev), Some(until)) = (&e.previous_secret, e.previous_secret_until)
            && until > now
        {
            out.push(self.sealer.open(prev, &e.id)?);
        }
        Ok(out)
    }

    /// A page of an endpoint's deliveries with their attempts.
    pub async fn deliveries(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        status: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<(Delivery, Vec<Attempt>)>, WebhookError> {
        self.get(tenant_id, endpoint_id).await?;
        if let Some(s) = status
            && !["pending", "paused", "delivered", "failed"].contains(&s)
        {
            return Err(invalid(
                "status",
                format!("`{s}` is not one of `pending`, `paused`, `delivered`, `failed`"),
            ));
        }
        Ok(self
            .store
            .webhook_deliveries(tenant_id, endpoint_id, status, limit, offset)
            .await?)
    }

    pub async fn retry(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        delivery_id: &str,
        now: i64,
    ) -> Result<Delivery, WebhookError> {
        self.get(tenant_id, endpoint_id).await?;
        self.store
            .retry_delivery(tenant_id, endpoint_id, delivery_id, now)
            .await?
            .ok_or(WebhookError::DeliveryNotFound)
    }

    /// Queues every event since `since` again for the endpoint; how many.
    pub async fn recover(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        since: i64,
        now: i64,
    ) -> Result<usize, WebhookError> {
        let retention = i64::try_from(self.config.retention.as_millis()).unwrap_or(i64::MAX);
        if since > now {
            return Err(invalid("since", "is in the future"));
        }
        if since < now.saturating_sub(retention) {
            return Err(invalid(
                "since",
                format!(
                    "is older than the event retention ({} days)",
                    self.config.retention.as_secs() / 86_400
                ),
            ));
        }
        let endpoint = self.get(tenant_id, endpoint_id).await?;
        Ok(self.store.recover_deliveries(&endpoint, since, now).await?)
    }

    /// The tenant's events after the event `after` (from the first when
    /// `None`), in sequence order.
    pub async fn feed(
        &self,
        tenant_id: &str,
        after: Option<&str>,
        event: Option<&str>,
        limit: i64,
    ) -> Result<Vec<FeedEvent>, WebhookError> {
        if let Some(e) = event
            && !EVENTS.contains(&e)
        {
            return Err(invalid(
                "type",
                format!("`{e}` is not an event; events are {}", EVENTS.join(", ")),
            ));
        }
        let after_sequence = match after {
            None => 0,
            Some(id) => self
                .store
                .event_sequence(tenant_id, id)
                .await?
                .ok_or(WebhookError::EventNotFound)?,
        };
        Ok(self
            .store
            .event_feed(tenant_id, after_sequence, event, limit)
            .await?)
    }
}
