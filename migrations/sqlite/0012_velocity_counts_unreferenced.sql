-- Velocity counters are derived data, written five rows per pay-in: the
-- reference to `tenants` cost a referential check (a lookup of the tenant)
-- for every new counter row. Tenants are never deleted, and every counter
-- is written and read with the tenant of an authenticated request. SQLite
-- cannot drop a constraint: the table is rebuilt without it.
CREATE TABLE velocity_counts_new (
    tenant_id TEXT NOT NULL,
    entity    TEXT NOT NULL,
    key_hash  TEXT NOT NULL,
    bucket_ms BIGINT NOT NULL,
    n         BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, entity, key_hash, bucket_ms)
) WITHOUT ROWID;

INSERT INTO velocity_counts_new (tenant_id, entity, key_hash, bucket_ms, n)
SELECT tenant_id, entity, key_hash, bucket_ms, n FROM velocity_counts;

DROP TABLE velocity_counts;
ALTER TABLE velocity_counts_new RENAME TO velocity_counts;
CREATE INDEX velocity_counts_age ON velocity_counts (bucket_ms);
