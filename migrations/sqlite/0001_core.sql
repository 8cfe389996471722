-- Core schema: tenants, API keys, assessments with their history,
-- idempotency and outbox rows, and blocklists.
-- Times are Unix milliseconds (BIGINT); JSON is stored as TEXT; flags are
-- BIGINT 0/1, so the SQLite and PostgreSQL schemas read the same.

CREATE TABLE tenants (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    organization_type TEXT NOT NULL,
    settings          TEXT NOT NULL DEFAULT '{}',
    created_at        BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id                    TEXT PRIMARY KEY,
    tenant_id             TEXT NOT NULL REFERENCES tenants(id),
    name                  TEXT NOT NULL,
    kind                  TEXT NOT NULL,
    role                  TEXT,
    permissions           TEXT NOT NULL,
    key_prefix            TEXT NOT NULL,
    key_hash              TEXT NOT NULL UNIQUE,
    rate_limit_per_minute BIGINT,
    created_at            BIGINT NOT NULL,
    last_used_at          BIGINT,
    revoked_at            BIGINT
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE assessments (
    session_id  TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    flow        TEXT NOT NULL,
    decision    TEXT NOT NULL,
    risk_score  BIGINT NOT NULL,
    payment_id  TEXT,
    input       TEXT NOT NULL,
    context     TEXT NOT NULL,
    rules       TEXT NOT NULL,
    response    TEXT NOT NULL,
    simulated   BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL
);
CREATE INDEX assessments_tenant_time ON assessments (tenant_id, created_at);

CREATE TABLE beneficiary_history (
    tenant_id       TEXT NOT NULL,
    origin_key      TEXT NOT NULL,
    beneficiary_key TEXT NOT NULL,
    transfers       BIGINT NOT NULL,
    first_at        BIGINT NOT NULL,
    last_at         BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, origin_key, beneficiary_key)
);

CREATE TABLE idempotency_keys (
    tenant_id    TEXT NOT NULL,
    scope        TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    session_id   TEXT NOT NULL,
    response     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, scope, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

CREATE TABLE outbox (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    event        TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX outbox_pending ON outbox (delivered_at, created_at);

CREATE TABLE blocklist_entries (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    list_type  TEXT NOT NULL,
    value      TEXT NOT NULL,
    flow_scope TEXT NOT NULL,
    severity   TEXT NOT NULL,
    reason     TEXT,
    source     TEXT NOT NULL,
    is_active  BIGINT NOT NULL,
    expires_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, list_type, value, flow_scope)
);
CREATE INDEX blocklist_lookup ON blocklist_entries (tenant_id, list_type, value);
