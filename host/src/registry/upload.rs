//! Verifying and storing an uploaded rule version (§11), as a service the
//! HTTP API, the operator API and tests call.
//!
//! An upload is checked in this order, and the first failure is a
//! [`Rejection`] naming the check: `request` (its parts) → `size` →
//! `signature` (a known, unrevoked key of this tenant; ed25519 over the
//! module's SHA-256) → `manifest` → `component` / `imports` / `wit_version`
//! / `world` (structure, before any compiling) → compile once, off the
//! async workers → `metadata` (the component's own id and version must
//! match the manifest). Every rejection, like every acceptance, is written
//! to the audit log.
use std::{sync::Arc, time::Instant};

use serde_json::{Value, json};

use super::TenantRules;
use crate::{
    domain::{
        now_ms, rfc3339_ms,
        signing::{
            Manifest, b64, check_params, digest_string, parse_public_key, parse_signature, sha256,
            verify,
        },
    },
    runtime::{LoadedRule, RuntimeError},
    store::{AuditEvent, RuleVersionRecord, StoreError},
};

/// The parts of an upload, as the client sent them.
#[derive(Debug, Default)]
pub struct UploadParts {
    pub module: Option<Vec<u8>>,
    pub signature: Option<Vec<u8>>,
    pub key_id: Option<String>,
    pub manifest: Option<String>,
}

/// Why an upload was refused: the check that failed and a reason the
/// uploader can act on.
#[derive(Debug)]
pub struct Rejection {
    pub check: &'static str,
    pub reason: String,
}

pub fn rejected(check: &'static str, reason: impl Into<String>) -> Rejection {
    Rejection {
        check,
        reason: reason.into(),
    }
}

/// How an upload can fail.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// A check refused it (recorded in the audit log).
    #[error("rejected by the {} check: {}", .0.check, .0.reason)]
    Rejected(Rejection),
    /// That version of that rule exists already; versions are immutable.
    #[error("{0}")]
    Duplicate(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Not the uploader's fault: a stored key that does not parse, the
    /// engine, a compile worker that died.
    #[error("{0}")]
    Internal(String),
}

/// A stored upload: its record and the compiled rule.
#[derive(Debug)]
pub struct Uploaded {
    pub record: RuleVersionRecord,
    pub rule: Arc<LoadedRule>,
}

/// Everything an accepted upload needs, verified.
struct Verified {
    record: RuleVersionRecord,
    module: Vec<u8>,
    rule: Arc<LoadedRule>,
}

fn duplicate(rule_id: &str, version: &str) -> UploadError {
    UploadError::Duplicate(format!(
        "version {version} of `{rule_id}` was already uploaded; versions are immutable"
    ))
}

fn runtime_rejection(e: RuntimeError) -> Result<Rejection, UploadError> {
    let check = match &e {
        RuntimeError::NotComponent(_) | RuntimeError::Invalid(_) => "component",
        RuntimeError::ForbiddenImport(_) => "imports",
        RuntimeError::UnsupportedWitVersion(_) => "wit_version",
        RuntimeError::WrongWorld(_) => "world",
        RuntimeError::Metadata(_) => "metadata",
        RuntimeError::Engine(_) | RuntimeError::Cache(_) => {
            return Err(UploadError::Internal(e.to_string()));
        }
    };
    Ok(rejected(check, e.to_string()))
}

impl TenantRules {
    /// Verifies `parts` (or the rejection reading them already found) and
    /// stores the version as inactive, auditing either outcome as done by
    /// `actor`.
    pub async fn upload(
        &self,
        tenant_id: &str,
        actor: &str,
        parts: Result<UploadParts, Rejection>,
    ) -> Result<Uploaded, UploadError> {
        let started = Instant::now();
        let verified = match parts {
            Ok(parts) => self.verify_upload(tenant_id, actor, parts).await?,
            Err(r) => Err(r),
        };
        let verified = match verified {
            Ok(v) => v,
            Err(r) => {
                metrics::counter!("aduana_rule_uploads_total", "result" => "rejected", "check" => r.check).increment(1);
                let event = AuditEvent {
                    actor: actor.to_owned(),
                    action: "rule.rejected".into(),
                    subject: "upload".into(),
                    details: json!({ "check": r.check, "reason": r.reason }),
                };
                self.store.append_audit(tenant_id, now_ms(), &event).await?;
                return Err(UploadError::Rejected(r));
            }
        };
        let rec = &verified.record;
        let event = AuditEvent {
            actor: actor.to_owned(),
            action: "rule.uploaded".into(),
            subject: format!("{}@{}", rec.rule_id, rec.version),
            details: json!({
                "digest": rec.digest,
                "signer_key_id": rec.signer_key_id,
                "size_bytes": rec.size_bytes,
            }),
        };
        match self
            .store
            .insert_rule_version(rec, &verified.module, &event)
            .await
        {
            Ok(()) => {}
            Err(StoreError::Duplicate) => return Err(duplicate(&rec.rule_id, &rec.version)),
            Err(e) => return Err(e.into()),
        }
        metrics::counter!("aduana_rule_uploads_total", "result" => "accepted", "check" => "none")
            .increment(1);
        tracing::info!(
            rule_id = %rec.rule_id,
            version = %rec.version,
            digest = %rec.digest,
            ms = started.elapsed().as_millis() as u64,
            "rule uploaded"
        );
        Ok(Uploaded {
            record: verified.record,
            rule: verified.rule,
        })
    }

