-- Pay-in velocity: one row per live pay-in assessment and entity it had
-- (customer, card, ip, device, email), keyed by the SHA-256 of the entity's
-- normalized value, so counts per window are one indexed range each.
-- Written in the assessment's transaction; simulations never write here.
-- WITHOUT ROWID: the key is the only B-tree, so each row is one insert.
CREATE TABLE velocity_events (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    entity     TEXT NOT NULL,
    key_hash   TEXT NOT NULL,
    at_ms      BIGINT NOT NULL,
    session_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, entity, key_hash, at_ms, session_id)
) WITHOUT ROWID;
