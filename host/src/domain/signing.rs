//! Rule signing: ed25519 public keys, detached signatures over a module's
//! SHA-256, and the upload manifest.
//!
//! What is signed is the 32-byte SHA-256 digest of the component bytes (not
//! its hex text). Keys and signatures travel as standard base64.
use base64::{Engine as _, engine::general_purpose::STANDARD};
use ed25519_dalek::{Signature, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// `sha256:<hex>`, the digest form used everywhere on the wire.
pub fn digest_string(sha: &[u8; 32]) -> String {
    format!("sha256:{}", hex::encode(sha))
}

/// Decodes a base64 ed25519 public key (32 bytes), rejecting weak keys.
pub fn parse_public_key(b64: &str) -> Result<VerifyingKey, String> {
    let bytes = STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        format!(
            "an ed25519 public key has 32 bytes, this one {}",
            bytes.len()
        )
    })?;
    let key = VerifyingKey::from_bytes(&arr).map_err(|_| "not a valid ed25519 point".to_owned())?;
    if key.is_weak() {
        return Err("a weak (small-order) key cannot sign".to_owned());
    }
    Ok(key)
}

/// Reads a detached signature: 64 raw bytes, or their base64 text.
pub fn parse_signature(raw: &[u8]) -> Result<Signature, String> {
    let bytes = if raw.len() == 64 {
        raw.to_vec()
    } else {
        let text = std::str::from_utf8(raw).map_err(|_| {
            format!(
                "expected 64 signature bytes or their base64, got {} bytes",
                raw.len()
            )
        })?;
        STANDARD
            .decode(text.trim())
            .map_err(|e| format!("signature is not base64: {e}"))?
    };
    let arr: [u8; 64] = bytes.as_slice().try_into().map_err(|_| {
        format!(
            "an ed25519 signature has 64 bytes, this one {}",
            bytes.len()
        )
    })?;
    Ok(Signature::from_bytes(&arr))
}

/// Whether `signature` by `key` covers `sha` (strict verification: no
/// malleable signatures, no small-order keys).
pub fn verify(key: &VerifyingKey, sha: &[u8; 32], signature: &Signature) -> bool {
    key.verify_strict(sha, signature).is_ok() && key.verify(sha, signature).is_ok()
}

/// A fresh key pair: (secret seed base64, public key base64).
pub fn generate_keypair() -> (String, String) {
    let seed: [u8; 32] = rand::random();
    let key = SigningKey::from_bytes(&seed);
    (
        STANDARD.encode(seed),
        STANDARD.encode(key.verifying_key().as_bytes()),
    )
}

/// Signs the SHA-256 of `module` with the base64 seed `secret`; returns the
/// signature as base64.
pub fn sign_module(secret_b64: &str, module: &[u8]) -> Result<String, String> {
    use ed25519_dalek::Signer as _;
    let seed = STANDARD
        .decode(secret_b64.trim())
        .map_err(|e| format!("secret key is not base64: {e}"))?;
    let seed: [u8; 32] = seed
        .as_slice()
        .try_into()
        .map_err(|_| "a secret key seed has 32 bytes".to_owned())?;
    let key = SigningKey::from_bytes(&seed);
    Ok(STANDARD.encode(key.sign(&sha256(module)).to_bytes()))
}

/// The public key (base64) of a base64 secret seed.
pub fn public_key_of(secret_b64: &str) -> Result<String, String> {
    let seed = STANDARD
        .decode(secret_b64.trim())
        .map_err(|e| format!("secret key is not base64: {e}"))?;
    let seed: [u8; 32] = seed
        .as_slice()
        .try_into()
        .map_err(|_| "a secret key seed has 32 bytes".to_owned())?;
    Ok(STANDARD.encode(SigningKey::from_bytes(&seed).verifying_key().as_bytes()))
}

