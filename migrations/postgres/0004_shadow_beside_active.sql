-- A rule may run one version active and another in shadow at the same
-- time: the activation's key gains the mode, and a version holds at most
-- one of the two places.
ALTER TABLE rule_activations DROP CONSTRAINT rule_activations_pkey;
ALTER TABLE rule_activations ADD PRIMARY KEY (tenant_id, rule_id, mode);
ALTER TABLE rule_activations ADD CONSTRAINT rule_activations_version UNIQUE (tenant_id, rule_id, version);
ALTER TABLE rule_activations ADD CONSTRAINT rule_activations_mode CHECK (mode IN ('active', 'shadow'));
CREATE INDEX rule_activations_at ON rule_activations (activated_at);