    async fn verify_upload(
        &self,
        tenant_id: &str,
        actor: &str,
        parts: UploadParts,
    ) -> Result<Result<Verified, Rejection>, UploadError> {
        let max = self.max_module_bytes;
        let (Some(module), Some(signature), Some(key_id), Some(manifest_text)) =
            (parts.module, parts.signature, parts.key_id, parts.manifest)
        else {
            return Ok(Err(rejected(
                "request",
                "the upload needs four parts: module, signature, key_id, manifest",
            )));
        };
        if module.len() > max {
            return Ok(Err(rejected(
                "size",
                format!(
                    "the module is {} bytes; the limit is {max} bytes",
                    module.len()
                ),
            )));
        }
        // 1. The signature, before anything else looks at the bytes.
        let sha = sha256(&module);
        let digest = digest_string(&sha);
        let Some(key) = self.store.signing_key(tenant_id, &key_id).await? else {
            return Ok(Err(rejected(
                "signature",
                format!(
                    "unknown signing key `{key_id}`: only keys registered by this tenant \
                     (POST /api/v1/signing-keys) can sign its rules"
                ),
            )));
        };
        if let Some(at) = key.revoked_at {
            return Ok(Err(rejected(
                "signature",
                format!("signing key `{key_id}` was revoked at {}", rfc3339_ms(at)),
            )));
        }
        let public = parse_public_key(&key.public_key)
            .map_err(|e| UploadError::Internal(format!("stored key `{key_id}`: {e}")))?;
        let sig = match parse_signature(&signature) {
            Ok(s) => s,
            Err(e) => return Ok(Err(rejected("signature", e))),
        };
        if !verify(&public, &sha, &sig) {
            return Ok(Err(rejected(
                "signature",
                format!(
                    "the signature does not verify with key `{key_id}` over the module's SHA-256 \
                     ({digest}): the bytes were changed after signing, or another key signed them"
                ),
            )));
        }
        // 2. The manifest.
        let manifest: Manifest = match serde_json::from_str(&manifest_text) {
            Ok(m) => m,
            Err(e) => return Ok(Err(rejected("manifest", format!("not valid: {e}")))),
        };
        if let Err(e) = manifest.validate() {
            return Ok(Err(rejected("manifest", e)));
        }
        if self.builtins.contains_key(&manifest.rule_id) {
            return Ok(Err(rejected(
                "manifest",
                format!(
                    "`{}` is the id of a built-in rule; choose another",
                    manifest.rule_id
                ),
            )));
        }
        if self
            .store
            .rule_version(tenant_id, &manifest.rule_id, &manifest.version)
            .await?
            .is_some()
        {
            return Err(duplicate(&manifest.rule_id, &manifest.version));
        }
        // 3. Structure, compile once (off the async workers), metadata.
        if let Err(e) = crate::runtime::inspect(&module) {
            return Ok(Err(runtime_rejection(e)?));
        }
        let (rt, cache, bytes) = (
            Arc::clone(&self.runtime),
            Arc::clone(&self.modules),
            module.clone(),
        );
        let compiled = tokio::task::spawn_blocking(move || rt.compile_cached(&cache, &bytes))
            .await
            .map_err(|e| UploadError::Internal(format!("compile worker: {e}")))?;
        let rule = match compiled {
            Ok(r) => r,
            Err(e) => return Ok(Err(runtime_rejection(e)?)),
        };
        let meta = &rule.metadata;
        if meta.id != manifest.rule_id || meta.version != manifest.version {
            return Ok(Err(rejected(
                "metadata",
                format!(
                    "the manifest says {}@{}, the component's metadata says {}@{}",
                    manifest.rule_id, manifest.version, meta.id, meta.version
                ),
            )));
        }
        if let Some(schema) = &manifest.params_schema {
            let defaults = Value::Object(
                manifest
                    .default_params
                    .clone()
                    .unwrap_or_else(|| meta.default_params.clone()),
            );
            if let Err(e) = check_params(schema, &defaults) {
                return Ok(Err(rejected(
                    "manifest",
                    format!("the default params do not satisfy params_schema {e}"),
                )));
            }
        }
        let record = RuleVersionRecord {
            tenant_id: tenant_id.to_owned(),
            rule_id: manifest.rule_id.clone(),
            version: manifest.version.clone(),
            digest,
            size_bytes: i64::try_from(module.len()).unwrap_or(i64::MAX),
            manifest: serde_json::to_string(&manifest)
                .map_err(|e| UploadError::Internal(format!("manifest: {e}")))?,
            signer_key_id: key.id,
            signature: b64(&sig.to_bytes()),
            uploaded_by: actor.to_owned(),
            created_at: now_ms(),
        };
        Ok(Ok(Verified {
            record,
            module,
            rule,
        }))
    }
}
