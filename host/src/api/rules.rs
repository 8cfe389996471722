//! Tenant rules (§11): upload, list, versions, activate / deactivate.
//!
//! The handlers read the request and call the tenant-rules service; an
//! upload's checks, their order and their audit live in
//! [`crate::registry::upload`]. Only reading the multipart parts (and
//! refusing a malformed or oversized body while reading) happens here.
use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, Multipart, State, multipart::MultipartRejection},
    http::StatusCode,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::state::App;
use super::{auth::Auth, error::ApiError, extract::Body, extract::Path, extract::parse_json};
use crate::{
    domain::{now_ms, rfc3339_ms},
    events::{Event, RuleActivatedEvent},
    pipeline::Mode,
    registry::upload::{Rejection, UploadError, UploadParts, rejected},
    runtime::LoadedRule,
    store::{Activation, ActivationRecord, AuditEvent, RuleVersionRecord},
};

/// How much of a refused upload is read and discarded so the client gets
/// its 400 rather than a reset connection; beyond it the connection is cut.
fn drain_limit(max_module_bytes: usize) -> usize {
    max_module_bytes.saturating_mul(4).max(8 << 20)
}

pub fn router(max_module_bytes: usize) -> Router<App> {
    let upload_limit = drain_limit(max_module_bytes);
    let uploads = Router::new()
        .route(
            "/api/v1/rules",
            get(list)
                .post(upload)
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            upload_limit,
            super::extract::refuse_declared_oversize,
        ));
    Router::new()
        .route("/api/v1/rules/{rule_id}/versions", get(versions))
        .route("/api/v1/rules/{rule_id}/versions/{version}", get(version))
        .route(
            "/api/v1/rules/{rule_id}/versions/{version}/activate",
            post(activate),
        )
        .route(
            "/api/v1/rules/{rule_id}/versions/{version}/deactivate",
            post(deactivate_version),
        )
        .route("/api/v1/rules/{rule_id}/deactivate", post(deactivate))
        .route_layer(axum::middleware::from_fn_with_state(
            super::extract::BODY_LIMIT,
            super::extract::refuse_declared_oversize,
        ))
        .merge(uploads)
}

/// The other parts are small: a signature, a key id, a manifest.
const MAX_TEXT_PART: usize = 64 << 10;

async fn read_parts(
    multipart: &mut Result<Multipart, MultipartRejection>,
    max_module: usize,
) -> Result<UploadParts, Rejection> {
    let multipart = multipart.as_mut().map_err(|e| {
        rejected(
            "request",
            format!("expected a multipart/form-data body: {}", e.body_text()),
        )
    })?;
    let too_large = || {
        rejected(
            "size",
            format!("the upload is larger than the {max_module}-byte module limit"),
        )
    };
    let mut parts = UploadParts::default();
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_large()),
            Err(e) => return Err(rejected("request", format!("malformed multipart: {e}"))),
        };
        let name = field.name().unwrap_or_default().to_owned();
        // Read in chunks and stop at the part's limit, without buffering
        // whatever a client sends past it.
        let limit = if name == "module" {
            max_module
        } else {
            MAX_TEXT_PART
        };
        let mut bytes = Vec::new();
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > limit {
                        return Err(if name == "module" {
                            too_large()
                        } else {
                            rejected(
                                "request",
                                format!("part `{name}` is larger than {limit} bytes"),
                            )
                        });
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_large()),
                Err(e) => return Err(rejected("request", format!("reading `{name}`: {e}"))),
            }
        }
        let text = |b: Vec<u8>| {
            String::from_utf8(b).map_err(|_| rejected("request", format!("`{name}` is not UTF-8")))
        };
        let slot_taken = match name.as_str() {
            "module" => parts.module.replace(bytes).is_some(),
            "signature" => parts.signature.replace(bytes).is_some(),
            "key_id" => parts
                .key_id
                .replace(text(bytes)?.trim().to_owned())
                .is_some(),
            "manifest" => parts.manifest.replace(text(bytes)?).is_some(),
            other => {
                return Err(rejected(
                    "request",
                    format!(
                        "unexpected part `{other}` (expected module, signature, key_id, manifest)"
                    ),
                ));
            }
        };
        if slot_taken {
            return Err(rejected("request", format!("part `{name}` appears twice")));
        }
    }
    Ok(parts)
}

