-- Audit events PostgreSQL refused for their content (a NUL byte, an index row too large): each
-- is kept here, whole and byte for byte, with the reason, instead of blocking its batch or the
-- spool drain. `event` is the event's JSON as bytes: a row that text or jsonb refuse still fits.
CREATE TABLE audit_quarantine (
    id uuid PRIMARY KEY,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    reason text NOT NULL,
    sqlstate text,
    event bytea NOT NULL
);
CREATE INDEX audit_quarantine_at ON audit_quarantine (quarantined_at DESC);
