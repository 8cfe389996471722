-- Outbound webhooks (API.md §6).
--
-- The outbox (0001) holds each domain event, written in the transaction of
-- the change it records. The dispatcher numbers a tenant's events
-- (`sequence`, `previous_id`, gap-free per tenant), marks them dispatched
-- (`delivered_at`, kept for its name: "handed to delivery") and fans each
-- out as one delivery per subscribed endpoint, all in one transaction. The
-- delivery worker sends deliveries and logs every attempt.
ALTER TABLE outbox ADD COLUMN sequence BIGINT;
ALTER TABLE outbox ADD COLUMN previous_id TEXT;
-- The event feed: a tenant's events in sequence order.
CREATE UNIQUE INDEX outbox_sequence ON outbox (tenant_id, sequence);

-- Each tenant's last numbered event.
CREATE TABLE event_sequences (
    tenant_id     TEXT PRIMARY KEY,
    last_sequence BIGINT NOT NULL,
    last_id       TEXT NOT NULL
);

CREATE TABLE webhook_endpoints (
    id                    TEXT PRIMARY KEY,
    tenant_id             TEXT NOT NULL REFERENCES tenants(id),
    url                   TEXT NOT NULL,
    description           TEXT,
    -- JSON array of event names; empty = every event.
    events                TEXT NOT NULL,
    is_active             BIGINT NOT NULL,
    -- Signing secrets, sealed under the node's secrets key (never plain).
    secret                TEXT NOT NULL,
    previous_secret       TEXT,
    previous_secret_until BIGINT,
    -- Why the service disabled the endpoint (410, failing for days).
    disabled_reason       TEXT,
    -- Consecutive failed attempts and when the failing began.
    failure_streak        BIGINT NOT NULL,
    failing_since         BIGINT,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, created_at);

CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    endpoint_id     TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    event           TEXT NOT NULL,
    -- pending | delivered | failed
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    -- When it is due; while an attempt is in flight, the end of its lease
    -- (a node that dies mid-attempt leaves it due again then).
    next_attempt_at BIGINT,
    last_attempt_at BIGINT,
    last_status     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at);

CREATE TABLE webhook_attempts (
    delivery_id   TEXT NOT NULL,
    attempt       BIGINT NOT NULL,
    tenant_id     TEXT NOT NULL,
    at_ms         BIGINT NOT NULL,
    -- NULL when no response came (timeout, refused, unsafe address).
    status_code   BIGINT,
    duration_ms   BIGINT NOT NULL,
    error         TEXT,
    -- The first bytes of the response body.
    response_head TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
