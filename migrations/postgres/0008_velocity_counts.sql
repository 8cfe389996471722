-- Pay-in velocity as counters: one row per (tenant, entity, key, 5-minute
-- step) holding how many live pay-ins of the tenant had that entity's key
-- in that step. Replaces 0005's one row per pay-in and entity: a repeat
-- customer, card or IP within a step is an update of one small row instead
-- of a new one, a busy key (a carrier's shared IP) has at most 2,016 rows
-- in a week instead of one per pay-in, and each window's count stays one
-- indexed range. The key is the first 16 bytes (hex) of the SHA-256 of
-- the entity's normalized value.
CREATE TABLE velocity_counts (
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    entity    TEXT NOT NULL,
    key_hash  TEXT NOT NULL,
    bucket_ms BIGINT NOT NULL,
    n         BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, entity, key_hash, bucket_ms)
);
-- Pruning steps older than the longest window.
CREATE INDEX velocity_counts_age ON velocity_counts (bucket_ms);

INSERT INTO velocity_counts (tenant_id, entity, key_hash, bucket_ms, n)
SELECT tenant_id, entity, substr(key_hash, 1, 32), at_ms - (at_ms % 300000), COUNT(*)
FROM velocity_events
GROUP BY tenant_id, entity, substr(key_hash, 1, 32), at_ms - (at_ms % 300000);

DROP TABLE velocity_events;