/// Reads and discards the rest of an upload, so a refused client still
/// reads its answer instead of a reset connection (bounded by the route's
/// body limit, [`drain_limit`]).
async fn drain(multipart: Result<Multipart, MultipartRejection>) {
    if let Ok(mut m) = multipart {
        while let Ok(Some(mut field)) = m.next_field().await {
            while let Ok(Some(_)) = field.chunk().await {}
        }
    }
}

async fn upload(
    State(app): State<App>,
    auth: Result<Auth, ApiError>,
    mut multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let auth = match auth.and_then(|a| a.require("rules:write").map(|()| a)) {
        Ok(a) => a,
        Err(e) => {
            drain(multipart).await;
            return Err(e);
        }
    };
    let parts = read_parts(&mut multipart, app.config.rule_max_bytes).await;
    if parts.is_err() {
        drain(multipart).await;
    }
    let uploaded = app
        .rules
        .upload(auth.tenant_id(), &auth.record.key.id, parts)
        .await
        .map_err(|e| match e {
            UploadError::Rejected(r) => ApiError::RuleRejected {
                reason: r.reason,
                check: r.check,
            },
            UploadError::Duplicate(message) => ApiError::Duplicate(message),
            UploadError::Store(e) => e.into(),
            UploadError::Internal(e) => ApiError::Internal(anyhow::anyhow!(e)),
        })?;
    let mut body = version_view(&uploaded.record, &uploaded.rule, None);
    body["status"] = json!("inactive");
    Ok((StatusCode::CREATED, Json(body)))
}

fn version_view(v: &RuleVersionRecord, rule: &LoadedRule, status: Option<&str>) -> Value {
    let manifest: Value = serde_json::from_str(&v.manifest).unwrap_or(Value::Null);
    json!({
        "rule_id": v.rule_id,
        "version": v.version,
        "digest": v.digest,
        "signer": v.signer_key_id,
        "uploaded_by": v.uploaded_by,
        "size_bytes": v.size_bytes,
        "status": status.unwrap_or("inactive"),
        "description": manifest.get("description").cloned().unwrap_or(json!("")),
        "flows": rule.metadata.flows,
        "signals": rule.metadata.signals,
        "params_schema": manifest.get("params_schema").cloned().unwrap_or(Value::Null),
        "default_params": manifest.get("default_params").cloned().filter(|d| !d.is_null())
            .unwrap_or_else(|| Value::Object(rule.metadata.default_params.clone())),
        "created_at": rfc3339_ms(v.created_at),
    })
}

fn stored_view(v: &RuleVersionRecord, status: &str) -> Value {
    let manifest: Value = serde_json::from_str(&v.manifest).unwrap_or(Value::Null);
    json!({
        "rule_id": v.rule_id,
        "version": v.version,
        "digest": v.digest,
        "signer": v.signer_key_id,
        "uploaded_by": v.uploaded_by,
        "size_bytes": v.size_bytes,
        "status": status,
        "manifest": manifest,
        "created_at": rfc3339_ms(v.created_at),
    })
}

/// The versions of one rule that run: at most one active (it counts) and
/// one shadow (recorded beside it).
#[derive(Debug, Default)]
struct Running {
    active: Option<String>,
    shadow: Option<String>,
}

impl Running {
    fn of(activations: &[ActivationRecord], rule_id: &str) -> Self {
        Self::from_pairs(
            activations
                .iter()
                .filter(|a| a.rule_id == rule_id)
                .map(|a| (a.version.as_str(), a.mode.as_str())),
        )
    }

    fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut running = Self::default();
        for (version, mode) in pairs {
            match Mode::parse(mode) {
                Some(Mode::Active) => running.active = Some(version.to_owned()),
                Some(Mode::Shadow) => running.shadow = Some(version.to_owned()),
                None => {}
            }
        }
        running
    }

    /// `active`, `shadow` or `inactive`.
    fn status(&self, version: &str) -> &'static str {
        if self.active.as_deref() == Some(version) {
            "active"
        } else if self.shadow.as_deref() == Some(version) {
            "shadow"
        } else {
            "inactive"
        }
    }

    /// The rule's mode as a whole: `active` when a version counts.
    fn mode(&self) -> &'static str {
        match (&self.active, &self.shadow) {
            (Some(_), _) => "active",
            (None, Some(_)) => "shadow",
            (None, None) => "inactive",
        }
    }

    fn view(&self) -> Value {
        json!({ "active": self.active, "shadow": self.shadow })
    }
}

/// `GET /api/v1/rules`: the built-in rules and the tenant's own.
async fn list(State(app): State<App>, auth: Auth) -> Result<Json<Value>, ApiError> {
    auth.require("rules:read")?;
    let versions = app.store.rule_versions(auth.tenant_id(), None).await?;
    let activations = app.store.activations(auth.tenant_id()).await?;
    let mut data = Vec::new();
    for id in crate::builtins::ids() {
        if let Some(rule) = app.rules.builtins.get(id) {
            data.push(json!({
                "rule_id": id,
                "source": "builtin",
                "active_version": rule.metadata.version,
                "mode": "active",
                "versions": [rule.metadata.version],
                "description": rule.metadata.description,
            }));
        }
    }
    let mut ids: Vec<&str> = versions.iter().map(|v| v.rule_id.as_str()).collect();
    ids.dedup();
    for id in ids {
        let running = Running::of(&activations, id);
        data.push(json!({
            "rule_id": id,
            "source": "tenant",
            "active_version": running.active,
            "shadow_version": running.shadow,
            "mode": running.mode(),
            "versions": versions.iter().filter(|v| v.rule_id == id).map(|v| v.version.clone()).collect::<Vec<_>>(),
        }));
    }
    Ok(Json(json!({ "data": data })))
}

