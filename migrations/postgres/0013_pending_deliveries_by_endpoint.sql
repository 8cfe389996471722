-- Each endpoint's pending deliveries by due time. The worker asks whether
-- anything it may send is due; when an endpoint is at its concurrency cap
-- (a hanging receiver) its whole backlog is due, and the due index
-- (status, next_attempt_at) would walk that backlog on every turn to find
-- another endpoint's row. With this index the question is one probe per
-- active endpoint. Partial: delivered and failed rows, the bulk of the
-- table, are not in it.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (endpoint_id, next_attempt_at)
WHERE status = 'pending';