/// Base64 of `bytes`.
pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// The manifest sent with an upload (§11).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub rule_id: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub flows: Vec<String>,
    /// A JSON Schema the params must satisfy (optional).
    #[serde(default)]
    pub params_schema: Option<serde_json::Value>,
    #[serde(default)]
    pub default_params: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Manifest {
    /// Checks the shape of every field; the schema is compiled and the
    /// default params validated against it.
    pub fn validate(&self) -> Result<(), String> {
        if !is_rule_id(&self.rule_id) {
            return Err(format!(
                "rule_id `{}` must be 2 to 64 characters of a-z, 0-9 and `-`, starting with a letter",
                self.rule_id
            ));
        }
        semver::Version::parse(&self.version).map_err(|e| {
            format!(
                "version `{}` is not a semantic version (e.g. 1.2.0): {e}",
                self.version
            )
        })?;
        if self.description.len() > 1024 {
            return Err("description is longer than 1024 characters".to_owned());
        }
        for f in &self.flows {
            if f != "payout" && f != "payin" {
                return Err(format!("flow `{f}` is not one of payout, payin"));
            }
        }
        if let Some(schema) = &self.params_schema {
            let validator = jsonschema::validator_for(schema)
                .map_err(|e| format!("params_schema is not a valid JSON Schema: {e}"))?;
            if let Some(defaults) = &self.default_params {
                let value = serde_json::Value::Object(defaults.clone());
                if let Some(e) = validator.iter_errors(&value).next() {
                    return Err(format!(
                        "default_params do not satisfy params_schema at `{}`: {e}",
                        e.instance_path
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Rule ids: `^[a-z][a-z0-9-]{1,63}$`.
pub fn is_rule_id(s: &str) -> bool {
    (2..=64).contains(&s.len())
        && s.as_bytes()[0].is_ascii_lowercase()
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

/// Validates `params` against a JSON Schema; the first problem, with its
/// path.
pub fn check_params(schema: &serde_json::Value, params: &serde_json::Value) -> Result<(), String> {
    let validator =
        jsonschema::validator_for(schema).map_err(|e| format!("params_schema is invalid: {e}"))?;
    match validator.iter_errors(params).next() {
        None => Ok(()),
        Some(e) => Err(format!("at `{}`: {e}", e.instance_path)),
    }
}

/// The params a rule version runs with: its `defaults`, with each of the
/// tenant's `overrides` (top-level keys, in order) that its `schema`
/// accepts. Returns them with the keys left out. A version whose params
/// changed shape thus runs with its own defaults where the tenant's
/// settings no longer fit it, rather than with input it would refuse.
pub fn accepted_params(
    defaults: &serde_json::Map<String, serde_json::Value>,
    overrides: &serde_json::Map<String, serde_json::Value>,
    schema: Option<&serde_json::Value>,
) -> (serde_json::Map<String, serde_json::Value>, Vec<String>) {
    use serde_json::Value;
    let mut all = defaults.clone();
    all.extend(overrides.clone());
    // Schemas were compiled at upload; one that no longer compiles (a
    // library change) checks nothing rather than dropping every override.
    let Some(validator) = schema.and_then(|s| jsonschema::validator_for(s).ok()) else {
        return (all, Vec::new());
    };
    let all = Value::Object(all);
    if validator.is_valid(&all) {
        return (object(all), Vec::new());
    }
    // Runs when the pipeline is built, not per assessment.
    let mut params = defaults.clone();
    let mut ignored = Vec::new();
    for (key, value) in overrides {
        let mut tried = params.clone();
        tried.insert(key.clone(), value.clone());
        let tried = Value::Object(tried);
        if validator.is_valid(&tried) {
            params = object(tried);
        } else {
            ignored.push(key.clone());
        }
    }
    (params, ignored)
}

fn object(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_round_trip() {
        let (secret, public) = generate_keypair();
        let module = b"\0asm not really";
        let sig = sign_module(&secret, module).unwrap_or_default();
        let key = parse_public_key(&public).map_err(|e| e.to_string());
        let sig = parse_signature(sig.as_bytes());
        assert!(matches!((&key, &sig), (Ok(_), Ok(_))));
        if let (Ok(key), Ok(sig)) = (key, sig) {
            assert!(verify(&key, &sha256(module), &sig));
            assert!(!verify(&key, &sha256(b"tampered"), &sig));
        }
    }

    #[test]
    fn overrides_the_schema_refuses_are_left_out() {
        let map = |v: serde_json::Value| object(v);
        let schema = serde_json::json!({
            "type": "object",
            "properties": {"weight": {"type": "integer", "maximum": 100}, "min": {"type": "integer"}},
            "additionalProperties": false
        });
        let defaults = map(serde_json::json!({"weight": 40, "min": 1}));
        let overrides = map(serde_json::json!({"min": 5, "legacy": true, "weight": 500}));
        let (params, ignored) = accepted_params(&defaults, &overrides, Some(&schema));
        assert_eq!(
            serde_json::Value::Object(params),
            serde_json::json!({"weight": 40, "min": 5})
        );
        assert_eq!(ignored, vec!["legacy".to_owned(), "weight".to_owned()]);
        // Without a schema every override applies.
        let (params, ignored) = accepted_params(&defaults, &overrides, None);
        assert_eq!(params.len(), 3);
        assert!(ignored.is_empty());
    }

    #[test]
    fn rule_ids() {
        assert!(is_rule_id("night-spei"));
        assert!(!is_rule_id("Night"));
        assert!(!is_rule_id("../etc"));
        assert!(!is_rule_id("a"));
    }
}
