-- A rule may run one version active and another in shadow at the same
-- time: the activation's key gains the mode. SQLite cannot change a
-- primary key in place, so the table is rebuilt.
CREATE TABLE rule_activations_new (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    rule_id      TEXT NOT NULL,
    version      TEXT NOT NULL,
    mode         TEXT NOT NULL CHECK (mode IN ('active', 'shadow')),
    activated_by TEXT NOT NULL,
    activated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, rule_id, mode),
    UNIQUE (tenant_id, rule_id, version)
);
INSERT INTO rule_activations_new
    SELECT tenant_id, rule_id, version, mode, activated_by, activated_at FROM rule_activations;
DROP TABLE rule_activations;
ALTER TABLE rule_activations_new RENAME TO rule_activations;
CREATE INDEX rule_activations_at ON rule_activations (activated_at);
