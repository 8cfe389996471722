//! The node-local module store and compiled-artifact cache.
//!
//! Both are directories under the data dir, opened once as cap-std
//! capabilities: every file is named from a digest this host computed
//! (64 hex characters), and even so no path can reach outside them.
//!
//! Loading a precompiled artifact is `unsafe` in wasmtime (the bytes are
//! trusted to be its own output), so an artifact is only ever loaded when
//! its name matches the engine's compatibility hash and its HMAC tag — keyed
//! by a secret this host generated and keeps in the artifact directory —
//! verifies over (digest, engine hash, bytes).
use std::{
    hash::{Hash as _, Hasher as _},
    io::Write as _,
    path::Path,
};

use cap_std::{ambient_authority, fs::Dir};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use super::RuntimeError;

const MAGIC: &[u8; 16] = b"aduana-cwasm-v1\n";
const TAG_LEN: usize = 32;
const KEY_FILE: &str = "host.key";

/// Module store + artifact cache of one node.
pub struct ArtifactCache {
    modules: Dir,
    artifacts: Dir,
    key: [u8; 32],
    engine_hash: String,
}

impl std::fmt::Debug for ArtifactCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactCache")
            .field("engine_hash", &self.engine_hash)
            .finish()
    }
}

fn io(what: &str, e: std::io::Error) -> RuntimeError {
    RuntimeError::Cache(format!("{what}: {e}"))
}

/// The hex part of `sha256:<hex>`, if the digest has exactly that shape.
pub fn digest_hex(digest: &str) -> Option<&str> {
    digest.strip_prefix("sha256:").filter(|h| {
        h.len() == 64
            && h.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    })
}

impl ArtifactCache {
    /// Opens (creating if needed) `<data_dir>/modules` and
    /// `<data_dir>/artifacts` for an engine with `engine`'s settings.
    pub(super) fn open(data_dir: &Path, engine: &wasmtime::Engine) -> Result<Self, RuntimeError> {
        std::fs::create_dir_all(data_dir).map_err(|e| io("creating the data directory", e))?;
        let root = Dir::open_ambient_dir(data_dir, ambient_authority())
            .map_err(|e| io("opening the data directory", e))?;
        for sub in ["modules", "artifacts"] {
            root.create_dir_all(sub)
                .map_err(|e| io(&format!("creating {sub}/"), e))?;
        }
        let modules = root
            .open_dir("modules")
            .map_err(|e| io("opening modules/", e))?;
        let artifacts = root
            .open_dir("artifacts")
            .map_err(|e| io("opening artifacts/", e))?;
        let key = match artifacts.read(KEY_FILE) {
            Ok(k) if k.len() == 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&k);
                key
            }
            _ => {
                let key: [u8; 32] = rand::random();
                write_atomic(&artifacts, KEY_FILE, &key)?;
                key
            }
        };
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            modules,
            artifacts,
            key,
            engine_hash: format!("{:016x}", hasher.finish()),
        })
    }

    /// Keeps the uploaded bytes of `digest` (idempotent).
    pub fn put_module(&self, digest: &str, bytes: &[u8]) -> Result<(), RuntimeError> {
        let hex = digest_hex(digest).ok_or_else(|| RuntimeError::Cache("bad digest".into()))?;
        let name = format!("{hex}.wasm");
        if self.modules.exists(&name) {
            return Ok(());
        }
        write_atomic(&self.modules, &name, bytes)
    }

    /// The stored bytes of `digest`, if this node has them and they still
    /// hash to it.
    pub fn module(&self, digest: &str) -> Option<Vec<u8>> {
        let hex = digest_hex(digest)?;
        let bytes = self.modules.read(format!("{hex}.wasm")).ok()?;
        (crate::domain::signing::digest_string(&crate::domain::signing::sha256(&bytes)) == digest)
            .then_some(bytes)
    }

    fn artifact_name(&self, hex: &str) -> String {
        format!("{hex}-{}.cwasm", self.engine_hash)
    }

    fn tag(&self, hex: &str, payload: &[u8]) -> Option<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).ok()?;
        mac.update(hex.as_bytes());
        mac.update(self.engine_hash.as_bytes());
        mac.update(payload);
        Some(mac)
    }

    /// Stores a precompiled artifact with its tag.
    pub(super) fn put_artifact(&self, digest: &str, payload: &[u8]) -> Result<(), RuntimeError> {
        let hex = digest_hex(digest).ok_or_else(|| RuntimeError::Cache("bad digest".into()))?;
        let tag = self
            .tag(hex, payload)
            .ok_or_else(|| RuntimeError::Cache("hmac key".into()))?
            .finalize()
            .into_bytes();
        let mut file = Vec::with_capacity(MAGIC.len() + TAG_LEN + payload.len());
        file.extend_from_slice(MAGIC);
        file.extend_from_slice(&tag);
        file.extend_from_slice(payload);
        write_atomic(&self.artifacts, &self.artifact_name(hex), &file)
    }

    /// Whether a valid artifact for `digest` is on disk.
    pub(super) fn has_artifact(&self, digest: &str) -> bool {
        self.artifact(digest).is_some()
    }

    /// The artifact for `digest`, only if this host produced it for this
    /// engine (tag verified). Anything else is ignored, and recompiled.
    pub(super) fn artifact(&self, digest: &str) -> Option<Vec<u8>> {
        let hex = digest_hex(digest)?;
        let mut file = self.artifacts.read(self.artifact_name(hex)).ok()?;
        if file.len() < MAGIC.len() + TAG_LEN || &file[..MAGIC.len()] != MAGIC {
            return None;
        }
        let tag = file[MAGIC.len()..MAGIC.len() + TAG_LEN].to_vec();
        let payload_start = MAGIC.len() + TAG_LEN;
        let ok = self
            .tag(hex, &file[payload_start..])
            .is_some_and(|mac| mac.verify_slice(&tag).is_ok());
        if !ok {
            tracing::warn!(digest, "ignoring an artifact whose tag does not verify");
            return None;
        }
        file.drain(..payload_start);
        Some(file)
    }
}

/// Writes `name` via a temporary file and a rename, so a reader never sees
/// half a file.
fn write_atomic(dir: &Dir, name: &str, bytes: &[u8]) -> Result<(), RuntimeError> {
    let tmp = format!(".{name}.{}.tmp", crate::domain::ids::object_id("w"));
    let mut f = dir
        .create(&tmp)
        .map_err(|e| io(&format!("creating {tmp}"), e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| io(&format!("writing {tmp}"), e))?;
    dir.rename(&tmp, dir, name)
        .map_err(|e| io(&format!("renaming {tmp}"), e))
}
