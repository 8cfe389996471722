//! Secrets at rest (webhook signing secrets): sealed with AES-256-GCM under
//! a key the database never holds, so a dump of the database alone cannot
//! forge a signature.
//!
//! The key comes from `ADUANA_SECRETS_KEY` (base64 of 32 bytes; every node
//! of a PostgreSQL deployment must share it), else from
//! `<data dir>/secrets.key`, created with owner-only permissions on first
//! start. A sealed value names its key's fingerprint, so a node with the
//! wrong key says so instead of failing obscurely.
use std::path::Path;

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The key file under the data directory.
pub const KEY_FILE: &str = "secrets.key";

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("`ADUANA_SECRETS_KEY` must be the base64 of 32 bytes")]
    BadKey,
    #[error("cannot read or create the secrets key file `{0}`: {1}")]
    KeyFile(String, std::io::Error),
    #[error(
        "a stored secret was sealed with key {sealed_with}, this node has key {ours}; \
         give every node the same ADUANA_SECRETS_KEY"
    )]
    WrongKey { sealed_with: String, ours: String },
    #[error("a stored secret is malformed or was tampered with")]
    Corrupt,
}

/// The sealing key.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
    /// The first 8 hex digits of the key's SHA-256.
    fingerprint: String,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer over `key`.
    pub fn new(key: &[u8; 32]) -> Self {
        let fingerprint = hex::encode(&Sha256::digest(key)[..4]);
        Self {
            cipher: Aes256Gcm::new(key.into()),
            fingerprint,
        }
    }

    /// From the configured base64 key, else the data directory's key file
    /// (created when missing).
    pub fn load(configured: Option<&str>, data_dir: &Path) -> Result<Self, SecretsError> {
        if let Some(b64) = configured {
            let bytes = STANDARD
                .decode(b64.trim())
                .map_err(|_| SecretsError::BadKey)?;
            let key: [u8; 32] = bytes.try_into().map_err(|_| SecretsError::BadKey)?;
            return Ok(Self::new(&key));
        }
        let path = data_dir.join(KEY_FILE);
        let shown = path.display().to_string();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = STANDARD
                    .decode(text.trim())
                    .map_err(|_| SecretsError::BadKey)?;
                let key: [u8; 32] = bytes.try_into().map_err(|_| SecretsError::BadKey)?;
                Ok(Self::new(&key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir)
                    .map_err(|e| SecretsError::KeyFile(shown.clone(), e))?;
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                write_private(&path, STANDARD.encode(key).as_bytes())
                    .map_err(|e| SecretsError::KeyFile(shown, e))?;
                tracing::info!(path = %path.display(), "created the secrets key");
                Ok(Self::new(&key))
            }
            Err(e) => Err(SecretsError::KeyFile(shown, e)),
        }
    }

    /// `secret` sealed, bound to `context` (the owning record's id):
    /// `v1:<fingerprint>:<base64 of nonce and ciphertext>`.
    pub fn seal(&self, secret: &str, context: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self.cipher.encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: secret.as_bytes(),
                aad: context.as_bytes(),
            },
        );
        // Encryption fails only on messages over 64 GiB.
        let mut out = nonce.to_vec();
        out.extend(sealed.unwrap_or_default());
        format!("v1:{}:{}", self.fingerprint, STANDARD.encode(out))
    }

    /// The secret `sealed` holds, if it was sealed under this key for
    /// `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, SecretsError> {
        let mut parts = sealed.splitn(3, ':');
        let (Some("v1"), Some(fingerprint), Some(b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SecretsError::Corrupt);
        };
        if fingerprint != self.fingerprint {
            return Err(SecretsError::WrongKey {
                sealed_with: fingerprint.to_owned(),
                ours: self.fingerprint.clone(),
            });
        }
        let bytes = STANDARD.decode(b64).map_err(|_| SecretsError::Corrupt)?;
        if bytes.len() < 12 {
            return Err(SecretsError::Corrupt);
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretsError::Corrupt)?;
        String::from_utf8(plain).map_err(|_| SecretsError::Corrupt)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_bound_to_context() {
        let s = Sealer::new(&[7; 32]);
        let sealed = s.seal("whsec_abc", "wh_1");
        assert!(!sealed.contains("whsec_abc"));
        assert_eq!(s.open(&sealed, "wh_1").ok().as_deref(), Some("whsec_abc"));
        // Moved to another record, or opened with another key: refused.
        assert!(matches!(
            s.open(&sealed, "wh_2"),
            Err(SecretsError::Corrupt)
        ));
        assert!(matches!(
            Sealer::new(&[8; 32]).open(&sealed, "wh_1"),
            Err(SecretsError::WrongKey { .. })
        ));
        // Two seals of one secret differ (fresh nonce).
        assert_ne!(sealed, s.seal("whsec_abc", "wh_1"));
    }

    #[test]
    fn key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Sealer::load(None, dir.path()).expect("create");
        let b = Sealer::load(None, dir.path()).expect("reuse");
        let sealed = a.seal("x", "c");
        assert_eq!(b.open(&sealed, "c").ok().as_deref(), Some("x"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .expect("key file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            Sealer::load(Some("dG9vIHNob3J0"), dir.path()),
            Err(SecretsError::BadKey)
        ));
    }
}
