-- A counter per tenant that moves whenever one of its `ip_range` entries is
-- written, kept by triggers so that every write path (single entries,
-- imports, edits, deletions, future ones) moves it in the writing
-- transaction. An assessment probes an IP only at the network lengths the
-- tenant's ranges use (cached per node with this counter, which the same
-- read returns): a changed counter means the cache is refreshed and the
-- read repeated, so a range written on any node counts from the next read.
CREATE TABLE blocklist_versions (
    tenant_id TEXT PRIMARY KEY,
    ip_ranges BIGINT NOT NULL
);

CREATE TRIGGER blocklist_ip_ranges_insert AFTER INSERT ON blocklist_entries
WHEN NEW.list_type = 'ip_range'
BEGIN
    INSERT OR IGNORE INTO blocklist_versions (tenant_id, ip_ranges) VALUES (NEW.tenant_id, 0);
    UPDATE blocklist_versions SET ip_ranges = ip_ranges + 1 WHERE tenant_id = NEW.tenant_id;
END;

CREATE TRIGGER blocklist_ip_ranges_update AFTER UPDATE ON blocklist_entries
WHEN NEW.list_type = 'ip_range' OR OLD.list_type = 'ip_range'
BEGIN
    INSERT OR IGNORE INTO blocklist_versions (tenant_id, ip_ranges) VALUES (NEW.tenant_id, 0);
    UPDATE blocklist_versions SET ip_ranges = ip_ranges + 1 WHERE tenant_id = NEW.tenant_id;
END;

CREATE TRIGGER blocklist_ip_ranges_delete AFTER DELETE ON blocklist_entries
WHEN OLD.list_type = 'ip_range'
BEGIN
    INSERT OR IGNORE INTO blocklist_versions (tenant_id, ip_ranges) VALUES (OLD.tenant_id, 0);
    UPDATE blocklist_versions SET ip_ranges = ip_ranges + 1 WHERE tenant_id = OLD.tenant_id;
END;
