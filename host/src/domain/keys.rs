//! API key kinds, roles and permissions (`resource:action`, `*` = all).
use sha2::{Digest, Sha256};

/// What a key may be used for, by prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// `clm_sk_`: server-side, everything its permissions allow.
    Secret,
    /// `clm_pub_`: pay-in assess only.
    Publishable,
    /// `clm_wh_`: event ingestion only.
    Ingest,
}

impl KeyKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "secret" => Some(Self::Secret),
            "publishable" => Some(Self::Publishable),
            "ingest" => Some(Self::Ingest),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::Publishable => "publishable",
            Self::Ingest => "ingest",
        }
    }
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Secret => "clm_sk_",
            Self::Publishable => "clm_pub_",
            Self::Ingest => "clm_wh_",
        }
    }
    /// The kind a presented key claims by its prefix.
    pub fn of_presented(key: &str) -> Option<Self> {
        [Self::Secret, Self::Publishable, Self::Ingest]
            .into_iter()
            .find(|k| key.starts_with(k.prefix()))
    }
}

/// Every permission string.
pub const PERMISSIONS: &[&str] = &[
    "assess",
    "fraud:report",
    "blocklists:read",
    "blocklists:write",
    "cases:read",
    "cases:write",
    "rules:read",
    "rules:write",
    "webhooks:write",
    "settings:write",
    "keys:write",
];

/// Permissions of a named role; `None` for an unknown role.
pub fn role_permissions(role: &str) -> Option<Vec<String>> {
    let perms: &[&str] = match role {
        "admin" => &["*"],
        "analyst" => &[
            "assess",
            "fraud:report",
            "blocklists:read",
            "blocklists:write",
            "cases:read",
            "cases:write",
            "rules:read",
        ],
        "compliance_officer" => &[
            "blocklists:read",
            "cases:read",
            "cases:write",
            "rules:read",
            "fraud:report",
        ],
        "integration" => &["assess", "fraud:report"],
        _ => return None,
    };
    Some(perms.iter().map(|p| (*p).to_owned()).collect())
}

/// Whether a permission set grants `needed`.
pub fn grants(permissions: &[String], needed: &str) -> bool {
    permissions.iter().any(|p| p == "*" || p == needed)
}

/// The stored form of a key: SHA-256 hex. Keys carry ~238 bits of entropy,
/// so a fast hash is enough; lookups go through the hash, never the secret.
pub fn hash_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}
