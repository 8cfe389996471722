-- The list types each tenant has had an entry of, and the tenant's probe
-- counter (renamed from `ip_ranges`: it now also moves when a tenant's
-- first entry of a list type is written). An assessment probes only the
-- list types the tenant uses (cached per node with the counter, which the
-- same read returns), so a pay-in of a tenant that lists only e-mails and
-- cards does not look up its phone, device, customer or country. A type
-- stays recorded once seen: a type whose entries are all deleted is still
-- probed (a superset is always correct); only a type's first entry must
-- move the counter.
ALTER TABLE blocklist_versions RENAME COLUMN ip_ranges TO probes;

CREATE OR REPLACE FUNCTION blocklist_ip_ranges_moved() RETURNS trigger AS $$
DECLARE
    tenant TEXT;
BEGIN
    IF TG_OP = 'DELETE' THEN
        tenant := OLD.tenant_id;
    ELSE
        tenant := NEW.tenant_id;
    END IF;
    INSERT INTO blocklist_versions (tenant_id, probes) VALUES (tenant, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET probes = blocklist_versions.probes + 1;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TABLE blocklist_types (
    tenant_id TEXT NOT NULL,
    list_type TEXT NOT NULL,
    PRIMARY KEY (tenant_id, list_type)
);

INSERT INTO blocklist_types (tenant_id, list_type)
SELECT DISTINCT tenant_id, list_type FROM blocklist_entries;

-- Once per statement over the rows it wrote (an import's chunk is one
-- call, not one per row). A statement writing a type not seen yet moves
-- its tenants' counters first, then records the types: every writer
-- takes the counter row before a type row, so two imports adding new
-- types at once wait for each other instead of deadlocking. A concurrent
-- writer of the same new type may move the counter twice: one spare cache
-- refresh, never a missed type.
CREATE FUNCTION blocklist_types_seen() RETURNS trigger AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM written w WHERE NOT EXISTS (
        SELECT 1 FROM blocklist_types t
        WHERE t.tenant_id = w.tenant_id AND t.list_type = w.list_type)) THEN
        RETURN NULL;
    END IF;
    INSERT INTO blocklist_versions (tenant_id, probes)
    SELECT DISTINCT tenant_id, 1 FROM written ORDER BY tenant_id
    ON CONFLICT (tenant_id) DO UPDATE SET probes = blocklist_versions.probes + 1;
    INSERT INTO blocklist_types (tenant_id, list_type)
    SELECT DISTINCT tenant_id, list_type FROM written
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER blocklist_types_insert AFTER INSERT ON blocklist_entries
REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION blocklist_types_seen();
CREATE TRIGGER blocklist_types_update AFTER UPDATE ON blocklist_entries
REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION blocklist_types_seen();