async fn versions(
    State(app): State<App>,
    auth: Auth,
    Path(rule_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    auth.require("rules:read")?;
    let versions = app
        .store
        .rule_versions(auth.tenant_id(), Some(&rule_id))
        .await?;
    if versions.is_empty() {
        return Err(ApiError::NotFound("rule"));
    }
    let activations = app.store.activations(auth.tenant_id()).await?;
    let running = Running::of(&activations, &rule_id);
    Ok(Json(json!({
        "rule_id": rule_id,
        "active_version": running.active,
        "shadow_version": running.shadow,
        "data": versions.iter().map(|v| stored_view(v, running.status(&v.version))).collect::<Vec<_>>(),
    })))
}

async fn version(
    State(app): State<App>,
    auth: Auth,
    Path((rule_id, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    auth.require("rules:read")?;
    let v = app
        .store
        .rule_version(auth.tenant_id(), &rule_id, &version)
        .await?
        .ok_or(ApiError::NotFound("rule version"))?;
    let activations = app.store.activations(auth.tenant_id()).await?;
    let status = Running::of(&activations, &rule_id).status(&v.version);
    let rule = app
        .rules
        .load_rule(auth.tenant_id(), &v.digest)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(Json(version_view(&v, &rule, Some(status))))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivateRequest {
    #[serde(default)]
    mode: Option<String>,
}

async fn activate(
    State(app): State<App>,
    auth: Auth,
    Path((rule_id, version)): Path<(String, String)>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    auth.require("rules:write")?;
    let req: ActivateRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ActivateRequest::default()
    } else {
        parse_json(&body)?
    };
    let mode_text = req.mode.as_deref().unwrap_or("active");
    let mode = Mode::parse(mode_text).ok_or_else(|| {
        ApiError::validation(
            "mode",
            format!("`{mode_text}` is not one of active, shadow"),
        )
    })?;
    let tenant_id = auth.tenant_id();
    let v = app
        .store
        .rule_version(tenant_id, &rule_id, &version)
        .await?
        .ok_or(ApiError::NotFound("rule version"))?;
    let signer = app.store.signing_key(tenant_id, &v.signer_key_id).await?;
    if let Some(at) = signer.as_ref().and_then(|k| k.revoked_at) {
        return Err(ApiError::InvalidTransition(format!(
            "{rule_id}@{version} is signed only by `{}`, revoked at {}; re-sign it with an active key and upload it as a new version",
            v.signer_key_id,
            rfc3339_ms(at)
        )));
    }
    // Loadable here before it becomes visible anywhere.
    app.rules
        .load_rule(tenant_id, &v.digest)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let now = now_ms();
    let event = AuditEvent {
        actor: auth.record.key.id.clone(),
        action: "rule.activated".into(),
        subject: format!("{rule_id}@{version}"),
        details: json!({ "mode": mode.as_str(), "digest": v.digest }),
    };
    let change = app
        .store
        .activate_rule(
            &Activation {
                tenant_id,
                rule_id: &rule_id,
                version: &version,
                mode: mode.as_str(),
                now,
            },
            &event,
            |change| {
                Event::RuleActivated(RuleActivatedEvent {
                    rule_id: rule_id.clone(),
                    version: version.clone(),
                    digest: v.digest.clone(),
                    mode: mode.as_str(),
                    replaced: change.replaced.clone(),
                    activated_by: auth.record.key.id.clone(),
                })
                .outbox_row(now)
            },
        )
        .await?;
    app.auth_cache.forget_tenant(tenant_id);
    Ok(Json(json!({
        "rule_id": rule_id,
        "version": version,
        "digest": v.digest,
        "mode": mode.as_str(),
        "status": mode.as_str(),
        "activated_at": rfc3339_ms(now),
        // The version that held this mode until now (it no longer runs).
        "previous": change.replaced.map(|version| json!({ "version": version, "mode": mode.as_str() })),
        // The mode this version held until now (e.g. promoted from shadow).
        "moved_from": change.moved_from,
        "running": Running::from_pairs(change.running.iter().map(|(v, m)| (v.as_str(), m.as_str()))).view(),
    })))
}

async fn deactivate_version(
    State(app): State<App>,
    auth: Auth,
    Path((rule_id, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    auth.require("rules:write")?;
    app.store
        .rule_version(auth.tenant_id(), &rule_id, &version)
        .await?
        .ok_or(ApiError::NotFound("rule version"))?;
    match do_deactivate(&app, &auth, &rule_id, Some(&version)).await? {
        Some(answer) => Ok(answer),
        None => {
            let activations = app.store.activations(auth.tenant_id()).await?;
            let running = Running::of(&activations, &rule_id);
            Err(ApiError::InvalidTransition(
                match (running.active, running.shadow) {
                    (None, None) => format!("{rule_id} is not running"),
                    (a, s) => format!(
                        "{rule_id}@{version} is not running; active: {}, shadow: {}",
                        a.as_deref().unwrap_or("none"),
                        s.as_deref().unwrap_or("none")
                    ),
                },
            ))
        }
    }
}

/// Stops every running version of the rule.
async fn deactivate(
    State(app): State<App>,
    auth: Auth,
    Path(rule_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    auth.require("rules:write")?;
    do_deactivate(&app, &auth, &rule_id, None)
        .await?
        .ok_or(ApiError::NotFound("active rule"))
}

/// Stops `version` of the rule (every version when `None`); `None` when
/// nothing matching was running.
async fn do_deactivate(
    app: &App,
    auth: &Auth,
    rule_id: &str,
    version: Option<&str>,
) -> Result<Option<Json<Value>>, ApiError> {
    let now = now_ms();
    let event = AuditEvent {
        actor: auth.record.key.id.clone(),
        action: "rule.deactivated".into(),
        subject: rule_id.to_owned(),
        details: json!({}),
    };
    let stopped = app
        .store
        .deactivate_rule(auth.tenant_id(), rule_id, version, now, &event)
        .await?;
    let Some((first_version, first_mode)) = stopped.first().cloned() else {
        return Ok(None);
    };
    app.auth_cache.forget_tenant(auth.tenant_id());
    Ok(Some(Json(json!({
        "rule_id": rule_id,
        "version": first_version,
        "previous_mode": first_mode,
        "status": "inactive",
        "stopped": stopped.iter().map(|(v, m)| json!({"version": v, "mode": m})).collect::<Vec<_>>(),
        "deactivated_at": rfc3339_ms(now),
    }))))
}
