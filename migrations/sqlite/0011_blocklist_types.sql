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

CREATE TABLE blocklist_types (
    tenant_id TEXT NOT NULL,
    list_type TEXT NOT NULL,
    PRIMARY KEY (tenant_id, list_type)
) WITHOUT ROWID;

INSERT INTO blocklist_types (tenant_id, list_type)
SELECT DISTINCT tenant_id, list_type FROM blocklist_entries;

-- One primary-key probe per written entry; the body runs only for a
-- tenant's first entry of a type.
CREATE TRIGGER blocklist_types_insert AFTER INSERT ON blocklist_entries
WHEN NOT EXISTS (SELECT 1 FROM blocklist_types
                 WHERE tenant_id = NEW.tenant_id AND list_type = NEW.list_type)
BEGIN
    INSERT INTO blocklist_types (tenant_id, list_type) VALUES (NEW.tenant_id, NEW.list_type);
    INSERT OR IGNORE INTO blocklist_versions (tenant_id, probes) VALUES (NEW.tenant_id, 0);
    UPDATE blocklist_versions SET probes = probes + 1 WHERE tenant_id = NEW.tenant_id;
END;

CREATE TRIGGER blocklist_types_update AFTER UPDATE OF tenant_id, list_type ON blocklist_entries
WHEN NOT EXISTS (SELECT 1 FROM blocklist_types
                 WHERE tenant_id = NEW.tenant_id AND list_type = NEW.list_type)
BEGIN
    INSERT INTO blocklist_types (tenant_id, list_type) VALUES (NEW.tenant_id, NEW.list_type);
    INSERT OR IGNORE INTO blocklist_versions (tenant_id, probes) VALUES (NEW.tenant_id, 0);
    UPDATE blocklist_versions SET probes = probes + 1 WHERE tenant_id = NEW.tenant_id;
END;
