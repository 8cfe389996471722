-- Cases (expedientes, API.md §7), report fraud (§8) and fraud labels.
--
-- A case moves borrador → en_revision → enviado → resuelto (archivado from
-- borrador, en_revision, resuelto). `version` grows by one per change: a
-- change is written only if the version it read is still current, so two
-- concurrent changes cannot both win. Every changed field is one row of
-- `case_history` (who, when, old → new).
CREATE TABLE cases (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id),
    reference_number TEXT NOT NULL UNIQUE,
    status           TEXT NOT NULL,
    priority         TEXT NOT NULL,
    -- 1 baja … 4 urgente, for sorting by priority.
    priority_rank    BIGINT NOT NULL,
    jurisdiction     TEXT NOT NULL,
    incident_type    TEXT NOT NULL,
    -- Unix ms of the incident's day (UTC midnight), if known.
    incident_date    BIGINT,
    -- When the unusual operation was detected (the report's detection date).
    detected_at      BIGINT NOT NULL,
    -- detected_at + the jurisdiction's filing period.
    due_at           BIGINT NOT NULL,
    amount_minor     BIGINT,
    currency         TEXT,
    victim_name      TEXT,
    victim_email     TEXT,
    description      TEXT,
    -- The reasons the operation is unusual (drafted from the linked
    -- assessments' signals; editable until the report is submitted).
    unusual_reasons  TEXT,
    -- The person the report is about (JSON object: names, RFC, CURP, …).
    subject          TEXT,
    resolution       TEXT,
    -- manual | fraud_report
    source           TEXT NOT NULL,
    version          BIGINT NOT NULL,
    created_by       TEXT NOT NULL,
    -- The key that moved the case to en_revision (four eyes).
    reviewed_by      TEXT,
    submitted_by     TEXT,
    submitted_at     BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX cases_tenant_created ON cases (tenant_id, created_at);
CREATE INDEX cases_tenant_due ON cases (tenant_id, status, due_at);

-- Assessments linked to a case.
CREATE TABLE case_assessments (
    case_id    TEXT NOT NULL REFERENCES cases(id),
    session_id TEXT NOT NULL,
    tenant_id  TEXT NOT NULL,
    PRIMARY KEY (case_id, session_id)
);
CREATE INDEX case_assessments_session ON case_assessments (tenant_id, session_id);

-- Blocklist entries linked to a case (a fraud report's).
CREATE TABLE case_blocklist_entries (
    case_id  TEXT NOT NULL REFERENCES cases(id),
    entry_id TEXT NOT NULL,
    PRIMARY KEY (case_id, entry_id)
);

CREATE TABLE case_notes (
    id         TEXT PRIMARY KEY,
    case_id    TEXT NOT NULL REFERENCES cases(id),
    tenant_id  TEXT NOT NULL,
    author     TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX case_notes_case ON case_notes (case_id, created_at);

-- One row per changed field per change (the case's version after it).
CREATE TABLE case_history (
    case_id   TEXT NOT NULL REFERENCES cases(id),
    version   BIGINT NOT NULL,
    field     TEXT NOT NULL,
    old_value TEXT,
    new_value TEXT,
    actor     TEXT NOT NULL,
    at        BIGINT NOT NULL,
    PRIMARY KEY (case_id, version, field)
);

-- The regulatory report stored at submission; never updated.
CREATE TABLE case_reports (
    case_id      TEXT PRIMARY KEY REFERENCES cases(id),
    tenant_id    TEXT NOT NULL,
    report       TEXT NOT NULL,
    txt          TEXT,
    submitted_by TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);

-- Assessments labelled fraudulent (by a fraud report); one per assessment,
-- which also makes reporting the same assessment twice idempotent.
CREATE TABLE fraud_labels (
    tenant_id     TEXT NOT NULL,
    session_id    TEXT NOT NULL,
    flow          TEXT NOT NULL,
    reason        TEXT NOT NULL,
    description   TEXT,
    evidence_urls TEXT NOT NULL,
    case_id       TEXT NOT NULL REFERENCES cases(id),
    reported_by   TEXT NOT NULL,
    -- Set when the case is resolved as confirmed fraud.
    confirmed_at  BIGINT,
    -- When the labelled assessment was made (rule statistics by window).
    assessed_at   BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, session_id)
);

-- Report fraud finds an assessment by the bank's own transaction id.
CREATE INDEX assessments_payment ON assessments (tenant_id, payment_id)
    WHERE payment_id IS NOT NULL;

-- A tenant's case settings (four eyes, filing periods, reporting entity),
-- apart from the pipeline settings so neither write clobbers the other.
CREATE TABLE case_settings (
    tenant_id  TEXT PRIMARY KEY REFERENCES tenants(id),
    settings   TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
