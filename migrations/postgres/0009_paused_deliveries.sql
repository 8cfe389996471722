-- A disabled endpoint's pending deliveries are parked (status `paused`)
-- until it is enabled again, so the worker's due read and claim walk only
-- deliveries that can go. The status column is free text; this parks what
-- is pending for endpoints disabled before this release.
UPDATE webhook_deliveries SET status = 'paused'
WHERE status = 'pending'
  AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE is_active = 0);
