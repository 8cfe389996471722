-- A counter per tenant that moves whenever one of its `ip_range` entries is
-- written, kept by a trigger so that every write path (single entries,
-- imports, edits, deletions, future ones) moves it in the writing
-- transaction. An assessment probes an IP only at the network lengths the
-- tenant's ranges use (cached per node with this counter, which the same
-- read returns): a changed counter means the cache is refreshed and the
-- read repeated, so a range written on any node counts from the next read.
CREATE TABLE blocklist_versions (
    tenant_id TEXT PRIMARY KEY,
    ip_ranges BIGINT NOT NULL
);

CREATE FUNCTION blocklist_ip_ranges_moved() RETURNS trigger AS $$
DECLARE
    tenant TEXT;
BEGIN
    IF TG_OP = 'DELETE' THEN
        tenant := OLD.tenant_id;
    ELSE
        tenant := NEW.tenant_id;
    END IF;
    INSERT INTO blocklist_versions (tenant_id, ip_ranges) VALUES (tenant, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET ip_ranges = blocklist_versions.ip_ranges + 1;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

-- One trigger per operation, each filtered by WHEN, so writing any other
-- list type (an import of a million e-mails) never calls the function.
CREATE TRIGGER blocklist_ip_ranges_insert AFTER INSERT ON blocklist_entries
FOR EACH ROW WHEN (NEW.list_type = 'ip_range') EXECUTE FUNCTION blocklist_ip_ranges_moved();
CREATE TRIGGER blocklist_ip_ranges_update AFTER UPDATE ON blocklist_entries
FOR EACH ROW WHEN (NEW.list_type = 'ip_range' OR OLD.list_type = 'ip_range')
EXECUTE FUNCTION blocklist_ip_ranges_moved();
CREATE TRIGGER blocklist_ip_ranges_delete AFTER DELETE ON blocklist_entries
FOR EACH ROW WHEN (OLD.list_type = 'ip_range') EXECUTE FUNCTION blocklist_ip_ranges_moved();
