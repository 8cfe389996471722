-- Tenant-signed rules: signing keys, uploaded rule versions, activations,
-- the hash-chained audit log, and what replay needs from an assessment.

CREATE TABLE signing_keys (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    UNIQUE (tenant_id, public_key)
);
CREATE INDEX signing_keys_tenant ON signing_keys (tenant_id);

-- One row per uploaded (and accepted) version. The module bytes are kept
-- here so every node can load them; the node-local module store and
-- artifact cache live under the data directory.
CREATE TABLE rule_versions (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    rule_id       TEXT NOT NULL,
    version       TEXT NOT NULL,
    digest        TEXT NOT NULL,
    size_bytes    BIGINT NOT NULL,
    manifest      TEXT NOT NULL,
    signer_key_id TEXT NOT NULL,
    signature     TEXT NOT NULL,
    uploaded_by   TEXT NOT NULL,
    module        BYTEA NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, rule_id, version)
);

-- At most one version of a rule runs per tenant, in mode active or shadow.
CREATE TABLE rule_activations (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    rule_id      TEXT NOT NULL,
    version      TEXT NOT NULL,
    mode         TEXT NOT NULL,
    activated_by TEXT NOT NULL,
    activated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, rule_id)
);

-- Bumped with every activation, deactivation and pipeline change; nodes
-- see it with the tenant row (re-read at least every second) and rebuild
-- the tenant's pipeline.
ALTER TABLE tenants ADD COLUMN rules_revision BIGINT NOT NULL DEFAULT 0;

-- Append-only, one hash chain per tenant:
-- hash = sha256(prev_hash || canonical entry).
CREATE TABLE audit_log (
    tenant_id  TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    details    TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);

-- The thresholds the decision used, so a stored assessment can be replayed.
ALTER TABLE assessments ADD COLUMN thresholds TEXT NOT NULL DEFAULT '';
