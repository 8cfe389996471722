-- Per-key daily request limit (NULL = unlimited), next to the per-minute one.
ALTER TABLE api_keys ADD COLUMN rate_limit_per_day BIGINT;
